//! Maskinporten token client: signs a JWT grant per request (RFC 7523), caches the access
//! token per scope set and consumer until shortly before it expires.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use domain::Organisasjonsnummer;
use openssl::pkey::{PKey, Private};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use web::auth::{BoxFuture, TokenSource};

use crate::{ClientError, now_unix};

/// How the client proves who it is.
#[derive(Clone)]
pub enum GrantKey {
    /// Enterprise certificate: `x5c` = base64 DER chain, leaf first.
    Certificate {
        key: PKey<Private>,
        x5c: Vec<String>,
    },
    /// A key registered on the client, referenced by `kid`.
    Kid { key: PKey<Private>, kid: String },
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantKey::Certificate { x5c, .. } => write!(f, "Certificate(x5c: {} certs)", x5c.len()),
            GrantKey::Kid { kid, .. } => write!(f, "Kid({kid})"),
        }
    }
}

impl GrantKey {
    /// From a certificate issued by the test PKI.
    pub fn from_issued(issued: &pki::Issued) -> Self {
        GrantKey::Certificate {
            key: issued.key().clone(),
            x5c: issued.x5c(),
        }
    }

    /// From a registered signing key.
    pub fn from_signing_key(k: &pki::SigningKey) -> Self {
        GrantKey::Kid {
            key: k.key().clone(),
            kid: k.kid.clone(),
        }
    }

    /// From PEM files: a private key and a certificate chain (leaf first), as exported from
    /// a virksomhetssertifikat (`openssl pkcs12 -in cert.p12 -nodes`).
    pub fn from_pem_files(key: &Path, chain: &Path) -> Result<Self, ClientError> {
        let cfg = |e: String| ClientError::Config(e);
        let key_pem = std::fs::read(key).map_err(|e| cfg(format!("{}: {e}", key.display())))?;
        let chain_pem =
            std::fs::read(chain).map_err(|e| cfg(format!("{}: {e}", chain.display())))?;
        let key = PKey::private_key_from_pem(&key_pem).map_err(|e| cfg(e.to_string()))?;
        let certs =
            openssl::x509::X509::stack_from_pem(&chain_pem).map_err(|e| cfg(e.to_string()))?;
        let x5c = certs
            .iter()
            .map(|c| c.to_der().map(|d| base64_std(&d)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cfg(e.to_string()))?;
        if x5c.is_empty() {
            return Err(cfg("certificate chain file holds no certificate".into()));
        }
        Ok(GrantKey::Certificate { key, x5c })
    }
}

/// Standard base64 with padding, as `x5c` requires (RFC 7515 §4.1.6).
fn base64_std(d: &[u8]) -> String {
    openssl::base64::encode_block(d)
}

/// Where and as whom to ask for tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskinportenConfig {
    /// Issuer with trailing slash: `https://test.maskinporten.no/`, `https://maskinporten.no/`,
    /// or the stand-in's `<public_url>/`. Also the grant's `aud`.
    pub issuer: String,
    /// Token endpoint; default `{issuer}token`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The client's id (the grant's `iss`).
    pub client_id: String,
    /// Renew tokens this many seconds before they expire.
    #[serde(default = "default_margin")]
    pub refresh_margin_secs: i64,
    /// `exp - iat` of the grants we sign (Maskinporten allows at most 120).
    #[serde(default = "default_grant_lifetime")]
    pub grant_lifetime_secs: i64,
}

fn default_margin() -> i64 {
    20
}
fn default_grant_lifetime() -> i64 {
    60
}

/// An access token and when we consider it spent.
#[derive(Clone)]
pub struct AccessToken {
    pub access_token: String,
    pub scope: String,
    /// Unix time the server said the token expires.
    pub expires_at: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

type CacheKey = (String, Option<Organisasjonsnummer>);

/// The Maskinporten token client. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct MaskinportenClient {
    cfg: Arc<MaskinportenConfig>,
    key: Arc<GrantKey>,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<CacheKey, AccessToken>>>,
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for MaskinportenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskinportenClient")
            .field("client_id", &self.cfg.client_id)
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

impl MaskinportenClient {
    pub fn new(cfg: MaskinportenConfig, key: GrantKey, http: reqwest::Client) -> Self {
        Self {
            cfg: Arc::new(cfg),
            key: Arc::new(key),
            http,
            cache: Arc::new(Mutex::new(HashMap::new())),
            fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
            fetches: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// How many tokens were fetched from Maskinporten so far (cache misses).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn token_endpoint(&self) -> String {
        self.cfg
            .token_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}token", self.cfg.issuer))
    }

