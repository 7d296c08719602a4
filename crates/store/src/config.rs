//! Configuration the `samspill` binary embeds as its `[database]` and `[blobs]` tables.
//!
//! Defaults are the embedded single-node mode: SQLite under `./data` and blobs in `./data/blobs`.
//! `validate()` names the offending key with those table names (`database.url`, `blobs.s3.bucket`).

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::error::{StoreError, StoreResult};

/// Where and how to reach the SQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connection URL; the scheme picks the backend: `sqlite://<path>` (file and parent folder are
    /// created if missing) or `postgres://user@host:port/dbname`. Keep passwords out of it: use
    /// `password`.
    pub url: String,
    /// PostgreSQL password, merged into `url` at connect time so the URL can be logged as is.
    pub password: Option<SecretString>,
    /// Upper bound of pooled connections, per pool ([`crate::Db::pool`] and
    /// [`crate::Db::native_reads`] each; job bookkeeping on PostgreSQL at most 4 more).
    /// Unset: [`DatabaseConfig::max_connections`] picks the backend's default.
    pub max_connections: Option<u32>,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long a request waits for a free pooled connection before failing, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// SQLite only: how long a writer waits for the database lock before `SQLITE_BUSY`, in ms.
    pub busy_timeout_ms: u64,
    /// Apply pending migrations when the binary starts (`samspill migrate` does it explicitly).
    pub auto_migrate: bool,
    /// How long finished jobs stay in the `jobs` table, in hours; each queue's workers then
    /// delete them. At least [`MIN_KEEP_DONE_JOBS_HOURS`].
    pub keep_done_jobs_hours: u64,
}

/// Shortest time finished jobs are kept: a finished job's dedup key is what keeps a job from
/// being queued twice, and the mailbox app's notification scan looks a day back after a
/// restart.
pub const MIN_KEEP_DONE_JOBS_HOURS: u64 = 48;

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://./data/samspill.sqlite".to_owned(),
            password: None,
            max_connections: None,
            min_connections: 0,
            acquire_timeout_ms: 30_000,
            busy_timeout_ms: 5_000,
            auto_migrate: true,
            keep_done_jobs_hours: 7 * 24,
        }
    }
}

/// Pool size on PostgreSQL when `max_connections` is unset: each connection is a server
/// process, and statements of concurrent requests run in parallel there.
pub const DEFAULT_POSTGRES_CONNECTIONS: u32 = 10;

/// Pool size on SQLite when `max_connections` is unset. SQLite lets one connection write at a
/// time, and a connection drops its whole page cache whenever another one has written since
/// its last read, so it reads every page it needs again from the file. More connections
/// than that only add lock waits and re-reads: `bench-chain` on SQLite went from 17.7 to
/// 14.1 ms of machine CPU per letter and from ~93 to ~118 letters/s (2 cores) with 2 instead
/// of 10, and 1 was no better than 2. Two leave one connection for a statement while the
/// other holds a transaction.
pub const DEFAULT_SQLITE_CONNECTIONS: u32 = 2;

/// The database backends this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite file (embedded mode).
    Sqlite,
    /// PostgreSQL server (scale-out mode).
    Postgres,
}

impl Backend {
    /// Lower-case name, as used by `SAMSPILL_TEST_BACKEND` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Backend named by a URL's scheme.
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(StoreError::UnsupportedUrl(other.to_owned())),
        }
    }
}

