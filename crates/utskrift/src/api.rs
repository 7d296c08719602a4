//! `POST /dpi/inbound` (docs/CHAIN.md hop 3): store first, validate later.

use axum::{
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dpi::message::Sbd;
use store::BlobRef;
use time::OffsetDateTime;
use web::{Problem, auth::Org};

use crate::{AppState, SCOPE_FORMIDLING, repo};

/// `POST /dpi/inbound`: 202 once the raw letter is durably stored and queued for validation,
/// 200 for a message id seen before with the same letter, 409 `duplicate_message_id` for
/// another letter under a used id. Only requests that can never be answered with a `feil`
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
    let (jws, cms) = web::letter_parts::read_letter_parts(
        multipart,
        dpi::message::MAX_SBD_BYTES * 2,
        state.0.cfg.max_dokumentpakke_bytes,
    )
    .await?;
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
    let payload = crate::inbox_blob(&cms);
    // Names the payload when the same message id comes again, before anything is stored.
    let payload_ref = BlobRef::of(&payload);
    if let Some(row) = repo::get_letter(db, &message_id)
        .await
        .map_err(Problem::internal)?
    {
        return repeat(&row, &payload_ref, &jws, &message_id);
    }
    let blob = state
        .0
        .deps
        .blobs
        .put(payload)
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
            dokumentpakke_size: blob.row_size(),
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?;
    if !inserted {
        // The same message id was stored while this request was on its way.
        return match repo::get_letter(db, &message_id)
            .await
            .map_err(Problem::internal)?
        {
            Some(row) => repeat(&row, &blob, &jws, &message_id),
            None => Err(Problem::internal("the letter row vanished")),
        };
    }
    metrics::counter!("utskrift_letters_received_total").increment(1);
    tracing::info!(message_id, "letter received for print");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The answer to a message id seen before: `200` when it is the same letter again (its answer
/// was lost), `409` when another letter uses the id. The business message is kept for good;
/// the payload's hash only until the letter is spooled or refused, but the business message
/// binds the dokumentpakke through its fingerprint, so the same business message with the
/// hash gone (or equal) is the same letter.
fn repeat(
    row: &repo::LetterRow,
    payload: &BlobRef,
    jws: &str,
    message_id: &str,
) -> Result<Response, Problem> {
    let same_payload = row
        .dokumentpakke_sha256
        .as_deref()
        .is_none_or(|sha| sha == payload.sha256);
    if same_payload && dpi::jws::is_same_message(&row.forretningsmelding, None, jws) {
        metrics::counter!("utskrift_redeliveries_total").increment(1);
        tracing::info!(message_id, "letter delivered again; acknowledged");
        return Ok(StatusCode::OK.into_response());
    }
    tracing::warn!(
        message_id,
        "another letter under a used message id; refused"
    );
    Err(Problem::duplicate_message_id(message_id))
}
