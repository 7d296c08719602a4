//! `POST /<slug>/dpi/inbound` (docs/CHAIN.md hop 3): authenticate the access point, read the
//! two multipart parts, store them durably with their processing job, answer `202` — or
//! `200` for a message id this tenant has seen before. Validation happens in the worker.

use axum::{
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dpi::message::Sbd;
use store::BlobRef;
use time::OffsetDateTime;
use web::{Problem, auth::Org};

use crate::{SCOPE_FORMIDLING, TenantState, repo};

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
    // The hash identifies the payload when the same message id comes again.
    let blob = BlobRef::of(&cms);
    let inserted = repo::insert_inbound(
        &st.app.0.deps.db,
        &st.app.0.jobs,
        &repo::NewInbound {
            tenant: &tenant,
            message_id: &message_id,
            forretningsmelding: &jws,
            sha256: &blob.sha256,
            size: blob.row_size(),
            dokumentpakke: &cms,
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
        Some(row)
            if row.sha256 == blob.sha256
                && dpi::jws::is_same_message(
                    &row.forretningsmelding,
                    row.forretningsmelding_sha256.as_deref(),
                    &jws,
                ) =>
        {
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
