//! Durable job/outbox queue in the `jobs` table.
//!
//! Life of a job: `queued` → (claim) `running` → `done`, or on failure back to `queued` with an
//! exponentially growing, jittered delay until `max_attempts` is used up, then `dead`. Done jobs
//! stay for [`Jobs::keep_done`] (their dedup keys with them), then the queue's worker loops
//! delete them in batches ([`Jobs::purge_due`]); dead jobs stay until an operator acts.
//! A claim holds a lease; a worker that dies stops renewing it, and once it has expired the
//! job is claimable again (the new claim counts as another attempt). Every claim increments
//! `attempts`, and `(locked_by, attempts)` identifies the lease: completing or failing with a
//! lease that has since been taken over yields [`StoreError::LeaseLost`].
//!
//! Time is passed in (`now`) so tests control the clock; ids and enqueue bookkeeping use the
//! real clock only for `created_at`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::JobId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::db::Db;
use crate::error::{StoreError, StoreResult};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Gave up after `max_attempts`; only [`Jobs::requeue_dead`] revives it.
    Dead,
}

impl JobState {
    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> StoreResult<JobState> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "dead" => Ok(JobState::Dead),
            other => Err(StoreError::row("jobs", format!("unknown state `{other}`"))),
        }
    }
}

/// A row of the `jobs` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// Queue name (e.g. `formidler.deliver`).
    pub queue: String,
    /// What the handler needs, as JSON.
    pub payload: serde_json::Value,
    /// Idempotency key, unique within the queue.
    pub dedup_key: Option<String>,
    /// Current state.
    pub state: JobState,
    /// Claims so far (including the current one while running).
    pub attempts: u32,
    /// Claims allowed before the job goes `dead`.
    pub max_attempts: u32,
    /// Earliest time the next claim may happen.
    pub run_at: OffsetDateTime,
    /// While running: when the lease runs out.
    pub lease_until: Option<OffsetDateTime>,
    /// While running: worker id holding the lease.
    pub locked_by: Option<String>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was enqueued (real clock).
    pub created_at: OffsetDateTime,
    /// Last state change.
    pub updated_at: OffsetDateTime,
}

impl Job {
    /// Deserialises the payload into the handler's type.
    pub fn payload_as<T: DeserializeOwned>(&self) -> StoreResult<T> {
        Ok(serde_json::from_value(self.payload.clone())?)
    }

    fn from_row(row: &AnyRow) -> StoreResult<Job> {
        let get_str = |col: &str| -> StoreResult<String> { Ok(row.try_get::<String, _>(col)?) };
        let get_i64 = |col: &str| -> StoreResult<i64> { Ok(row.try_get::<i64, _>(col)?) };
        let id = get_str("id")?;
        let payload = get_str("payload")?;
        Ok(Job {
            id: JobId::parse(&id).map_err(|e| StoreError::row("jobs", format!("id: {e}")))?,
            queue: get_str("queue")?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::row("jobs", format!("payload: {e}")))?,
            dedup_key: row.try_get::<Option<String>, _>("dedup_key")?,
            state: JobState::parse(&get_str("state")?)?,
            attempts: to_u32(get_i64("attempts")?)?,
            max_attempts: to_u32(get_i64("max_attempts")?)?,
            run_at: from_ms(get_i64("run_at")?)?,
            lease_until: row
                .try_get::<Option<i64>, _>("lease_until")?
                .map(from_ms)
                .transpose()?,
            locked_by: row.try_get::<Option<String>, _>("locked_by")?,
            last_error: row.try_get::<Option<String>, _>("last_error")?,
            created_at: from_ms(get_i64("created_at")?)?,
            updated_at: from_ms(get_i64("updated_at")?)?,
        })
    }
}

