//! Conformance suite (garage-style `test_suite`): the same tests run on every database backend
//! (SQLite always; PostgreSQL when reachable, and required with `SAMSPILL_TEST_BACKEND=postgres`)
//! and on every blob backend (local folder, memory, and S3 through moto's server when the
//! Python in `SAMSPILL_PYTHON` has `moto[server]`). Test names are `<backend>::<test>`, and a
//! plain `cargo test` run prints how many tests each backend got.
//!
//! The binary uses `libtest-mimic` (so `cargo test` and nextest both drive it) and doubles as
//! the child process of the "claimer killed with SIGKILL" test: started with `CHILD_ENV` set,
//! it claims one job and then hangs until killed.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use libtest_mimic::{Arguments, Failed, Trial};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use store::blob_release::{self, ReleaseTables};
use store::testing::{TestDb, fresh_blobs, fresh_db_on, plan_of, postgres_available, test_backend};
use store::{
    Backend, BlobBackendKind, BlobConfig, BlobRef, BlobStore, DatabaseConfig, Db, FailOutcome,
    JobState, Jobs, NewJob, RetryPolicy, WorkerOptions, run_worker,
};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHILD_ENV: &str = "SAMSPILL_STORE_CHILD_DB_URL";
const CHILD_QUEUE_ENV: &str = "SAMSPILL_STORE_CHILD_QUEUE";
const CHILD_NOW_ENV: &str = "SAMSPILL_STORE_CHILD_NOW_MS";
const CHILD_LEASE: Duration = Duration::from_secs(30);

type BoxFut<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;
type DbTest = for<'a> fn(&'a TestDb) -> BoxFut<'a>;
type BlobTest = for<'a> fn(&'a BlobStore) -> BoxFut<'a>;

macro_rules! suite {
    ($ty:ty; $($name:ident),* $(,)?) => {
        vec![$((stringify!($name), { fn w(x: &$ty) -> BoxFut<'_> { Box::pin($name(x)) } w as fn(&$ty) -> BoxFut<'_> })),*]
    };
}

fn db_tests() -> Vec<(&'static str, DbTest)> {
    suite![TestDb;
        a_shared_blob_goes_with_its_last_reference,
        keyed_updates_walk_the_primary_key_from_an_empty_table,
        migrations_are_idempotent,
        ping_answers,
        enqueue_dedup_key_is_idempotent,
        enqueue_in_transaction_commits_or_vanishes_with_it,
        purge_done_keeps_unfinished_jobs,
        done_jobs_are_purged_in_batches_when_due,
        worker_loop_deletes_its_queues_old_done_jobs,
        concurrent_read_then_write_transactions_all_commit,
        statements_keep_their_connection_and_never_starve_a_transaction,
        callers_waiting_for_a_connection_get_it_when_a_statement_ends,
        a_failed_or_abandoned_statement_gives_its_connection_back_to_sqlx,
        an_ended_transaction_keeps_its_connection_and_a_dropped_one_rolls_back,
        native_reads_see_committed_rows_keep_connections_and_refuse_writes,
        payload_round_trips,
        concurrent_claimers_never_double_claim,
        backoff_schedule_doubles_and_caps,
        backoff_jitter_stays_in_bounds,
        dead_letter_after_max_attempts_and_requeue,
        lease_expiry_lets_another_worker_reclaim,
        expired_leases_are_taken_over_within_a_second_while_work_is_queued,
        lease_expired_on_last_attempt_goes_dead,
        killed_claimer_process_job_is_retried,
        worker_loop_processes_and_retries,
        spawned_worker_loops_work_side_by_side_and_stop_together,
        worker_renews_lease_and_survives_a_panicking_handler,
    ]
}

fn sqlite_only_tests() -> Vec<(&'static str, DbTest)> {
    suite![TestDb;
        sqlite_file_created_with_wal_and_foreign_keys,
        sqlite_plans_do_not_depend_on_bound_values,
    ]
}

fn postgres_only_tests() -> Vec<(&'static str, DbTest)> {
    suite![TestDb;
        worker_wakes_on_notify_without_polling,
        each_announced_job_wakes_an_idle_worker_and_none_is_lost,
        only_job_bookkeeping_commits_without_waiting_for_the_flush,
        prepared_statements_are_planned_once_per_connection,
        holders_of_one_blob_do_not_wait_for_each_other,
        a_collector_leaves_a_blob_to_an_open_writer,
        columns_that_do_not_compress_are_not_compressed,
    ]
}

fn blob_tests() -> Vec<(&'static str, BlobTest)> {
    suite![BlobStore;
        blob_put_get_round_trip,
        blob_put_is_idempotent,
        blob_tampered_content_is_refused,
        blob_exists_and_delete,
        blob_namespaces_are_isolated,
    ]
}

fn local_blob_tests() -> Vec<(&'static str, BlobTest)> {
    suite![BlobStore; blob_tampered_file_on_disk_is_refused]
}

