//! Test support (cargo feature `testing`): a brand-new migrated database per call, fresh
//! blob stores and loopback ports kept for a whole test, for the tests of this and every other
//! crate.
//!
//! The backend comes from `SAMSPILL_TEST_BACKEND` (`sqlite`, the default: a temp file; or
//! `postgres`: `CREATE DATABASE samspill_test_<epoch>_<random>` through the admin URL in
//! `SAMSPILL_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, dropped
//! again when the [`TestDb`] is dropped). Helpers panic on setup failure: they are for tests.
#![allow(clippy::expect_used, clippy::panic)]

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};
use tempfile::TempDir;
use time::OffsetDateTime;
use url::Url;

use crate::blob::{BlobRef, BlobStore};
use crate::config::{Backend, BlobBackendKind, DatabaseConfig};
use crate::db::Db;

/// Env var naming the test database backend.
pub const BACKEND_ENV: &str = "SAMSPILL_TEST_BACKEND";
/// Env var with the PostgreSQL admin URL used to create and drop test databases.
pub const PG_URL_ENV: &str = "SAMSPILL_TEST_PG_URL";
/// Admin URL when [`PG_URL_ENV`] is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Pool size of PostgreSQL test databases: enough for real concurrency, small enough that
/// many test databases fit under the server's default `max_connections = 100`. SQLite test
/// databases get the product's default, so the tests run on the pool size users get.
const TEST_PG_POOL_SIZE: u32 = 6;

/// The backend named by `SAMSPILL_TEST_BACKEND` (default SQLite). Panics on an unknown name.
pub fn test_backend() -> Backend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected sqlite or postgres"),
    }
}

/// The PostgreSQL admin URL for test databases. On a loopback host without an explicit
/// `sslmode`, `sslmode=disable` is added: TLS to 127.0.0.1 protects nothing and its handshakes
/// doubled the set-up time of every PostgreSQL test.
pub fn pg_admin_url() -> String {
    let raw = std::env::var(PG_URL_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
    let Ok(mut url) = Url::parse(&raw) else {
        return raw;
    };
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if loopback && !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    url.to_string()
}

/// Whether the PostgreSQL admin URL answers (for suites that run on both backends).
pub async fn postgres_available() -> bool {
    sqlx::any::install_default_drivers();
    match AnyConnection::connect(&pg_admin_url()).await {
        Ok(conn) => {
            let _ = conn.close().await;
            true
        }
        Err(_) => false,
    }
}

enum Guard {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres { admin_url: String, name: String },
}

/// A fresh, migrated database that disappears when dropped. Derefs to [`Db`].
pub struct TestDb {
    db: Db,
    url: String,
    guard: Guard,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

impl TestDb {
    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A URL another process (or a second pool) can open the same database with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A fresh migrated database on the backend named by `SAMSPILL_TEST_BACKEND`.
pub async fn fresh_db() -> TestDb {
    fresh_db_on(test_backend()).await
}

/// A fresh migrated database on `backend`.
pub async fn fresh_db_on(backend: Backend) -> TestDb {
    sqlx::any::install_default_drivers();
    let (url, guard) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix("samspill-test-db-")
                .tempdir()
                .expect("create temp dir for the test database");
            let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
            (url, Guard::Sqlite(dir))
        }
        Backend::Postgres => {
            let admin_url = pg_admin_url();
            // The creation time in the name lets later runs drop what killed runs left.
            let name = format!(
                "samspill_test_{}_{}",
                OffsetDateTime::now_utc().unix_timestamp(),
                hex::encode(rand::random::<[u8; 4]>())
            );
            let mut admin = AnyConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL admin URL {admin_url}: {e}"));
            if !STALE_SWEPT.swap(true, Ordering::Relaxed) {
                drop_stale_test_databases(&mut admin).await;
            }
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("CREATE DATABASE for the test");
            let _ = admin.close().await;
            let mut url = Url::parse(&admin_url).expect("admin URL parses");
            url.set_path(&format!("/{name}"));
            (url.to_string(), Guard::Postgres { admin_url, name })
        }
    };
    let config = DatabaseConfig {
        max_connections: (backend == Backend::Postgres).then_some(TEST_PG_POOL_SIZE),
        ..DatabaseConfig::with_url(url.clone())
    };
    let db = Db::connect(&config)
        .await
        .expect("connect to the test database");
    db.migrate().await.expect("migrate the test database");
    TestDb { db, url, guard }
}

/// Test databases older than this are left-overs of killed runs (a test takes seconds).
const STALE_AFTER_SECS: i64 = 6 * 60 * 60;
static STALE_SWEPT: AtomicBool = AtomicBool::new(false);

/// Best effort, once per process: drops `samspill_test_<epoch>_<hex>` databases older than
/// [`STALE_AFTER_SECS`] that a killed test process could not drop itself.
async fn drop_stale_test_databases(admin: &mut AnyConnection) {
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'samspill_test_%'",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(_) => return,
    };
    let cutoff = OffsetDateTime::now_utc().unix_timestamp() - STALE_AFTER_SECS;
    for name in names {
        let created = name
            .strip_prefix("samspill_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<i64>().ok());
        let safe = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if safe && created.is_some_and(|t| t < cutoff) {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = admin.execute(AssertSqlSafe(sql)).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = &self.guard {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
            // thread with its own runtime does the best-effort DROP.
            let handle = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut admin) = AnyConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        if let Err(e) = admin.execute(AssertSqlSafe(sql)).await {
                            eprintln!("warning: could not drop test database {name}: {e}");
                        }
                        let _ = admin.close().await;
                    }
                });
            });
            let _ = handle.join();
        }
    }
}

