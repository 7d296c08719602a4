//! The two multipart parts of a DPI letter on the wire (`forretningsmelding` + `dokumentpakke`),
//! as the access point and the providers receive them (docs/CHAIN.md hops 2 and 3).

use axum::{
    body::Bytes,
    extract::{Multipart, multipart::MultipartError},
    http::StatusCode,
};

use crate::Problem;

/// Reads the business message (JWS text, at most `max_jws` bytes) and the dokumentpakke (CMS,
/// at most `max_cms` bytes); any other or repeated part, or a missing one, is refused.
pub async fn read_letter_parts(
    mut multipart: Multipart,
    max_jws: usize,
    max_cms: usize,
) -> Result<(String, Bytes), Problem> {
    let mut jws = None;
    let mut cms = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_problem(e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "forretningsmelding" if jws.is_none() => {
                let bytes = field.bytes().await.map_err(multipart_problem)?;
                if bytes.len() > max_jws {
                    return Err(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "forretningsmelding_too_large",
                        "Forretningsmelding too large",
                    ));
                }
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    Problem::bad_request("invalid_forretningsmelding", "not UTF-8 text")
                })?;
                jws = Some(text.trim().to_owned());
            }
            "dokumentpakke" if cms.is_none() => {
                let bytes = field.bytes().await.map_err(multipart_problem)?;
                if bytes.len() > max_cms {
                    return Err(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "dokumentpakke_too_large",
                        "Dokumentpakke too large",
                    )
                    .with_detail(format!("the limit is {max_cms} bytes")));
                }
                cms = Some(bytes);
            }
            other => {
                return Err(Problem::bad_request(
                    "unexpected_part",
                    format!("unexpected or repeated multipart part {other:?}"),
                ));
            }
        }
    }
    match (jws, cms) {
        (Some(j), Some(c)) if !j.is_empty() && !c.is_empty() => Ok((j, c)),
        _ => Err(Problem::bad_request(
            "missing_part",
            "both parts forretningsmelding and dokumentpakke are required",
        )),
    }
}

/// A multipart body that could not be read: 413 when it outgrew the body limit (which may
/// happen in the middle of a part), 400 otherwise.
pub fn multipart_problem(e: MultipartError) -> Problem {
    Problem::from_rejection(e.status(), "invalid_multipart", e.body_text())
}
