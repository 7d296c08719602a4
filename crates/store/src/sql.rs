//! Every SQL statement of this crate, one table per dialect.
//!
//! Portable rules: `$n` placeholders (SQLite reads them as numbered parameters), ids as TEXT,
//! times as BIGINT epoch-ms, JSON as TEXT, `ON CONFLICT` and `RETURNING` (SQLite ≥ 3.35).
//! Only job claiming differs: PostgreSQL locks with `FOR UPDATE SKIP LOCKED`; SQLite has a
//! single writer and claims inside `BEGIN IMMEDIATE` so the read and the write see the same
//! snapshot (a deferred transaction could fail with `SQLITE_BUSY_SNAPSHOT` under WAL).

macro_rules! job_columns {
    () => {
        "id, queue, payload, dedup_key, state, attempts, max_attempts, run_at, lease_until, \
         locked_by, last_error, created_at, updated_at"
    };
}

/// A claim: the first job of `$1` matching `$where` (which ends in its `ORDER BY`), marked
/// running for worker `$4` until `$3`. Each claim statement covers one state, so that it walks
/// the `jobs_claimable` index `(queue, state, run_at, created_at)`; a single statement with
/// `OR` over both states made SQLite scan every job of the queue, done ones included, at every
/// claim.
macro_rules! claim {
    ($where:literal, $lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $3, \
             locked_by = $4, updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE queue = $1 AND ",
            $where,
            " LIMIT 1",
            $lock,
            ") RETURNING ",
            job_columns!()
        )
    };
}

/// Statements of the job queue for one dialect.
#[derive(Debug)]
pub(crate) struct JobSql {
    /// Statement that opens the claim transaction.
    pub begin_claim: &'static str,
    /// $1 queue, $2 now: marks running jobs whose lease expired after their last attempt as dead.
    pub reap_expired: &'static str,
    /// $1 queue, $2 now, $3 lease_until, $4 worker id; claims the job whose lease expired
    /// longest ago and returns it.
    pub claim_expired: &'static str,
    /// Same parameters; claims the due queued job first in line and returns it.
    pub claim_queued: &'static str,
    /// $1 id, $2 queue, $3 payload, $4 dedup_key, $5 max_attempts, $6 run_at, $7 now.
    pub insert: &'static str,
    /// $1 queue, $2 dedup_key.
    pub id_by_dedup: &'static str,
    /// $1 id.
    pub select: &'static str,
    /// $1 id, $2 worker, $3 attempts, $4 now.
    pub complete: &'static str,
    /// $1 id, $2 worker, $3 attempts, $4 state ('queued' | 'dead'), $5 run_at, $6 error, $7 now.
    pub fail: &'static str,
    /// $1 id, $2 worker, $3 attempts, $4 lease_until, $5 now.
    pub heartbeat: &'static str,
    /// $1 id, $2 now.
    pub requeue_dead: &'static str,
    pub dead: &'static str,
    /// Rows of (queue, state, n).
    pub counts: &'static str,
    /// $1 queue, $2 cutoff, $3 limit: deletes at most $3 done jobs of $1 finished before $2.
    pub purge_done: &'static str,
    /// $1 queue name; wakes `LISTEN`ing workers. `None` where the backend has no notifications.
    pub notify: Option<&'static str>,
}

/// Channel workers `LISTEN` on (PostgreSQL); the payload is the queue name.
pub(crate) const NOTIFY_CHANNEL: &str = "samspill_jobs";

const INSERT: &str = "INSERT INTO jobs (id, queue, payload, dedup_key, state, attempts, max_attempts, \
     run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $7) \
     ON CONFLICT (queue, dedup_key) DO NOTHING";
const ID_BY_DEDUP: &str = "SELECT id FROM jobs WHERE queue = $1 AND dedup_key = $2";
const SELECT: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
const COMPLETE: &str = "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = $4 \
     WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3";
const FAIL: &str = "UPDATE jobs SET state = $4, run_at = $5, last_error = $6, lease_until = NULL, \
     locked_by = NULL, updated_at = $7 \
     WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3";
const HEARTBEAT: &str = "UPDATE jobs SET lease_until = $4, updated_at = $5 \
     WHERE id = $1 AND state = 'running' AND locked_by = $2 AND attempts = $3";
