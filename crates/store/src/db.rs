//! The database handle: one pool ([`crate::pool::Pool`], over `sqlx::AnyPool`) whose backend
//! is picked from the URL at run time, and a small native-driver pool for hot reads
//! ([`Db::native_reads`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor, Postgres};

use crate::config::{Backend, DatabaseConfig, sqlite_path};
use crate::error::StoreResult;
use crate::pool::Pool;
use crate::sql::{self, JobSql};
use crate::sqlite_reads::SqliteReads;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A pooled database connection handle; cheap to clone.
///
/// Write queries once with `$n` placeholders and the portable column types (see the crate
/// docs) and run them on [`Db::pool`]; branch on [`Db::backend`] only where the dialects
/// really differ.
#[derive(Clone)]
pub struct Db {
    pool: Arc<Pool>,
    /// Job bookkeeping; on PostgreSQL its commits do not wait for the WAL flush (see
    /// [`Db::connect`]). The same pool as `pool` on SQLite.
    job_pool: Arc<Pool>,
    backend: Backend,
    /// The URL the pool was opened with (password merged in), for extra connections such as
    /// PostgreSQL `LISTEN`.
    url: Arc<SecretString>,
    /// The shared `LISTEN` for job wake-ups (PostgreSQL), started by the first worker.
    wakeups: Arc<crate::wakeup::Wakeups>,
    /// Read-only connections through the backend's own driver (see [`Db::native_reads`]).
    native: NativePool,
    /// `database.keep_done_jobs_hours`, which [`crate::Jobs::new`] takes up.
    keep_done_jobs: Duration,
}

#[derive(Clone)]
enum NativePool {
    Sqlite(Arc<SqliteReads>),
    Postgres(Arc<Pool<Postgres>>),
}

