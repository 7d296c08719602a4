//! Delivery to providers through the durable job queue: one job per letter (dedup key = the
//! message id), retried with backoff until the provider takes it or the delivery deadline
//! passes, when the letter becomes a `feil` (SERVER) for its sender.

use std::time::Duration;

use domain::MessageId;
use dpi::{
    message::{Feiltype, Sbd, Timestamp},
    receipt::{ReceiptKind, build_receipt, sign_sbd},
};
use serde::{Deserialize, Serialize};
use store::{BlobRef, Job};
use time::OffsetDateTime;

use crate::{AppState, SCOPE_FORMIDLING, repo};

pub const DELIVER_QUEUE: &str = "formidler.deliver";

#[derive(Debug, Serialize, Deserialize)]
struct DeliverJob {
    message_id: String,
}

/// The delivery job of a message (deduplicated by the message id).
pub fn job(message_id: &str) -> store::StoreResult<store::NewJob> {
    Ok(store::NewJob::new(
        DELIVER_QUEUE,
        &DeliverJob {
            message_id: message_id.to_owned(),
        },
    )?
    .dedup_key(message_id))
}

pub async fn enqueue(state: &AppState, message_id: &str) -> store::StoreResult<()> {
    state.0.jobs.enqueue_job(job(message_id)?).await.map(|_| ())
}

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    // A letter accepted just before a crash may have its row but not its job: queue every
    // undelivered letter again (the dedup key makes this a no-op for the others).
    {
        let state = state.clone();
        handles.push(tokio::spawn(async move {
            match repo::pending_ids(&state.0.deps.db).await {
                Ok(ids) => {
                    for id in ids {
                        if let Err(e) = enqueue(&state, &id).await {
                            tracing::warn!(error = %e, "re-enqueueing a pending letter failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing pending letters failed"),
            }
        }));
    }
    {
        // Messages accepted before digests were kept: digested once, and emptied when finished.
        let state = state.clone();
        handles.push(tokio::spawn(async move {
            let db = &state.0.deps.db;
            store::run_batches_once("digesting earlier business messages", || {
                repo::digest_old_messages(db, 500)
            })
            .await;
        }));
    }
    {
        // Receipts past keeping: at start, then every ten minutes, a batch at a time.
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        handles.push(tokio::spawn(async move {
            loop {
                purge_receipts(&state).await;
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(PURGE_EVERY) => {}
                }
            }
        }));
    }
    let (jobs, count) = (state.0.jobs.clone(), state.0.cfg.delivery_workers);
    handles.extend(store::spawn_workers(
        &jobs,
        DELIVER_QUEUE,
        "formidler-deliver",
        count,
        // Renewed every third of it while a delivery runs (which may take the whole delivery
        // timeout), so it only bounds how long a delivery whose worker was killed waits
        // before another worker takes it over.
        Duration::from_secs(30),
        move |job| deliver_one(state.clone(), job),
        &shutdown,
    ));
    handles
}

/// How often receipts past keeping are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Receipts one statement deletes at most: a short write, even on SQLite's single writer.
const PURGE_BATCH: i64 = 1000;

async fn purge_receipts(state: &AppState) {
    let cfg = &state.0.cfg;
    let now = OffsetDateTime::now_utc();
    // A keep time beyond the calendar keeps everything.
    let days = |n: u32| {
        now.checked_sub(time::Duration::days(i64::from(n.max(1))))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let (read_before, unread_before) = (
        days(cfg.keep_read_receipts_days),
        days(cfg.keep_unread_receipts_days),
    );
    let mut total = 0;
    loop {
        match repo::purge_receipts(&state.0.deps.db, read_before, unread_before, PURGE_BATCH).await
        {
            Ok(n) => {
                total += n;
                if n < PURGE_BATCH.unsigned_abs() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "deleting receipts past keeping failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "receipts past keeping deleted");
    }
}

#[derive(Debug, thiserror::Error)]
enum DeliverError {
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

async fn deliver_one(state: AppState, job: Job) -> Result<(), DeliverError> {
    let payload: DeliverJob = job.payload_as()?;
    let db = &state.0.deps.db;
    let Some((msg, stored)) = repo::message_for_delivery(db, &payload.message_id).await? else {
        return Ok(());
    };
    if msg.status != repo::OPPRETTET {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    if store::to_ms(now) > msg.deliver_by {
        give_up(
            &state,
            &msg,
            "the provider did not accept the letter before the delivery deadline",
        )
        .await?;
        return Ok(());
    }
    let Some(blob) = msg.payload_ref() else {
        return Ok(());
    };
    let Some(route) = domain::Organisasjonsnummer::parse(&msg.receiver_orgnr)
        .ok()
        .and_then(|o| state.route_for(&o).cloned())
    else {
        give_up(&state, &msg, "no route to the receiving provider").await?;
        return Ok(());
    };
    let cms = match stored {
        Some(bytes) if BlobRef::of(&bytes) == blob => bytes::Bytes::from(bytes),
        Some(_) => {
            give_up(
                &state,
                &msg,
                "the stored dokumentpakke does not match its digest",
            )
            .await?;
            return Ok(());
        }
        // Accepted before payloads moved into the database.
        None => state.0.deps.blobs.get(&blob).await?,
    };
    let token = state
        .0
        .deps
        .tokens
        .token(SCOPE_FORMIDLING)
        .await
        .map_err(|e| DeliverError::Retry(format!("token: {e:#}")))?;
    let form = reqwest::multipart::Form::new()
        .part(
            "forretningsmelding",
            reqwest::multipart::Part::text(msg.forretningsmelding.clone())
                .file_name("sbd.jwt")
                .mime_str("application/jwt")
                .map_err(|e| DeliverError::Retry(e.to_string()))?,
        )
        .part(
            "dokumentpakke",
            reqwest::multipart::Part::bytes(cms.to_vec())
                .file_name("asic.cms")
                .mime_str("application/cms")
                .map_err(|e| DeliverError::Retry(e.to_string()))?,
        );
    let url = format!(
        "{}/dpi/inbound",
        route.endpoint.as_str().trim_end_matches('/')
    );
    let response = state
        .0
        .http
        .post(&url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .map_err(|e| DeliverError::Retry(format!("POST {url}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        let finished = repo::finish_message(
            db,
            &msg.message_id,
            repo::SENDT,
            None,
            OffsetDateTime::now_utc(),
        )
        .await?;
        forget_blob_payload(&state, &msg, finished).await;
        if finished.moved {
            metrics::counter!("formidler_messages_delivered_total").increment(1);
        }
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let detail = format!(
        "{url} answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        // The provider will never take this request as it is.
        give_up(&state, &msg, &detail).await?;
        return Ok(());
    }
    Err(DeliverError::Retry(detail))
}

/// A receipt from the receiving provider proves it has the conversation's letter: a letter
/// still waiting for delivery is marked SENDT (and its payload forgotten) now. Without this a
/// letter whose delivery answer was lost in a crash stayed OPPRETTET, although its receipt had
/// reached the sender, until the delivery lease ran out and the provider acknowledged it again.
pub(crate) async fn confirmed_by_receipt(
    state: &AppState,
    conversation_id: &str,
) -> store::StoreResult<()> {
    let db = &state.0.deps.db;
    for message_id in repo::pending_in_conversation(db, conversation_id).await? {
        let Some(msg) = repo::get_message(db, &message_id).await? else {
            continue;
        };
        let now = OffsetDateTime::now_utc();
        let note = "the provider answered with a receipt";
        let finished = repo::finish_message(db, &message_id, repo::SENDT, Some(note), now).await?;
        forget_blob_payload(state, &msg, finished).await;
        if finished.moved {
            metrics::counter!("formidler_messages_delivered_total").increment(1);
            tracing::info!(message_id, "delivery confirmed by the provider's receipt");
        }
    }
    Ok(())
}

/// After [`repo::finish_message`] moved `msg`: a payload kept in the blob store (a message
/// accepted before payloads moved into the database) is deleted once no unfinished message
/// needs it. Payloads in `formidler_payloads` went with the finishing transaction.
async fn forget_blob_payload(state: &AppState, msg: &repo::MessageRow, finished: repo::Finished) {
    if !(finished.moved && finished.payload_in_blobs) {
        return;
    }
    let Some(blob) = msg.payload_ref() else {
        return;
    };
    match repo::blob_still_needed(&state.0.deps.db, &blob.sha256).await {
        Ok(false) => {
            if let Err(e) = state.0.deps.blobs.delete(&blob).await {
                tracing::warn!(error = %e, "deleting a delivered payload failed");
            }
        }
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "checking payload references failed"),
    }
}

/// Leaves a signed `feil` (SERVER) for the sender, then marks the letter FEILET. The feil's id
/// is derived from the letter's, so a crash between the two steps cannot produce two of them.
async fn give_up(
    state: &AppState,
    msg: &repo::MessageRow,
    reason: &str,
) -> Result<(), DeliverError> {
    let db = &state.0.deps.db;
    let now = OffsetDateTime::now_utc();
    if let Some(letter) = dpi::jws::decode_unverified(&msg.forretningsmelding)
        .ok()
        .and_then(|(_, payload)| Sbd::parse(&payload).ok())
    {
        leave_feil(state, msg, &letter, reason, now).await?;
    }
    let finished =
        repo::finish_message(db, &msg.message_id, repo::FEILET, Some(reason), now).await?;
    forget_blob_payload(state, msg, finished).await;
    if !finished.moved {
        return Ok(());
    }
    metrics::counter!("formidler_messages_failed_total").increment(1);
    tracing::warn!(message_id = %msg.message_id, reason, "letter failed");
    Ok(())
}

async fn leave_feil(
    state: &AppState,
    msg: &repo::MessageRow,
    letter: &Sbd,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), DeliverError> {
    let db = &state.0.deps.db;
    let signer = &state.0.deps.signer;
    let feil_id = MessageId(uuid::Uuid::new_v5(
        &FEIL_NAMESPACE,
        msg.message_id.as_bytes(),
    ));
    let detaljer: String = reason.chars().take(1000).collect();
    let feil = match build_receipt(
        letter,
        ReceiptKind::Feil {
            feiltype: Feiltype::Server,
            detaljer: Some(detaljer),
        },
        &signer.orgnr,
        Timestamp(now),
        feil_id,
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "building a feil failed");
            return Ok(());
        }
    };
    let jws = match sign_sbd(&feil, &signer.cert, &signer.key) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "signing a feil failed");
            return Ok(());
        }
    };
    let conversation = letter
        .conversation_id()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let conv = repo::conversation(db, &conversation).await?;
    repo::insert_incoming(
        db,
        &repo::NewIncoming {
            id: &feil_id.to_string(),
            conversation_id: &conversation,
            message_type: feil.message_type().key(),
            recipient_orgnr: &msg.sender_orgnr,
            supplier_orgnr: conv.as_ref().and_then(|c| c.supplier_orgnr.as_deref()),
            avsenderidentifikator: conv
                .as_ref()
                .and_then(|c| c.avsenderidentifikator.as_deref()),
            kanal: conv.as_ref().and_then(|c| c.kanal.as_deref()),
            forretningsmelding: &jws,
        },
        now,
    )
    .await?;
    Ok(())
}

/// Namespace of the ids of the `feil` the access point issues itself (UUID v5 over the letter id).
const FEIL_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5a3f_1c0e_9d2b_4e7a_8f61_0b4c_2d9e_7a13);
