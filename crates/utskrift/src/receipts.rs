//! Receipts to senders (queue `utskrift.receipt`): built from the letter and the owed
//! receipt row, signed with the provider's certificate and handed to the access point's
//! `POST /dpi/receipts` with the provider's Maskinporten token, retried with backoff until the
//! access point takes it. The receipt id and time are fixed when it is owed, so a retry sends
//! the very same receipt.

use std::time::Duration;

use axum::http::header;
use domain::MessageId;
use dpi::{
    message::{Feiltype, Sbd, Timestamp},
    receipt::{ReceiptKind, build_receipt, sign_sbd},
};
use store::Job;
use time::OffsetDateTime;

use crate::{AppState, SCOPE_FORMIDLING, repo};

pub const MOTTAK: &str = "mottakskvittering";
pub const LEVERING: &str = "leveringskvittering";
pub const RETURPOST: &str = "returpostkvittering";
pub const FEIL: &str = "feil";

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (jobs, count) = (state.0.jobs.clone(), state.0.cfg.receipt_workers);
    let lease = Duration::from_secs(state.0.cfg.receipt_timeout_secs.max(1) * 2);
    store::spawn_workers(
        &jobs,
        repo::RECEIPT_QUEUE,
        "utskrift-receipt",
        count,
        lease,
        move |job| send(state.clone(), job),
        &shutdown,
    )
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The receipts that must reach the access point before one of `kind` for the same letter:
/// dpi-spec §7.1 orders them mottakskvittering → leveringskvittering → returpostkvittering,
/// and the sender's state machine refuses a receipt that comes before its predecessor (a
/// returpost before the levering would leave the letter `delivered` for good).
fn predecessors(kind: &str) -> &'static [&'static str] {
    match kind {
        LEVERING => &[MOTTAK],
        RETURPOST => &[MOTTAK, LEVERING],
        _ => &[],
    }
}

fn kind_of(row: &repo::ReceiptRow) -> Option<ReceiptKind> {
    Some(match row.kind.as_str() {
        MOTTAK => ReceiptKind::Mottak,
        LEVERING => ReceiptKind::Levering,
        RETURPOST => ReceiptKind::Returpost,
        FEIL => ReceiptKind::Feil {
            feiltype: Feiltype::Klient,
            detaljer: row.detaljer.clone(),
        },
        _ => return None,
    })
}

/// The signed receipt JWS for an owed receipt row.
fn build(state: &AppState, row: &repo::ReceiptRow, letter_jws: &str) -> Result<String, String> {
    let letter = dpi::jws::decode_unverified(letter_jws)
        .map_err(|e| e.to_string())
        .and_then(|(_, p)| Sbd::parse(&p).map_err(|e| e.to_string()))?;
    let kind = kind_of(row).ok_or_else(|| format!("unknown receipt kind {}", row.kind))?;
    let id = MessageId::parse(&row.id).map_err(|e| e.to_string())?;
    let at = store::from_ms(row.tidspunkt).map_err(|e| e.to_string())?;
    let identity = &state.0.deps.identity;
    let receipt = build_receipt(&letter, kind, &identity.orgnr, Timestamp(at), id)
        .map_err(|e| format!("{}: {e}", e.code()))?;
    sign_sbd(&receipt, &identity.cert, &identity.key).map_err(|e| e.to_string())
}

async fn send(state: AppState, job: Job) -> Result<(), SendError> {
    let p: repo::ReceiptJob = job.payload_as()?;
    let db = &state.0.deps.db;
    let Some(row) = repo::get_receipt(db, &p.receipt_id).await? else {
        return Ok(());
    };
    if row.status != "pending" {
        return Ok(());
    }
    // Each owed receipt is its own job, and jobs run in parallel with their own backoff, so
    // the order is kept here: while an earlier receipt of the letter is still pending, this
    // one fails its attempt and is tried again with the queue's backoff. That costs attempts,
    // but receipt jobs have `repo::MAX_ATTEMPTS` (months at the capped delay), the earlier
    // receipt is retried on the same terms, and a refused (not pending) one no longer holds
    // the later ones up. Waiting in the queue rather than here keeps the worker free.
    let waits_for = predecessors(&row.kind);
    if !waits_for.is_empty() {
        let receipts = repo::receipts_of(db, &row.message_id).await?;
        let pending = |kind: &str| receipts.iter().any(|(k, st)| k == kind && st == "pending");
        if let Some(earlier) = waits_for.iter().find(|k| pending(k)) {
            return Err(SendError::Retry(format!(
                "waiting for the {earlier} of the letter to reach the access point first"
            )));
        }
    }
    let Some(letter) = repo::get_letter(db, &row.message_id).await? else {
        return Ok(());
    };
    let jws = match build(&state, &row, &letter.forretningsmelding) {
        Ok(j) => j,
        Err(e) => {
            // Nothing a retry could change: the letter cannot be answered.
            tracing::error!(receipt = %row.id, error = %e, "receipt cannot be built");
            repo::finish_receipt(db, &row.id, "refused", Some(&e), OffsetDateTime::now_utc())
                .await?;
            return Ok(());
        }
    };
    let token = state
        .0
        .deps
        .tokens
        .token(SCOPE_FORMIDLING)
        .await
        .map_err(|e| SendError::Retry(format!("token: {e:#}")))?;
    let url = state.0.deps.receipts_url.as_str();
    let response = state
        .0
        .http
        .post(url)
        .bearer_auth(token)
        .header(header::CONTENT_TYPE, "application/jwt")
        .body(jws)
        .send()
        .await
        .map_err(|e| SendError::Retry(format!("POST {url}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        repo::finish_receipt(db, &row.id, "sent", None, OffsetDateTime::now_utc()).await?;
        metrics::counter!("utskrift_receipts_sent_total", "kind" => row.kind.clone()).increment(1);
        tracing::info!(receipt = %row.id, kind = %row.kind, message_id = %row.message_id, "receipt delivered");
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let detail = format!(
        "{url} answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    let permanent = status.is_client_error() && ![401, 408, 429].contains(&status.as_u16());
    if permanent {
        tracing::error!(receipt = %row.id, detail, "access point refused the receipt");
        repo::finish_receipt(
            db,
            &row.id,
            "refused",
            Some(&detail),
            OffsetDateTime::now_utc(),
        )
        .await?;
        return Ok(());
    }
    Err(SendError::Retry(detail))
}