/// Retry schedule: attempt `n` (1-based) that failed waits `base_delay * 2^(n-1)`, capped at
/// `max_delay`, then shortened by a random fraction up to `jitter` so that jobs failing
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Default `max_attempts` for new jobs.
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Fraction in `0.0..=1.0` of the delay that may be cut off at random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60 * 60),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based), for a uniform random `unit` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(63);
        let full = self
            .base_delay
            .checked_mul(1u32.checked_shl(exp).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let cut = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        full.mul_f64(1.0 - cut)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Queue name.
    pub queue: String,
    /// Payload as JSON.
    pub payload: serde_json::Value,
    /// Idempotency key: a second enqueue with the same key in the same queue returns the
    /// existing job instead of adding one.
    pub dedup_key: Option<String>,
    /// Earliest run time.
    pub run_at: OffsetDateTime,
    /// Overrides [`RetryPolicy::max_attempts`].
    pub max_attempts: Option<u32>,
}

impl NewJob {
    /// A job for `queue` that may run immediately.
    pub fn new(queue: impl Into<String>, payload: &impl Serialize) -> StoreResult<NewJob> {
        Ok(NewJob {
            queue: queue.into(),
            payload: serde_json::to_value(payload)?,
            dedup_key: None,
            run_at: OffsetDateTime::now_utc(),
            max_attempts: None,
        })
    }

    /// Sets the idempotency key.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Sets the earliest run time.
    pub fn run_at(mut self, at: OffsetDateTime) -> Self {
        self.run_at = at;
        self
    }

    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }
}

/// Result of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The new job, or the existing one with the same dedup key.
    pub id: JobId,
    /// `false` when the dedup key matched an existing job.
    pub inserted: bool,
}

/// What [`Jobs::fail`] did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again; claimable from `run_at`.
    Retry {
        /// Next earliest claim time.
        run_at: OffsetDateTime,
    },
    /// Attempts used up; the job is `dead`.
    Dead,
}

/// Number of jobs per state in one queue (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Jobs waiting.
    pub queued: u64,
    /// Jobs leased by a worker.
    pub running: u64,
    /// Jobs finished.
    pub done: u64,
    /// Jobs given up.
    pub dead: u64,
}

/// The job queue API over a [`Db`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    db: Db,
    policy: RetryPolicy,
    /// Per queue, the `now` (ms) of the last claim that looked for expired leases.
    lease_sweeps: Arc<Mutex<HashMap<String, i64>>>,
    /// How long done jobs are kept.
    keep_done: Duration,
    /// Per queue, the `now` (ms) from which [`Jobs::purge_due`] purges again.
    purges: Arc<Mutex<HashMap<String, i64>>>,
}

/// How often (in the claimers' `now`) a claim also looks for expired leases.
const LEASE_SWEEP_EVERY_MS: i64 = 1000;

/// Done jobs one purge deletes at most: a short write, even on SQLite's single writer.
const PURGE_BATCH: u32 = 500;
/// Pause after a purge that found less than a batch (nothing is piling up)…
const PURGE_EVERY_MS: i64 = 10 * 60 * 1000;
/// …and after a full one (a backlog is worked off a batch a second).
const PURGE_BACKLOG_EVERY_MS: i64 = 1000;

impl Jobs {
    /// Queue API with the default [`RetryPolicy`], keeping done jobs as long as the
    /// database's configuration says ([`Db::keep_done_jobs`]).
    pub fn new(db: Db) -> Jobs {
        Jobs {
            keep_done: db.keep_done_jobs(),
            db,
            policy: RetryPolicy::default(),
            lease_sweeps: Arc::default(),
            purges: Arc::default(),
        }
    }

    /// Replaces how long done jobs are kept.
    pub fn with_keep_done(mut self, keep: Duration) -> Jobs {
        self.keep_done = keep;
        self
    }