impl DatabaseConfig {
    /// A config for `url` with every other setting at its default.
    pub fn with_url(url: impl Into<String>) -> Self {
        DatabaseConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// Upper bound of each pool: `max_connections`, or the backend's default
    /// ([`DEFAULT_SQLITE_CONNECTIONS`], [`DEFAULT_POSTGRES_CONNECTIONS`]).
    pub fn max_connections(&self) -> u32 {
        self.max_connections
            .unwrap_or_else(|| match self.backend() {
                Ok(Backend::Sqlite) => DEFAULT_SQLITE_CONNECTIONS,
                Ok(Backend::Postgres) | Err(_) => DEFAULT_POSTGRES_CONNECTIONS,
            })
    }

    /// The backend the URL selects.
    pub fn backend(&self) -> StoreResult<Backend> {
        Backend::from_url(&self.url).map_err(|e| StoreError::config("database.url", e.to_string()))
    }

    /// Checks every setting and names the first wrong key.
    pub fn validate(&self) -> StoreResult<()> {
        let backend = self.backend()?;
        if backend == Backend::Postgres {
            let url = Url::parse(&self.url)
                .map_err(|e| StoreError::config("database.url", format!("not a URL: {e}")))?;
            if url.host_str().unwrap_or_default().is_empty() {
                return Err(StoreError::config(
                    "database.url",
                    "PostgreSQL URL has no host",
                ));
            }
        } else {
            if sqlite_path(&self.url).is_empty() {
                return Err(StoreError::config(
                    "database.url",
                    "SQLite URL has no file path",
                ));
            }
            if self.password.is_some() {
                return Err(StoreError::config(
                    "database.password",
                    "only meaningful for PostgreSQL",
                ));
            }
            // Every connection of a pool would open its own empty database.
            if sqlite_path(&self.url) == ":memory:" || self.url.contains("mode=memory") {
                return Err(StoreError::config(
                    "database.url",
                    "an in-memory SQLite database cannot be shared by a pool; use a file",
                ));
            }
        }
        if self.max_connections == Some(0) {
            return Err(StoreError::config(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.min_connections > self.max_connections() {
            return Err(StoreError::config(
                "database.min_connections",
                "must not exceed database.max_connections",
            ));
        }
        if self.keep_done_jobs_hours < MIN_KEEP_DONE_JOBS_HOURS {
            return Err(StoreError::config(
                "database.keep_done_jobs_hours",
                format!(
                    "must be at least {MIN_KEEP_DONE_JOBS_HOURS}: a finished job's dedup key must \
                     outlive every repeat of its work (the mailbox app looks a day back for \
                     letters to notify about)"
                ),
            ));
        }
        if self.acquire_timeout_ms == 0 {
            return Err(StoreError::config(
                "database.acquire_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }

    /// The URL actually handed to the driver: the password merged in for PostgreSQL.
    pub(crate) fn connect_url(&self) -> StoreResult<String> {
        match (&self.password, self.backend()?) {
            (Some(password), Backend::Postgres) => {
                let mut url = Url::parse(&self.url)
                    .map_err(|e| StoreError::config("database.url", format!("not a URL: {e}")))?;
                url.set_password(Some(password.expose_secret()))
                    .map_err(|()| StoreError::config("database.url", "cannot carry a password"))?;
                Ok(url.to_string())
            }
            _ => Ok(self.url.clone()),
        }
    }

    /// The URL with any embedded password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        match Url::parse(&self.url) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.url.clone(),
        }
    }
}

/// The file path part of a `sqlite:` URL (`sqlite://a/b.db?mode=rwc` → `a/b.db`).
pub(crate) fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or_default()
}

/// Which blob backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackendKind {
    /// Files under `blobs.path` (embedded mode).
    #[default]
    Local,
    /// An S3-compatible object store (`blobs.s3.*`).
    S3,
    /// Process memory; lost on restart. For tests and demos.
    Memory,
}

/// Where letter documents and other large immutable bytes are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// `local` (default), `s3` or `memory`.
    pub backend: BlobBackendKind,
    /// Root folder for the `local` backend; created if missing.
    pub path: PathBuf,
    /// Settings for the `s3` backend.
    pub s3: S3Config,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            backend: BlobBackendKind::Local,
            path: PathBuf::from("./data/blobs"),
            s3: S3Config::default(),
        }
    }
}

/// An S3-compatible endpoint (AWS, MinIO, Garage, Ceph RGW, ...). Path-style requests are used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Base URL of the service, e.g. `https://s3.example.no`; empty means AWS for `region`.
    pub endpoint: Option<String>,
    /// Bucket that holds the blobs; must exist.
    pub bucket: String,
    /// Region name used for request signing (`us-east-1` works for most non-AWS servers).
    pub region: String,
    /// Access key id; leave both keys empty to use the environment's AWS credentials.
    pub access_key_id: Option<String>,
    /// Secret access key belonging to `access_key_id`.
    pub secret_access_key: Option<SecretString>,
    /// Allow a plain `http://` endpoint (local test servers only).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".to_owned(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        }
    }
}