fn main() -> ExitCode {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return child_claimer(&url);
    }
    let args = Arguments::from_args();
    // Under nextest every test is its own process run with `--exact <name>`: probe only what
    // the selected tests need (listing always probes so the ignored flags are right).
    let needs = |prefix: &str| {
        args.list || !args.exact || args.filter.as_deref().is_none_or(|f| f.starts_with(prefix))
    };
    let (pg_up, python) = match probe_environment(needs("postgres::"), needs("blobs_s3::")) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("conformance: cannot probe the environment: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // PostgreSQL is required when it is the selected test backend; otherwise its tests are
    // listed as ignored when no server answers, so the gap is visible.
    let pg_required = test_backend() == Backend::Postgres;
    let mut trials = Vec::new();
    let mut plan = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut tests = db_tests();
        match backend {
            Backend::Sqlite => tests.extend(sqlite_only_tests()),
            Backend::Postgres => tests.extend(postgres_only_tests()),
        }
        let skip = backend == Backend::Postgres && !pg_up && !pg_required;
        plan.push((backend.name().to_owned(), tests.len(), skip));
        for (name, test) in tests {
            trials.push(
                Trial::test(format!("{}::{name}", backend.name()), move || {
                    block_on(async {
                        let db = fresh_db_on(backend).await;
                        test(&db).await
                    })
                })
                .with_ignored_flag(skip),
            );
        }
    }
    for kind in ["local", "memory", "s3"] {
        let mut tests = blob_tests();
        if kind == "local" {
            tests.extend(local_blob_tests());
        }
        let skip = kind == "s3" && python.is_none();
        plan.push((format!("blobs-{kind}"), tests.len(), skip));
        for (name, test) in tests {
            let python = python.clone();
            trials.push(
                Trial::test(format!("blobs_{kind}::{name}"), move || {
                    block_on(async move {
                        match kind {
                            "local" => test(&fresh_blobs(BlobBackendKind::Local)).await,
                            "memory" => test(&fresh_blobs(BlobBackendKind::Memory)).await,
                            _ => {
                                let python = python.context("python with moto")?;
                                let server = MotoServer::start(&python).await?;
                                test(&server.blobs).await
                            }
                        }
                    })
                })
                .with_ignored_flag(skip),
            );
        }
    }
    if !args.list && args.filter.is_none() {
        for (backend, n, skip) in &plan {
            if *skip {
                println!("conformance: {n} tests on {backend} SKIPPED (not available here)");
            } else {
                println!("conformance: {n} tests on {backend}");
            }
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Is PostgreSQL reachable, and which Python has moto's S3 server (for the s3 blob tests)?
fn probe_environment(pg: bool, s3: bool) -> Result<(bool, Option<String>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pg_up = pg && rt.block_on(postgres_available());
    if !s3 {
        return Ok((pg_up, None));
    }
    let python = std::env::var("SAMSPILL_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let has_moto = std::process::Command::new(&python)
        .args(["-c", "import moto.server"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    Ok((pg_up, has_moto.then_some(python)))
}

/// Runs one async test body on its own multi-threaded runtime (the claim tests need real
/// parallelism) and maps errors and panics to a test failure.
fn block_on(test: impl Future<Output = Result<()>>) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("runtime: {e}")))?;
    rt.block_on(test)
        .map_err(|e| Failed::from(format!("{e:#}")))
}

/// moto's S3-compatible server (PyPI `moto[server]`) on a free loopback port, killed on drop.
struct MotoServer {
    _child: tokio::process::Child,
    blobs: BlobStore,
}

impl MotoServer {
    async fn start(python: &str) -> Result<MotoServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start moto server")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut up = false;
        // A bound on start-up, not a timing assertion.
        for _ in 0..300 {
            if http.get(&endpoint).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(up, "moto server did not start on {endpoint}");
        let bucket = "samspill-test";
        let created = http.put(format!("{endpoint}/{bucket}")).send().await?;
        ensure!(
            created.status().is_success(),
            "create bucket: {}",
            created.status()
        );
        let config: BlobConfig = serde_json::from_value(serde_json::json!({
            "backend": "s3",
            "s3": {
                "endpoint": endpoint,
                "bucket": bucket,
                "access_key_id": "test-key",
                "secret_access_key": "test-secret",
                "allow_http": true,
            }
        }))?;
        let blobs = BlobStore::from_config(&config)?;
        Ok(MotoServer {
            _child: child,
            blobs,
        })
    }
}

/// A fixed, whole-second "now" so schedules are exact.
fn t0() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Polls `queue`'s done count every 50 ms until it is `n` or `guard` has passed; the last count.
async fn done_within(jobs: &Jobs, queue: &str, n: u64, guard: Duration) -> Result<u64> {
    let until = std::time::Instant::now() + guard;
    loop {
        let done = jobs.counts().await?.get(queue).map_or(0, |c| c.done);
        if done == n || std::time::Instant::now() >= until {
            return Ok(done);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- database tests

/// Encrypted payloads, business messages and receipt JWSs do not shrink under pglz (base64 and
/// ciphertext), and PostgreSQL's attempts cost CPU on every write: those columns are EXTERNAL,
/// out of line without a compression attempt. A migration that rebuilds one of these tables
/// must keep that.
async fn columns_that_do_not_compress_are_not_compressed(db: &TestDb) -> Result<()> {
    let columns = [
        ("avsender_payloads", "data"),
        ("formidler_payloads", "data"),
        ("postkasse_payloads", "data"),
        ("avsender_letters", "forretningsmelding"),
        ("avsender_receipts", "forretningsmelding"),
        ("formidler_messages", "forretningsmelding"),
        ("formidler_incoming", "forretningsmelding"),
        ("postkasse_letters", "forretningsmelding"),
        ("postkasse_receipts", "jws"),
    ];
    for (table, column) in columns {
        let storage: String = store::sqlx::query_scalar(
            "SELECT attstorage::text FROM pg_attribute \
             WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped",
        )
        .bind(table)
        .bind(column)
        .fetch_one(db.pool())
        .await
        .with_context(|| format!("{table}.{column}"))?;
        ensure!(
            storage == "e",
            "{table}.{column}: storage {storage}, not EXTERNAL"
        );
    }
    Ok(())
}

async fn migrations_are_idempotent(db: &TestDb) -> Result<()> {
    db.migrate().await?;
    db.migrate().await?;
    let applied: i64 = store::sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await?;
    let embedded = Db::embedded_migrations(db.backend()).len();
    ensure!(
        usize::try_from(applied)? == embedded,
        "{applied} applied vs {embedded} embedded"
    );
    let jobs: i64 = store::sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(db.pool())
        .await?;
    ensure!(jobs == 0);
    Ok(())
}

async fn ping_answers(db: &TestDb) -> Result<()> {
    db.ping().await?;
    db.close().await;
    ensure!(db.ping().await.is_err(), "ping on a closed pool must fail");
    Ok(())
}

async fn enqueue_dedup_key_is_idempotent(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let a = jobs
        .enqueue("deliver", &"first", Some("msg-1"), now)
        .await?;
    let b = jobs
        .enqueue("deliver", &"second", Some("msg-1"), now)
        .await?;
    ensure!(a.inserted && !b.inserted, "{a:?} {b:?}");
    ensure!(a.id == b.id, "same dedup key must give the same job");
    let kept = jobs.get(a.id).await?.context("job exists")?;
    ensure!(
        kept.payload == serde_json::json!("first"),
        "payload of the first enqueue wins"
    );
    let other_queue = jobs.enqueue("receipts", &1, Some("msg-1"), now).await?;
    ensure!(
        other_queue.inserted && other_queue.id != a.id,
        "dedup is per queue"
    );
    let n1 = jobs.enqueue("deliver", &2, None, now).await?;
    let n2 = jobs.enqueue("deliver", &2, None, now).await?;
    ensure!(
        n1.inserted && n2.inserted && n1.id != n2.id,
        "no key, no dedup"
    );
    let counts = jobs.counts().await?;
    ensure!(
        counts.get("deliver").map(|c| c.queued) == Some(3),
        "{counts:?}"
    );
    ensure!(
        counts.get("receipts").map(|c| c.queued) == Some(1),
        "{counts:?}"
    );
    Ok(())
}

async fn enqueue_in_transaction_commits_or_vanishes_with_it(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    store::sqlx::query("CREATE TABLE outbox_probe (id TEXT PRIMARY KEY)")
        .execute(db.pool())
        .await?;
    let mut tx = db.pool().begin().await?;
    store::sqlx::query("INSERT INTO outbox_probe (id) VALUES ($1)")
        .bind("rolled-back")
        .execute(&mut *tx)
        .await?;
    let rolled = jobs
        .enqueue_in(&mut tx, NewJob::new("outbox", &"rolled-back")?)
        .await?;
    tx.rollback().await?;
    ensure!(
        jobs.get(rolled.id).await?.is_none(),
        "job survived a rollback"
    );

    let mut tx = db.pool().begin().await?;
    store::sqlx::query("INSERT INTO outbox_probe (id) VALUES ($1)")
        .bind("committed")
        .execute(&mut *tx)
        .await?;
    let committed = jobs
        .enqueue_in(&mut tx, NewJob::new("outbox", &"committed")?.dedup_key("k"))
        .await?;
    let again = jobs
        .enqueue_in(&mut tx, NewJob::new("outbox", &"dup")?.dedup_key("k"))
        .await?;
    ensure!(
        again.id == committed.id && !again.inserted,
        "dedup inside the transaction"
    );
    tx.commit().await?;
    let job = jobs
        .claim("outbox", "w", secs(60), OffsetDateTime::now_utc())
        .await?
        .context("committed job is claimable")?;
    ensure!(job.id == committed.id && job.payload == serde_json::json!("committed"));
    let duplicate = store::sqlx::query("INSERT INTO outbox_probe (id) VALUES ($1)")
        .bind("committed")
        .execute(db.pool())
        .await
        .map_err(store::StoreError::from)
        .err()
        .context("duplicate primary key must fail")?;
    ensure!(duplicate.is_unique_violation(), "{duplicate}");
    let rows: i64 = store::sqlx::query_scalar("SELECT COUNT(*) FROM outbox_probe")
        .fetch_one(db.pool())
        .await?;
    ensure!(rows == 1);
    Ok(())
}

/// Claims and completes every due job of `queue` at `now`; how many.
async fn finish_all(jobs: &Jobs, queue: &str, now: OffsetDateTime) -> Result<usize> {
    let mut n = 0;
    while let Some(job) = jobs.claim(queue, "w", secs(60), now).await? {
        jobs.complete(&job).await?;
        n += 1;
    }
    Ok(n)
}

async fn purge_done_keeps_unfinished_jobs(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = OffsetDateTime::now_utc();
    let finished = jobs.enqueue("p", &1, Some("once"), now).await?;
    ensure!(finish_all(&jobs, "p", now).await? == 1);
    let waiting = jobs.enqueue("p", &2, None, now + secs(3600)).await?;
    let running = jobs.enqueue("p", &3, None, now).await?;
    let claimed = jobs.claim("p", "w", secs(60), now).await?;
    ensure!(claimed.map(|j| j.id) == Some(running.id));
    let dead = jobs
        .enqueue_job(NewJob::new("p", &4)?.run_at(now).max_attempts(1))
        .await?;
    let job = jobs
        .claim("p", "w", secs(60), now)
        .await?
        .context("claim")?;
    ensure!(jobs.fail(&job, "broken", now).await? == FailOutcome::Dead);
    ensure!(
        jobs.purge_done("p", now - secs(3600), 100).await? == 0,
        "nothing is that old"
    );
    ensure!(jobs.purge_done("other", now + secs(3600), 100).await? == 0);
    ensure!(jobs.purge_done("p", now + secs(3600), 100).await? == 1);
    ensure!(jobs.get(finished.id).await?.is_none());
    for (id, state) in [
        (waiting.id, JobState::Queued),
        (running.id, JobState::Running),
        (dead.id, JobState::Dead),
    ] {
        ensure!(
            jobs.get(id).await?.map(|j| j.state) == Some(state),
            "a {state:?} job must stay"
        );
    }
    let reused = jobs.enqueue("p", &3, Some("once"), now).await?;
    ensure!(reused.inserted, "a purged job's dedup key is free again");
    Ok(())
}

/// Done jobs go in batches, oldest first, per queue; a `Jobs` purges a queue when due (at
/// once, then after a pause) and keeps what is younger than its keep time.
async fn done_jobs_are_purged_in_batches_when_due(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_keep_done(secs(3600));
    ensure!(
        Jobs::new(db.db().clone()).keep_done() == secs(7 * 24 * 3600),
        "the configured default"
    );
    let long_ago = OffsetDateTime::now_utc() - secs(2 * 3600);
    for i in 0..7 {
        jobs.enqueue("old", &i, None, long_ago).await?;
        jobs.enqueue("other", &i, None, long_ago).await?;
    }
    ensure!(finish_all(&jobs, "old", long_ago).await? == 7);
    ensure!(finish_all(&jobs, "other", long_ago).await? == 7);
    // Finished just now, though due long ago: kept until an hour after it finished.
    jobs.enqueue("old", &99, None, long_ago).await?;
    let recent = jobs
        .claim("old", "w", secs(60), OffsetDateTime::now_utc())
        .await?
        .context("claim")?;
    jobs.complete(&recent).await?;
    // `complete` stamps the real clock; backdate the first seven so they are past keeping.
    store::sqlx::query("UPDATE jobs SET updated_at = $1 WHERE state = 'done' AND id <> $2")
        .bind(store::to_ms(long_ago))
        .bind(recent.id.to_string())
        .execute(db.pool())
        .await?;
    let cutoff = OffsetDateTime::now_utc() - secs(3600);
    ensure!(jobs.purge_done("old", cutoff, 3).await? == 3);
    ensure!(jobs.purge_done("old", cutoff, 3).await? == 3);
    ensure!(jobs.purge_done("old", cutoff, 3).await? == 1);
    ensure!(jobs.purge_done("old", cutoff, 3).await? == 0);
    ensure!(jobs.get(recent.id).await?.is_some(), "younger than an hour");
    let now = OffsetDateTime::now_utc();
    ensure!(
        jobs.purge_due("other", now).await? == 7,
        "due at the first call"
    );
    for i in 0..3 {
        jobs.enqueue("other", &i, None, long_ago).await?;
    }
    ensure!(finish_all(&jobs, "other", long_ago).await? == 3);
    store::sqlx::query("UPDATE jobs SET updated_at = $1 WHERE queue = 'other'")
        .bind(store::to_ms(long_ago))
        .execute(db.pool())
        .await?;
    ensure!(
        jobs.purge_due("other", now + secs(60)).await? == 0,
        "not due again within ten minutes"
    );
    ensure!(
        jobs.clone().purge_due("other", now + secs(60)).await? == 0,
        "clones share the schedule"
    );
    ensure!(jobs.purge_due("other", now + secs(601)).await? == 3);
    ensure!(jobs.counts().await?.get("other").map_or(0, |c| c.done) == 0);
    Ok(())
}

/// 8 tasks x 25 read-modify-write transactions through `begin_write` with a compare-and-set
/// update: every one must eventually commit (no "database is locked"), none may be lost.
async fn concurrent_read_then_write_transactions_all_commit(db: &TestDb) -> Result<()> {
    store::sqlx::query("CREATE TABLE rmw_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(db.pool())
        .await?;
    store::sqlx::query("INSERT INTO rmw_counter (id, n) VALUES (1, 0)")
        .execute(db.pool())
        .await?;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let db = db.db().clone();
        handles.push(tokio::spawn(async move {
            let mut retries = 0u32;
            for _ in 0..25 {
                loop {
                    let mut tx = db.begin_write().await?;
                    let n: i64 =
                        store::sqlx::query_scalar("SELECT n FROM rmw_counter WHERE id = 1")
                            .fetch_one(&mut *tx)
                            .await?;
                    let updated =
                        store::sqlx::query("UPDATE rmw_counter SET n = $1 WHERE id = 1 AND n = $2")
                            .bind(n + 1)
                            .bind(n)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    tx.commit().await?;
                    if updated == 1 {
                        break;
                    }
                    retries += 1;
                }
            }
            Ok::<u32, anyhow::Error>(retries)
        }));
    }
    let mut retries = Vec::new();
    for h in handles {
        retries.push(h.await??);
    }
    let n: i64 = store::sqlx::query_scalar("SELECT n FROM rmw_counter WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    println!(
        "  compare-and-set retries per task on {}: {retries:?}",
        db.backend().name()
    );
    ensure!(n == 200, "counter {n}, expected 200");
    if db.backend() == Backend::Sqlite {
        ensure!(
            retries.iter().all(|r| *r == 0),
            "BEGIN IMMEDIATE serialises writers: {retries:?}"
        );
    }
    Ok(())
}

/// A second handle on the test database with a one-connection pool: whatever a statement
/// keeps is then the only connection there is.
async fn one_connection_db(db: &TestDb, acquire_timeout_ms: u64) -> Result<Db> {
    let mut config = DatabaseConfig::with_url(db.url());
    config.max_connections = Some(1);
    config.acquire_timeout_ms = acquire_timeout_ms;
    Ok(Db::connect(&config).await?)
}

/// Statements on the pool keep their connection (no release ping); a transaction, a plain
/// `acquire` and `close` take the kept one instead of waiting for sqlx's pool, which here
/// has no other connection to give (its acquire timeout would fail them).
async fn statements_keep_their_connection_and_never_starve_a_transaction(
    db: &TestDb,
) -> Result<()> {
    let one = one_connection_db(db, 2_000).await?;
    for n in 0..20i64 {
        let got: i64 = store::sqlx::query_scalar("SELECT $1")
            .bind(n)
            .fetch_one(one.pool())
            .await?;
        ensure!(got == n);
        ensure!(one.pool().kept() == 1, "the statement's connection is kept");
        ensure!(one.pool().size() == 1);
    }
    let mut tx = one
        .begin_write()
        .await
        .context("begin after kept statements")?;
    ensure!(
        one.pool().kept() == 0,
        "the transaction took the kept connection"
    );
    store::sqlx::query("CREATE TABLE kept_probe (n BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    store::sqlx::query("INSERT INTO kept_probe (n) VALUES (7)")
        .execute(one.pool())
        .await?;
    let mut conn = one
        .pool()
        .acquire()
        .await
        .context("acquire after kept statement")?;
    let n: i64 = store::sqlx::query_scalar("SELECT n FROM kept_probe")
        .fetch_one(&mut *conn)
        .await?;
    ensure!(n == 7);
    drop(conn);
    store::sqlx::query("SELECT 1").execute(one.pool()).await?;
    ensure!(one.pool().kept() == 1);
    tokio::time::timeout(Duration::from_secs(10), one.close())
        .await
        .context("close must not wait for kept connections")?;
    ensure!(one.pool().kept() == 0);
    ensure!(one.ping().await.is_err(), "closed pool");
    Ok(())
}

/// More callers than connections: a statement that ends while others wait in sqlx's pool
/// hands its connection on instead of keeping it (kept, it would reach only its own task's
/// next statement, and the waiters would time out after the 2 s acquire timeout).
async fn callers_waiting_for_a_connection_get_it_when_a_statement_ends(db: &TestDb) -> Result<()> {
    let one = one_connection_db(db, 2_000).await?;
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let mut sum = 0i64;
            for n in 0..25i64 {
                sum += store::sqlx::query_scalar::<_, i64>("SELECT $1")
                    .bind(t * 100 + n)
                    .fetch_one(one.pool())
                    .await?;
            }
            Ok::<i64, anyhow::Error>(sum)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?.context("a waiting caller got no connection")?;
    }
    // Sum over t of (25 * 100 t + 0 + … + 24) for t = 0..8.
    ensure!(total == 2_500 * 28 + 300 * 8, "sum {total}");
    ensure!(one.pool().size() == 1);
    one.close().await;
    Ok(())
}

/// A transaction that commits or rolls back leaves its connection idle, and it is kept like a
/// statement's (no release ping). One dropped while open is rolled back before its connection
/// serves anyone else: with one connection, the next statement would otherwise run inside it
/// and see its row.
async fn an_ended_transaction_keeps_its_connection_and_a_dropped_one_rolls_back(
    db: &TestDb,
) -> Result<()> {
    let one = one_connection_db(db, 10_000).await?;
    let count = || async {
        store::sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tx_probe")
            .fetch_one(one.pool())
            .await
    };
    let mut tx = one.begin_write().await?;
    store::sqlx::query("CREATE TABLE tx_probe (n BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    ensure!(
        one.pool().kept() == 1,
        "a committed transaction's connection is kept"
    );
    ensure!(count().await? == 0);

    let mut tx = one.begin_write().await?;
    ensure!(
        one.pool().kept() == 0,
        "the transaction took the kept connection"
    );
    store::sqlx::query("INSERT INTO tx_probe (n) VALUES (1)")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    ensure!(
        one.pool().kept() == 1,
        "a rolled back transaction's connection is kept"
    );
    ensure!(count().await? == 0, "rolled back");

    let mut tx = one.begin_write().await?;
    store::sqlx::query("INSERT INTO tx_probe (n) VALUES (2)")
        .execute(&mut *tx)
        .await?;
    drop(tx);
    ensure!(
        one.pool().kept() == 0,
        "a dropped transaction's connection is not kept"
    );
    ensure!(count().await? == 0, "a dropped transaction is rolled back");

    // Committed work is there, and the connection takes new transactions.
    let mut tx = one.begin_write().await?;
    store::sqlx::query("INSERT INTO tx_probe (n) VALUES (3)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let n: i64 = store::sqlx::query_scalar("SELECT n FROM tx_probe")
        .fetch_one(one.pool())
        .await?;
    ensure!(n == 3 && count().await? == 1);
    ensure!(one.pool().size() == 1);
    one.close().await;
    Ok(())
}

/// A statement that fails, or whose future is dropped while the database still works on it,
/// is not kept: its connection goes back through sqlx's release (ping, or close if broken),
/// and the next statement gets a working connection.
async fn a_failed_or_abandoned_statement_gives_its_connection_back_to_sqlx(
    db: &TestDb,
) -> Result<()> {
    let one = one_connection_db(db, 60_000).await?;
    store::sqlx::query("SELECT 1").execute(one.pool()).await?;
    ensure!(one.pool().kept() == 1);
    let bad = store::sqlx::query("SELECT no_such_column FROM no_such_table")
        .execute(one.pool())
        .await;
    ensure!(bad.is_err(), "the statement must fail");
    ensure!(
        one.pool().kept() == 0,
        "a failed statement's connection is not kept"
    );
    let n: i64 = store::sqlx::query_scalar("SELECT 41 + 1")
        .fetch_one(one.pool())
        .await?;
    ensure!(n == 42);
    ensure!(one.pool().kept() == 1);
    // Counting to a few million takes the database a second or more on either backend.
    let slow = store::sqlx::query_scalar::<_, i64>(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
         SELECT COUNT(*) FROM c",
    )
    .fetch_one(one.pool());
    let abandoned = tokio::time::timeout(Duration::from_millis(50), slow).await;
    ensure!(
        abandoned.is_err(),
        "the slow statement must still be running"
    );
    ensure!(
        one.pool().kept() == 0,
        "an abandoned statement's connection is not kept"
    );
    let n: i64 = store::sqlx::query_scalar("SELECT 2 * 21")
        .fetch_one(one.pool())
        .await
        .context("statement after an abandoned one")?;
    ensure!(n == 42);
    one.close().await;
    Ok(())
}

/// The native-driver pool reads what the main pool committed, keeps its connection between
/// statements like the main pool, and cannot write. On PostgreSQL its connections also plan
/// generically (the start-up options replace the main pool's `SET`).
async fn native_reads_see_committed_rows_keep_connections_and_refuse_writes(
    db: &TestDb,
) -> Result<()> {
    store::sqlx::query("CREATE TABLE native_probe (id TEXT PRIMARY KEY, n BIGINT, note TEXT)")
        .execute(db.pool())
        .await?;
    for (id, n, note) in [
        ("a", 1i64, Some("én")),
        ("b", 2, None),
        ("c", 3, Some("tre")),
    ] {
        store::sqlx::query("INSERT INTO native_probe (id, n, note) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(n)
            .bind(note)
            .execute(db.pool())
            .await?;
    }
    type Probe = Vec<(String, i64, Option<String>)>;
    let (rows, kept, write): (Probe, usize, bool) = match db.native_reads() {
        store::NativeReads::Sqlite(reads) => {
            let rows = reads.read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, n, note FROM native_probe WHERE n >= $1 ORDER BY id",
                )?;
                st.query_map([2i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })?;
            // A read that may scan leaves the async thread first, and sees the same.
            let again: Vec<String> = reads.read_blocking(|c| {
                let mut st = c.prepare_cached("SELECT id FROM native_probe ORDER BY id")?;
                st.query_map([], |r| r.get(0))?.collect()
            })?;
            ensure!(again == ["a", "b", "c"], "{again:?}");
            let write = reads.read(|c| c.execute("DELETE FROM native_probe", []));
            (rows, reads.kept(), write.is_err())
        }
        store::NativeReads::Postgres(pool) => {
            let rows = store::sqlx::query_as(
                "SELECT id, n, note FROM native_probe WHERE n >= $1 ORDER BY id",
            )
            .bind(2i64)
            .fetch_all(pool)
            .await?;
            let kept = pool.kept();
            let write = store::sqlx::query("DELETE FROM native_probe")
                .execute(pool)
                .await;
            (rows, kept, write.is_err())
        }
    };
    ensure!(
        rows == vec![("b".into(), 2, None), ("c".into(), 3, Some("tre".into()))],
        "{rows:?}"
    );
    ensure!(kept == 1, "{kept} connections kept after the statements");
    ensure!(write, "a write through native reads must fail");
    let n: i64 = store::sqlx::query_scalar("SELECT COUNT(*) FROM native_probe")
        .fetch_one(db.pool())
        .await?;
    ensure!(n == 3, "{n} rows left");
    if let store::NativeReads::Postgres(pool) = db.native_reads() {
        let mode: String = store::sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(pool)
            .await?;
        ensure!(mode == "force_generic_plan", "native pool: {mode}");
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Letter {
    to: String,
    pages: u32,
    tags: Vec<String>,
}

async fn payload_round_trips(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let letter = Letter {
        to: "Blåbærsyltetøy kommune — «Min side»".into(),
        pages: 3,
        tags: vec!["lenke".into(), "\u{1F4EC}".into()],
    };
    let now = t0();
    let e = jobs.enqueue("deliver", &letter, None, now).await?;
    let job = jobs
        .claim("deliver", "w1", secs(60), now)
        .await?
        .context("claimable")?;
    ensure!(job.id == e.id && job.state == JobState::Running && job.attempts == 1);
    ensure!(job.payload_as::<Letter>()? == letter);
    ensure!(
        job.lease_until == Some(now + secs(60)),
        "{:?}",
        job.lease_until
    );
    ensure!(job.run_at == now);
    Ok(())
}

async fn concurrent_claimers_never_double_claim(db: &TestDb) -> Result<()> {
    const JOBS: usize = 200;
    const CLAIMERS: usize = 8;
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let mut ids = HashSet::new();
    for i in 0..JOBS {
        ids.insert(jobs.enqueue("bulk", &i, None, now).await?.id);
    }
    let mut handles = Vec::new();
    for w in 0..CLAIMERS {
        let jobs = jobs.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("claimer-{w}");
            let mut mine = Vec::new();
            while let Some(job) = jobs.claim("bulk", &worker, secs(300), now).await? {
                mine.push(job.id);
                jobs.complete(&job).await?;
            }
            Ok::<_, anyhow::Error>(mine)
        }));
    }
    let mut seen = Vec::new();
    let mut per_worker = Vec::new();
    for h in handles {
        let mine = h.await??;
        per_worker.push(mine.len());
        seen.extend(mine);
    }
    println!(
        "  {} claims per claimer on {}: {per_worker:?}",
        JOBS,
        db.backend().name()
    );
    let unique: HashSet<_> = seen.iter().copied().collect();
    ensure!(seen.len() == JOBS, "{} claims for {JOBS} jobs", seen.len());
    ensure!(unique == ids, "claimed set differs from enqueued set");
    let counts = jobs.counts().await?;
    let bulk = counts.get("bulk").copied().unwrap_or_default();
    ensure!(
        bulk.done == 200 && bulk.queued == 0 && bulk.running == 0,
        "{bulk:?}"
    );
    let max_attempts: i64 = store::sqlx::query_scalar("SELECT MAX(attempts) FROM jobs")
        .fetch_one(db.pool())
        .await?;
    ensure!(max_attempts == 1, "a job was claimed more than once");
    Ok(())
}

async fn backoff_schedule_doubles_and_caps(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_policy(RetryPolicy {
        max_attempts: 5,
        base_delay: secs(10),
        max_delay: secs(25),
        jitter: 0.0,
    });
    let mut now = t0();
    let id = jobs.enqueue("q", &"x", None, now).await?.id;
    for (attempt, expected) in [(1u32, 10u64), (2, 20), (3, 25), (4, 25)] {
        let job = jobs
            .claim("q", "w", secs(60), now)
            .await?
            .context("due job is claimable")?;
        ensure!(
            job.id == id && job.attempts == attempt,
            "attempt {}",
            job.attempts
        );
        let outcome = jobs.fail(&job, &format!("boom {attempt}"), now).await?;
        let due = now + secs(expected);
        ensure!(
            outcome == FailOutcome::Retry { run_at: due },
            "{outcome:?} at attempt {attempt}"
        );
        let stored = jobs.get(id).await?.context("exists")?;
        ensure!(stored.state == JobState::Queued && stored.run_at == due);
        ensure!(stored.last_error.as_deref() == Some(format!("boom {attempt}").as_str()));
        ensure!(stored.lease_until.is_none() && stored.locked_by.is_none());
        let early = due - Duration::from_millis(1);
        ensure!(
            jobs.claim("q", "w", secs(60), early).await?.is_none(),
            "claimable before its retry time"
        );
        now = due;
    }
    Ok(())
}

async fn backoff_jitter_stays_in_bounds(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_policy(RetryPolicy {
        max_attempts: 100,
        base_delay: secs(8),
        max_delay: secs(3600),
        jitter: 0.5,
    });
    let now = t0();
    let mut delays = Vec::new();
    for i in 0..20 {
        jobs.enqueue("j", &i, None, now).await?;
        let job = jobs.claim("j", "w", secs(60), now).await?.context("due")?;
        match jobs.fail(&job, "e", now).await? {
            FailOutcome::Retry { run_at } => {
                let d = run_at - now;
                ensure!(
                    d >= time::Duration::seconds(4) && d <= time::Duration::seconds(8),
                    "delay {d} outside [4s, 8s]"
                );
                delays.push(d);
            }
            FailOutcome::Dead => bail!("not dead after one attempt"),
        }
    }
    let distinct: HashSet<_> = delays.iter().map(|d| d.whole_milliseconds()).collect();
    ensure!(
        distinct.len() > 1,
        "jitter produced identical delays: {delays:?}"
    );
    Ok(())
}

async fn dead_letter_after_max_attempts_and_requeue(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_policy(RetryPolicy {
        max_attempts: 10,
        base_delay: secs(1),
        max_delay: secs(1),
        jitter: 0.0,
    });
    let mut now = t0();
    let id = jobs
        .enqueue_job(NewJob::new("dlq", &"poison")?.run_at(now).max_attempts(3))
        .await?
        .id;
    for attempt in 1..=3u32 {
        let job = jobs
            .claim("dlq", "w", secs(60), now)
            .await?
            .context("claimable")?;
        ensure!(job.attempts == attempt && job.max_attempts == 3);
        let outcome = jobs.fail(&job, "still broken", now).await?;
        if attempt < 3 {
            ensure!(matches!(outcome, FailOutcome::Retry { .. }), "{outcome:?}");
        } else {
            ensure!(outcome == FailOutcome::Dead, "{outcome:?}");
        }
        now += secs(2);
    }
    let dead = jobs.get(id).await?.context("exists")?;
    ensure!(dead.state == JobState::Dead && dead.attempts == 3);
    ensure!(dead.last_error.as_deref() == Some("still broken"));
    ensure!(
        jobs.claim("dlq", "w", secs(60), now + secs(86_400))
            .await?
            .is_none()
    );
    ensure!(jobs.counts().await?.get("dlq").map(|c| c.dead) == Some(1));
    // The operator's list: dead jobs only, by queue or all, at most the limit.
    jobs.enqueue_job(NewJob::new("dlq", &"healthy")?.run_at(now))
        .await?;
    let listed: Vec<_> = jobs.dead(None, 10).await?.iter().map(|j| j.id).collect();
    ensure!(listed == [id], "{listed:?}");
    ensure!(jobs.dead(Some("dlq"), 10).await?.len() == 1);
    ensure!(jobs.dead(Some("other"), 10).await?.is_empty());
    ensure!(jobs.dead(None, 0).await?.is_empty());
    ensure!(jobs.requeue_dead(id, now).await?, "requeue of a dead job");
    ensure!(
        jobs.dead(None, 10).await?.is_empty(),
        "requeued: no longer dead"
    );
    ensure!(
        !jobs.requeue_dead(id, now).await?,
        "second requeue is a no-op"
    );
    let again = jobs
        .claim("dlq", "w", secs(60), now)
        .await?
        .context("claimable again")?;
    ensure!(
        again.id == id && again.attempts == 1,
        "fresh budget after requeue"
    );
    jobs.complete(&again).await?;
    ensure!(jobs.get(id).await?.map(|j| j.state) == Some(JobState::Done));
    Ok(())
}

/// Claims that find queued work skip the expired-lease sweep for up to a second (one
/// statement per claim under load); a crashed worker's job is still taken over, first, once
/// that second has passed.
async fn expired_leases_are_taken_over_within_a_second_while_work_is_queued(
    db: &TestDb,
) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let crashed = jobs.enqueue("sweep", &"a", None, now).await?.id;
    jobs.claim("sweep", "dead", secs(10), now)
        .await?
        .context("the worker that will crash claims")?;
    let mut queued = Vec::new();
    for n in 0..3 {
        queued.push(jobs.enqueue("sweep", &n, None, now + secs(11)).await?.id);
    }
    // The lease ran out at +10 s; the last sweep was at +0 s, so the next claim sweeps.
    let first = jobs
        .claim("sweep", "b", secs(10), now + secs(11))
        .await?
        .context("claims")?;
    ensure!(
        first.id == crashed && first.attempts == 2,
        "taken over first"
    );
    // A second worker crashes; within a second of the last sweep, queued work goes first.
    let second = jobs
        .claim("sweep", "dead2", Duration::from_millis(500), now + secs(11))
        .await?
        .context("claims")?;
    ensure!(second.id == queued[0]);
    let third = jobs
        .claim("sweep", "b", secs(10), now + Duration::from_millis(11_800))
        .await?
        .context("claims")?;
    ensure!(
        third.id == queued[1],
        "no sweep before a second has passed: {third:?}"
    );
    let fourth = jobs
        .claim("sweep", "b", secs(10), now + secs(12))
        .await?
        .context("claims")?;
    ensure!(
        fourth.id == second.id && fourth.attempts == 2,
        "the expired lease is taken over at the next sweep: {fourth:?}"
    );
    Ok(())
}

async fn lease_expiry_lets_another_worker_reclaim(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let id = jobs.enqueue("lease", &"x", None, now).await?.id;
    let by_a = jobs
        .claim("lease", "a", secs(10), now)
        .await?
        .context("a claims")?;
    let until = jobs.heartbeat(&by_a, secs(10), now + secs(5)).await?;
    ensure!(until == now + secs(15));
    ensure!(
        jobs.claim("lease", "b", secs(10), now + secs(12))
            .await?
            .is_none(),
        "heartbeat must keep the job leased"
    );
    let by_b = jobs
        .claim("lease", "b", secs(10), now + secs(16))
        .await?
        .context("b reclaims after expiry")?;
    ensure!(by_b.id == id && by_b.attempts == 2 && by_b.locked_by.as_deref() == Some("b"));
    for (what, err) in [
        ("complete", jobs.complete(&by_a).await.err()),
        ("fail", jobs.fail(&by_a, "late", now + secs(17)).await.err()),
        (
            "heartbeat",
            jobs.heartbeat(&by_a, secs(10), now + secs(17)).await.err(),
        ),
    ] {
        let code = err.map(|e| e.code());
        ensure!(
            code == Some("job_lease_lost"),
            "{what} by the old worker: {code:?}"
        );
    }
    jobs.complete(&by_b).await?;
    let done = jobs.get(id).await?.context("exists")?;
    ensure!(done.state == JobState::Done && done.attempts == 2);
    Ok(())
}

async fn lease_expired_on_last_attempt_goes_dead(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let id = jobs
        .enqueue_job(NewJob::new("last", &"x")?.run_at(now).max_attempts(1))
        .await?
        .id;
    jobs.claim("last", "a", secs(10), now)
        .await?
        .context("claim")?;
    ensure!(
        jobs.claim("last", "b", secs(10), now + secs(11))
            .await?
            .is_none()
    );
    let job = jobs.get(id).await?.context("exists")?;
    ensure!(job.state == JobState::Dead, "{:?}", job.state);
    ensure!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("lease_expired"))
    );
    Ok(())
}

async fn killed_claimer_process_job_is_retried(db: &TestDb) -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let jobs = Jobs::new(db.db().clone());
    let now = t0();
    let id = jobs.enqueue("crash", &"x", None, now).await?.id;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, db.url())
        .env(CHILD_QUEUE_ENV, "crash")
        .env(CHILD_NOW_ENV, store::to_ms(now).to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // A guard against a hung child, not a timing assertion.
    let line = tokio::time::timeout(secs(120), lines.next_line())
        .await
        .context("child did not report within 120 s")??
        .context("child exited without output")?;
    ensure!(line == format!("claimed {id}"), "child said {line:?}");
    child.start_kill()?; // SIGKILL on Unix
    let status = child.wait().await?;
    ensure!(
        status.signal() == Some(9),
        "child ended with {status:?}, not SIGKILL"
    );

    let orphan = jobs.get(id).await?.context("exists")?;
    ensure!(orphan.state == JobState::Running && orphan.attempts == 1);
    ensure!(
        orphan
            .locked_by
            .as_deref()
            .is_some_and(|w| w.starts_with("child-"))
    );
    let before_expiry = now + CHILD_LEASE - Duration::from_millis(1);
    ensure!(
        jobs.claim("crash", "rescuer", secs(10), before_expiry)
            .await?
            .is_none()
    );
    // Claims look for expired leases once a second: the claim just before expiry looked.
    let rescued = jobs
        .claim("crash", "rescuer", secs(10), before_expiry + secs(1))
        .await?
        .context("claimable within a second of the dead child's lease expiring")?;
    ensure!(rescued.id == id && rescued.attempts == 2);
    jobs.complete(&rescued).await?;
    ensure!(jobs.get(id).await?.map(|j| j.state) == Some(JobState::Done));
    Ok(())
}

/// Claims, completions, failures and heartbeats may be lost in a server crash (the job runs
/// again); everything else, enqueueing included, waits for the WAL flush.
async fn only_job_bookkeeping_commits_without_waiting_for_the_flush(db: &TestDb) -> Result<()> {
    let setting = |pool: &'static str| format!("synchronous_commit on the {pool} pool");
    let durable: String = store::sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(db.pool())
        .await?;
    ensure!(durable == "on", "{}: {durable}", setting("main"));
    let bookkeeping: String = store::sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(db.job_pool())
        .await?;
    ensure!(bookkeeping == "off", "{}: {bookkeeping}", setting("job"));
    // Enqueueing goes through the main pool: a job is durable once `enqueue` returns.
    let jobs = Jobs::new(db.db().clone());
    jobs.enqueue("durable", &serde_json::json!({}), None, t0())
        .await?;
    let job = jobs
        .claim("durable", "w1", secs(30), t0())
        .await?
        .context("claimable")?;
    jobs.complete(&job).await?;
    ensure!(jobs.get(job.id).await?.context("job")?.state == JobState::Done);
    Ok(())
}

/// PostgreSQL would otherwise re-plan a statement with a `LIMIT $n` on every run (see
/// `SET_GENERIC_PLANS` in `store::db`): every connection of both pools uses generic plans.
async fn prepared_statements_are_planned_once_per_connection(db: &TestDb) -> Result<()> {
    for (name, pool) in [("main", db.pool()), ("job", db.job_pool())] {
        let mut conn = pool.acquire().await?;
        let mode: String = store::sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut *conn)
            .await?;
        ensure!(mode == "force_generic_plan", "{name} pool: {mode}");
        for n in 0..8i64 {
            let got: i64 = store::sqlx::query_scalar(
                "SELECT x FROM generate_series(1, 100) AS x WHERE x > $1 ORDER BY x LIMIT $2",
            )
            .bind(n)
            .bind(1i64)
            .fetch_one(&mut *conn)
            .await?;
            ensure!(got == n + 1, "{name} pool: row {got} for {n}");
        }
        let (generic, custom): (i64, i64) = store::sqlx::query_as(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement LIKE '%generate_series(1, 100)%' \
             AND statement NOT LIKE '%pg_prepared_statements%'",
        )
        .fetch_one(&mut *conn)
        .await?;
        ensure!(
            generic == 8 && custom == 0,
            "{name} pool: {generic} generic and {custom} custom plans for 8 runs"
        );
    }
    Ok(())
}