    /// How long done jobs are kept before [`Jobs::purge_due`] deletes them.
    pub fn keep_done(&self) -> Duration {
        self.keep_done
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Jobs {
        self.policy = policy;
        self
    }

    /// The retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The database underneath.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Adds a job (or finds the one with the same `dedup_key` in `queue`).
    pub async fn enqueue(
        &self,
        queue: &str,
        payload: &impl Serialize,
        dedup_key: Option<&str>,
        run_at: OffsetDateTime,
    ) -> StoreResult<Enqueued> {
        let mut job = NewJob::new(queue, payload)?.run_at(run_at);
        job.dedup_key = dedup_key.map(str::to_owned);
        self.enqueue_job(job).await
    }

    /// Adds a fully specified job (or finds the one with the same dedup key).
    pub async fn enqueue_job(&self, job: NewJob) -> StoreResult<Enqueued> {
        if self.db.job_sql().notify.is_some() {
            // INSERT and NOTIFY in one transaction: one commit (one WAL flush) instead of two.
            let mut tx = self.db.pool().begin().await?;
            let enqueued = self.enqueue_in(&mut tx, job).await?;
            tx.commit().await?;
            Ok(enqueued)
        } else {
            let mut conn = self.db.pool().acquire().await?;
            self.enqueue_in(&mut conn, job).await
        }
    }

    /// Adds a job on `conn`, typically the caller's open transaction (`&mut *tx`): the job
    /// then exists if and only if the caller's own writes commit (transactional outbox). On
    /// PostgreSQL the wake-up notification is delivered at commit.
    pub async fn enqueue_in(&self, conn: &mut AnyConnection, job: NewJob) -> StoreResult<Enqueued> {
        let sql = self.db.job_sql();
        let id = JobId::new();
        let max_attempts = job.max_attempts.unwrap_or(self.policy.max_attempts).max(1);
        let inserted = sqlx::query(sql.insert)
            .bind(id.to_string())
            .bind(job.queue.as_str())
            .bind(serde_json::to_string(&job.payload)?)
            .bind(job.dedup_key.as_deref())
            .bind(i64::from(max_attempts))
            .bind(to_ms(job.run_at))
            .bind(to_ms(OffsetDateTime::now_utc()))
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if inserted {
            if let Some(notify) = sql.notify {
                sqlx::query(notify)
                    .bind(job.queue.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(Enqueued { id, inserted: true });
        }
        let key = job
            .dedup_key
            .as_deref()
            .ok_or_else(|| StoreError::row("jobs", "insert without dedup key affected no row"))?;
        let existing: String = sqlx::query_scalar(sql.id_by_dedup)
            .bind(job.queue.as_str())
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(Enqueued {
            id: JobId::parse(&existing).map_err(|e| StoreError::row("jobs", format!("id: {e}")))?,
            inserted: false,
        })
    }

    /// Claims the oldest due job of `queue` for `worker_id` until `now + lease`; also takes
    /// over jobs whose lease expired. Two claimers never get the same job at once. Jobs whose
    /// lease expired on their last allowed attempt go `dead` here instead.
    pub async fn claim(
        &self,
        queue: &str,
        worker_id: &str,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Job>> {
        let sql = self.db.job_sql();
        let now_ms = to_ms(now);
        let lease_until = now_ms.saturating_add(duration_ms(lease));
        let claim_query = |stmt| {
            sqlx::query(stmt)
                .bind(queue)
                .bind(now_ms)
                .bind(lease_until)
                .bind(worker_id)
        };
        // One statement, except once a second: the queued claim alone is atomic on both
        // backends, and the transaction around the lease sweep costs four more round trips.
        // Expired leases (a crashed worker's jobs) are taken over within a second. Claims
        // that find nothing happen after every poll and wake-up, and sweeping on each of
        // them was 55 index scans per job at the access point in bench-chain on PostgreSQL.
        if !self.lease_sweep_due(queue, now_ms) {
            let row = claim_query(sql.claim_queued)
                .fetch_optional(self.db.job_pool())
                .await?;
            return row.as_ref().map(Job::from_row).transpose();
        }
        self.lease_sweeps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(queue.to_owned(), now_ms);
        let mut tx = self.db.job_pool().begin_with(sql.begin_claim).await?;
        let reaped = sqlx::query(sql.reap_expired)
            .bind(queue)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if reaped > 0 {
            tracing::warn!(queue, reaped, "jobs dead after their last lease expired");
        }
        // A job left behind by a dead worker goes first: it has waited longest.
        let mut row = None;
        for claim in [sql.claim_expired, sql.claim_queued] {
            row = claim_query(claim).fetch_optional(&mut *tx).await?;
            if row.is_some() {
                break;
            }
        }
        tx.commit().await?;
        row.as_ref().map(Job::from_row).transpose()
    }

    fn lease_sweep_due(&self, queue: &str, now_ms: i64) -> bool {
        let sweeps = self.lease_sweeps.lock().unwrap_or_else(|p| p.into_inner());
        // A `now` before the last sweep (a caller's clock, or a test's) sweeps too.
        sweeps
            .get(queue)
            .is_none_or(|&last| now_ms < last || now_ms - last >= LEASE_SWEEP_EVERY_MS)
    }

    /// Marks a claimed job done.
    pub async fn complete(&self, job: &Job) -> StoreResult<()> {
        let sql = self.db.job_sql();
        let done = sqlx::query(sql.complete)
            .bind(job.id.to_string())
            .bind(job.locked_by.as_deref())
            .bind(i64::from(job.attempts))
            .bind(to_ms(OffsetDateTime::now_utc()))
            .execute(self.db.job_pool())
            .await?
            .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(job.id))
        }
    }

    /// Records a failed attempt: retry later per the [`RetryPolicy`], or `dead` when the
    /// attempts are used up.
    pub async fn fail(
        &self,
        job: &Job,
        error: &str,
        now: OffsetDateTime,
    ) -> StoreResult<FailOutcome> {
        let sql = self.db.job_sql();
        let (outcome, state, run_at) = if job.attempts >= job.max_attempts {
            (FailOutcome::Dead, JobState::Dead, job.run_at)
        } else {
            let delay = self.policy.delay(job.attempts, rand::random::<f64>());
            let run_at = now + delay;
            (FailOutcome::Retry { run_at }, JobState::Queued, run_at)
        };
        let updated = sqlx::query(sql.fail)
            .bind(job.id.to_string())
            .bind(job.locked_by.as_deref())
            .bind(i64::from(job.attempts))
            .bind(state.as_str())
            .bind(to_ms(run_at))
            .bind(error)
            .bind(to_ms(now))
            .execute(self.db.job_pool())
            .await?
            .rows_affected();
        if updated == 1 {
            Ok(outcome)
        } else {
            Err(StoreError::LeaseLost(job.id))
        }
    }

    /// Extends the lease of a running job to `now + lease`; returns the new expiry.
    pub async fn heartbeat(
        &self,
        job: &Job,
        lease: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<OffsetDateTime> {
        let sql = self.db.job_sql();
        let until = to_ms(now).saturating_add(duration_ms(lease));
        let updated = sqlx::query(sql.heartbeat)
            .bind(job.id.to_string())
            .bind(job.locked_by.as_deref())
            .bind(i64::from(job.attempts))
            .bind(until)
            .bind(to_ms(now))
            .execute(self.db.job_pool())
            .await?
            .rows_affected();
        if updated == 1 {
            from_ms(until)
        } else {
            Err(StoreError::LeaseLost(job.id))
        }
    }

    /// Gives a dead job a fresh attempt budget, claimable from `now`. `false` if the job is
    /// not dead (or does not exist).
    pub async fn requeue_dead(&self, id: JobId, now: OffsetDateTime) -> StoreResult<bool> {
        let sql = self.db.job_sql();
        let updated = sqlx::query(sql.requeue_dead)
            .bind(id.to_string())
            .bind(to_ms(now))
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    /// Dead jobs, for an operator: of `queue` (all queues when `None`), the last to die
    /// first, at most `limit`.
    pub async fn dead(&self, queue: Option<&str>, limit: u32) -> StoreResult<Vec<Job>> {
        let sql = self.db.job_sql();
        let rows = sqlx::query(sql.dead)
            .bind(queue.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(Job::from_row).collect()
    }

    /// Reads one job.
    pub async fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        let sql = self.db.job_sql();
        let row = sqlx::query(sql.select)
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(Job::from_row).transpose()
    }

    /// Deletes at most `limit` `done` jobs of `queue` finished before `older_than`; returns
    /// how many. Their dedup keys become free again, so keep them at least as long as a
    /// duplicate may arrive.
    pub async fn purge_done(
        &self,
        queue: &str,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64> {
        let sql = self.db.job_sql();
        let deleted = sqlx::query(sql.purge_done)
            .bind(queue)
            .bind(to_ms(older_than))
            .bind(i64::from(limit))
            .execute(self.db.job_pool())
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// What worker loops call between claims: when due for `queue`, deletes one batch of its
    /// done jobs older than [`Jobs::keep_done`]. Due at the first call, then every ten
    /// minutes, or after a second while a backlog remains. The loops of one queue that share
    /// this `Jobs` (clones) take turns; loops in other processes purge too, which only
    /// shortens the pause. Returns how many were deleted.
    pub async fn purge_due(&self, queue: &str, now: OffsetDateTime) -> StoreResult<u64> {
        let now_ms = to_ms(now);
        {
            let mut purges = self.purges.lock().unwrap_or_else(|p| p.into_inner());
            if purges.get(queue).is_some_and(|&next| now_ms < next) {
                return Ok(0);
            }
            purges.insert(queue.to_owned(), now_ms.saturating_add(PURGE_EVERY_MS));
        }
        // A keep time beyond the calendar: nothing is that old.
        let Some(cutoff) = time::Duration::try_from(self.keep_done)
            .ok()
            .and_then(|keep| now.checked_sub(keep))
        else {
            return Ok(0);
        };
        let deleted = self.purge_done(queue, cutoff, PURGE_BATCH).await?;
        if deleted > 0 {
            tracing::info!(queue, deleted, "finished jobs deleted");
        }
        if deleted >= u64::from(PURGE_BATCH) {
            self.purges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    queue.to_owned(),
                    now_ms.saturating_add(PURGE_BACKLOG_EVERY_MS),
                );
        }
        Ok(deleted)
    }

    /// Job counts per queue and state.
    pub async fn counts(&self) -> StoreResult<BTreeMap<String, StateCounts>> {
        let sql = self.db.job_sql();
        let rows = sqlx::query(sql.counts).fetch_all(self.db.pool()).await?;
        let mut out: BTreeMap<String, StateCounts> = BTreeMap::new();
        for row in rows {
            let queue: String = row.try_get("queue")?;
            let state = JobState::parse(&row.try_get::<String, _>("state")?)?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            let entry = out.entry(queue).or_default();
            match state {
                JobState::Queued => entry.queued = n,
                JobState::Running => entry.running = n,
                JobState::Done => entry.done = n,
                JobState::Dead => entry.dead = n,
            }
        }
        Ok(out)
    }
}

/// Epoch milliseconds, the portable time column format.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Inverse of [`to_ms`].
pub fn from_ms(ms: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::row("jobs", format!("time {ms}: {e}")))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_u32(v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::row("jobs", format!("count {v} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_down() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
        };
        let no_jitter: Vec<u64> = (1..=7).map(|a| p.delay(a, 0.0).as_secs()).collect();
        assert_eq!(no_jitter, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.delay(3, 0.999_999).as_millis(), 2000);
        assert_eq!(p.delay(200, 0.0), Duration::from_secs(30));
        for i in 0..1000 {
            let unit = f64::from(i) / 1000.0;
            let d = p.delay(4, unit);
            assert!(
                d <= Duration::from_secs(8) && d > Duration::from_secs(4),
                "{d:?}"
            );
        }
    }

    #[test]
    fn ms_round_trip() {
        let t = time::macros::datetime!(2026-11-29 08:00:00.123 UTC);
        assert_eq!(from_ms(to_ms(t)).unwrap(), t);
        assert_eq!(to_ms(t), 1_795_939_200_123);
    }
}
