//! A JWKS fetched over HTTP and cached; an unknown `kid` triggers a refetch (key rotation),
//! at most once per `min_refetch_interval` so random kids cannot make us hammer the issuer.
//! [`JwksError::UnknownKid`] is final: a key set fetched after the kid was asked for lacks it.
//! A kid asked for too soon after a fetch waits for the interval rather than being called
//! unknown on the strength of a set that may predate it (a freshly rotated key).

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
    /// When the request for this set was sent: a set asked for later cannot be older.
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

    /// The public key for `kid`, fetching the JWKS when needed. `UnknownKid` only when a set
    /// fetched after this call began lacks the kid; a kid asked for within
    /// `min_refetch_interval` of the last fetch waits for the interval to end (at most that
    /// long, without holding up others) and is then looked up in a fresh set.
    pub async fn key(&self, kid: &str) -> Result<PKey<Public>, JwksError> {
        if let (Some(k), _) = self.lookup(kid) {
            return Ok(k);
        }
        let asked = Instant::now();
        let unknown = || JwksError::UnknownKid(kid.chars().take(64).collect());
        loop {
            let guard = self.fetch_lock.lock().await;
            // Someone else may have refreshed while we waited.
            let (found, fetched) = self.lookup(kid);
            if let Some(k) = found {
                return Ok(k);
            }
            let wait = match fetched {
                Some(t) if t.elapsed() >= self.max_age => None,
                // A set asked for after us lacks the kid: that is final.
                Some(t) if t >= asked => return Err(unknown()),
                // The set may predate the kid (a key rotated in since), but fetching again so
                // soon is what random kids must not make us do: wait for the interval.
                Some(t) => self.min_refetch_interval.checked_sub(t.elapsed()),
                None => None,
            };
            match wait {
                Some(w) if !w.is_zero() => {
                    drop(guard);
                    tokio::time::sleep(w).await;
                }
                _ => {
                    self.refresh().await?;
                    return self.lookup(kid).0.ok_or_else(unknown);
                }
            }
        }
    }

    /// Fetch the JWKS now.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let unavailable = |e: String| JwksError::Unavailable(self.uri.clone(), e);
        let sent = Instant::now();
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
            fetched: sent,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A JWKS endpoint on loopback serving `published`, counting its fetches.
    async fn issuer(
        published: Arc<RwLock<Vec<pki::jose::Jwk>>>,
        fetches: Arc<AtomicUsize>,
    ) -> String {
        let app = axum::Router::new().route(
            "/jwk",
            axum::routing::get(move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let keys = published.read().unwrap().clone();
                axum::Json(serde_json::json!({ "keys": keys }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/jwk")
    }

    #[tokio::test]
    async fn a_key_rotated_in_just_after_a_fetch_is_found_and_random_kids_cost_one_fetch() {
        let old = pki::SigningKey::generate().unwrap();
        let rotated = pki::SigningKey::generate().unwrap();
        let published = Arc::new(RwLock::new(vec![old.jwk()]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let uri = issuer(published.clone(), fetches.clone()).await;
        let mut cache = JwksCache::new(uri, reqwest::Client::new());
        cache.min_refetch_interval = Duration::from_millis(500);
        cache.key(&old.kid).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // The issuer rotates right after our fetch; a token under the new kid arrives within
        // the interval. It was "unknown" (and a letter refused for good); now it waits for
        // the interval and the refetch finds it.
        published.write().unwrap().push(rotated.jwk());
        cache.key(&rotated.kid).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // Many kids nobody publishes, at once and right after a fetch: one more fetch for all
        // of them, and each is unknown for good.
        let kids: Vec<String> = (0..20).map(|i| format!("random-{i}")).collect();
        let answers = futures::future::join_all(kids.iter().map(|k| cache.key(k))).await;
        for a in answers {
            assert!(matches!(a, Err(JwksError::UnknownKid(_))), "{a:?}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        // A known kid never waits or fetches.
        cache.key(&old.kid).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }
}