const REQUEUE_DEAD: &str = "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, \
     lease_until = NULL, locked_by = NULL, updated_at = $2 WHERE id = $1 AND state = 'dead'";
/// Dead jobs, the last to die first; `$1 = ''` for every queue.
const DEAD: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE state = 'dead' AND (queue = $1 OR $1 = '') \
     ORDER BY updated_at DESC, id LIMIT $2"
);
const COUNTS: &str = "SELECT queue, state, COUNT(*) AS n FROM jobs GROUP BY queue, state";
/// A done job ran at or after `run_at`, so `run_at < $2` holds for every job it deletes; it
/// bounds the walk of the `jobs_claimable` index to the old ones.
const PURGE_DONE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
     WHERE queue = $1 AND state = 'done' AND run_at < $2 AND updated_at < $2 LIMIT $3)";

pub(crate) const SQLITE: JobSql = JobSql {
    begin_claim: "BEGIN IMMEDIATE",
    reap_expired: "UPDATE jobs SET state = 'dead', lease_until = NULL, locked_by = NULL, \
         last_error = 'lease_expired: the worker stopped renewing its lease on the last attempt', \
         updated_at = $2 \
         WHERE queue = $1 AND state = 'running' AND lease_until <= $2 AND attempts >= max_attempts",
    claim_expired: claim!(
        "state = 'running' AND lease_until <= $2 ORDER BY lease_until",
        ""
    ),
    claim_queued: claim!(
        "state = 'queued' AND run_at <= $2 ORDER BY run_at, created_at",
        ""
    ),
    insert: INSERT,
    id_by_dedup: ID_BY_DEDUP,
    select: SELECT,
    complete: COMPLETE,
    fail: FAIL,
    heartbeat: HEARTBEAT,
    requeue_dead: REQUEUE_DEAD,
    dead: DEAD,
    counts: COUNTS,
    purge_done: PURGE_DONE,
    notify: None,
};

pub(crate) const POSTGRES: JobSql = JobSql {
    begin_claim: "BEGIN",
    reap_expired: "UPDATE jobs SET state = 'dead', lease_until = NULL, locked_by = NULL, \
         last_error = 'lease_expired: the worker stopped renewing its lease on the last attempt', \
         updated_at = $2 \
         WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = 'running' \
         AND lease_until <= $2 AND attempts >= max_attempts FOR UPDATE SKIP LOCKED)",
    claim_expired: claim!(
        "state = 'running' AND lease_until <= $2 ORDER BY lease_until",
        " FOR UPDATE SKIP LOCKED"
    ),
    claim_queued: claim!(
        "state = 'queued' AND run_at <= $2 ORDER BY run_at, created_at",
        " FOR UPDATE SKIP LOCKED"
    ),
    insert: INSERT,
    id_by_dedup: ID_BY_DEDUP,
    select: SELECT,
    complete: COMPLETE,
    fail: FAIL,
    heartbeat: HEARTBEAT,
    requeue_dead: REQUEUE_DEAD,
    dead: DEAD,
    counts: COUNTS,
    purge_done: PURGE_DONE,
    notify: Some("SELECT pg_notify('samspill_jobs', $1)"),
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::SQLITE;
    use sqlx::{AssertSqlSafe, Row};

    /// The claim statements must walk the `(queue, state, run_at, created_at)` index; a plan that
    /// falls back to scanning the whole queue (done jobs included) makes every claim slower as
    /// jobs pile up, and one that sorts the due queued jobs (a temporary B-tree) costs more with
    /// every job of a backlog.
    #[tokio::test]
    async fn sqlite_claims_walk_the_claimable_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.sqlite").display());
        let db = crate::Db::connect_url(&url).await.unwrap();
        db.migrate().await.unwrap();
        for stmt in [SQLITE.claim_expired, SQLITE.claim_queued] {
            let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {stmt}")))
                .bind("q")
                .bind(0_i64)
                .bind(0_i64)
                .bind("w")
                .fetch_all(db.pool())
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            assert!(
                plan.iter()
                    .any(|p| p.contains("USING INDEX jobs_claimable (queue=? AND state=?")),
                "{stmt}\n{plan:#?}"
            );
            // Running jobs are at most one per worker: sorting them by lease is cheap.
            if stmt == SQLITE.claim_queued {
                assert!(
                    !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                    "{stmt}\n{plan:#?}"
                );
            }
        }
    }
}
