//! Storage layer of samspill: the SQL database, the content-addressed blob store and the durable
//! job/outbox queue that later crates deliver letters and receipts through.
//!
//! # Database
//! [`Db`] wraps one `sqlx` `AnyPool` (through [`Pool`], which spares single statements sqlx's
//! release ping). The backend is chosen at run time from the URL
//! (`sqlite://…` or `postgres://…`), so the same binary runs embedded on a SQLite file and
//! scaled out on PostgreSQL by configuration alone.
//!
//! Why `Any` and not two typed pools: with two pools every query of every crate would be
//! written (and tested) twice or hidden behind generic trait bounds; with `Any` a crate writes
//! one portable statement. The price is `Any`'s small type set (integers, floats, text, blob,
//! bool), which the portable column rules below live within anyway; the few statements that
//! must differ are picked per [`Backend`]. `Any` also copies every value of a result once
//! more; the few reads hot enough for that to matter (the inbox page) run on
//! [`Db::native_reads`]: sqlx's PostgreSQL driver, or `rusqlite` on the calling thread
//! ([`SqliteReads`]), one statement decoded per driver.
//!
//! Portable SQL rules for every crate:
//! - `$1, $2, …` placeholders (SQLite reads them as numbered parameters; a number may repeat);
//! - ids (UUIDs) as `TEXT`, timestamps as `BIGINT` epoch milliseconds ([`jobs::to_ms`]),
//!   JSON as `TEXT`, bytes as `BLOB` (SQLite) / `BYTEA` (PostgreSQL), flags as `BOOLEAN`;
//! - `INSERT … ON CONFLICT … DO NOTHING/UPDATE` and `RETURNING` are fine on both;
//! - decode integers as `i64` (SQLite has only 64-bit integers);
//! - open transactions that write with [`Db::begin_write`], not `pool().begin()`: on SQLite a
//!   deferred transaction that reads before it writes fails with "database is locked" when
//!   another writer commits in between; make writes that depend on a read conditional
//!   (`UPDATE … WHERE version = $n`) so they are also safe under PostgreSQL's READ COMMITTED.
//!
//! SQLite is opened in WAL mode with `busy_timeout`, `foreign_keys = ON`,
//! `synchronous = NORMAL` and a checkpoint every 10,000 WAL pages; the file and its parent
//! folder are created if missing.
//!
//! # Migrations: adding a table
//! Migrations are embedded per dialect from `crates/store/migrations/sqlite/` and
//! `crates/store/migrations/postgres/` and applied by [`Db::migrate`] (idempotent). To add a
//! table, add **one file with the same name to both folders**, named
//! `<YYYYMMDDNNNN>_<crate>_<what>.sql` (e.g. `202612010001_formidler_messages.sql`); the
//! number is the version, so date-based numbers keep parallel work from colliding. A unit test
//! fails if the two folders list different migrations. Never edit an applied migration: add a
//! new one. Keep each crate's SQL statements in one place (like this crate's `sql` module).
//!
//! # Blobs
//! [`BlobStore`] keeps immutable bytes under `sha256/<hex>` in a local folder, an
//! S3-compatible bucket or memory ([`BlobConfig`]). `put` returns a [`BlobRef`] and is
//! idempotent; `get` re-hashes and refuses content that no longer matches.
//!
//! # Jobs
//! [`Jobs`] is a durable queue in the `jobs` table with dedup keys, leases, retry with
//! exponential backoff and jitter, dead-lettering and per-state counts; [`run_worker`] is a
//! small loop around it. See [`jobs`] for the life of a job.
//!
//! # Tests
//! With the `testing` feature, `testing::fresh_db()` gives each test a new migrated database
//! on the backend named by `SAMSPILL_TEST_BACKEND` (`sqlite` default, or `postgres`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod blob;
pub mod blob_release;
pub mod config;
pub mod db;
pub mod error;
pub mod jobs;
pub mod pool;
mod sql;
pub mod sqlite_reads;
#[cfg(feature = "testing")]
pub mod testing;
mod wakeup;
pub mod worker;

pub use blob::{BlobRef, BlobStore};
pub use config::{Backend, BlobBackendKind, BlobConfig, DatabaseConfig, S3Config};
pub use db::{Db, NativeReads};
pub use error::{StoreError, StoreResult};
pub use jobs::{
    Enqueued, FailOutcome, Job, JobState, Jobs, NewJob, RetryPolicy, StateCounts, from_ms, to_ms,
};
pub use pool::{Pool, Tx};
/// The driver of [`SqliteReads`], for callers that read through it.
pub use rusqlite;
pub use sqlite_reads::SqliteReads;
pub use worker::{WorkerOptions, WorkerStats, run_batches_once, run_worker, spawn_workers};

/// Re-exported so other crates use the same `sqlx` (the `Any` driver, `query`, `Row`).
pub use sqlx;
