//! Content-addressed blobs that several rows of one service share, deleted once none refers
//! to them (the sender's submitted documents, the mailbox's letter documents).
//!
//! A service keeps two tables: one that lists which rows refer to which blob (any table with a
//! `sha256` column), and a release table `(sha256 PRIMARY KEY, size, released_at)` of blobs
//! that may have lost their last reference. The protocol, which closes the race with a writer
//! storing the same content without relying on timing:
//! - a transaction that adds references ([`claim_in`]) or drops them ([`release_in`]) first
//!   holds its blobs against the collector until it ends. On PostgreSQL that is a shared
//!   transaction-level advisory lock per blob: shared with every other writer and releaser,
//!   so letters sharing one document never wait for each other. On SQLite it is the writer
//!   lock every write transaction takes anyway;
//! - whoever drops a reference records the blob in the release table in that transaction
//!   (a row that is there already says the same);
//! - a writer that adds references checks after its commit that its blobs exist, storing
//!   them again if a collector took them;
//! - the collector ([`collect_released`]), in one write transaction, takes each candidate's
//!   lock exclusively without waiting (PostgreSQL) and leaves the blobs an open transaction
//!   holds for its next pass; then it deletes the release rows of the others, reads the
//!   committed references and deletes the files of the blobs nothing refers to before it
//!   commits. While it holds a blob no reference to it can change, and a writer or releaser
//!   that waited for it finds the file gone or the release row gone, and stores or records
//!   again.
//!
//! Before, releasers updated the release row and writers deleted it. With one document in a
//! mass mailing every sender and every submission then queued for that one row, each
//! holding it through its commit's WAL flush: on the chain bench (PostgreSQL, 2,000 letters
//! sharing a document) those two statements were 40% of all statement time. It also let a
//! collector take a document from a writer whose claim ran while a releaser's first release
//! row was still uncommitted.

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

/// Marks `blob` as possibly unneeded, for [`collect_released`], in the transaction that drops
/// a reference to it.
pub async fn release_in(
    conn: &mut AnyConnection,
    t: &ReleaseTables,
    blob: &BlobRef,
    now: OffsetDateTime,
) -> StoreResult<()> {
    // Held before the row is looked at: a collector between the look and the commit would
    // otherwise take the row this insert saw and keep the blob for this uncommitted reference.
    hold_in(conn, t, &blob.sha256).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (sha256, size, released_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256) DO NOTHING",
        t.release
    )))
    .bind(&blob.sha256)
    .bind(blob.row_size())
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// For a writer about to refer to `blobs`: holds them against the collector until its
/// transaction ends, waiting for a collector deleting one of them right now.
pub async fn claim_in(
    conn: &mut AnyConnection,
    t: &ReleaseTables,
    blobs: &[BlobRef],
) -> StoreResult<()> {
    let mut hashes: Vec<&str> = blobs.iter().map(|b| b.sha256.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    for sha256 in hashes {
        hold_in(conn, t, sha256).await?;
    }
    Ok(())
}

/// The shared hold of the protocol (see the module): nothing on SQLite, whose write
/// transactions exclude the collector's anyway.
async fn hold_in(conn: &mut AnyConnection, t: &ReleaseTables, sha256: &str) -> StoreResult<()> {
    if !is_postgres(conn) {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(lock_key(t, sha256))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME
}

/// The advisory lock of one blob of one service: FNV-1a over the release table's name and
/// the hash. A collision only makes a collector leave a blob for its next pass.
fn lock_key(t: &ReleaseTables, sha256: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in t.release.bytes().chain([0]).chain(sha256.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
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
    // Only the blobs no open transaction holds: the others stay released for the next pass.
    let postgres = db.backend() == crate::Backend::Postgres;
    let mut candidates_held = Vec::with_capacity(candidates.len());
    for sha256 in candidates {
        if postgres {
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(lock_key(t, &sha256))
                .fetch_one(&mut *tx)
                .await?;
            if !held {
                continue;
            }
        }
        candidates_held.push(sha256);
    }
    if candidates_held.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    // From here until the commit no reference to these blobs changes, so the references
    // read next stay the committed truth.
    let mut delete = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE sha256 IN ({}) RETURNING sha256, size",
        t.release,
        placeholders(1, candidates_held.len())
    )));
    for sha256 in candidates_held {
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
