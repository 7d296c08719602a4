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

/// A receipt from the receiving provider proves it has the letter the receipt answers: if it
/// still waits for delivery it is marked SENDT (and its payload forgotten) now. Without this a
/// letter whose delivery answer was lost in a crash stayed OPPRETTET, although its receipt had
/// reached the sender, until the delivery lease ran out and the provider acknowledged it again.
pub(crate) async fn confirmed_by_receipt(
    state: &AppState,
    message_id: &str,
) -> store::StoreResult<()> {
    let db = &state.0.deps.db;
    let Some(msg) = repo::get_message(db, message_id).await? else {
        return Ok(());
    };
    if msg.status != repo::OPPRETTET {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let note = "the provider answered with a receipt";
    let finished = repo::finish_message(db, message_id, repo::SENDT, Some(note), now).await?;
    forget_blob_payload(state, &msg, finished).await;
    if finished.moved {
        metrics::counter!("formidler_messages_delivered_total").increment(1);
        tracing::info!(message_id, "delivery confirmed by the provider's receipt");
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

/// Marks the letter FEILET and leaves a signed `feil` (SERVER) for its sender, in one
/// transaction and only if the letter still waited: one delivered meanwhile (a receipt,
/// another worker) gets no feil. The feil's id is derived from the letter's.
async fn give_up(
    state: &AppState,
    msg: &repo::MessageRow,
    reason: &str,
) -> Result<(), DeliverError> {
    let db = &state.0.deps.db;
    let now = OffsetDateTime::now_utc();
    let feil = dpi::jws::decode_unverified(&msg.forretningsmelding)
        .ok()
        .and_then(|(_, payload)| Sbd::parse(&payload).ok())
        .and_then(|letter| signed_feil(state, msg, &letter, reason, now));
    let incoming = feil.as_ref().map(|f| repo::NewIncoming {
        id: &f.id,
        conversation_id: &f.conversation_id,
        message_type: f.message_type,
        recipient_orgnr: &msg.sender_orgnr,
        // The letter's own route: another letter of its conversation may have another sender.
        supplier_orgnr: msg.supplier_orgnr.as_deref(),
        avsenderidentifikator: msg.avsenderidentifikator.as_deref(),
        kanal: msg.kanal.as_deref(),
        forretningsmelding: &f.jws,
    });
    let finished = repo::fail_message(db, &msg.message_id, reason, incoming.as_ref(), now).await?;
    forget_blob_payload(state, msg, finished).await;
    if !finished.moved {
        return Ok(());
    }
    metrics::counter!("formidler_messages_failed_total").increment(1);
    tracing::warn!(message_id = %msg.message_id, reason, "letter failed");
    Ok(())
}

/// A `feil` the access point signed itself, ready to store.
struct SignedFeil {
    id: String,
    conversation_id: String,
    message_type: &'static str,
    jws: String,
}

fn signed_feil(
    state: &AppState,
    msg: &repo::MessageRow,
    letter: &Sbd,
    reason: &str,
    now: OffsetDateTime,
) -> Option<SignedFeil> {
    let signer = &state.0.deps.signer;
    let feil_id = MessageId(uuid::Uuid::new_v5(
        &FEIL_NAMESPACE,
        msg.message_id.as_bytes(),
    ));
    let detaljer: String = reason.chars().take(1000).collect();
    let feil = build_receipt(
        letter,
        ReceiptKind::Feil {
            feiltype: Feiltype::Server,
            detaljer: Some(detaljer),
        },
        &signer.orgnr,
        Timestamp(now),
        feil_id,
    )
    .map_err(|e| tracing::error!(error = %e, "building a feil failed"))
    .ok()?;
    let jws = sign_sbd(&feil, &signer.cert, &signer.key)
        .map_err(|e| tracing::error!(error = %e, "signing a feil failed"))
        .ok()?;
    Some(SignedFeil {
        id: feil_id.to_string(),
        conversation_id: letter
            .conversation_id()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        message_type: feil.message_type().key(),
        jws,
    })
}

/// Namespace of the ids of the `feil` the access point issues itself (UUID v5 over the letter id).
const FEIL_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5a3f_1c0e_9d2b_4e7a_8f61_0b4c_2d9e_7a13);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::ConversationId;
    use dpi::message::{
        Avsender, Body, Digital, Dokumentpakkefingeravtrykk, Header, MessageType, Personmottaker,
        Process, Sikkerhetsnivaa,
    };
    use web::{
        Problem,
        auth::{BoxFuture, OrgPrincipal, TokenSource, TokenVerifier},
    };

    use super::*;

    /// Neither tokens in nor tokens out: `give_up` needs neither.
    struct NoTokens;

    impl TokenVerifier for NoTokens {
        fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<OrgPrincipal, Problem>> {
            Box::pin(async { Err(Problem::unauthorized("invalid_token", "no tokens here")) })
        }
    }

    impl TokenSource for NoTokens {
        fn token<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
            Box::pin(async { anyhow::bail!("no tokens here") })
        }
    }

    async fn feil_count(db: &store::Db) -> i64 {
        store::sqlx::query_scalar("SELECT COUNT(*) FROM formidler_incoming")
            .fetch_one(db.pool())
            .await
            .unwrap()
    }

    /// A letter delivered between the worker's read and its giving up (a receipt confirmed
    /// it, or another worker delivered it) gets no feil; one still waiting gets its feil, on its
    /// own route, though another letter of its conversation had another one.
    #[tokio::test]
    async fn giving_up_on_a_letter_delivered_meanwhile_leaves_no_feil() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::TestPki::load_or_init(dir.path()).unwrap();
        let me = pki
            .issue_enterprise(&pki::demo::formidler(), pki::demo::FORMIDLER_NAME)
            .unwrap();
        let kommune = pki::demo::kommune().actor_id();
        let state = AppState::new(
            crate::Config::default(),
            crate::Deps {
                db: db.clone(),
                blobs: store::BlobStore::memory(),
                verifier: Arc::new(NoTokens),
                tokens: Arc::new(NoTokens),
                signer: crate::Signer {
                    orgnr: pki::demo::formidler().actor_id(),
                    cert: me.cert().clone(),
                    key: me.key().clone(),
                },
                anchors: dpi::trust::TrustAnchors::none(),
                public_url: url::Url::parse("http://127.0.0.1/formidler").unwrap(),
            },
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let conversation = ConversationId::new();
        let databehandler = pki::demo::databehandler().to_string();
        let mut waiting = Vec::new();
        for (kanal, supplier) in [("kanal_a", None), ("kanal_b", Some(&databehandler))] {
            let id = MessageId::new();
            let letter = Sbd {
                header: Header::new(
                    MessageType::Digital,
                    &kommune,
                    &pki::demo::digipost().actor_id(),
                    id,
                    conversation,
                    Process::Digital,
                    Timestamp(now.replace_nanosecond(0).unwrap()),
                    None,
                ),
                body: Body::Digital(Digital {
                    avsender: Avsender::new(&kommune),
                    mottaker: Personmottaker {
                        postkasseadresse: "ola.nordmann#1A2B".into(),
                    },
                    dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk::of(b"cms"),
                    maskinportentoken: "token".into(),
                    sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa3,
                    virkningsdato: None,
                    virkningstidspunkt: None,
                    aapningskvittering: None,
                    ikkesensitivtittel: "Vedtak".into(),
                    spraak: "NO".into(),
                    varsler: None,
                }),
            };
            let jws = dpi::jws::sign(&letter.to_json(), &[me.cert()], me.key()).unwrap();
            let m = repo::NewMessage {
                message_id: id.to_string(),
                conversation_id: letter.conversation_id().unwrap().to_string(),
                message_type: "digital".into(),
                sender_orgnr: kommune.orgnr().to_string(),
                supplier_orgnr: supplier.cloned(),
                avsenderidentifikator: None,
                receiver_orgnr: pki::demo::digipost().to_string(),
                sbd_sender_orgnr: Some(kommune.orgnr().to_string()),
                kanal: Some(kanal.into()),
                forretningsmelding: jws,
                dokumentpakke_sha256: BlobRef::of(b"cms").sha256,
                dokumentpakke_size: 3,
                dokumentpakke: bytes::Bytes::from_static(b"cms"),
                deliver_by: now,
            };
            let job = job(&m.message_id).unwrap();
            assert!(
                repo::insert_message(db, &state.0.jobs, &m, job, now)
                    .await
                    .unwrap()
            );
            // As the worker read it, before giving up.
            waiting.push(repo::get_message(db, &m.message_id).await.unwrap().unwrap());
        }
        let (delivered, still_waiting) = (&waiting[0], &waiting[1]);
        assert!(
            repo::finish_message(db, &delivered.message_id, repo::SENDT, None, now)
                .await
                .unwrap()
                .moved
        );
        give_up(&state, delivered, "deadline").await.unwrap();
        assert_eq!(feil_count(db).await, 0);
        let statuses = repo::statuses(db, &delivered.message_id).await.unwrap();
        assert_eq!(statuses.last().unwrap().status, repo::SENDT);

        give_up(&state, still_waiting, "deadline").await.unwrap();
        assert_eq!(feil_count(db).await, 1, "the waiting letter's feil");
        let route: (String, Option<String>, Option<String>) = store::sqlx::query_as(
            "SELECT recipient_orgnr, supplier_orgnr, kanal FROM formidler_incoming",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(
            route,
            (
                kommune.orgnr().to_string(),
                Some(databehandler),
                Some("kanal_b".into())
            )
        );
        let statuses = repo::statuses(db, &still_waiting.message_id).await.unwrap();
        assert_eq!(statuses.last().unwrap().status, repo::FEILET);
    }
}
