//! OpenID Connect relying party for axum apps that log citizens in with ID-porten (the real
//! one or the samspill stand-in): login redirect with PKCE S256, `state` and `nonce` (PAR
//! optional), callback with code exchange and id token validation (RS256 via JWKS with key
//! rotation, `iss`, `aud`, `exp`, `nonce`, `acr`), a server-side session behind an HttpOnly
//! cookie, the [`Citizen`] extractor with step-up to `idporten-loa-high`, RP-initiated logout
//! and front-channel logout that ends every session of an ID-porten `sid`.
//!
//! ```ignore
//! let rp = oidc_rp::Rp::new(cfg, Arc::new(oidc_rp::MemoryStore::new()))?;
//! let app = Router::new()
//!     .route("/", get(|c: Citizen| async move { c.pid }))
//!     .with_state(rp.clone())            // or any state with `Rp: FromRef<S>`
//!     .nest("/auth", oidc_rp::router(rp)); // base_path = "/auth", cookie_path = "/"
//! ```
//!
//! ## Against the real ID-porten
//!
//! Nothing in the code is specific to the stand-in. Register the client in Samarbeidsportalen
//! (redirect URI, post-logout redirect URI, front-channel logout URI, scopes), then:
//!
//! ```toml
//! issuer = "https://test.idporten.no"          # prod: "https://idporten.no"
//! client_id = "<from Samarbeidsportalen>"
//! redirect_uri = "https://minside.example.kommune.no/auth/callback"
//! post_logout_redirect_uri = "https://minside.example.kommune.no/"
//! base_path = "/auth"
//! cookie_secure = true
//! use_par = true
//! [client_auth]
//! method = "private_key_jwt"                   # or client_secret_basic / client_secret_post
//! key_file = "/etc/samspill/idporten-client.pem"
//! kid = "<kid registered with the public key>"
//! ```
//!
//! A login in progress (nonce, PKCE verifier, where to return) travels for at most ten minutes
//! in the browser's state cookie, sealed under a key derived from the client credential and
//! bound to its `state`: starting a login stores nothing, and the callback may reach any
//! instance. Sessions: [`MemoryStore`] for one instance, [`DbStore`] for several (and across
//! restarts).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod db_store;
mod extract;
mod routes;
mod seal;
mod session;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use openssl::pkey::{PKey, Private};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::RwLock;

pub use db_store::DbStore;
pub use extract::{Citizen, CitizenHigh};
pub use routes::router;
pub use session::{MemoryStore, Session, SessionStore, StoreError};

/// ID-porten levels of assurance, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Acr {
    #[serde(rename = "idporten-loa-substantial")]
    Substantial,
    #[serde(rename = "idporten-loa-high")]
    High,
}

impl Acr {
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Substantial => "idporten-loa-substantial",
            Acr::High => "idporten-loa-high",
        }
    }

    /// Also reads the legacy `Level3` / `Level4`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idporten-loa-substantial" | "Level3" => Some(Acr::Substantial),
            "idporten-loa-high" | "Level4" => Some(Acr::High),
            _ => None,
        }
    }
}

/// How the client authenticates at the token (and PAR) endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientAuth {
    ClientSecretBasic {
        secret: SecretString,
    },
    ClientSecretPost {
        secret: SecretString,
    },
    /// RS256 client assertion signed with a PKCS#8 PEM key; `kid` as registered.
    PrivateKeyJwt {
        key_file: PathBuf,
        kid: Option<String>,
    },
}

