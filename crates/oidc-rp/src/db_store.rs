//! Sessions in the service's database (`rp_sessions`), so that a restart or a second instance
//! does not log anyone out, with a short in-process cache in front: a page view must not cost
//! a database round trip for the session when the session was read a moment ago. (Logins in
//! progress live in the browser's state cookie, sealed, so any instance takes the callback.)
//!
//! What the cache means: a session ended on *this* instance (logout, front-channel logout) is
//! gone at once; one ended on *another* instance is still accepted here for at most
//! `cache_ttl`. `Duration::ZERO` asks the database on every request.
//!
//! What rests in the database is sealed ([`crate::seal`]) under a key the relying party derives
//! from its client credential ([`crate::RpConfig::derived_key`]), which every instance has and
//! the database never sees: a database backup, replica or read-only leak shows neither the
//! citizens' tokens nor who is logged in, and a row cannot be written (or moved to another
//! session id) so that an instance accepts it. A row that does not open — written under
//! another credential, by an older version in plain JSON, or tampered with — reads as no
//! session: the citizen logs in again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use store::{Db, sqlx, sqlx::Row};

use crate::{
    RpConfig, RpError,
    seal::Sealer,
    session::{Session, SessionStore, StoreError},
};

/// Sessions of one relying party (`client_id`) in `rp_sessions`.
pub struct DbStore {
    db: Db,
    client_id: String,
    seal: Sealer,
    cache_ttl: Duration,
    cache: Mutex<Cache>,
}

/// What this instance read or wrote within the last `cache_ttl` (or a little more).
struct Cache {
    /// A session as last read or written, or `None` where this instance ended it (so that a
    /// read racing the logout cannot put it back).
    entries: HashMap<String, (Option<Session>, Instant)>,
    /// When stale entries were last dropped: at most once per `cache_ttl`, so that a cache of
    /// many sessions is not walked on every miss.
    purged: Instant,
}

impl DbStore {
    /// The sessions of `rp`'s client, sealed under a key derived from its credential (fails
    /// only when a `private_key_jwt` key file cannot be read).
    pub fn new(db: Db, rp: &RpConfig, cache_ttl: Duration) -> Result<Self, RpError> {
        Ok(Self {
            db,
            client_id: rp.client_id.clone(),
            seal: Sealer::new(rp.derived_key(AT_REST_PURPOSE)?),
            cache_ttl,
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                purged: Instant::now(),
            }),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Caches what was read (`read`) or written for `id`; a read never replaces an end.
    fn remember(&self, id: &str, session: Option<&Session>, read: bool) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut c = self.cache();
        if now.duration_since(c.purged) >= self.cache_ttl {
            let ttl = self.cache_ttl;
            c.entries.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            c.purged = now;
        }
        if read
            && matches!(c.entries.get(id), Some((None, at)) if now.duration_since(*at) < self.cache_ttl)
        {
            return;
        }
        c.entries.insert(id.to_owned(), (session.cloned(), now));
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::new(e)
}

#[async_trait]
impl SessionStore for DbStore {
    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let now = crate::now();
        if let Some((s, at)) = self.cache().entries.get(id)
            && at.elapsed() < self.cache_ttl
        {
            return Ok(s.clone().filter(|s| s.expires_at > now));
        }
        let row = sqlx::query(
            "SELECT data FROM rp_sessions WHERE client_id = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(&self.client_id)
        .bind(id)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let data: String = row.try_get("data").map_err(db_err)?;
        let Some(plain) = self.seal.open(&[TABLE, &self.client_id, id], &data) else {
            tracing::warn!(client_id = %self.client_id, "a stored session does not open; treated as logged out");
            return Ok(None);
        };
        let session: Session = serde_json::from_slice(&plain).map_err(StoreError::new)?;
        self.remember(id, Some(&session), true);
        Ok(Some(session))
    }

    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(session).map_err(StoreError::new)?;
        let data = self
            .seal
            .seal(&[TABLE, &self.client_id, &session.id], &plain)?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        // Expired sessions of every client go with each login: indexed, and rarely many.
        sqlx::query("DELETE FROM rp_sessions WHERE expires_at <= $1")
            .bind(crate::now())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO rp_sessions (client_id, id, sid, expires_at, data) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (client_id, id) DO UPDATE SET \
             sid = excluded.sid, expires_at = excluded.expires_at, data = excluded.data",
        )
        .bind(&self.client_id)
        .bind(&session.id)
        .bind(session.sid.as_deref())
        .bind(session.expires_at)
        .bind(&data)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.remember(&session.id, Some(session), false);
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rp_sessions WHERE client_id = $1 AND id = $2")
            .bind(&self.client_id)
            .bind(id)
            .execute(self.db.pool())
            .await
            .map_err(db_err)?;
        self.remember(id, None, false);
        Ok(())
    }

    async fn delete_by_sid(&self, sid: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rp_sessions WHERE client_id = $1 AND sid = $2")
            .bind(&self.client_id)
            .bind(sid)
            .execute(self.db.pool())
            .await
            .map_err(db_err)?;
        let now = Instant::now();
        for (s, at) in self.cache().entries.values_mut() {
            if s.as_ref().is_some_and(|s| s.sid.as_deref() == Some(sid)) {
                *s = None;
                *at = now;
            }
        }
        Ok(done.rows_affected())
    }
}

/// What [`crate::RpConfig::derived_key`] derives the sealing key for.
const AT_REST_PURPOSE: &str = "oidc-rp session store at rest";
/// Bound into each row's seal with the client and the row key.
const TABLE: &str = "rp_sessions";