/// A fresh blob store; the local backend lives in a temp folder removed on drop.
pub struct TestBlobs {
    store: BlobStore,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBlobs")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Deref for TestBlobs {
    type Target = BlobStore;
    fn deref(&self) -> &BlobStore {
        &self.store
    }
}

/// A fresh, empty blob store of `kind` (`local` or `memory`; S3 needs a server, see
/// [`BlobStore::from_config`]).
pub fn fresh_blobs(kind: BlobBackendKind) -> TestBlobs {
    match kind {
        BlobBackendKind::Memory => TestBlobs {
            store: BlobStore::memory(),
            _dir: None,
        },
        BlobBackendKind::Local => {
            let dir = tempfile::Builder::new()
                .prefix("samspill-test-blobs-")
                .tempdir()
                .expect("create temp dir for test blobs");
            let store = BlobStore::local(dir.path()).expect("open local blob store");
            TestBlobs {
                store,
                _dir: Some(dir),
            }
        }
        BlobBackendKind::S3 => panic!("fresh_blobs: S3 needs a configured server"),
    }
}

/// A loopback port this test keeps until the lease is dropped, even while nothing listens on
/// it: a server stopped and started again (or started late) must get its own port back. A port
/// from the kernel's `bind(0)` is free only for a moment — another test's process once took a
/// port a killed mailbox had left, and the access point delivered that test's letters there.
/// Leases come from below the ephemeral range (which `bind(0)` and outgoing connections draw
/// from), and a lock file per port, released by the kernel when the test process dies, keeps
/// parallel test processes apart.
#[derive(Debug)]
pub struct PortLease {
    pub port: u16,
    _lock: std::fs::File,
}

impl PortLease {
    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Leases a free loopback port (see [`PortLease`]).
pub fn reserve_port() -> PortLease {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    let dir = std::env::temp_dir().join("samspill-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock folder");
    let start = rand::random::<u16>() % COUNT;
    for i in 0..COUNT {
        let port = FIRST + (start + i) % COUNT;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
            .expect("open a port lock file");
        if lock.try_lock().is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return PortLease { port, _lock: lock };
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// Whether `check` holds within `within`, asking every 20 ms: for what a worker does right
/// after the commit a test has just observed.
pub async fn eventually<F, Fut>(within: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether `blob` is gone from `blobs` within `within` (see [`eventually`]).
pub async fn blob_gone_within(
    blobs: &BlobStore,
    blob: &BlobRef,
    within: std::time::Duration,
) -> bool {
    eventually(within, || async {
        !blobs.exists(blob).await.expect("blob store answers")
    })
    .await
}

/// The plan the database makes for `sql` with its `$n` parameters set to `args` (each a
/// PostgreSQL type and an SQL literal, in order), one line per plan node. On PostgreSQL it is the plan a pooled
/// connection caches for the prepared statement (generic: see `SET_GENERIC_PLANS` in
/// `store::db`); on SQLite, `EXPLAIN QUERY PLAN`'s details. For tests that pin which index a
/// statement walks.
pub async fn plan_of(db: &Db, sql: &str, args: &[(&str, &str)]) -> Vec<String> {
    use sqlx::{AssertSqlSafe, Row};
    let mut conn = db.pool().acquire().await.expect("a connection");
    match db.backend() {
        Backend::Postgres => {
            let types: Vec<&str> = args.iter().map(|(t, _)| *t).collect();
            let values: Vec<&str> = args.iter().map(|(_, v)| *v).collect();
            sqlx::query(AssertSqlSafe(format!(
                "PREPARE samspill_plan_of({}) AS {sql}",
                types.join(", ")
            )))
            .execute(&mut *conn)
            .await
            .expect("PREPARE");
            let rows = sqlx::query(AssertSqlSafe(format!(
                "EXPLAIN EXECUTE samspill_plan_of({})",
                values.join(", ")
            )))
            .fetch_all(&mut *conn)
            .await
            .expect("EXPLAIN EXECUTE");
            sqlx::query("DEALLOCATE samspill_plan_of")
                .execute(&mut *conn)
                .await
                .expect("DEALLOCATE");
            rows.iter()
                .map(|r| r.try_get::<String, _>(0).expect("plan line"))
                .collect()
        }
        Backend::Sqlite => {
            let mut sql = sql.to_owned();
            // From the last, so `$1` does not eat the start of `$10`.
            for (i, (_, arg)) in args.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", i + 1), arg);
            }
            let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut *conn)
                .await
                .expect("EXPLAIN QUERY PLAN");
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").expect("plan detail"))
                .collect()
        }
    }
}

/// CPU seconds the whole machine has been busy (every process and the kernel: the server
/// under test, the database server, the benchmark's client), from `/proc/stat`; `None` where
/// there is no such file. Benchmarks divide its growth by the work done: on a saturated
/// machine that is steadier than latency.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0.0);
    // USER_HZ is 100 on every Linux this runs on.
    Some((ticks.iter().take(8).sum::<f64>() - idle) / 100.0)
}