/// Relying-party configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpConfig {
    /// Issuer exactly as in the provider's metadata, e.g. `https://test.idporten.no` or
    /// `http://127.0.0.1:8080/idporten`; discovery is read from
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// The absolute URL of this app's `/callback`, registered with the provider.
    pub redirect_uri: String,
    /// Where the provider sends the browser after logout (registered with the provider).
    pub post_logout_redirect_uri: Option<String>,
    /// Requested scopes; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// Lowest level of assurance the app accepts at all.
    pub acr: Acr,
    /// Preferred page language at ID-porten (`nb`, `nn`, `en`).
    pub ui_locales: Option<String>,
    /// Path under which [`router`] is mounted, as the browser sees it (e.g. `/postkasse/auth`);
    /// the extractor redirects to `{base_path}/login`.
    pub base_path: String,
    /// Where to go after login when no (safe) `return_to` was given.
    pub default_return_to: String,
    /// Session cookie name. Apps that share a host (as under `samspill serve`) need distinct
    /// names or distinct `cookie_path`s, or they overwrite each other's cookie.
    pub cookie_name: String,
    /// Set the `Secure` cookie attribute; on everywhere but plain-HTTP development.
    pub cookie_secure: bool,
    /// `Path` of the session cookie: the app's own prefix (e.g. `/postkasse`).
    pub cookie_path: String,
    pub session_ttl_secs: u64,
    /// Send the authorization request by PAR when the provider offers it.
    pub use_par: bool,
    /// Tolerated clock difference for `exp`/`iat`, in seconds.
    pub clock_skew_secs: i64,
    /// Minimum time between two JWKS fetches caused by an unknown `kid`.
    pub jwks_refresh_min_secs: u64,
}

impl RpConfig {
    /// [`Rp::derived_key`] before there is an [`Rp`], e.g. for the key a [`DbStore`] seals
    /// its rows with (the store is built first and handed to [`Rp::new`]).
    pub fn derived_key(&self, purpose: &str) -> Result<[u8; 32], RpError> {
        let key = self.load_signing_key()?;
        Ok(derive_key(&self.client_auth, key.as_ref(), purpose))
    }

    /// The private key of `private_key_jwt`; `None` for the client-secret methods.
    fn load_signing_key(&self) -> Result<Option<PKey<Private>>, RpError> {
        let ClientAuth::PrivateKeyJwt { key_file, .. } = &self.client_auth else {
            return Ok(None);
        };
        let pem = std::fs::read(key_file)
            .map_err(|e| RpError::Config(format!("{}: {e}", key_file.display())))?;
        PKey::private_key_from_pem(&pem)
            .map(Some)
            .map_err(|e| RpError::Config(format!("client key: {e}")))
    }
}

/// SHA-256 over a fixed label, the purpose and the credential: the credential is secret and
/// high in entropy (a client secret or an RSA key), so one hash is a sound derivation.
fn derive_key(auth: &ClientAuth, signing_key: Option<&PKey<Private>>, purpose: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"oidc-rp derived key\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    match auth {
        ClientAuth::ClientSecretBasic { secret } | ClientAuth::ClientSecretPost { secret } => {
            h.update(secret.expose_secret().as_bytes());
        }
        ClientAuth::PrivateKeyJwt { .. } => {
            // Loaded by `Rp::new` / `RpConfig::derived_key`, which fail without it.
            if let Some(der) = signing_key.and_then(|k| k.private_key_to_der().ok()) {
                h.update(der);
            }
        }
    }
    h.finalize().into()
}

impl Default for RpConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080/idporten".into(),
            client_id: "samspill-postkasse".into(),
            client_auth: ClientAuth::ClientSecretBasic {
                secret: SecretString::from("samspill-postkasse-secret-change-me"),
            },
            redirect_uri: "http://127.0.0.1:8080/postkasse/auth/callback".into(),
            post_logout_redirect_uri: Some("http://127.0.0.1:8080/postkasse/".into()),
            scopes: vec!["openid".into(), "profile".into()],
            acr: Acr::Substantial,
            ui_locales: None,
            base_path: "/postkasse/auth".into(),
            default_return_to: "/postkasse/".into(),
            cookie_name: "samspill_session".into(),
            cookie_secure: true,
            cookie_path: "/postkasse".into(),
            session_ttl_secs: 8 * 3600,
            use_par: false,
            clock_skew_secs: 30,
            jwks_refresh_min_secs: 10,
        }
    }
}

/// Why a login or logout step failed. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum RpError {
    #[error("the identity provider is unreachable or answered badly: {0}")]
    Provider(String),
    #[error("the token endpoint refused the request: {error} ({description})")]
    TokenRefused { error: String, description: String },
    #[error("id token rejected: {0}")]
    InvalidIdToken(String),
    #[error("level of assurance {got} is below the required {want}")]
    InsufficientAcr { got: String, want: &'static str },
    #[error("the citizen must log in (again)")]
    LoginRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(String),
}

