//! Content-addressed blobs that several rows of one service share, deleted once none refers
//! to them (the sender's submitted documents, the mailbox's letter documents).
//!
//! A service keeps two tables: one that lists which rows refer to which blob (any table with a
//! `sha256` column), and a release table `(sha256 PRIMARY KEY, size, released_at)` of blobs
//! that may have lost their last reference. The protocol, which closes the race with a writer
//! storing the same content without relying on timing:
//! - whoever drops a reference releases the blob ([`release_in`]) in the same transaction;
//! - a writer that adds references deletes the release rows of its blobs in its own
//!   transaction, taking them in hash order ([`claim_in`]), and after its commit checks that
//!   its blobs exist, storing them again if a collector took them;
//! - the collector ([`collect_released`]) deletes the release rows first (a row lock on
//!   PostgreSQL, the writer lock on SQLite, so a writer of the same content waits or makes
//!   this find nothing), then reads the committed references and deletes the files of the
//!   blobs nothing refers to before it commits.

use std::collections::HashSet;

use sqlx::AnyConnection;
use time::OffsetDateTime;

use crate::{BlobRef, BlobStore, Db, StoreResult, to_ms};

/// A service's two tables (constant names: they are put into SQL text).
#[derive(Debug, Clone, Copy)]
pub struct ReleaseTables {
    /// `(sha256 PRIMARY KEY, size, released_at)`.
    pub release: &'static str,
    /// The rows that refer to blobs, by a `sha256` column (indexed).
    pub references: &'static str,
}

/// `$from, …, $(from + n - 1)`: one bind parameter per value of an `IN` list.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks `blob` as possibly unneeded, for [`collect_released`].
pub async fn release_in(
    conn: &mut AnyConnection,
    t: &ReleaseTables,
    blob: &BlobRef,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (sha256, size, released_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256) DO UPDATE SET released_at = excluded.released_at",
        t.release
    )))
    .bind(&blob.sha256)
    .bind(blob.row_size())
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// For a writer about to refer to `blobs`: deletes their release rows in its transaction, in
/// hash order, waiting for a collector deleting one of them right now.
pub async fn claim_in(
    conn: &mut AnyConnection,
    t: &ReleaseTables,
    blobs: &[BlobRef],
) -> StoreResult<()> {
    let mut hashes: Vec<&str> = blobs.iter().map(|b| b.sha256.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    for sha256 in hashes {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE sha256 = $1",
            t.release
        )))
        .bind(sha256)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes from `blobs` up to `limit` released blobs that nothing refers to; returns how many
/// it deleted. On an error the transaction rolls back and the release rows stay for the next
/// pass.
pub async fn collect_released(
    db: &Db,
    blobs: &BlobStore,
    t: &ReleaseTables,
    now: OffsetDateTime,
    limit: i64,
) -> StoreResult<usize> {
    let candidates: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT sha256 FROM {} WHERE released_at <= $1 ORDER BY released_at LIMIT $2",
        t.release
    )))
    .bind(to_ms(now))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    // The release rows first: from here until the commit, a writer of the same content
    // waits, and the references read next are the committed ones.
    let mut delete = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE sha256 IN ({}) RETURNING sha256, size",
        t.release,
        placeholders(1, candidates.len())
    )));
    for sha256 in candidates {
        delete = delete.bind(sha256);
    }
    let released = delete.fetch_all(&mut *tx).await?;
    if released.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let mut referenced = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT sha256 FROM {} WHERE sha256 IN ({})",
        t.references,
        placeholders(1, released.len())
    )));
    for (sha256, _) in &released {
        referenced = referenced.bind(sha256.clone());
    }
    let referenced: HashSet<String> = referenced.fetch_all(&mut *tx).await?.into_iter().collect();
    let mut deleted = 0;
    for (sha256, size) in released {
        if referenced.contains(&sha256) {
            continue;
        }
        blobs.delete(&BlobRef::from_row(sha256, size)).await?;
        deleted += 1;
    }
    tx.commit().await?;
    Ok(deleted)
}