impl BlobConfig {
    /// In-memory blobs (tests).
    pub fn memory() -> Self {
        BlobConfig {
            backend: BlobBackendKind::Memory,
            ..Default::default()
        }
    }

    /// Local folder blobs at `path`.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        BlobConfig {
            backend: BlobBackendKind::Local,
            path: path.into(),
            ..Default::default()
        }
    }

    /// Checks the settings of the selected backend and names the first wrong key.
    pub fn validate(&self) -> StoreResult<()> {
        match self.backend {
            BlobBackendKind::Memory => Ok(()),
            BlobBackendKind::Local => {
                if self.path.as_os_str().is_empty() {
                    return Err(StoreError::config("blobs.path", "must not be empty"));
                }
                Ok(())
            }
            BlobBackendKind::S3 => self.s3.validate(),
        }
    }
}

impl S3Config {
    fn validate(&self) -> StoreResult<()> {
        if self.bucket.trim().is_empty() {
            return Err(StoreError::config(
                "blobs.s3.bucket",
                "required for the s3 backend",
            ));
        }
        if self.region.trim().is_empty() {
            return Err(StoreError::config(
                "blobs.s3.region",
                "required for the s3 backend",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let url = Url::parse(endpoint)
                .map_err(|e| StoreError::config("blobs.s3.endpoint", format!("not a URL: {e}")))?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err(StoreError::config(
                        "blobs.s3.endpoint",
                        "plain http needs blobs.s3.allow_http = true",
                    ));
                }
                other => {
                    return Err(StoreError::config(
                        "blobs.s3.endpoint",
                        format!("unsupported scheme `{other}`"),
                    ));
                }
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => Err(StoreError::config(
                "blobs.s3.secret_access_key",
                "required when blobs.s3.access_key_id is set",
            )),
            (None, Some(_)) => Err(StoreError::config(
                "blobs.s3.access_key_id",
                "required when blobs.s3.secret_access_key is set",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded_mode_and_valid() {
        let db = DatabaseConfig::default();
        assert_eq!(db.url, "sqlite://./data/samspill.sqlite");
        assert_eq!(db.backend().unwrap(), Backend::Sqlite);
        db.validate().unwrap();
        let blobs = BlobConfig::default();
        assert_eq!(blobs.backend, BlobBackendKind::Local);
        assert_eq!(blobs.path, PathBuf::from("./data/blobs"));
        blobs.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<DatabaseConfig>(r#"{"url":"sqlite://x.db","max_conn":3}"#)
            .unwrap_err();
        assert!(err.to_string().contains("max_conn"), "{err}");
        let err =
            serde_json::from_str::<BlobConfig>(r#"{"s3":{"bucket":"b","key":"k"}}"#).unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn partial_config_keeps_defaults() {
        let db: DatabaseConfig =
            serde_json::from_str(r#"{"url":"postgres://app@db.internal/samspill"}"#).unwrap();
        assert_eq!(db.backend().unwrap(), Backend::Postgres);
        assert_eq!(db.max_connections(), DEFAULT_POSTGRES_CONNECTIONS);
        db.validate().unwrap();
        let blobs: BlobConfig = serde_json::from_str(
            r#"{"backend":"s3","s3":{"endpoint":"https://s3.example.no","bucket":"letters"}}"#,
        )
        .unwrap();
        assert_eq!(blobs.backend, BlobBackendKind::S3);
        assert_eq!(blobs.s3.region, "us-east-1");
        blobs.validate().unwrap();
    }

    #[test]
    fn pool_size_defaults_by_backend_and_is_used_as_given() {
        let sqlite = DatabaseConfig::default();
        assert_eq!(sqlite.max_connections(), DEFAULT_SQLITE_CONNECTIONS);
        let pg = DatabaseConfig::with_url("postgres://app@db/samspill");
        assert_eq!(pg.max_connections(), DEFAULT_POSTGRES_CONNECTIONS);
        for c in [sqlite, pg] {
            let given = DatabaseConfig {
                max_connections: Some(7),
                ..c
            };
            assert_eq!(given.max_connections(), 7);
        }
        // min_connections is checked against the backend's default when unset.
        let err = DatabaseConfig {
            min_connections: DEFAULT_SQLITE_CONNECTIONS + 1,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("database.min_connections"),
            "{err}"
        );
    }

    #[test]
    fn validate_names_the_key() {
        let cases: Vec<(StoreError, &str)> =
            vec![
            (
                DatabaseConfig::with_url("mysql://x/y").validate().unwrap_err(),
                "database.url",
            ),
            (
                DatabaseConfig {
                    max_connections: Some(0),
                    ..Default::default()
                }
                .validate()
                .unwrap_err(),
                "database.max_connections",
            ),
            (
                DatabaseConfig {
                    keep_done_jobs_hours: MIN_KEEP_DONE_JOBS_HOURS - 1,
                    ..Default::default()
                }
                .validate()
                .unwrap_err(),
                "database.keep_done_jobs_hours",
            ),
            (
                DatabaseConfig::with_url("sqlite::memory:")
                    .validate()
                    .unwrap_err(),
                "database.url",
            ),
            (
                DatabaseConfig {
                    password: Some(SecretString::from("pw")),
                    ..Default::default()
                }
                .validate()
                .unwrap_err(),
                "database.password",
            ),
            (
                BlobConfig {
                    backend: BlobBackendKind::S3,
                    ..Default::default()
                }
                .validate()
                .unwrap_err(),
                "blobs.s3.bucket",
            ),
            (
                serde_json::from_str::<BlobConfig>(
                    r#"{"backend":"s3","s3":{"bucket":"b","endpoint":"http://127.0.0.1:9000"}}"#,
                )
                .unwrap()
                .validate()
                .unwrap_err(),
                "blobs.s3.endpoint",
            ),
            (
                serde_json::from_str::<BlobConfig>(
                    r#"{"backend":"s3","s3":{"bucket":"b","access_key_id":"AK"}}"#,
                )
                .unwrap()
                .validate()
                .unwrap_err(),
                "blobs.s3.secret_access_key",
            ),
        ];
        for (err, key) in cases {
            assert_eq!(err.code(), "config_invalid");
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{err} should name {key}"
            );
        }
    }

    #[test]
    fn secrets_are_not_printed_and_password_is_merged() {
        let db: DatabaseConfig = serde_json::from_str(
            r#"{"url":"postgres://app@db.internal:5432/samspill","password":"hunter2"}"#,
        )
        .unwrap();
        assert!(!format!("{db:?}").contains("hunter2"));
        assert_eq!(
            db.connect_url().unwrap(),
            "postgres://app:hunter2@db.internal:5432/samspill"
        );
        let with_pw = DatabaseConfig::with_url("postgres://app:hunter2@db/x");
        assert_eq!(with_pw.redacted_url(), "postgres://app:***@db/x");
        let s3: S3Config = serde_json::from_str(
            r#"{"bucket":"b","access_key_id":"AK","secret_access_key":"SK-secret"}"#,
        )
        .unwrap();
        assert!(!format!("{s3:?}").contains("SK-secret"));
    }

    #[test]
    fn sqlite_path_strips_scheme_and_query() {
        assert_eq!(
            sqlite_path("sqlite://./data/a.sqlite?mode=rwc"),
            "./data/a.sqlite"
        );
        assert_eq!(sqlite_path("sqlite:/abs/b.db"), "/abs/b.db");
    }
}