impl RpError {
    pub fn code(&self) -> &'static str {
        match self {
            RpError::Provider(_) => "idp_unavailable",
            RpError::TokenRefused { .. } => "token_refused",
            RpError::InvalidIdToken(_) => "invalid_id_token",
            RpError::InsufficientAcr { .. } => "insufficient_acr",
            RpError::LoginRequired => "login_required",
            RpError::Store(_) => "session_store",
            RpError::Config(_) => "config",
        }
    }
}

/// The provider metadata this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<String>,
}

type FormFields = Vec<(&'static str, String)>;

/// A login on its way through the provider. It travels sealed in the browser's state cookie
/// (see [`Rp::seal_pending`]), not in a store: starting a login stores nothing, so anyone's
/// flood of login starts cannot fill a store or crowd out the citizens' own logins, and the
/// callback may reach any instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub acr: Acr,
    /// Unix seconds.
    pub expires_at: i64,
}

/// How long a login may take at the provider, in seconds.
pub(crate) const PENDING_TTL_SECS: i64 = 600;
/// Longest state cookie value: browsers keep cookies of up to 4096 bytes, name included.
const MAX_STATE_COOKIE: usize = 3800;
/// What [`Rp::derived_key`] derives the key of the state cookie's seal for.
const PENDING_PURPOSE: &str = "oidc-rp login in progress";

/// The relying party; cheap to clone. Use it as (part of) the app state.
#[derive(Clone)]
pub struct Rp(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Rp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rp")
            .field("issuer", &self.0.cfg.issuer)
            .field("client_id", &self.0.cfg.client_id)
            .finish()
    }
}

pub(crate) struct Inner {
    pub cfg: RpConfig,
    pub http: reqwest::Client,
    pub store: Arc<dyn SessionStore>,
    pub signing_key: Option<PKey<Private>>,
    /// Seals the login in progress into the state cookie.
    pub pending_seal: seal::Sealer,
    pub meta: RwLock<Option<Metadata>>,
    pub jwks: RwLock<(Vec<jose::VerifyingKey>, Option<Instant>)>,
    /// Serialises refreshes: refresh tokens are single use, so two at once would revoke them.
    pub refresh_lock: tokio::sync::Mutex<()>,
}