/// Child process body: claim one job, report it, hang until SIGKILL.
fn child_claimer(url: &str) -> ExitCode {
    let run = async {
        let queue = std::env::var(CHILD_QUEUE_ENV)?;
        let now = store::from_ms(std::env::var(CHILD_NOW_ENV)?.parse()?)?;
        let db = Db::connect_url(url).await?;
        let jobs = Jobs::new(db);
        let worker = format!("child-{}", std::process::id());
        let job = jobs
            .claim(&queue, &worker, CHILD_LEASE, now)
            .await?
            .context("nothing to claim")?;
        println!("claimed {}", job.id);
        use std::io::Write;
        std::io::stdout().flush()?;
        loop {
            tokio::time::sleep(secs(3600)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return ExitCode::FAILURE,
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn worker_loop_processes_and_retries(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_policy(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(20),
        jitter: 0.0,
    });
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..5u32 {
        ids.push(jobs.enqueue("work", &i, None, now).await?.id);
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = handled.clone();
    let worker = tokio::spawn(run_worker(
        jobs.clone(),
        "work",
        WorkerOptions {
            worker_id: "loop".into(),
            lease: secs(30),
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(100),
        },
        move |job| {
            let seen = seen.clone();
            async move {
                let n: u32 = job.payload_as()?;
                if let Ok(mut v) = seen.lock() {
                    v.push((n, job.attempts));
                }
                // Job 3 fails on its first attempt and succeeds on the retry.
                if n == 3 && job.attempts == 1 {
                    return Err(anyhow!("transient"));
                }
                Ok::<(), anyhow::Error>(())
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    // Enqueued after the worker started: on PostgreSQL this one arrives via NOTIFY or poll.
    ids.push(
        jobs.enqueue("work", &5u32, None, OffsetDateTime::now_utc())
            .await?
            .id,
    );
    let done = done_within(&jobs, "work", 6, secs(30)).await?;
    let _ = stop_tx.send(());
    let stats = worker.await??;
    ensure!(done == 6, "only {done} of 6 jobs done");
    ensure!(
        stats.completed == 6 && stats.retried == 1 && stats.dead == 0,
        "{stats:?}"
    );
    let handled = handled.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    ensure!(handled.len() == 7, "{handled:?}");
    ensure!(
        handled.contains(&(3, 1)) && handled.contains(&(3, 2)),
        "{handled:?}"
    );
    for id in ids {
        ensure!(jobs.get(id).await?.map(|j| j.state) == Some(JobState::Done));
    }
    Ok(())
}

/// `spawn_workers` starts the number of loops asked for, each under its own worker id, which
/// hold jobs at the same time; all of them end when shutdown turns true.
async fn spawned_worker_loops_work_side_by_side_and_stop_together(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let now = OffsetDateTime::now_utc();
    for i in 0..6u32 {
        jobs.enqueue("side", &i, None, now).await?;
    }
    // Three jobs wait at the gate together before any finishes: only three loops get there.
    let at_gate = Arc::new(tokio::sync::Barrier::new(3));
    let holders = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (gate, seen) = (at_gate.clone(), holders.clone());
    let loops = store::spawn_workers(
        &jobs,
        "side",
        "conformance-side",
        3,
        secs(30),
        move |job| {
            let (gate, seen) = (gate.clone(), seen.clone());
            async move {
                if let Ok(mut s) = seen.lock() {
                    s.insert(job.locked_by.clone().unwrap_or_default());
                }
                let n: u32 = job.payload_as()?;
                if n < 3 {
                    gate.wait().await;
                }
                Ok::<(), anyhow::Error>(())
            }
        },
        &stop_rx,
    );
    ensure!(loops.len() == 3, "{} loops started", loops.len());
    let done = done_within(&jobs, "side", 6, secs(30)).await?;
    let _ = stop_tx.send(true);
    for l in loops {
        tokio::time::timeout(secs(10), l)
            .await
            .context("a loop did not stop on shutdown")??;
    }
    ensure!(done == 6, "only {done} of 6 jobs done");
    let holders = holders.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    ensure!(
        holders.len() == 3 && holders.iter().all(|h| h.starts_with("conformance-side-")),
        "{holders:?}"
    );
    Ok(())
}

/// A worker loop deletes its own queue's done jobs once they are past keeping, and leaves
/// dead jobs and other queues alone.
async fn worker_loop_deletes_its_queues_old_done_jobs(db: &TestDb) -> Result<()> {
    let setup = Jobs::new(db.db().clone());
    let now = OffsetDateTime::now_utc();
    let mut finished = Vec::new();
    for i in 0..3 {
        finished.push(setup.enqueue("tidy", &i, None, now).await?.id);
    }
    let other = setup.enqueue("untouched", &0, None, now).await?.id;
    ensure!(finish_all(&setup, "tidy", now).await? == 3);
    ensure!(finish_all(&setup, "untouched", now).await? == 1);
    let dead = setup
        .enqueue_job(NewJob::new("tidy", &9)?.run_at(now).max_attempts(1))
        .await?;
    let job = setup
        .claim("tidy", "w", secs(60), now)
        .await?
        .context("claim")?;
    setup.fail(&job, "broken", now).await?;
    // Kept for no time at all: the loop deletes them at its first turn.
    let jobs = Jobs::new(db.db().clone()).with_keep_done(Duration::ZERO);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(
        jobs.clone(),
        "tidy",
        WorkerOptions {
            worker_id: "tidy".into(),
            lease: secs(30),
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(50),
        },
        |_job| async { Ok::<(), anyhow::Error>(()) },
        async {
            let _ = stop_rx.await;
        },
    ));
    let until = std::time::Instant::now() + secs(10);
    let mut left = finished.len();
    while left > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = 0;
        for id in &finished {
            left += usize::from(jobs.get(*id).await?.is_some());
        }
    }
    let _ = stop_tx.send(());
    worker.await??;
    ensure!(left == 0, "{left} done jobs left after 10 s");
    ensure!(jobs.get(dead.id).await?.map(|j| j.state) == Some(JobState::Dead));
    ensure!(jobs.get(other).await?.map(|j| j.state) == Some(JobState::Done));
    Ok(())
}

/// A handler that runs longer than the lease keeps its job (the loop heartbeats every third
/// of the lease), and a handler that panics fails the attempt instead of killing the loop.
async fn worker_renews_lease_and_survives_a_panicking_handler(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone()).with_policy(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        jitter: 0.0,
    });
    let slow = jobs
        .enqueue("slow", &"slow", None, OffsetDateTime::now_utc())
        .await?
        .id;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(
        jobs.clone(),
        "slow",
        WorkerOptions {
            worker_id: "slow-worker".into(),
            lease: secs(3),
            poll_min: Duration::from_millis(10),
            poll_max: Duration::from_millis(50),
        },
        move |job| {
            let mut release = release_rx.clone();
            async move {
                let what: String = job.payload_as()?;
                if what == "panic" && job.attempts == 1 {
                    panic!("handler bug");
                }
                if what == "slow" {
                    release.wait_for(|r| *r).await?;
                }
                Ok::<(), anyhow::Error>(())
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    // Wait (bounded) until the slow job is claimed, then past its first lease.
    let mut first_lease = None;
    for _ in 0..600 {
        if let Some(until) = jobs.get(slow).await?.and_then(|j| j.lease_until) {
            first_lease = Some(until);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_lease = first_lease.context("slow job never claimed")?;
    while OffsetDateTime::now_utc() < first_lease + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = OffsetDateTime::now_utc();
    let running = jobs.get(slow).await?.context("exists")?;
    let renewed = running.lease_until.context("still leased")?;
    ensure!(
        renewed > first_lease,
        "lease not renewed: {renewed} vs {first_lease}"
    );
    ensure!(
        jobs.claim("slow", "thief", secs(3), now).await?.is_none(),
        "a renewed lease must not be claimable"
    );
    let _ = release_tx.send(true);
    let panicky = jobs
        .enqueue("slow", &"panic", None, OffsetDateTime::now_utc())
        .await?
        .id;
    let mut states = (None, None);
    for _ in 0..600 {
        states = (
            jobs.get(slow).await?.map(|j| j.state),
            jobs.get(panicky)
                .await?
                .map(|j| (j.state, j.attempts, j.last_error)),
        );
        if states.0 == Some(JobState::Done) && matches!(states.1, Some((JobState::Done, _, _))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    let stats = worker.await??;
    ensure!(states.0 == Some(JobState::Done), "{states:?}");
    let (state, attempts, last_error) = states.1.context("panicky job exists")?;
    ensure!(
        state == JobState::Done && attempts == 2,
        "{state:?} after {attempts}"
    );
    ensure!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("handler panicked: handler bug")),
        "{last_error:?}"
    );
    ensure!(stats.completed == 2 && stats.retried == 1, "{stats:?}");
    Ok(())
}

/// The worker polls only every 10 minutes here, so the second job can only be picked up
/// within the guard time because `enqueue` NOTIFYs the worker's LISTEN connection.
async fn worker_wakes_on_notify_without_polling(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(
        jobs.clone(),
        "notify",
        WorkerOptions {
            worker_id: "listener".into(),
            lease: secs(30),
            poll_min: secs(600),
            poll_max: secs(600),
        },
        |_job| async { Ok::<(), anyhow::Error>(()) },
        async {
            let _ = stop_rx.await;
        },
    ));
    let wait_done = |n: u64| {
        let jobs = jobs.clone();
        async move {
            match done_within(&jobs, "notify", n, secs(30)).await? {
                done if done == n => Ok(()),
                _ => Err(anyhow!("job {n} not processed within the 30 s guard")),
            }
        }
    };
    jobs.enqueue("notify", &1, None, OffsetDateTime::now_utc())
        .await?;
    wait_done(1).await?;
    // Let the worker find the queue empty and go to sleep on its 10-minute poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another queue's notification must not disturb it; its own must wake it.
    jobs.enqueue("other", &0, None, OffsetDateTime::now_utc())
        .await?;
    jobs.enqueue("notify", &2, None, OffsetDateTime::now_utc())
        .await?;
    let woke = wait_done(2).await;
    let _ = stop_tx.send(());
    let stats = worker.await??;
    woke?;
    ensure!(stats.completed == 2, "{stats:?}");
    Ok(())
}

/// Each announced job wakes one idle loop (not every loop of the queue): four jobs reach four
/// idle loops, and jobs announced while every loop is busy are taken as loops come free.
async fn each_announced_job_wakes_an_idle_worker_and_none_is_lost(db: &TestDb) -> Result<()> {
    let jobs = Jobs::new(db.db().clone());
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for n in 0..4 {
        let (busy, gate, mut stop_rx) = (busy.clone(), gate.clone(), stop_rx.clone());
        loops.push(tokio::spawn(run_worker(
            jobs.clone(),
            "herd",
            WorkerOptions {
                worker_id: format!("loop-{n}"),
                lease: secs(30),
                poll_min: secs(600),
                poll_max: secs(600),
            },
            move |_job| {
                let (busy, gate) = (busy.clone(), gate.clone());
                async move {
                    busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let permit = gate.acquire().await;
                    busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    permit.map(|p| p.forget()).map_err(anyhow::Error::from)
                }
            },
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        )));
    }
    drop(stop_rx);
    // Let every loop find the queue empty and go to sleep on its 10-minute poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..4 {
        jobs.enqueue("herd", &i, None, OffsetDateTime::now_utc())
            .await?;
    }
    let mut all_busy = false;
    for _ in 0..200 {
        if busy.load(std::sync::atomic::Ordering::SeqCst) == 4 {
            all_busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Announced while no loop is idle: taken when the loops come free.
    for i in 4..8 {
        jobs.enqueue("herd", &i, None, OffsetDateTime::now_utc())
            .await?;
    }
    gate.add_permits(8);
    let done = done_within(&jobs, "herd", 8, secs(10)).await?;
    let _ = stop_tx.send(true);
    let mut completed = 0;
    for l in loops {
        completed += l.await??.completed;
    }
    ensure!(
        all_busy,
        "four jobs did not wake the four idle loops within 10 s"
    );
    ensure!(
        done == 8 && completed == 8,
        "{done} jobs done, {completed} completed"
    );
    Ok(())
}

/// The bundled SQLite is built with the options in `.cargo/config.toml`: without them a
/// statement that binds the current time against an index is compiled again on every run, and
/// every allocation takes a process-wide mutex.
async fn sqlite_plans_do_not_depend_on_bound_values(db: &TestDb) -> Result<()> {
    let options: Vec<String> = store::sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(db.pool())
        .await?;
    for wanted in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"] {
        ensure!(
            options.iter().any(|o| o == wanted),
            "SQLite built without {wanted} (LIBSQLITE3_FLAGS in .cargo/config.toml): {options:?}"
        );
    }
    Ok(())
}

async fn sqlite_file_created_with_wal_and_foreign_keys(_db: &TestDb) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("nested/deeper/samspill.sqlite");
    let db = Db::connect_url(&format!("sqlite://{}", file.display())).await?;
    db.migrate().await?;
    ensure!(file.is_file(), "database file created with its folders");
    let mode: String = store::sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await?;
    ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode {mode}");
    let fk: i64 = store::sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(db.pool())
        .await?;
    ensure!(fk == 1, "foreign_keys {fk}");
    let busy: i64 = store::sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(db.pool())
        .await?;
    ensure!(busy == 5000, "busy_timeout {busy}");
    // Checkpoints every 40 MB of WAL, not SQLite's 4 MB (see store's db.rs).
    let pages: i64 = store::sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(db.pool())
        .await?;
    ensure!(pages == 10_000, "wal_autocheckpoint {pages}");
    db.close().await;
    // Reopening an existing file keeps the data.
    let again = Db::connect_url(&format!("sqlite://{}", file.display())).await?;
    again.migrate().await?;
    again.close().await;
    Ok(())
}

// ---------------------------------------------------------------- blob tests

async fn blob_put_get_round_trip(blobs: &BlobStore) -> Result<()> {
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    for content in [Vec::new(), b"%PDF-1.7 brev".to_vec(), big] {
        let r = blobs.put(content.clone()).await?;
        ensure!(r == BlobRef::of(&content));
        ensure!(blobs.get(&r).await?.as_ref() == content.as_slice());
    }
    let missing = BlobRef::of(b"never stored");
    let err = blobs.get(&missing).await.err().map(|e| e.code());
    ensure!(err == Some("blob_not_found"), "{err:?}");
    Ok(())
}

async fn blob_put_is_idempotent(blobs: &BlobStore) -> Result<()> {
    use futures::TryStreamExt;
    let a = blobs.put(&b"same bytes"[..]).await?;
    let meta1 = blobs.object_store().head(&a.key().into()).await?;
    let b = blobs.put(&b"same bytes"[..]).await?;
    let meta2 = blobs.object_store().head(&b.key().into()).await?;
    ensure!(a == b);
    ensure!(
        meta1.e_tag == meta2.e_tag && meta1.last_modified == meta2.last_modified,
        "re-upload rewrote the object"
    );
    let listed: Vec<_> = blobs.object_store().list(None).try_collect().await?;
    ensure!(listed.len() == 1, "{} objects after two puts", listed.len());
    ensure!(listed.first().map(|m| m.location.to_string()) == Some(a.key()));
    Ok(())
}

async fn blob_tampered_content_is_refused(blobs: &BlobStore) -> Result<()> {
    let r = blobs.put(&b"original letter"[..]).await?;
    blobs
        .object_store()
        .put(&r.key().into(), b"forged  letter!".to_vec().into())
        .await?;
    let err = blobs
        .get(&r)
        .await
        .err()
        .context("tampered blob must not be returned")?;
    ensure!(err.code() == "blob_corrupt", "{err}");
    ensure!(err.to_string().contains(&r.sha256));
    // A reference with the right hash but a wrong size is refused too.
    let good = blobs.put(&b"other"[..]).await?;
    let wrong_size = BlobRef {
        size: good.size + 1,
        ..good.clone()
    };
    ensure!(blobs.get(&wrong_size).await.err().map(|e| e.code()) == Some("blob_corrupt"));
    Ok(())
}

async fn blob_exists_and_delete(blobs: &BlobStore) -> Result<()> {
    let r = blobs.put(&b"to be deleted"[..]).await?;
    ensure!(blobs.exists(&r).await?);
    ensure!(!blobs.exists(&BlobRef::of(b"absent")).await?);
    blobs.delete(&r).await?;
    ensure!(!blobs.exists(&r).await?);
    blobs.delete(&r).await?; // deleting twice is fine
    ensure!(blobs.get(&r).await.err().map(|e| e.code()) == Some("blob_not_found"));
    blobs.ping().await?;
    Ok(())
}

async fn blob_namespaces_are_isolated(blobs: &BlobStore) -> Result<()> {
    use futures::TryStreamExt;
    let a = blobs.scoped("avsender")?;
    let b = blobs.scoped("formidler")?;
    ensure!(a.namespace() == "avsender" && a.scoped("x")?.namespace() == "avsender/x");
    let content = &b"same letter in two services"[..];
    let in_a = a.put(content).await?;
    ensure!(!b.exists(&in_a).await?, "namespaces must not share blobs");
    let in_b = b.put(content).await?;
    ensure!(in_a == in_b, "same content, same reference");
    a.delete(&in_a).await?;
    ensure!(!a.exists(&in_a).await?);
    ensure!(
        b.get(&in_b).await?.as_ref() == content,
        "delete in one namespace kept the other"
    );
    let listed: Vec<_> = blobs.object_store().list(None).try_collect().await?;
    let keys: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    ensure!(
        keys == vec![format!("formidler/{}", in_b.key())],
        "{keys:?}"
    );
    if let Some(path) = b.local_path(&in_b) {
        ensure!(path.is_file() && path.ends_with(format!("formidler/sha256/{}", in_b.sha256)));
    }
    for bad in ["", "A", "a/b", "..", "x y"] {
        ensure!(blobs.scoped(bad).is_err(), "namespace {bad:?} accepted");
    }
    Ok(())
}

async fn blob_tampered_file_on_disk_is_refused(blobs: &BlobStore) -> Result<()> {
    let r = blobs.put(&b"vedtak om barnehageplass"[..]).await?;
    let path = blobs.local_path(&r).context("local backend has files")?;
    let mut bytes = std::fs::read(&path)?;
    let first = bytes.first_mut().context("non-empty")?;
    *first ^= 0x01; // same length, one bit flipped
    std::fs::write(&path, &bytes)?;
    let err = blobs
        .get(&r)
        .await
        .err()
        .context("bit flip must be detected")?;
    ensure!(err.code() == "blob_corrupt", "{err}");
    std::fs::remove_file(&path)?;
    ensure!(blobs.get(&r).await.err().map(|e| e.code()) == Some("blob_not_found"));
    // Putting the content again repairs the store.
    blobs.put(&b"vedtak om barnehageplass"[..]).await?;
    ensure!(blobs.get(&r).await?.as_ref() == b"vedtak om barnehageplass");
    Ok(())
}

/// A service's two blob tables, shaped as `store::blob_release` expects.
const TEST_BLOBS: ReleaseTables = ReleaseTables {
    release: "test_blob_release",
    references: "test_blob_refs",
};

async fn create_blob_tables(db: &Db) -> Result<()> {
    for sql in [
        "CREATE TABLE test_blob_release (sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL, \
         released_at BIGINT NOT NULL)",
        "CREATE TABLE test_blob_refs (owner TEXT NOT NULL, sha256 TEXT NOT NULL, \
         PRIMARY KEY (owner, sha256))",
        "CREATE INDEX test_blob_refs_sha256 ON test_blob_refs (sha256)",
    ] {
        store::sqlx::query(sql).execute(db.pool()).await?;
    }
    Ok(())
}

/// A writer's part: `owner` refers to `blob` (uncommitted until the caller commits).
async fn refer_in(
    conn: &mut store::sqlx::AnyConnection,
    owner: &str,
    blob: &BlobRef,
) -> Result<()> {
    store::sqlx::query("INSERT INTO test_blob_refs (owner, sha256) VALUES ($1, $2)")
        .bind(owner)
        .bind(&blob.sha256)
        .execute(&mut *conn)
        .await?;
    blob_release::claim_in(conn, &TEST_BLOBS, std::slice::from_ref(blob)).await?;
    Ok(())
}

/// A releaser's part: `owner` no longer refers to `blob`.
async fn unrefer_in(
    conn: &mut store::sqlx::AnyConnection,
    owner: &str,
    blob: &BlobRef,
) -> Result<()> {
    blob_release::release_in(conn, &TEST_BLOBS, blob, OffsetDateTime::now_utc()).await?;
    store::sqlx::query("DELETE FROM test_blob_refs WHERE owner = $1 AND sha256 = $2")
        .bind(owner)
        .bind(&blob.sha256)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn committed(db: &Db, owner: &str, blob: &BlobRef, refer: bool) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if refer {
        refer_in(&mut tx, owner, blob).await?;
    } else {
        unrefer_in(&mut tx, owner, blob).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn collect(db: &Db, blobs: &BlobStore) -> Result<usize> {
    Ok(
        blob_release::collect_released(db, blobs, &TEST_BLOBS, OffsetDateTime::now_utc(), 100)
            .await?,
    )
}

async fn released_rows(db: &Db) -> Result<i64> {
    Ok(
        store::sqlx::query_scalar("SELECT COUNT(*) FROM test_blob_release")
            .fetch_one(db.pool())
            .await?,
    )
}

/// The protocol on its own: a blob two owners share stays while either refers to it, goes
/// with the last, and a release recorded twice is one row.
async fn a_shared_blob_goes_with_its_last_reference(db: &TestDb) -> Result<()> {
    create_blob_tables(db).await?;
    let blobs = BlobStore::memory();
    let shared = blobs.put(&b"shared"[..]).await?;
    let own = blobs.put(&b"own"[..]).await?;
    committed(db, "a", &shared, true).await?;
    committed(db, "a", &own, true).await?;
    committed(db, "b", &shared, true).await?;
    ensure!(collect(db, &blobs).await? == 0, "nothing released yet");
    committed(db, "a", &shared, false).await?;
    committed(db, "a", &own, false).await?;
    ensure!(released_rows(db).await? == 2);
    ensure!(collect(db, &blobs).await? == 1, "only a's own blob goes");
    ensure!(!blobs.exists(&own).await? && blobs.exists(&shared).await?);
    ensure!(
        released_rows(db).await? == 0,
        "both release rows are done with"
    );
    // b releases it; a release of the same content by a stray request says the same again.
    committed(db, "b", &shared, false).await?;
    let mut tx = db.begin_write().await?;
    blob_release::release_in(&mut tx, &TEST_BLOBS, &shared, OffsetDateTime::now_utc()).await?;
    tx.commit().await?;
    ensure!(released_rows(db).await? == 1);
    ensure!(collect(db, &blobs).await? == 1);
    ensure!(!blobs.exists(&shared).await?);
    Ok(())
}

/// Many letters of a mass mailing share one document: the transactions that send them
/// (release) and those that submit more (refer) run side by side on PostgreSQL, where each
/// once queued for the document's release row until the one before it committed. A
/// collector meanwhile leaves the document alone and takes it after the last release.
async fn holders_of_one_blob_do_not_wait_for_each_other(db: &TestDb) -> Result<()> {
    create_blob_tables(db).await?;
    let blobs = BlobStore::memory();
    let doc = blobs.put(&b"%PDF-1.7 mass mailing"[..]).await?;
    for owner in ["a", "b", "c"] {
        committed(db, owner, &doc, true).await?;
    }
    committed(db, "c", &doc, false).await?;
    ensure!(collect(db, &blobs).await? == 0, "a and b refer to it");
    committed(db, "c", &doc, true).await?;
    committed(db, "c", &doc, false).await?;
    ensure!(released_rows(db).await? == 1, "c's release is recorded");

    // A waiting statement fails after lock_timeout instead of hanging the test.
    let open = || async {
        let mut tx = db.begin_write().await?;
        store::sqlx::query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut *tx)
            .await?;
        anyhow::Ok(tx)
    };
    let mut send_a = open().await?;
    unrefer_in(&mut send_a, "a", &doc).await?;
    let mut send_b = open().await?;
    unrefer_in(&mut send_b, "b", &doc)
        .await
        .context("a second sender of the document waited for the first")?;
    let mut submit_d = open().await?;
    refer_in(&mut submit_d, "d", &doc)
        .await
        .context("a submission of the document waited for the senders")?;
    ensure!(
        collect(db, &blobs).await? == 0 && blobs.exists(&doc).await?,
        "the collector took a document open transactions hold"
    );
    ensure!(
        released_rows(db).await? == 1,
        "the release stays for the next pass"
    );
    send_a.commit().await?;
    send_b.commit().await?;
    submit_d.commit().await?;
    ensure!(
        collect(db, &blobs).await? == 0 && blobs.exists(&doc).await?,
        "d refers to it"
    );
    committed(db, "d", &doc, false).await?;
    ensure!(collect(db, &blobs).await? == 1 && !blobs.exists(&doc).await?);
    Ok(())
}

/// The race the holds close: a sender records the document's first release while a
/// submission of the same document is open, and the sender commits first. A collector then
/// reads the committed references, which do not have the submission's yet; it must not take
/// the file, because the submission checked the file already or is about to.
async fn a_collector_leaves_a_blob_to_an_open_writer(db: &TestDb) -> Result<()> {
    create_blob_tables(db).await?;
    let blobs = BlobStore::memory();
    let doc = blobs.put(&b"%PDF-1.7 shared"[..]).await?;
    committed(db, "a", &doc, true).await?;
    let mut send_a = db.begin_write().await?;
    unrefer_in(&mut send_a, "a", &doc).await?;
    let mut submit_b = db.begin_write().await?;
    refer_in(&mut submit_b, "b", &doc).await?;
    send_a.commit().await?;
    ensure!(
        collect(db, &blobs).await? == 0 && blobs.exists(&doc).await?,
        "the collector took the document of an open submission"
    );
    submit_b.commit().await?;
    ensure!(
        collect(db, &blobs).await? == 0 && blobs.exists(&doc).await?,
        "b refers to it"
    );
    committed(db, "b", &doc, false).await?;
    ensure!(collect(db, &blobs).await? == 1 && !blobs.exists(&doc).await?);
    Ok(())
}

/// Compare-and-set updates select one row by its key and check its state or owner. No other
/// index may match them: PostgreSQL plans a pooled connection's statement once, with the
/// statistics of that moment, and on an empty table it took a state index over the primary
/// key, so each update walked every row in that state for as long as the connection lived.
/// The sweeps that do look rows up by state walk indexes of only the rows in that state.
/// (The receipts' statements, the formidler's own, are pinned by its repo tests.)
async fn keyed_updates_walk_the_primary_key_from_an_empty_table(db: &TestDb) -> Result<()> {
    const TEXT: (&str, &str) = ("text", "'x'");
    const NUMBER: (&str, &str) = ("bigint", "1");
    type Arg = (&'static str, &'static str);
    let updates: [(&str, &str, &[Arg]); 4] = [
        (
            "avsender_letters",
            "UPDATE avsender_letters SET updated_at = $3 WHERE letter_id = $1 AND status = $2",
            &[TEXT, TEXT, NUMBER],
        ),
        (
            "formidler_messages",
            "UPDATE formidler_messages SET updated_at = $3 WHERE message_id = $1 AND status = $2",
            &[TEXT, TEXT, NUMBER],
        ),
        (
            "postkasse_inbound",
            "UPDATE postkasse_inbound SET processed_at = $4 \
             WHERE tenant = $1 AND message_id = $2 AND state = $3",
            &[TEXT, TEXT, TEXT, NUMBER],
        ),
        (
            "utskrift_letters",
            "UPDATE utskrift_letters SET updated_at = $3 WHERE message_id = $1 AND status = $2",
            &[TEXT, TEXT, NUMBER],
        ),
    ];
    for (table, sql, args) in updates {
        let key = match db.backend() {
            Backend::Postgres => format!("{table}_pkey"),
            Backend::Sqlite => format!("sqlite_autoindex_{table}_1"),
        };
        let plan = plan_of(db.db(), sql, args).await;
        ensure!(plan.iter().any(|l| l.contains(&key)), "{sql}\n{plan:#?}");
    }
    // PostgreSQL may rightly scan an empty table instead; SQLite's choice is fixed.
    if db.backend() == Backend::Sqlite {
        let sweeps: [(&str, &str); 3] = [
            (
                "avsender_letters_unsent",
                "SELECT letter_id FROM avsender_letters WHERE status = 'created'",
            ),
            (
                "formidler_messages_pending",
                "SELECT message_id FROM formidler_messages WHERE status = 'OPPRETTET'",
            ),
            (
                "utskrift_letters_spooled",
                "SELECT message_id FROM utskrift_letters WHERE status = 'spooled' \
                 AND batch_due_at <= 1 ORDER BY batch_due_at, message_id",
            ),
        ];
        for (index, sql) in sweeps {
            let plan = plan_of(db.db(), sql, &[]).await;
            ensure!(
                plan.iter().any(|l| l.contains(index))
                    && !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sql}\n{plan:#?}"
            );
        }
    }
    Ok(())
}
