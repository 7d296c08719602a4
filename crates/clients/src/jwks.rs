//! A JWKS fetched over HTTP and cached; an unknown `kid` triggers a refetch (key rotation),
//! at most once per `min_refetch_interval` so random kids cannot make us hammer the issuer.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use openssl::pkey::{PKey, Public};

/// Why a key could not be found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS at {0} could not be fetched: {1}")]
    Unavailable(String, String),
    #[error("no key with kid {0:?} in the issuer's JWKS")]
    UnknownKid(String),
}

struct Cached {
    keys: HashMap<String, PKey<Public>>,
    fetched: Instant,
}

/// Cache of one issuer's signing keys.
#[derive(Clone)]
pub struct JwksCache {
    uri: String,
    http: reqwest::Client,
    /// Keys are refetched after this age even when the kid is known.
    pub max_age: Duration,
    /// Smallest time between two fetches caused by unknown kids.
    pub min_refetch_interval: Duration,
    state: Arc<RwLock<Option<Cached>>>,
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(uri: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            uri: uri.into(),
            http,
            max_age: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(5),
            state: Arc::new(RwLock::new(None)),
            fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn lookup(&self, kid: &str) -> (Option<PKey<Public>>, Option<Instant>) {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            None => (None, None),
            Some(c) => {
                let fresh = c.fetched.elapsed() < self.max_age;
                (c.keys.get(kid).filter(|_| fresh).cloned(), Some(c.fetched))
            }
        }
    }

    /// The public key for `kid`, fetching the JWKS when needed.
    pub async fn key(&self, kid: &str) -> Result<PKey<Public>, JwksError> {
        if let (Some(k), _) = self.lookup(kid) {
            return Ok(k);
        }
        let _guard = self.fetch_lock.lock().await;
        // Someone else may have refreshed while we waited.
        let (found, fetched) = self.lookup(kid);
        if let Some(k) = found {
            return Ok(k);
        }
        if let Some(t) = fetched {
            let stale = t.elapsed() >= self.max_age;
            if !stale && t.elapsed() < self.min_refetch_interval {
                return Err(JwksError::UnknownKid(kid.chars().take(64).collect()));
            }
        }
        self.refresh().await?;
        match self.lookup(kid) {
            (Some(k), _) => Ok(k),
            _ => Err(JwksError::UnknownKid(kid.chars().take(64).collect())),
        }
    }

    /// Fetch the JWKS now.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let unavailable = |e: String| JwksError::Unavailable(self.uri.clone(), e);
        let res = self
            .http
            .get(&self.uri)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("status {}", res.status())));
        }
        let jwks: pki::jose::Jwks = res.json().await.map_err(|e| unavailable(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if let (Some(kid), Ok(k)) = (&jwk.kid, jwk.to_public_key()) {
                keys.insert(kid.clone(), k);
            }
        }
        tracing::debug!(uri = %self.uri, keys = keys.len(), "JWKS fetched");
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            keys,
            fetched: Instant::now(),
        });
        Ok(())
    }
}
