//! Hot reads on SQLite through `rusqlite`, run on the calling thread (see
//! [`crate::Db::native_reads`]).
//!
//! Why not sqlx here: sqlx's SQLite driver runs every statement on a worker thread of its
//! connection and hands each row back through a channel, copying every value on the way
//! (`sqlite3_value_dup`). SQLite is a library in our process, so for a short indexed read
//! that hand-off is most of the cost: in perf of an inbox page (`scripts/bench-inbox`,
//! SQLite), 37% of the page's CPU was the query, of which `sqlite3_step` itself was 6.5%.
//! Here the statement runs where it is asked for, from a per-connection statement cache.
//!
//! Only for reads that are short and bounded (an indexed page of rows): the caller's async
//! thread is busy meanwhile. [`SqliteReads::read_blocking`] is for reads that may scan (a
//! search), which leave the async thread first. Connections are read-only (opened read-only
//! and `query_only`), see every committed write of the main pool (WAL), and are kept
//! for the next read. In WAL mode a reader does not wait for writers or checkpoints; it can
//! wait (up to `busy_timeout`) only while a connection recovers the WAL after a crash.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{StoreError, StoreResult};

/// A small pool of read-only `rusqlite` connections to one SQLite file.
pub struct SqliteReads {
    path: String,
    busy_timeout: Duration,
    keep: usize,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("path", &self.path)
            .field("kept", &self.kept())
            .finish_non_exhaustive()
    }
}

/// How a read failed.
fn read_err(e: rusqlite::Error) -> StoreError {
    StoreError::SqliteRead(e)
}

impl SqliteReads {
    /// Connections open on first use; at most `keep` are kept between reads (more may be
    /// open at once under load, and are closed after their read).
    pub(crate) fn new(path: &str, busy_timeout: Duration, keep: usize) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout,
            keep: keep.max(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections kept for the next read.
    pub fn kept(&self) -> usize {
        self.idle().len()
    }

    fn open(&self) -> StoreResult<Connection> {
        // Read-only twice over (the open and `query_only`); without create, so a wrong path
        // is an error and not a new empty database.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(read_err)?;
        conn.busy_timeout(self.busy_timeout).map_err(read_err)?;
        conn.pragma_update(None, "query_only", "ON")
            .map_err(read_err)?;
        // Statements are built from constant fragments; a page's few shapes fit.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `f` on a kept (or new) connection on this thread: for short, bounded reads.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let kept = self.idle().pop();
        let conn = match kept {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&conn).map_err(read_err);
        let mut idle = self.idle();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        out
    }

    /// Like [`SqliteReads::read`], for reads that may scan many rows: on a multi-threaded
    /// runtime the async thread hands its other tasks on first (`block_in_place`).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.read(f))
            }
            _ => self.read(f),
        }
    }

    /// Drops the kept connections.
    pub(crate) fn close(&self) {
        self.idle().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database whose last connection closed has no `-wal`/`-shm` files until the
    /// next connection makes them: the reader must be able to, and still refuse writes.
    #[test]
    fn reads_a_wal_database_nobody_else_has_open_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            let mode: String = c
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            c.execute_batch("CREATE TABLE t (id TEXT); INSERT INTO t VALUES ('a'), ('b');")
                .unwrap();
        }
        assert!(!dir.path().join("db.sqlite-shm").exists());
        let reads = SqliteReads::new(path.to_str().unwrap(), Duration::from_secs(1), 2);
        let n: i64 = reads
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 2);
        assert!(reads.read(|c| c.execute("DELETE FROM t", [])).is_err());
        assert_eq!(reads.kept(), 1);
        // A missing file is an error, not a new empty database.
        let missing = SqliteReads::new(
            dir.path().join("nope.sqlite").to_str().unwrap(),
            Duration::from_secs(1),
            2,
        );
        assert!(
            missing
                .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                .is_err()
        );
        assert!(!dir.path().join("nope.sqlite").exists());
    }
}
