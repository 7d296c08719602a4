//! `POST /dpi/inbound` (docs/CHAIN.md hop 3): store first, validate later.

use axum::{
    body::Bytes,
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dpi::message::Sbd;
use time::OffsetDateTime;
use web::{Problem, auth::Org};

use crate::{AppState, SCOPE_FORMIDLING, repo};

/// The two parts of a delivered letter.
async fn read_parts(mut multipart: Multipart, max: usize) -> Result<(String, Bytes), Problem> {
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
                if bytes.len() > dpi::message::MAX_SBD_BYTES * 2 {
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
                if bytes.len() > max {
                    return Err(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "dokumentpakke_too_large",
                        "Dokumentpakke too large",
                    )
                    .with_detail(format!("the limit is {max} bytes")));
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

fn multipart_problem(e: axum::extract::multipart::MultipartError) -> Problem {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "payload_too_large", "Request body too large")
    } else {
        Problem::bad_request("invalid_multipart", e.body_text())
    }
}

/// `POST /dpi/inbound`: 202 once the raw letter is durably stored and queued for validation,
/// 200 for a message id seen before. Only requests that can never be answered with a `feil`
/// are refused here: bad auth, not multipart, a business message that cannot be read (no
/// message id to answer), or a receipt instead of a letter.
pub async fn inbound(
    State(state): State<AppState>,
    Org(principal): Org,
    multipart: Multipart,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_FORMIDLING)?;
    let accept = &state.0.cfg.accept_from;
    if !accept.is_empty() && !accept.contains(&principal.consumer.orgnr()) {
        return Err(Problem::forbidden(
            "not_an_access_point",
            format!(
                "{} is not an access point this print provider takes letters from",
                principal.consumer
            ),
        ));
    }
    let (jws, cms) = read_parts(multipart, state.0.cfg.max_dokumentpakke_bytes).await?;
    // Unverified on purpose: validation (and the answer to a bad letter) happens in the
    // worker; here only the ids are needed.
    let sbd = dpi::jws::decode_unverified(&jws)
        .map_err(|e| Problem::bad_request("invalid_forretningsmelding", e.to_string()))
        .and_then(|(_, payload)| {
            Sbd::parse(&payload).map_err(|e| {
                Problem::bad_request("invalid_forretningsmelding", e.to_string())
                    .with_extension("reason", e.code)
            })
        })?;
    if sbd.message_type().is_receipt() {
        return Err(Problem::bad_request(
            "not_a_letter",
            format!(
                "a {} is a receipt; receipts go to the access point",
                sbd.message_type().key()
            ),
        ));
    }
    let message_id = sbd.message_id().to_string();
    let db = &state.0.deps.db;
    if repo::get_letter(db, &message_id)
        .await
        .map_err(Problem::internal)?
        .is_some()
    {
        metrics::counter!("utskrift_redeliveries_total").increment(1);
        return Ok(StatusCode::OK.into_response());
    }
    let blob = state
        .0
        .deps
        .blobs
        .put(crate::inbox_blob(&cms))
        .await
        .map_err(Problem::internal)?;
    let conversation = sbd.conversation_id().map(|c| c.to_string());
    let sender = domain::ActorId::parse(&sbd.header.sender.value)
        .ok()
        .map(|a| a.orgnr().to_string());
    let inserted = repo::insert_received(
        db,
        &state.0.jobs,
        &repo::NewLetter {
            message_id: &message_id,
            conversation_id: conversation.as_deref(),
            sender_orgnr: sender.as_deref(),
            forretningsmelding: &jws,
            dokumentpakke_sha256: &blob.sha256,
            dokumentpakke_size: i64::try_from(blob.size).unwrap_or(i64::MAX),
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?;
    if !inserted {
        metrics::counter!("utskrift_redeliveries_total").increment(1);
        return Ok(StatusCode::OK.into_response());
    }
    metrics::counter!("utskrift_letters_received_total").increment(1);
    tracing::info!(message_id, "letter received for print");
    Ok(StatusCode::ACCEPTED.into_response())
}
