//! Server-side login sessions. The cookie carries a random secret; stores see only its
//! SHA-256 (`Session::id`), so a leaked session table cannot be replayed as cookies.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Acr;

/// A logged-in citizen as the relying party keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Storage key: hex SHA-256 of the cookie value.
    pub id: String,
    /// Fødselsnummer or D-nummer from the id token's `pid`.
    pub pid: String,
    /// Pairwise subject.
    pub sub: String,
    pub acr: Acr,
    pub amr: Vec<String>,
    /// ID-porten's session id, for front-channel logout.
    pub sid: Option<String>,
    pub locale: Option<String>,
    pub name: Option<String>,
    /// Kept for `id_token_hint` at logout.
    pub id_token: String,
    /// The latest access token for calling APIs as the citizen. Without a `resource` in the
    /// request its `aud` is ID-porten's default, which APIs that check their own audience
    /// (KRR's `/rest/v1/person`, the mailbox API) refuse.
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub access_token_expires_at: Option<i64>,
    /// One-time refresh token, when the client has them enabled.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

/// Where sessions live. Implementations must treat expired sessions as absent.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Inserts or replaces by `id`.
    async fn put(&self, session: &Session) -> Result<(), StoreError>;
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
    /// Ends every session of an ID-porten `sid` (front-channel logout); returns how many.
    async fn delete_by_sid(&self, sid: &str) -> Result<u64, StoreError>;
}

/// In-process store: for one instance, development and tests. Lost on restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Session>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let now = crate::now();
        Ok(self.map().get(id).filter(|s| s.expires_at > now).cloned())
    }

    async fn put(&self, session: &Session) -> Result<(), StoreError> {
        let now = crate::now();
        let mut m = self.map();
        m.retain(|_, s| s.expires_at > now);
        m.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.map().remove(id);
        Ok(())
    }

    async fn delete_by_sid(&self, sid: &str) -> Result<u64, StoreError> {
        let mut m = self.map();
        let before = m.len();
        m.retain(|_, s| s.sid.as_deref() != Some(sid));
        Ok((before - m.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, sid: &str, expires_at: i64) -> Session {
        Session {
            id: id.into(),
            pid: "04817197073".into(),
            sub: "x".into(),
            acr: Acr::Substantial,
            amr: vec![],
            sid: Some(sid.into()),
            locale: None,
            name: None,
            id_token: String::new(),
            access_token: None,
            access_token_expires_at: None,
            refresh_token: None,
            auth_time: None,
            created_at: 0,
            expires_at,
        }
    }

    #[tokio::test]
    async fn memory_store_contract() {
        let st = MemoryStore::new();
        let far = crate::now() + 100;
        st.put(&s("a", "sid1", far)).await.unwrap();
        st.put(&s("b", "sid1", far)).await.unwrap();
        st.put(&s("c", "sid2", far)).await.unwrap();
        st.put(&s("old", "sid2", 1)).await.unwrap();
        assert!(st.get("a").await.unwrap().is_some());
        assert!(st.get("old").await.unwrap().is_none(), "expired is absent");
        assert_eq!(st.delete_by_sid("sid1").await.unwrap(), 2);
        assert!(st.get("a").await.unwrap().is_none());
        assert!(st.get("c").await.unwrap().is_some());
        st.delete("c").await.unwrap();
        assert!(st.get("c").await.unwrap().is_none());
    }
}
