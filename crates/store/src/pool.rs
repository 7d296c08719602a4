//! The pool every crate queries through: sqlx's pool (`Any`, or a native driver for hot
//! reads) plus a stack of connections kept out of it between single statements.
//!
//! Why: sqlx 0.9 pings every connection it takes back (`PoolConnection::return_to_pool`),
//! whatever the pool options say. For a statement run on the pool that is a second round
//! trip to the database: on PostgreSQL a message to another process and its wake-up, on
//! SQLite a hop to the connection's worker thread. perf put that ping at 9% of an inbox
//! page's CPU in the server process, plus the database's side of it.
//!
//! A statement run on [`Pool`] takes a kept connection (or one from sqlx), runs to the end
//! and puts the connection back on the stack without the ping. The ping is there for
//! connections left in an unknown state, and those still get it: a statement that fails, or
//! whose future is dropped half-way, drops its connection, which goes back to sqlx the usual
//! way. A transaction ([`Tx`]) whose `COMMIT` or `ROLLBACK` succeeded is kept the same way:
//! its connection is idle again, in a known state. One dropped while open rolls back and goes
//! back to sqlx, ping included, as sqlx's own `Transaction` does.
//!
//! Kept connections must never starve a caller: every way of taking a connection here
//! ([`Pool::acquire`], [`Pool::begin`], [`Pool::begin_with`], statements) takes a kept one
//! first, and while any caller waits for sqlx's pool, a finished statement gives its
//! connection back to sqlx (which hands it to the waiter) instead of keeping it. The stack
//! and the waiter count share one lock, so a connection cannot be kept just as a caller
//! starts to wait.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Database, Either, Execute, Executor, SqlStr};
use sqlx_core::transaction::TransactionManager;

/// sqlx's pool and the connections kept between statements. `Any` for every query
/// ([`crate::Db::pool`]); a native driver for the few hot reads of
/// [`crate::Db::native_reads`].
pub struct Pool<DB: Database = Any> {
    inner: sqlx::Pool<DB>,
    kept: Mutex<Kept<DB>>,
    /// At most this many are kept; more go back to sqlx.
    keep: usize,
}

struct Kept<DB: Database> {
    conns: Vec<PoolConnection<DB>>,
    /// Callers of this pool waiting in sqlx's `acquire`.
    waiting: usize,
}

/// Counts a caller waiting in sqlx's `acquire` until it has a connection or gives up.
struct Waiting<'a, DB: Database>(&'a Pool<DB>);

impl<DB: Database> Drop for Waiting<'_, DB> {
    fn drop(&mut self) {
        let mut kept = self.0.lock();
        kept.waiting = kept.waiting.saturating_sub(1);
    }
}

impl<DB: Database> std::fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size())
            .field("kept", &self.kept())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Pool<DB> {
    pub(crate) fn new(inner: sqlx::Pool<DB>, keep: usize) -> Pool<DB> {
        Pool {
            inner,
            kept: Mutex::new(Kept {
                conns: Vec::with_capacity(keep),
                waiting: 0,
            }),
            keep,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<DB>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// sqlx's pool itself (migrations).
    pub(crate) fn sqlx(&self) -> &sqlx::Pool<DB> {
        &self.inner
    }

    /// Connections kept between statements right now.
    pub fn kept(&self) -> usize {
        self.lock().conns.len()
    }

    /// A connection: the most recently kept one (warmest), else one from sqlx's pool.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let waiting = {
            let mut kept = self.lock();
            if let Some(c) = kept.conns.pop() {
                return Ok(c);
            }
            kept.waiting += 1;
            Waiting(self)
        };
        let conn = self.inner.acquire().await;
        drop(waiting);
        conn
    }

    /// Puts back a connection whose statement ran to the end: kept, unless a caller waits
    /// for sqlx's pool (then sqlx gets it and hands it on) or enough are kept already.
    fn keep_or_release(&self, conn: PoolConnection<DB>) {
        let mut kept = self.lock();
        if kept.waiting == 0 && kept.conns.len() < self.keep && !self.inner.is_closed() {
            kept.conns.push(conn);
        } else {
            drop(kept);
            drop(conn);
        }
    }

    /// After an error, the statement's connection goes back to sqlx, which pings it and
    /// closes it if it is broken. When the error says the connection itself failed, the
    /// kept ones may be broken too (a restarted server): they go the same way, so one broken
    /// connection fails one statement, not one statement per kept connection.
    fn after_error(&self, e: &sqlx::Error) {
        if matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed
        ) {
            let drained = std::mem::take(&mut self.lock().conns);
            drop(drained);
        }
    }

    /// Starts a transaction (`BEGIN`).
    pub async fn begin(&self) -> Result<Tx<'_, DB>, sqlx::Error> {
        Tx::begin(self, None).await
    }

    /// Starts a transaction with the given statement (`BEGIN IMMEDIATE` on SQLite, say).
    pub async fn begin_with(&self, statement: &'static str) -> Result<Tx<'_, DB>, sqlx::Error> {
        Tx::begin(self, Some(SqlStr::from_static(statement))).await
    }

    /// Open connections, kept ones included.
    pub fn size(&self) -> u32 {
        self.inner.size()
    }

    /// Gives the kept connections back, then closes sqlx's pool (which waits for the
    /// connections still in use).
    pub async fn close(&self) {
        let drained = std::mem::take(&mut self.lock().conns);
        drop(drained);
        self.inner.close().await;
    }
}

