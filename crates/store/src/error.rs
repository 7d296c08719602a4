//! The one error type of the storage layer, with stable snake_case codes.

use domain::JobId;

/// Everything the storage layer can fail with. `code()` is stable and safe to show to API clients;
/// `Display` may contain details (paths, SQL errors) meant for logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A configuration value is missing or wrong; `key` is the dotted config key (`database.url`).
    #[error("invalid configuration `{key}`: {message}")]
    Config {
        /// Dotted key of the offending setting, e.g. `blobs.s3.bucket`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database URL names a backend this build does not support.
    #[error("unsupported database URL scheme `{0}` (expected sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    /// An error from the database driver.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error from a read on SQLite's own driver ([`crate::Db::native_reads`]).
    #[error("database error: {0}")]
    SqliteRead(rusqlite::Error),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row read back from the database does not have the expected shape.
    #[error("invalid row in `{table}`: {message}")]
    InvalidRow {
        /// Table the row came from.
        table: &'static str,
        /// What could not be decoded.
        message: String,
    },
    /// Local file system error (creating the database folder, the blob root, ...).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An error from the blob backend.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// No blob is stored under this key.
    #[error("blob `{0}` not found")]
    BlobNotFound(String),
    /// The stored bytes do not hash to the key they are stored under (tampering or bit rot).
    #[error("blob `{key}` is corrupt: content hashes to sha256 {actual} ({actual_size} bytes)")]
    BlobCorrupt {
        /// Storage key (`sha256/<hex>`).
        key: String,
        /// Hex SHA-256 of what was actually read.
        actual: String,
        /// Number of bytes actually read.
        actual_size: u64,
    },
    /// A blob reference string is not `sha256/<64 lowercase hex>`.
    #[error("malformed blob reference: {0}")]
    BlobRefMalformed(String),
    /// The job does not exist.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The worker no longer holds the job's lease (it expired and another worker claimed it,
    /// or the job was already completed/failed).
    #[error("job {0}: lease lost (expired or taken by another worker)")]
    LeaseLost(JobId),
    /// A job payload could not be (de)serialised.
    #[error("job payload: {0}")]
    Payload(#[from] serde_json::Error),
}

impl StoreError {
    /// Stable snake_case code for problem+json bodies and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Config { .. } => "config_invalid",
            StoreError::UnsupportedUrl(_) => "database_url_unsupported",
            StoreError::Database(_) | StoreError::SqliteRead(_) => "database_error",
            StoreError::Migrate(_) => "migration_failed",
            StoreError::InvalidRow { .. } => "database_row_invalid",
            StoreError::Io(_) => "io_error",
            StoreError::Blob(_) => "blob_store_error",
            StoreError::BlobNotFound(_) => "blob_not_found",
            StoreError::BlobCorrupt { .. } => "blob_corrupt",
            StoreError::BlobRefMalformed(_) => "blob_ref_malformed",
            StoreError::JobNotFound(_) => "job_not_found",
            StoreError::LeaseLost(_) => "job_lease_lost",
            StoreError::Payload(_) => "job_payload_invalid",
        }
    }

    /// Whether this is a unique-constraint violation (duplicate key) on either backend, for
    /// callers that map "already exists" to a conflict answer.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn row(table: &'static str, message: impl Into<String>) -> Self {
        StoreError::InvalidRow {
            table,
            message: message.into(),
        }
    }
}

/// Result alias for the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;