impl Rp {
    /// Builds the relying party. Talks to the provider lazily (first login), so the app can
    /// start before the provider does.
    pub fn new(cfg: RpConfig, store: Arc<dyn SessionStore>) -> Result<Self, RpError> {
        url::Url::parse(&cfg.redirect_uri)
            .map_err(|e| RpError::Config(format!("redirect_uri: {e}")))?;
        url::Url::parse(&cfg.issuer).map_err(|e| RpError::Config(format!("issuer: {e}")))?;
        let signing_key = cfg.load_signing_key()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RpError::Config(e.to_string()))?;
        let pending_seal = seal::Sealer::new(derive_key(
            &cfg.client_auth,
            signing_key.as_ref(),
            PENDING_PURPOSE,
        ));
        Ok(Self(Arc::new(Inner {
            cfg,
            http,
            store,
            signing_key,
            pending_seal,
            meta: RwLock::new(None),
            jwks: RwLock::new((Vec::new(), None)),
            refresh_lock: tokio::sync::Mutex::new(()),
        })))
    }

    pub fn config(&self) -> &RpConfig {
        &self.0.cfg
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.0.store
    }

    /// A key for `purpose` that every instance of this relying party derives alike and that
    /// is never stored anywhere: from the client's credential (its secret or its private
    /// key), so that someone who can read the session store cannot derive it.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        derive_key(
            &self.0.cfg.client_auth,
            self.0.signing_key.as_ref(),
            purpose,
        )
    }

    /// The provider metadata, fetched once and checked against the configured issuer.
    pub async fn metadata(&self) -> Result<Metadata, RpError> {
        if let Some(m) = self.0.meta.read().await.as_ref() {
            return Ok(m.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.0.cfg.issuer.trim_end_matches('/')
        );
        let m: Metadata = self.get_json(&url).await?;
        if m.issuer != self.0.cfg.issuer {
            return Err(RpError::Provider(format!(
                "metadata issuer {:?} is not the configured {:?}",
                m.issuer, self.0.cfg.issuer
            )));
        }
        *self.0.meta.write().await = Some(m.clone());
        Ok(m)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, RpError> {
        let r = self
            .0
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| RpError::Provider(format!("{url}: {e}")))?;
        if !r.status().is_success() {
            return Err(RpError::Provider(format!("{url}: HTTP {}", r.status())));
        }
        r.json()
            .await
            .map_err(|e| RpError::Provider(format!("{url}: {e}")))
    }

    /// The JWKS, refetched when a token names a key we do not know (key rotation), at most
    /// once per `jwks_refresh_min_secs`.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<jose::VerifyingKey>, RpError> {
        {
            let (keys, fetched) = &*self.0.jwks.read().await;
            let known = match kid {
                Some(k) => keys.iter().any(|j| j.kid.as_deref() == Some(k)),
                None => !keys.is_empty(),
            };
            let may_refresh = fetched.is_none_or(|t| {
                t.elapsed() >= Duration::from_secs(self.0.cfg.jwks_refresh_min_secs)
            });
            if known || !may_refresh {
                return Ok(keys.clone());
            }
        }
        let meta = self.metadata().await?;
        let v: Value = self.get_json(&meta.jwks_uri).await?;
        let keys = jose::parse_jwks(&v).map_err(RpError::Provider)?;
        *self.0.jwks.write().await = (keys.clone(), Some(Instant::now()));
        Ok(keys)
    }

    /// The state cookie's value for a login started with `state`: the login sealed, bound to
    /// this client and to `state`, so that it opens only for the callback of that `state`.
    /// A `return_to` so long that the cookie would outgrow what browsers keep (4096 bytes
    /// with its name) is replaced by the configured default, so the login still completes.
    pub(crate) fn seal_pending(&self, state: &str, p: &PendingLogin) -> Result<String, RpError> {
        let seal = |p: &PendingLogin| -> Result<String, RpError> {
            let plain = serde_json::to_vec(p).map_err(StoreError::new)?;
            Ok(self
                .0
                .pending_seal
                .seal(&["state cookie", &self.0.cfg.client_id, state], &plain)?)
        };
        let sealed = seal(p)?;
        if sealed.len() <= MAX_STATE_COOKIE {
            return Ok(sealed);
        }
        seal(&PendingLogin {
            return_to: self.0.cfg.default_return_to.clone(),
            ..p.clone()
        })
    }

    /// The login that the state cookie `sealed` holds for `state`; `None` when it was sealed
    /// for another state or client, by another credential, altered, or has expired.
    pub(crate) fn open_pending(&self, state: &str, sealed: &str) -> Option<PendingLogin> {
        let plain = self
            .0
            .pending_seal
            .open(&["state cookie", &self.0.cfg.client_id, state], sealed)?;
        serde_json::from_slice::<PendingLogin>(&plain)
            .ok()
            .filter(|p| p.expires_at > now())
    }

    /// Client authentication: extra form fields and, for Basic, the header value.
    fn client_auth(&self, aud: &str) -> Result<(FormFields, Option<String>), RpError> {
        let id = &self.0.cfg.client_id;
        match &self.0.cfg.client_auth {
            ClientAuth::ClientSecretBasic { secret } => {
                use base64::Engine;
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let cred = format!("{}:{}", enc(id), enc(secret.expose_secret()));
                let header = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(cred)
                );
                Ok((vec![], Some(header)))
            }
            ClientAuth::ClientSecretPost { secret } => Ok((
                vec![
                    ("client_id", id.clone()),
                    ("client_secret", secret.expose_secret().to_owned()),
                ],
                None,
            )),
            ClientAuth::PrivateKeyJwt { kid, .. } => {
                let key = self
                    .0
                    .signing_key
                    .as_ref()
                    .ok_or_else(|| RpError::Config("no client key".into()))?;
                let t = now();
                let claims = json!({
                    "iss": id, "sub": id, "aud": aud, "iat": t, "exp": t + 60,
                    "jti": random_token(),
                });
                let jwt = jose::sign_jwt(key, kid.as_deref(), Some("JWT"), &claims)
                    .map_err(|e| RpError::Config(format!("signing the client assertion: {e}")))?;
                Ok((
                    vec![
                        ("client_id", id.clone()),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                        ),
                        ("client_assertion", jwt),
                    ],
                    None,
                ))
            }
        }
    }

    /// POSTs a form to a provider endpoint with client authentication; returns the JSON.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Value, RpError> {
        let (extra, basic) = self.client_auth(&self.0.cfg.issuer)?;
        form.extend(extra);
        let mut req = self.0.http.post(url).form(&form);
        if let Some(b) = basic {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| RpError::Provider(format!("{url}: {e}")))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|e| RpError::Provider(format!("{url}: HTTP {status}: {e}")))?;
        if !status.is_success() {
            return Err(RpError::TokenRefused {
                error: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
                description: v
                    .get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        Ok(v)
    }

    /// Redeems a code and validates the id token; returns the new session (not yet stored)
    /// and the cookie secret for it.
    pub(crate) async fn finish_login(
        &self,
        code: &str,
        p: &PendingLogin,
    ) -> Result<(Session, String), RpError> {
        let meta = self.metadata().await?;
        let tokens = self
            .post_form(
                &meta.token_endpoint,
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", code.to_owned()),
                    ("redirect_uri", self.0.cfg.redirect_uri.clone()),
                    ("code_verifier", p.verifier.clone()),
                ],
            )
            .await?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| RpError::InvalidIdToken("the token response has no id_token".into()))?;
        let t = now();
        let jws =
            jose::decode_oidc(id_token).map_err(|e| RpError::InvalidIdToken(e.to_string()))?;
        let keys = self.keys_for(jws.kid()).await?;
        jws.verify_with_jwks(&keys)
            .map_err(|e| RpError::InvalidIdToken(e.to_string()))?;
        let c = validate_claims(
            &jws.claims,
            &IdTokenExpectations {
                issuer: &meta.issuer,
                client_id: &self.0.cfg.client_id,
                nonce: &p.nonce,
                min_acr: p.acr,
                now: now(),
                skew: self.0.cfg.clock_skew_secs,
            },
        )?;
        let secret = random_token();
        Ok((
            Session {
                id: session_key(&secret),
                pid: c.pid,
                sub: c.sub,
                acr: c.acr,
                amr: c.amr,
                sid: c.sid,
                locale: c.locale,
                name: c.name,
                id_token: id_token.to_owned(),
                access_token: tokens
                    .get("access_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                access_token_expires_at: tokens
                    .get("expires_in")
                    .and_then(Value::as_i64)
                    .map(|e| t + e),
                refresh_token: tokens
                    .get("refresh_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                auth_time: c.auth_time,
                created_at: t,
                expires_at: t + self.0.cfg.session_ttl_secs as i64,
            },
            secret,
        ))
    }
}

impl Rp {
    /// A current access token for calling APIs on the citizen's behalf, refreshed with the
    /// session's refresh token when it is about to expire. `LoginRequired` when neither works
    /// (refresh tokens not enabled, expired, or revoked by logout at ID-porten).
    pub async fn access_token(&self, citizen: &Citizen) -> Result<String, RpError> {
        let _one_at_a_time = self.0.refresh_lock.lock().await;
        let mut s = self
            .0
            .store
            .get(&citizen.session_id)
            .await?
            .ok_or(RpError::LoginRequired)?;
        if let (Some(at), Some(exp)) = (&s.access_token, s.access_token_expires_at)
            && exp - 10 > now()
        {
            return Ok(at.clone());
        }
        let rt = s.refresh_token.take().ok_or(RpError::LoginRequired)?;
        let meta = self.metadata().await?;
        let v = match self
            .post_form(
                &meta.token_endpoint,
                vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", rt),
                ],
            )
            .await
        {
            Ok(v) => v,
            Err(RpError::TokenRefused { error, .. }) => {
                tracing::info!(error, "refresh refused; the citizen must log in again");
                // The used token is worthless now; forget it.
                self.0.store.put(&s).await?;
                return Err(RpError::LoginRequired);
            }
            Err(e) => return Err(e),
        };
        let at = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| RpError::Provider("refresh answer without access_token".into()))?
            .to_owned();
        s.access_token = Some(at.clone());
        s.access_token_expires_at = v
            .get("expires_in")
            .and_then(Value::as_i64)
            .map(|e| now() + e);
        s.refresh_token = v
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.0.store.put(&s).await?;
        Ok(at)
    }
}

