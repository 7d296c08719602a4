//! The receipt worker (docs/CHAIN.md hop 4): each signed receipt is POSTed to the access
//! point's `/dpi/receipts` with the tenant's own Maskinporten token, retried with backoff.
//! The access point is idempotent by receipt id, so a receipt sent twice after a crash is
//! harmless; one never sent is impossible (its job commits with it).

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use store::Job;
use time::OffsetDateTime;

use crate::{AppState, SCOPE_FORMIDLING, repo};

pub const RECEIPT_QUEUE: &str = "postkasse.receipt";

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (jobs, count) = (state.0.jobs.clone(), state.0.cfg.receipt_workers);
    let lease = Duration::from_secs(state.0.cfg.receipt_timeout_secs.max(1) * 2 + 10);
    store::spawn_workers(
        &jobs,
        RECEIPT_QUEUE,
        "postkasse-receipt",
        count,
        lease,
        move |job| send_one(state.clone(), job),
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

async fn send_one(state: AppState, job: Job) -> Result<(), SendError> {
    let payload: repo::ReceiptJob = job.payload_as()?;
    let db = &state.0.deps.db;
    let Some(receipt) = repo::get_receipt(db, &payload.receipt_id).await? else {
        return Ok(());
    };
    if receipt.sent_at.is_some() {
        return Ok(());
    }
    let Some(tenant) = state
        .0
        .deps
        .tenants
        .iter()
        .find(|t| t.orgnr.to_string() == receipt.tenant)
    else {
        return Err(SendError::Retry(format!(
            "tenant {} is not configured",
            receipt.tenant
        )));
    };
    let token = tenant
        .tokens
        .token(SCOPE_FORMIDLING)
        .await
        .map_err(|e| SendError::Retry(format!("token: {e:#}")))?;
    let url = state.0.deps.formidler_receipts_url.clone();
    let result = state
        .0
        .http
        .post(url.clone())
        .bearer_auth(token)
        .header(CONTENT_TYPE, "application/jwt")
        .body(receipt.jws.clone())
        .send()
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let m = format!("POST {url}: {e}");
            repo::receipt_error(db, &payload.receipt_id, &m).await?;
            return Err(SendError::Retry(m));
        }
    };
    let status = response.status();
    if status.is_success() {
        repo::receipt_sent(db, &payload.receipt_id, None, OffsetDateTime::now_utc()).await?;
        metrics::counter!("postkasse_receipts_sent_total").increment(1);
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let detail = format!(
        "{url} answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    let permanent = status.is_client_error() && ![401, 408, 429].contains(&status.as_u16());
    if permanent {
        // The access point will never take this receipt as it is; keep it for operators.
        tracing::error!(receipt = payload.receipt_id, detail, "receipt refused");
        repo::receipt_error(db, &payload.receipt_id, &detail).await?;
        return Ok(());
    }
    repo::receipt_error(db, &payload.receipt_id, &detail).await?;
    Err(SendError::Retry(detail))
}