/// A transaction on a connection of a [`Pool`]: `&mut *tx` is the connection to run its
/// statements on. End it with [`Tx::commit`] or [`Tx::rollback`]; dropped while open it rolls
/// back. sqlx's `Transaction` with one difference: after a successful `COMMIT` or `ROLLBACK`
/// the connection is kept (see the module comment), not pinged on its way back to sqlx. Each
/// role of the chain runs several transactions per letter, and on PostgreSQL each ping is a
/// round trip to the server.
pub struct Tx<'p, DB: Database> {
    pool: &'p Pool<DB>,
    /// `Some` until the transaction ends.
    conn: Option<PoolConnection<DB>>,
}

impl<'p, DB: Database> Tx<'p, DB> {
    async fn begin(pool: &'p Pool<DB>, statement: Option<SqlStr>) -> Result<Self, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        match DB::TransactionManager::begin(&mut conn, statement).await {
            Ok(()) => Ok(Tx {
                pool,
                conn: Some(conn),
            }),
            Err(e) => {
                // Whatever state `BEGIN` left: sqlx's ping on release sorts it out.
                pool.after_error(&e);
                Err(e)
            }
        }
    }

    /// `COMMIT`.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.end(true).await
    }

    /// `ROLLBACK`.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), sqlx::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let ended = if commit {
            DB::TransactionManager::commit(conn).await
        } else {
            DB::TransactionManager::rollback(conn).await
        };
        match ended {
            Ok(()) => {
                if let Some(conn) = self.conn.take() {
                    self.pool.keep_or_release(conn);
                }
                Ok(())
            }
            Err(e) => {
                // Left in `self.conn`: the drop rolls back and hands it to sqlx.
                self.pool.after_error(&e);
                Err(e)
            }
        }
    }

    fn connection(&self) -> &PoolConnection<DB> {
        match &self.conn {
            Some(c) => c,
            // `commit` and `rollback` take the transaction: nothing can deref it after.
            None => unreachable!("a Tx is used after it ended"),
        }
    }
}

impl<DB: Database> Deref for Tx<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        self.connection()
    }
}

impl<DB: Database> DerefMut for Tx<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.conn {
            Some(c) => c,
            None => unreachable!("a Tx is used after it ended"),
        }
    }
}

impl<DB: Database> Drop for Tx<'_, DB> {
    fn drop(&mut self) {
        // Still open (not ended, or its end failed or was cancelled): as sqlx's `Transaction`
        // does, queue a rollback that the connection's release to sqlx (its ping) sends.
        if let Some(mut conn) = self.conn.take()
            && DB::TransactionManager::get_transaction_depth(&conn) > 0
        {
            DB::TransactionManager::start_rollback(&mut conn);
        }
    }
}

impl<DB: Database> Drop for Pool<DB> {
    fn drop(&mut self) {
        // A `PoolConnection` goes back to sqlx through a spawned task, which needs a Tokio
        // runtime. Without one (a pool dropped after its runtime, at exit) the kept
        // connections are left for the process exit to close.
        if tokio::runtime::Handle::try_current().is_err() {
            let kept =
                std::mem::take(&mut self.kept.get_mut().unwrap_or_else(|p| p.into_inner()).conns);
            std::mem::forget(kept);
        }
    }
}

impl<'p, DB> Executor<'p> for &'p Pool<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    /// Results are collected before they are handed out, so the connection is back on the
    /// stack as soon as the database is done; no caller streams large result sets.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(
            futures::stream::once(async move {
                let mut conn = self.acquire().await?;
                match (&mut *conn).fetch_many(query).try_collect::<Vec<_>>().await {
                    Ok(all) => {
                        self.keep_or_release(conn);
                        Ok(futures::stream::iter(all.into_iter().map(Ok)))
                    }
                    Err(e) => {
                        self.after_error(&e);
                        Err(e)
                    }
                }
            })
            .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(async move {
            let mut conn = self.acquire().await?;
            match (&mut *conn).fetch_optional(query).await {
                Ok(row) => {
                    self.keep_or_release(conn);
                    Ok(row)
                }
                Err(e) => {
                    self.after_error(&e);
                    Err(e)
                }
            }
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            let mut conn = self.acquire().await?;
            let statement = (&mut *conn).prepare_with(sql, parameters).await?;
            self.keep_or_release(conn);
            Ok(statement)
        })
    }

    #[doc(hidden)]
    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move { (&mut *self.acquire().await?).describe(sql).await })
    }
}