/// The native-driver pool of [`Db::native_reads`], typed by backend: match on it and run the
/// statement through each driver.
pub enum NativeReads<'a> {
    /// `rusqlite` on the calling thread.
    Sqlite(&'a SqliteReads),
    /// sqlx's own PostgreSQL driver.
    Postgres(&'a Pool<Postgres>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// Pages of WAL after which a commit checkpoints them into the database file (SQLite's
/// default is 1,000, 4 MB). The access point's 110 KB payloads are written, read back and
/// deleted within seconds; with the default, its committing connections checkpointed every
/// ~36 letters, copying pages into the file and waiting for two fsyncs each time (14% of the
/// access point's CPU in bench-chain). 10,000 pages (40 MB of WAL per database at most
/// between checkpoints): receipts/s +4.4%, +4.6%, +7% in three alternating pairs.
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Our statements select by indexed keys, prepared once per connection and run many times.
/// PostgreSQL's default (`auto`) plans such a statement again on every run whenever its
/// generic plan's estimate looks worse than a custom plan's. For the inbox query it always
/// did (a `LIMIT $n` is assumed to be 10% of the rows), although both plans are the same
/// index walk. Planning was most of PostgreSQL's CPU per inbox page (EXPLAIN: 0.07 ms to
/// plan, 0.03 ms to run): with generic plans the page served 45% more requests per second
/// (3,118 → 4,537, p99 3.01 → 1.83 ms), and search, the one statement whose plan could
/// depend on its values, stayed the same.
const SET_GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

impl Db {
    /// Opens a pool as configured. For SQLite the file and its parent folder are created if
    /// missing, the journal is switched to WAL, and every connection gets `busy_timeout`,
    /// `foreign_keys = ON`, `synchronous = NORMAL` and `wal_autocheckpoint` (see
    /// `SQLITE_WAL_AUTOCHECKPOINT_PAGES`). Does not migrate: call [`Db::migrate`].
    pub async fn connect(config: &DatabaseConfig) -> StoreResult<Db> {
        config.validate()?;
        sqlx::any::install_default_drivers();
        let backend = config.backend()?;
        let mut url = config.connect_url()?;
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections())
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            // sqlx pings every connection it hands out by default: one more round trip per
            // query. Its pings were 17% of an inbox page's CPU on PostgreSQL in perf, 8–10%
            // with only the ping on release left (sqlx does that one unconditionally). A
            // connection that broke while idle fails its next query instead, which callers
            // already handle: jobs are retried, and a page request gets a 500 once.
            .test_before_acquire(false);
        if backend == Backend::Sqlite {
            url = prepare_sqlite_file(&url)?;
            // journal_mode is stored in the file, so one connection sets it for all.
            let mut conn = AnyConnection::connect(&url).await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.close().await?;
            let busy = config.busy_timeout_ms;
            options = options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(format!("PRAGMA busy_timeout = {busy}")))
                        .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute(AssertSqlSafe(format!(
                        "PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT_PAGES}"
                    )))
                    .await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SET_GENERIC_PLANS).await?;
                    Ok(())
                })
            });
        }
        // Bookkeeping statements are short and commit without a flush: a few connections
        // serve every worker, and the server sees at most 4 more connections per pool.
        let job_connections = config.max_connections().clamp(1, 4);
        let job_options = options
            .clone()
            .max_connections(job_connections)
            .min_connections(0);
        let pool = options.connect(&url).await?;
        // Every connection may be kept between statements: all takers take kept ones first.
        let keep = config.max_connections() as usize;
        let pool = Arc::new(Pool::new(pool, keep));
        let job_pool = match backend {
            Backend::Sqlite => pool.clone(),
            // Job bookkeeping (claims, completions, failures, heartbeats) commits without
            // waiting for the WAL flush. Losing the last of those writes in a server crash
            // leaves a job queued or running with a lease that expires, so it runs again:
            // what a worker crash before `complete` does anyway, and what the at-least-once
            // contract covers. Enqueueing stays on the durable pool. Before, every claim
            // and every completion waited for a flush: two per job, several jobs per letter.
            Backend::Postgres => Arc::new(Pool::new(
                job_options
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(SET_GENERIC_PLANS).await?;
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)?,
                job_connections as usize,
            )),
        };
        let native = native_pool(config, backend, &url)?;
        tracing::debug!(backend = backend.name(), url = %config.redacted_url(), "database pool opened");
        Ok(Db {
            pool,
            job_pool,
            native,
            backend,
            url: Arc::new(SecretString::from(url)),
            wakeups: Arc::default(),
            keep_done_jobs: Duration::from_secs(config.keep_done_jobs_hours.saturating_mul(3600)),
        })
    }

    /// Shorthand for [`Db::connect`] with default pool settings.
    pub async fn connect_url(url: &str) -> StoreResult<Db> {
        Db::connect(&DatabaseConfig::with_url(url)).await
    }

    /// Applies the embedded migrations of this backend's dialect that are not applied yet.
    /// Idempotent; safe to run from several processes at once (sqlx takes a lock on PostgreSQL).
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(self.pool.sqlx()).await?;
        Ok(())
    }

    /// Versions of the migrations embedded for `backend`, in order (for tooling and tests).
    pub fn embedded_migrations(backend: Backend) -> Vec<(i64, String)> {
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// Readiness check: one round trip to the database.
    pub async fn ping(&self) -> StoreResult<()> {
        (&*self.pool).execute("SELECT 1").await?;
        Ok(())
    }

    /// Starts a transaction meant to write. On SQLite it is `BEGIN IMMEDIATE`: the write lock
    /// is taken up front (waiting up to `busy_timeout`), so a transaction that reads and then
    /// writes cannot fail with "database is locked" when another writer committed in between,
    /// as a deferred `BEGIN` can under WAL. On PostgreSQL it is a plain `BEGIN` (READ
    /// COMMITTED): make writes that depend on a read conditional (`UPDATE … WHERE version = $n`)
    /// or single-statement (`SET n = n + 1`), which is portable and safe on both.
    pub async fn begin_write(&self) -> StoreResult<crate::pool::Tx<'_, sqlx::Any>> {
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        Ok(self.pool.begin_with(begin).await?)
    }

    /// The pool, for queries of other crates.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The pool for job bookkeeping statements of [`crate::Jobs`]: claims, completions,
    /// failures and heartbeats, whose loss in a database crash only re-runs a job.
    pub fn job_pool(&self) -> &Pool {
        &self.job_pool
    }

    /// Read-only connections through the backend's own driver, for the few hot reads
    /// where `Any` costs measurable CPU: it turns every value of a result into an owned
    /// `AnyValue` and decodes it again (for the inbox page 3–5% of the whole machine's CPU
    /// per page, `scripts/bench-inbox`, both backends). On PostgreSQL that is sqlx's own
    /// driver; on SQLite `rusqlite` on the calling thread ([`SqliteReads`] says why).
    /// Everything else stays on [`Db::pool`], written once. Writes fail here (`query_only`
    /// on SQLite, `default_transaction_read_only` on PostgreSQL). Connections open on first
    /// use; at most `max_connections` are kept, like the main pool.
    pub fn native_reads(&self) -> NativeReads<'_> {
        match &self.native {
            NativePool::Sqlite(p) => NativeReads::Sqlite(p),
            NativePool::Postgres(p) => NativeReads::Postgres(p),
        }
    }

    /// How long finished jobs stay in the `jobs` table (`database.keep_done_jobs_hours`).
    pub fn keep_done_jobs(&self) -> Duration {
        self.keep_done_jobs
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection URL including any password; do not log it.
    pub fn url(&self) -> &SecretString {
        &self.url
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
        self.job_pool.close().await;
        match &self.native {
            NativePool::Sqlite(p) => p.close(),
            NativePool::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn job_sql(&self) -> &'static JobSql {
        match self.backend {
            Backend::Sqlite => &sql::SQLITE,
            Backend::Postgres => &sql::POSTGRES,
        }
    }

    /// The waker that `NOTIFY` of a job of `queue` pulls, once per job (PostgreSQL only;
    /// `None` on SQLite).
    pub(crate) async fn job_wakeups(&self, queue: &str) -> Option<crate::wakeup::Wakeup> {
        if self.backend != Backend::Postgres {
            return None;
        }
        Some(
            self.wakeups
                .subscribe(self.url.expose_secret(), queue)
                .await,
        )
    }
}

/// The pool behind [`Db::native_reads`], opened lazily on the URL the main pool opened (for
/// SQLite after [`prepare_sqlite_file`], so the file exists).
fn native_pool(config: &DatabaseConfig, backend: Backend, url: &str) -> StoreResult<NativePool> {
    let max = config.max_connections();
    let acquire = Duration::from_millis(config.acquire_timeout_ms);
    let keep = max as usize;
    Ok(match backend {
        Backend::Sqlite => NativePool::Sqlite(Arc::new(SqliteReads::new(
            sqlite_path(url),
            Duration::from_millis(config.busy_timeout_ms),
            keep,
        ))),
        Backend::Postgres => {
            let options: PgConnectOptions = url.parse()?;
            // Sent with the start-up message, so they cost no round trip; the plan setting
            // is the main pool's (see `SET_GENERIC_PLANS`).
            let options = options.options([
                ("plan_cache_mode", "force_generic_plan"),
                ("default_transaction_read_only", "on"),
            ]);
            let pool = PgPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect_lazy_with(options);
            NativePool::Postgres(Arc::new(Pool::new(pool, keep)))
        }
    })
}

/// Creates the parent folder of a SQLite file and makes sure the URL asks for creation
/// (`mode=rwc`) unless the caller chose a mode.
fn prepare_sqlite_file(url: &str) -> StoreResult<String> {
    let path = sqlite_path(url);
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    if url.contains("mode=") {
        return Ok(url.to_owned());
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}mode=rwc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_gets_create_mode_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/c.sqlite");
        let url = format!("sqlite://{}", file.display());
        let prepared = prepare_sqlite_file(&url).unwrap();
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(dir.path().join("a/b").is_dir());
        let explicit = format!("sqlite://{}?mode=ro", file.display());
        assert_eq!(prepare_sqlite_file(&explicit).unwrap(), explicit);
    }

    #[test]
    fn relative_sqlite_url_survives_the_any_driver_url_parsing() {
        // The Any driver parses the URL with `url` before SQLite sees it; a relative path must
        // come through unchanged (`.` is parsed as the host of a non-special URL).
        for url in [
            "sqlite://./data/samspill.sqlite?mode=rwc",
            "sqlite://../data/x.sqlite?mode=rwc",
            "sqlite://data/x.sqlite?mode=rwc",
            "sqlite:///var/lib/samspill/db.sqlite?mode=rwc",
        ] {
            let parsed: sqlx::any::AnyConnectOptions = url.parse().unwrap();
            assert_eq!(parsed.database_url.as_str(), url);
        }
    }

    #[test]
    fn both_dialects_embed_the_same_migrations() {
        let sqlite = Db::embedded_migrations(Backend::Sqlite);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, Db::embedded_migrations(Backend::Postgres));
    }
}
