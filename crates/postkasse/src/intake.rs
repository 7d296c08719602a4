//! `POST /<slug>/dpi/inbound` (docs/CHAIN.md hop 3): authenticate the access point, read the
//! two multipart parts, process the letter (corner-4 checks, decryption, documents, the
//! signed receipt) and record the outcome in one transaction, then answer `202` — or `200`
//! for a message id this tenant has seen before with the same letter.
//!
//! Processing inside the request means the ciphertext is never stored: until the commit
//! the access point has no answer and keeps the letter for another attempt (a crash, or
//! `503` when a service processing depends on is unavailable), and after it the letter is
//! settled. Storing the ciphertext first and processing it in a worker wrote, read and
//! deleted each ~100 KB payload in the database once more per letter.

use axum::{
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dpi::message::Sbd;
use store::BlobRef;
use time::OffsetDateTime;
use web::{Problem, auth::Org};

use crate::{SCOPE_FORMIDLING, TenantState, process, repo};

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
    let (jws, cms) = web::letter_parts::read_letter_parts(
        multipart,
        dpi::message::MAX_SBD_BYTES * 2,
        st.app.0.cfg.max_dokumentpakke_bytes,
    )
    .await?;
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
    let db = &st.app.0.deps.db;
    // The hash identifies the payload when the same message id comes again.
    let blob = BlobRef::of(&cms);
    // A repeat is answered before anything is processed (nor any document stored) again.
    if let Some(row) = repo::get_inbound(db, &tenant, &message_id)
        .await
        .map_err(Problem::internal)?
    {
        return repeat(&row, &blob, &jws, &message_id);
    }
    let decided = {
        // At most `process_workers` letters are processed at once; more deliveries wait.
        let _permit = st
            .app
            .0
            .processing
            .acquire()
            .await
            .map_err(Problem::internal)?;
        let now = OffsetDateTime::now_utc();
        process::decide(&st.app, &st.tenant, &jws, cms, now).await
    };
    let decided = match decided {
        Ok(Some(d)) => d,
        // decode_unverified parsed it above; open_letter found it parseable too or not at all.
        Ok(None) => {
            return Err(Problem::bad_request(
                "invalid_forretningsmelding",
                "the forretningsmelding is not a JWS over a DPI business message",
            ));
        }
        Err(e) => {
            tracing::warn!(message_id, error = %e, "letter not processed; the access point tries again");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "processing_unavailable",
                "The letter could not be processed now",
            )
            .with_detail(e.to_string()));
        }
    };
    let inbound = repo::NewInbound {
        tenant: &tenant,
        message_id: &message_id,
        forretningsmelding: &jws,
        sha256: &blob.sha256,
        size: blob.row_size(),
    };
    let stored = repo::store_processed(
        db,
        &st.app.0.jobs,
        &inbound,
        &decided.outcome(),
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?;
    if stored {
        metrics::counter!("postkasse_letters_received_total").increment(1);
        process::recorded(&st.app, &st.tenant, &message_id, &decided)
            .await
            .map_err(Problem::internal)?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    // The same message id was recorded while this one was processed.
    match repo::get_inbound(db, &tenant, &message_id)
        .await
        .map_err(Problem::internal)?
    {
        Some(row) => repeat(&row, &blob, &jws, &message_id),
        None => Err(Problem::internal("the inbound row vanished")),
    }
}

/// The answer to a message id the tenant has recorded before: `200` when it is the same
/// letter again (its answer was lost), `409` when another letter uses the id.
fn repeat(
    row: &repo::InboundRow,
    blob: &BlobRef,
    jws: &str,
    message_id: &str,
) -> Result<Response, Problem> {
    if row.sha256 == blob.sha256
        && dpi::jws::is_same_message(
            &row.forretningsmelding,
            row.forretningsmelding_sha256.as_deref(),
            jws,
        )
    {
        tracing::info!(message_id, "letter delivered again; acknowledged");
        return Ok(StatusCode::OK.into_response());
    }
    Err(Problem::duplicate_message_id(message_id))
}