    /// Sign a fresh grant for `scopes` (optionally on behalf of `consumer_org`).
    pub fn grant(
        &self,
        scopes: &str,
        consumer_org: Option<&Organisasjonsnummer>,
    ) -> Result<String, ClientError> {
        let now = now_unix();
        let mut claims = json!({
            "aud": self.cfg.issuer,
            "iss": self.cfg.client_id,
            "scope": scopes,
            "iat": now,
            "exp": now + self.cfg.grant_lifetime_secs.clamp(1, 120),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let (Some(o), Some(obj)) = (consumer_org, claims.as_object_mut()) {
            obj.insert("consumer_org".into(), json!(o.to_string()));
        }
        let mut header = Map::new();
        let key = match &*self.key {
            GrantKey::Certificate { key, x5c } => {
                header.insert("x5c".into(), json!(x5c));
                key
            }
            GrantKey::Kid { key, kid } => {
                header.insert("kid".into(), Value::String(kid.clone()));
                key
            }
        };
        pki::jose::sign(header, &claims, pki::jose::Alg::RS256, key)
            .map_err(|e| ClientError::Sign(e.to_string()))
    }

    /// A token for the space-separated `scopes`, from the cache when still fresh.
    pub async fn token_for(
        &self,
        scopes: &str,
        consumer_org: Option<&Organisasjonsnummer>,
    ) -> Result<AccessToken, ClientError> {
        let mut list: Vec<&str> = scopes.split_whitespace().collect();
        list.sort_unstable();
        list.dedup();
        let normalized = list.join(" ");
        let key: CacheKey = (normalized.clone(), consumer_org.copied());
        if let Some(t) = self.cached(&key) {
            return Ok(t);
        }
        // One fetch at a time: concurrent callers wait and then find the cached token.
        let _guard = self.fetch_lock.lock().await;
        if let Some(t) = self.cached(&key) {
            return Ok(t);
        }
        let grant = self.grant(&normalized, consumer_org)?;
        let res = self
            .http
            .post(self.token_endpoint())
            .timeout(Duration::from_secs(15))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", grant.as_str()),
            ])
            .send()
            .await?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = res.status();
        let body = res.bytes().await?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(ClientError::Refused {
                service: "maskinporten",
                status: status.as_u16(),
                error: v
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
                description: v
                    .get("error_description")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        let tr: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| ClientError::BadResponse("maskinporten"))?;
        let token = AccessToken {
            access_token: tr.access_token,
            scope: tr.scope.unwrap_or(normalized),
            expires_at: now_unix() + tr.expires_in.unwrap_or(60),
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, token.clone());
        Ok(token)
    }

    fn cached(&self, key: &CacheKey) -> Option<AccessToken> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|t| t.expires_at - self.cfg.refresh_margin_secs > now_unix())
            .cloned()
    }

    /// Forget every cached token (e.g. after a 401 from an API).
    pub fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl TokenSource for MaskinportenClient {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move { Ok(self.token_for(scope, None).await?.access_token) })
    }
}

impl MaskinportenClient {
    /// The tokens this client obtains on behalf of `consumer` (a databehandler acting for a
    /// controller through an Altinn delegation): grants carry `consumer_org`, and the tokens
    /// have `consumer` = that organization and `supplier` = the client's own. Shares the
    /// client's cache.
    pub fn on_behalf_of(&self, consumer: Organisasjonsnummer) -> OnBehalfOf {
        OnBehalfOf {
            client: self.clone(),
            consumer,
        }
    }
}

/// A [`TokenSource`] of delegated tokens; see [`MaskinportenClient::on_behalf_of`].
#[derive(Clone, Debug)]
pub struct OnBehalfOf {
    client: MaskinportenClient,
    consumer: Organisasjonsnummer,
}

impl OnBehalfOf {
    pub fn consumer(&self) -> &Organisasjonsnummer {
        &self.consumer
    }
}

impl TokenSource for OnBehalfOf {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            Ok(self
                .client
                .token_for(scope, Some(&self.consumer))
                .await?
                .access_token)
        })
    }
}
