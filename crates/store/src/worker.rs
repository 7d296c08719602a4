//! A small polling worker loop over [`Jobs`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use futures::FutureExt;

use time::OffsetDateTime;

use crate::error::StoreResult;
use crate::jobs::{FailOutcome, Job, Jobs};

/// How a worker loop claims and polls.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Identifies this worker in `jobs.locked_by` (see [`WorkerOptions::for_loop`]).
    pub worker_id: String,
    /// Lease per claim; renewed every third of it while the handler runs.
    pub lease: Duration,
    /// First sleep after finding the queue empty.
    pub poll_min: Duration,
    /// Longest sleep between polls (the sleep doubles up to this while the queue stays empty).
    pub poll_max: Duration,
}

impl WorkerOptions {
    /// Options for loop `n` of the workers called `name` in this process: a worker id no
    /// other process or loop shares (`name-pid-n-uuid`), `lease`, and polls from 20 ms
    /// doubling to 500 ms while the queue stays empty.
    pub fn for_loop(name: &str, n: usize, lease: Duration) -> Self {
        WorkerOptions {
            worker_id: format!("{name}-{}-{n}-{}", std::process::id(), uuid::Uuid::new_v4()),
            lease,
            poll_min: Duration::from_millis(20),
            poll_max: Duration::from_millis(500),
        }
    }
}

/// Spawns `count` (at least one) [`run_worker`] loops called `name` on `queue`, which stop
/// when `shutdown` turns `true`; a loop that ends with an error logs it. Each loop gets its
/// own clone of `handler` and [`WorkerOptions::for_loop`] options.
pub fn spawn_workers<F, Fut, E>(
    jobs: &Jobs,
    queue: &'static str,
    name: &'static str,
    count: usize,
    lease: Duration,
    handler: F,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: FnMut(Job) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display + Send,
{
    (0..count.max(1))
        .map(|n| {
            let jobs = jobs.clone();
            let handler = handler.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let options = WorkerOptions::for_loop(name, n, lease);
                let stopped = async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                };
                if let Err(e) = run_worker(jobs, queue, options, handler, stopped).await {
                    tracing::error!(error = %e, worker = name, "worker stopped");
                }
            })
        })
        .collect()
}

/// What a worker loop did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs the handler finished with `Ok`.
    pub completed: u64,
    /// Jobs the handler failed that were queued for retry.
    pub retried: u64,
    /// Jobs the handler failed on their last attempt.
    pub dead: u64,
    /// Jobs whose lease was taken over before the handler finished.
    pub lease_lost: u64,
}

/// Runs `handler` for jobs of `queue` one at a time until `shutdown` resolves; a job that is
/// being handled when shutdown comes is finished first. `Ok` completes the job, `Err` fails it
/// (retry or dead per the queue's policy). Claims use the real clock. On PostgreSQL the loop
/// also wakes on `NOTIFY` from [`Jobs::enqueue`]; otherwise it polls with backoff. Database
/// errors are logged and retried after the poll delay, so the loop survives restarts of the
/// database. Run several loops for parallelism. Between claims the loop also deletes the
/// queue's done jobs once they are older than [`Jobs::keep_done`] ([`Jobs::purge_due`]).
pub async fn run_worker<F, Fut, E>(
    jobs: Jobs,
    queue: &str,
    options: WorkerOptions,
    mut handler: F,
    shutdown: impl Future<Output = ()>,
) -> StoreResult<WorkerStats>
where
    F: FnMut(Job) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    tokio::pin!(shutdown);
    let mut stats = WorkerStats::default();
    let wakeup = jobs.db().job_wakeups(queue).await;
    let mut delay = options.poll_min;
    loop {
        // Checked between claims, never raced against one: a claim cancelled after its
        // commit would strand the job until its lease expires.
        if shutdown.as_mut().now_or_never().is_some() {
            break;
        }
        // Housekeeping of this loop's queue; a no-op but for one call in ten minutes.
        if let Err(e) = jobs.purge_due(queue, OffsetDateTime::now_utc()).await {
            tracing::warn!(queue, error = %e, code = e.code(), "deleting finished jobs failed");
        }
        let claimed = jobs
            .claim(
                queue,
                &options.worker_id,
                options.lease,
                OffsetDateTime::now_utc(),
            )
            .await;
        match claimed {
            Ok(Some(job)) => {
                handle_one(&jobs, &options, &mut handler, job, &mut stats).await;
                delay = options.poll_min;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(queue, error = %e, code = e.code(), "claiming a job failed"),
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep(delay) => {}
            () = notified(wakeup.as_deref()) => {}
        }
        delay = (delay * 2).min(options.poll_max);
    }
    Ok(stats)
}

