//! The daily print batch: every spooled letter is printed and handed to the postal operator,
//! and its sender gets a `leveringskvittering`. Letters move in transactions of a few hundred,
//! each guarded on its state, so a batch cut off by a crash is finished by the next run, and
//! two processes running the batch never print a letter twice.

use std::time::Duration;

use store::{Db, Jobs};
use time::OffsetDateTime;

use crate::{AppState, intake::planned_batch, receipts, repo};

/// Letters marked printed per transaction.
const BATCH_CHUNK: usize = 200;

/// What one batch run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    /// `None` when there was nothing to print.
    pub batch_id: Option<String>,
    /// Letters printed in this run.
    pub letters: usize,
}

/// Prints every spooled letter now, whatever batch it was planned for (tests, the CLI, an
/// operator catching up). Needs only the database.
pub async fn run_batch_now(db: &Db, now: OffsetDateTime) -> store::StoreResult<BatchReport> {
    run(db, None, now).await
}

/// Prints the spooled letters whose planned batch time has come (what the scheduler runs).
pub async fn run_due_batches(db: &Db, now: OffsetDateTime) -> store::StoreResult<BatchReport> {
    run(db, Some(now), now).await
}

async fn run(
    db: &Db,
    due_before: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> store::StoreResult<BatchReport> {
    let ids = repo::spooled_ids(db, due_before).await?;
    if ids.is_empty() {
        return Ok(BatchReport {
            batch_id: None,
            letters: 0,
        });
    }
    let batch_id = format!("{}-{}", now.date(), uuid::Uuid::new_v4().simple());
    repo::start_batch(db, &batch_id, now).await?;
    let jobs = Jobs::new(db.clone());
    let mut printed = 0usize;
    // Chunks keep transactions short while sparing a commit per letter.
    for chunk in ids.chunks(BATCH_CHUNK) {
        printed += repo::mark_printed(db, &jobs, chunk, &batch_id, receipts::LEVERING, now).await?;
    }
    repo::finish_batch(
        db,
        &batch_id,
        i64::try_from(printed).unwrap_or(i64::MAX),
        now,
    )
    .await?;
    metrics::counter!("utskrift_letters_printed_total").increment(printed as u64);
    tracing::info!(batch_id, letters = printed, "print batch done");
    Ok(BatchReport {
        batch_id: Some(batch_id),
        letters: printed,
    })
}

/// The scheduler: wakes at the batch time (and at least every minute, which also catches up
/// on a batch missed while the process was down) and prints what is due.
pub fn spawn(
    state: AppState,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = OffsetDateTime::now_utc();
            if let Err(e) = run_due_batches(state.db(), now).await {
                tracing::warn!(error = %e, "print batch failed; will try again");
            }
            let next = planned_batch(OffsetDateTime::now_utc(), state.0.batch_hm);
            let until = (next - OffsetDateTime::now_utc())
                .try_into()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(60))
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(until) => {}
            }
        }
    })
}