pub(crate) struct IdTokenExpectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub min_acr: Acr,
    pub now: i64,
    pub skew: i64,
}

#[derive(Debug)]
pub(crate) struct IdClaims {
    pub pid: String,
    pub sub: String,
    pub acr: Acr,
    pub amr: Vec<String>,
    pub sid: Option<String>,
    pub locale: Option<String>,
    pub name: Option<String>,
    pub auth_time: Option<i64>,
}

/// OIDC Core 3.1.3.7 checks on an id token whose signature is already verified, plus the
/// ID-porten rule that `acr` must be high enough.
pub(crate) fn validate_claims(
    c: &serde_json::Map<String, Value>,
    e: &IdTokenExpectations<'_>,
) -> Result<IdClaims, RpError> {
    let bad = |m: &str| RpError::InvalidIdToken(m.to_owned());
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    if s("iss") != Some(e.issuer) {
        return Err(bad("iss is not the provider"));
    }
    match c.get("aud") {
        Some(Value::String(a)) if a == e.client_id => {}
        Some(Value::Array(a)) if a.iter().any(|x| x.as_str() == Some(e.client_id)) => {
            if a.len() > 1 && s("azp") != Some(e.client_id) {
                return Err(bad(
                    "azp must be this client when there are several audiences",
                ));
            }
        }
        _ => return Err(bad("aud is not this client")),
    }
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("exp is missing"))?;
    if exp + e.skew <= e.now {
        return Err(bad("the id token has expired"));
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("iat is missing"))?;
    if iat > e.now + e.skew {
        return Err(bad("iat is in the future"));
    }
    match s("nonce") {
        Some(n) if secret_eq(n, e.nonce) => {}
        _ => return Err(bad("nonce does not match the login")),
    }
    let acr_s = s("acr").unwrap_or("");
    let acr = Acr::parse(acr_s).ok_or_else(|| RpError::InsufficientAcr {
        got: acr_s.to_owned(),
        want: e.min_acr.as_str(),
    })?;
    if acr < e.min_acr {
        return Err(RpError::InsufficientAcr {
            got: acr_s.to_owned(),
            want: e.min_acr.as_str(),
        });
    }
    let pid = s("pid")
        .filter(|p| p.len() == 11 && p.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("pid is missing or not 11 digits"))?;
    let sub = s("sub")
        .filter(|x| !x.is_empty())
        .ok_or_else(|| bad("sub is missing"))?;
    Ok(IdClaims {
        pid: pid.to_owned(),
        sub: sub.to_owned(),
        acr,
        amr: c
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        sid: s("sid").map(str::to_owned),
        locale: s("locale").map(str::to_owned),
        name: s("name").map(str::to_owned),
        auth_time: c.get("auth_time").and_then(Value::as_i64),
    })
}