async fn handle_one<F, Fut, E>(
    jobs: &Jobs,
    options: &WorkerOptions,
    handler: &mut F,
    job: Job,
    stats: &mut WorkerStats,
) where
    F: FnMut(Job) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    // A panicking handler fails the attempt instead of taking the worker loop down.
    let work = std::panic::AssertUnwindSafe(handler(job.clone())).catch_unwind();
    tokio::pin!(work);
    let period = (options.lease / 3).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let result = loop {
        tokio::select! {
            result = &mut work => break result.map(|r| r.map_err(|e| HandlerError(e.to_string()))),
            _ = ticker.tick() => {
                if let Err(e) = jobs.heartbeat(&job, options.lease, OffsetDateTime::now_utc()).await {
                    tracing::warn!(job = %job.id, error = %e, "lease renewal failed");
                }
            }
        }
    };
    let result = result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(HandlerError(format!("handler panicked: {what}")))
    });
    let outcome = match result {
        Ok(()) => jobs.complete(&job).await.map(|()| {
            stats.completed += 1;
        }),
        Err(e) => {
            let message = e.to_string();
            jobs.fail(&job, &message, OffsetDateTime::now_utc())
                .await
                .map(|outcome| match outcome {
                    FailOutcome::Retry { run_at } => {
                        tracing::info!(job = %job.id, attempt = job.attempts, %run_at, error = %message, "job failed, will retry");
                        stats.retried += 1;
                    }
                    FailOutcome::Dead => {
                        tracing::error!(job = %job.id, attempts = job.attempts, error = %message, "job dead");
                        stats.dead += 1;
                    }
                })
        }
    };
    if let Err(e) = outcome {
        if e.code() == "job_lease_lost" {
            stats.lease_lost += 1;
        }
        tracing::warn!(job = %job.id, error = %e, "could not record job outcome");
    }
}

/// A handler's error (or panic) as text, which is all `jobs.last_error` keeps.
struct HandlerError(String);

impl Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves when a job of this loop's queue was announced to it; never without wake-ups.
async fn notified(wakeup: Option<&tokio::sync::Notify>) {
    match wakeup {
        Some(w) => w.notified().await,
        None => std::future::pending().await,
    }
}

/// Runs a batch step until it finds nothing left to do (returns 0), for work done once at
/// start in batches (such as backfilling rows an earlier version wrote). Logs the total with
/// `what` when there was any; on an error logs it and stops, leaving the rest for the next
/// start.
pub async fn run_batches_once<F, Fut>(what: &'static str, mut batch: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        match batch().await {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %e, what, "batch work failed; tried again at the next start");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(rows = total, what, "batch work done");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;

    #[tokio::test]
    async fn batches_run_until_one_finds_nothing_or_fails() {
        let mut left = vec![0u64, 2, 3];
        let mut calls = 0;
        run_batches_once("test", || {
            calls += 1;
            let n = left.pop().unwrap_or(0);
            async move { Ok(n) }
        })
        .await;
        assert_eq!((calls, left.len()), (3, 0), "3, 2, then 0 ends it");

        let mut calls = 0;
        run_batches_once("test", || {
            calls += 1;
            async { Err(StoreError::BlobNotFound("x".into())) }
        })
        .await;
        assert_eq!(calls, 1, "an error ends it at once");
    }
}
