//! `POST /<slug>/dpi/inbound` (docs/CHAIN.md hop 3): authenticate the access point, read the
//! two multipart parts, store them durably with their processing job, answer `202` — or
//! `200` for a message id this tenant has seen before. Validation happens in the worker.

use axum::{
    body::Bytes,
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dpi::message::Sbd;
use time::OffsetDateTime;
use web::{Problem, auth::Org};

use crate::{SCOPE_FORMIDLING, TenantState, repo};

/// The two parts of a letter, read from `multipart/form-data`.
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
        (Some(j), Some(c)) if !c.is_empty() && !j.is_empty() => Ok((j, c)),
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

pub async fn inbound(
    State(st): State<TenantState>,
    Org(principal): Org,
    multipart: Multipart,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_FORMIDLING)?;
    let allowed = &st.app.0.cfg.access_points;
    if !allowed.is_empty() && !allowed.contains(&principal.consumer.orgnr()) {
        return Err(Problem::forbidden(
            "not_an_access_point",
            format!(
                "{} is not an access point this provider accepts letters from",
                principal.consumer
            ),
        ));
    }
    let (jws, cms) = read_parts(multipart, st.app.0.cfg.max_dokumentpakke_bytes).await?;
    // Only the message id is needed now (idempotence); the signature and everything else
    // are checked by the worker, which answers with a feil when they do not hold.
    let sbd = dpi::jws::decode_unverified(&jws)
        .ok()
        .and_then(|(_, payload)| Sbd::parse(&payload).ok())
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid_forretningsmelding",
                "the forretningsmelding is not a JWS over a DPI business message",
            )
        })?;
    let message_id = sbd.message_id().to_string();
    let tenant = st.tenant.orgnr.to_string();
    let blob = st
        .app
        .0
        .deps
        .blobs
        .put(cms)
        .await
        .map_err(Problem::internal)?;
    let inserted = repo::insert_inbound(
        &st.app.0.deps.db,
        &st.app.0.jobs,
        &repo::NewInbound {
            tenant: &tenant,
            message_id: &message_id,
            forretningsmelding: &jws,
            sha256: &blob.sha256,
            size: i64::try_from(blob.size).unwrap_or(i64::MAX),
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?;
    if inserted {
        metrics::counter!("postkasse_letters_received_total").increment(1);
        tracing::info!(message_id, tenant = %st.tenant.slug, "letter received");
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let existing = repo::get_inbound(&st.app.0.deps.db, &tenant, &message_id)
        .await
        .map_err(Problem::internal)?;
    match existing {
        Some(row) if row.forretningsmelding == jws && row.sha256 == blob.sha256 => {
            tracing::info!(message_id, "letter delivered again; acknowledged");
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(Problem::new(
            StatusCode::CONFLICT,
            "duplicate_message_id",
            "Message id already used",
        )
        .with_detail(format!(
            "another letter with the message id {message_id} was received before"
        ))),
    }
}