/// Constant-time equality for secrets of any length (`openssl::memcmp::eq` itself panics on
/// different lengths, so compare SHA-256 digests).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    openssl::memcmp::eq(&Sha256::digest(a.as_bytes()), &Sha256::digest(b.as_bytes()))
}

pub(crate) fn session_key(cookie_secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(cookie_secret.as_bytes()))
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    jose::b64(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(patch: Value) -> serde_json::Map<String, Value> {
        let mut c = json!({
            "iss": "https://idp", "aud": "app", "exp": 1000, "iat": 900, "nonce": "n1",
            "acr": "idporten-loa-substantial", "pid": "04817197073", "sub": "pairwise", "sid": "s1",
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    fn exp(min_acr: Acr) -> IdTokenExpectations<'static> {
        IdTokenExpectations {
            issuer: "https://idp",
            client_id: "app",
            nonce: "n1",
            min_acr,
            now: 950,
            skew: 10,
        }
    }

    #[test]
    fn derived_keys_follow_the_credential_and_the_purpose() {
        let rp = |secret: &str| {
            let cfg = RpConfig {
                client_auth: ClientAuth::ClientSecretBasic {
                    secret: secret.to_owned().into(),
                },
                ..RpConfig::default()
            };
            Rp::new(cfg, Arc::new(MemoryStore::new())).unwrap()
        };
        let (a, a_again, b) = (rp("secret-a"), rp("secret-a"), rp("secret-b"));
        assert_eq!(
            a.derived_key("form"),
            a_again.derived_key("form"),
            "every instance"
        );
        assert_ne!(a.derived_key("form"), b.derived_key("form"));
        assert_ne!(a.derived_key("form"), a.derived_key("other"));
    }

    #[test]
    fn the_state_cookie_opens_only_for_its_state_client_and_time() {
        let rp = |client: &str| {
            let cfg = RpConfig {
                client_id: client.into(),
                ..RpConfig::default()
            };
            Rp::new(cfg, Arc::new(MemoryStore::new())).unwrap()
        };
        let (a, a_again, other_client) = (rp("a"), rp("a"), rp("b"));
        let login = |expires_at| PendingLogin {
            nonce: "the-nonce".into(),
            verifier: "the-pkce-verifier".into(),
            return_to: "/postkasse/brev/1".into(),
            acr: Acr::High,
            expires_at,
        };
        let cookie = a.seal_pending("state-1", &login(now() + 600)).unwrap();
        assert!(!cookie.contains("the-pkce-verifier") && !cookie.contains("the-nonce"));
        let opened = a_again.open_pending("state-1", &cookie).unwrap();
        assert_eq!(
            (
                opened.verifier.as_str(),
                opened.return_to.as_str(),
                opened.acr
            ),
            ("the-pkce-verifier", "/postkasse/brev/1", Acr::High),
            "any instance of the client opens it"
        );
        assert!(
            a.open_pending("state-2", &cookie).is_none(),
            "another state"
        );
        assert!(other_client.open_pending("state-1", &cookie).is_none());
        let old = a.seal_pending("state-1", &login(now() - 1)).unwrap();
        assert!(a.open_pending("state-1", &old).is_none(), "expired");

        // The longest return_to the login route lets through, all quotes (which JSON
        // doubles): the cookie would be dropped by the browser, so the default is kept.
        let mut long = login(now() + 600);
        long.return_to = format!("/{}", "\"".repeat(2047));
        let cookie = a.seal_pending("state-3", &long).unwrap();
        assert!(cookie.len() <= MAX_STATE_COOKIE, "{}", cookie.len());
        let opened = a.open_pending("state-3", &cookie).unwrap();
        assert_eq!(opened.return_to, RpConfig::default().default_return_to);
        assert_eq!(opened.verifier, "the-pkce-verifier");
    }

    #[test]
    fn accepts_a_good_token() {
        let c = validate_claims(&claims(json!({})), &exp(Acr::Substantial)).unwrap();
        assert_eq!(c.pid, "04817197073");
        assert_eq!(c.sid.as_deref(), Some("s1"));
        let c = validate_claims(
            &claims(json!({"aud": ["app", "x"], "azp": "app"})),
            &exp(Acr::Substantial),
        );
        assert!(c.is_ok());
    }

    #[test]
    fn refuses_each_broken_claim() {
        for (patch, what) in [
            (json!({"iss": "https://other"}), "iss"),
            (json!({"aud": "other"}), "aud"),
            (json!({"aud": ["app", "x"]}), "azp"),
            (json!({"exp": 900}), "expired"),
            (json!({"exp": null}), "exp"),
            (json!({"iat": 2000}), "future"),
            (json!({"nonce": "n2"}), "nonce"),
            (json!({"nonce": "a-much-longer-nonce"}), "nonce"),
            (json!({"nonce": null}), "nonce"),
            (json!({"pid": null}), "pid"),
            (json!({"pid": "123"}), "pid"),
            (json!({"acr": "Level2"}), "acr"),
        ] {
            let r = validate_claims(&claims(patch.clone()), &exp(Acr::Substantial));
            assert!(r.is_err(), "{patch}");
            assert!(
                r.unwrap_err().to_string().contains(what) || what == "acr",
                "{what}"
            );
        }
        let r = validate_claims(&claims(json!({})), &exp(Acr::High));
        assert!(matches!(r, Err(RpError::InsufficientAcr { .. })));
        assert!(
            validate_claims(
                &claims(json!({"acr": "idporten-loa-high"})),
                &exp(Acr::High)
            )
            .is_ok()
        );
    }
}
