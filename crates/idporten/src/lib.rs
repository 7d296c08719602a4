//! ID-porten stand-in (role `idporten`): an OpenID Connect provider for citizen login that
//! follows the contract of the real ID-porten (portal-anchors.md §3.1) closely enough that the
//! same relying-party code runs against both. Authorization code flow with PKCE S256 only,
//! pushed authorization requests, `client_secret_basic` / `client_secret_post` /
//! `private_key_jwt`, RS256 id and access tokens with `pid`, `acr`, `amr`, `sid` and a pairwise
//! `sub`, userinfo, RP-initiated logout and front-channel logout to every client of a session.
//! Access tokens (header `typ` `at+jwt`) are audience-restricted to the API a client names
//! with `resource` (RFC 8707; at `/authorize` and `/par`, narrowed at `/token`): `aud` is that
//! value as sent (several: an array); ID tokens always have the client as `aud`.
//!
//! Clients and synthetic test persons come from a TOML fixture file (written with defaults on
//! first start); the signing key and the pairwise salt are kept in the role's data folder.
//! Sessions, pending logins, authorization codes, refresh tokens and PAR request URIs live
//! in memory only: a restart logs everybody out, which is what a test IdP should do. To
//! rotate the signing key, move [`KEY_FILE`] to [`PREVIOUS_KEY_FILE`] and restart.
//!
//! Endpoints (relative to the role's public URL, which is also the issuer): discovery at
//! `/.well-known/openid-configuration`, `/jwks.json`, `/authorize` (GET and POST), `/login`
//! (the form behind it), `/par`, `/token` (authorization code, one-time refresh tokens),
//! `/userinfo`, `/logout` (end session).
//!
//! Known differences from the real service: one host serves everything (the real one puts
//! `/authorize` and `/logout` on `login.` hosts); only `idporten-loa-substantial` and
//! `-high` (legacy `Level3`/`Level4`; `low` maps to substantial); no request objects,
//! `authorization_details`, introspection or revocation endpoints; an access token asked for
//! without a `resource` has the issuer as `aud` (the real one has no `aud` then); `amr` is
//! always `["TestID"]`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod authorize;
mod fixtures;
mod html;
mod logout;
mod oauth;
mod token;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use pki::jose;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use fixtures::{ClientRegistration, Fixtures, TestPerson, synthetic_pid};

/// Configuration of the `idporten` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Fixture file with `[[clients]]` and `[[persons]]`. Relative paths are taken from the
    /// role's data folder; default `idporten-fixtures.toml` there, created on first start.
    pub fixtures: PathBuf,
    /// Lifetime of an authorization code in seconds (single use in any case).
    pub code_ttl_secs: u64,
    /// Lifetime of a PAR `request_uri` in seconds.
    pub par_ttl_secs: u64,
    /// How long the login form stays valid, in seconds.
    pub login_ttl_secs: u64,
    /// Lifetime of id tokens and access tokens in seconds (the real service uses about 120).
    pub token_ttl_secs: u64,
    /// Lifetime of the single sign-on session in seconds.
    pub session_ttl_secs: u64,
    /// Lifetime of a refresh token in seconds (for clients with `refresh_tokens = true`).
    pub refresh_token_ttl_secs: u64,
    /// Largest accepted request body in bytes (token, PAR, login form).
    pub max_body_bytes: usize,
    /// Largest accepted `private_key_jwt` lifetime (`exp - iat`) in seconds.
    pub max_assertion_lifetime_secs: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fixtures: PathBuf::from("idporten-fixtures.toml"),
            code_ttl_secs: 60,
            par_ttl_secs: 60,
            login_ttl_secs: 900,
            token_ttl_secs: 120,
            session_ttl_secs: 1800,
            refresh_token_ttl_secs: 8 * 3600,
            max_body_bytes: 64 * 1024,
            max_assertion_lifetime_secs: 120,
        }
    }
}

/// ID-porten's levels of assurance, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

    /// Accepts the current values and the legacy `Level3`/`Level4`; `low` maps to substantial
    /// because ID-porten has no low-level login methods any more.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idporten-loa-substantial" | "Level3" | "idporten-loa-low" => Some(Acr::Substantial),
            "idporten-loa-high" | "Level4" => Some(Acr::High),
            _ => None,
        }
    }
}

/// The signing key in the data folder. To rotate: move it to [`PREVIOUS_KEY_FILE`] and
/// restart; a new key is made and both are published in the JWKS.
pub const KEY_FILE: &str = "idporten-signing-key.pem";
/// The previous signing key, published in the JWKS while tokens it signed may still be in use.
pub const PREVIOUS_KEY_FILE: &str = "idporten-signing-key.previous.pem";

/// Builds the router. Mount it anywhere; every absolute URL comes from `env.public_url`.
pub async fn router(cfg: &Config, env: &web::RoleEnv) -> anyhow::Result<Router> {
    let state = AppState::new(cfg, env)?;
    let limit = cfg.max_body_bytes;
    Ok(Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks))
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize_post),
        )
        .route("/login", axum::routing::post(authorize::login))
        .route("/par", axum::routing::post(authorize::par))
        .route("/token", axum::routing::post(token::token))
        .route("/userinfo", get(token::userinfo).post(token::userinfo))
        .route(
            "/logout",
            get(logout::end_session).post(logout::end_session),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(state)))
}

pub(crate) struct AppState {
    pub cfg: Config,
    /// `public_url` without a trailing slash; also the `iss` of every token.
    pub issuer: String,
    pub cookie_path: String,
    pub secure_cookies: bool,
    pub key: pki::SigningKey,
    /// The key before the last rotation, still published so tokens it signed stay valid.
    pub previous_key: Option<pki::SigningKey>,
    pub pairwise_salt: Vec<u8>,
    pub registry: fixtures::Registry,
    pub fnr_policy: domain::FnrPolicy,
    pub mem: Mutex<Mem>,
}

/// Everything that lives only in memory.
#[derive(Default)]
pub(crate) struct Mem {
    /// Login form id → the validated authorization request waiting for the tester.
    pub pending: HashMap<String, (authorize::AuthRequest, Instant)>,
    /// PAR `request_uri` → request.
    pub par: HashMap<String, (authorize::AuthRequest, Instant)>,
    pub codes: HashMap<String, authorize::CodeGrant>,
    /// SSO cookie value → session.
    pub sessions: HashMap<String, SsoSession>,
    /// Refresh token → grant.
    pub refresh: HashMap<String, RefreshGrant>,
    /// `jti` of accepted client assertions → their `exp`, to refuse replays.
    pub assertion_jtis: HashMap<String, i64>,
}

/// Upper bound on in-memory entries per map, so a flood of requests cannot exhaust memory.
pub(crate) const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    /// All refresh tokens descending from one login share a chain id, revoked together.
    pub chain: String,
    pub client_id: String,
    pub pid: String,
    pub sid: String,
    pub acr: Acr,
    pub auth_time: i64,
    pub scope: Vec<String>,
    pub lang: html::Lang,
    /// The authorization request's resource indicators (RFC 8707).
    pub resources: Vec<String>,
    pub created: Instant,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct SsoSession {
    pub sid: String,
    pub pid: String,
    pub acr: Acr,
    pub auth_time: i64,
    pub created: Instant,
    /// Clients that received tokens in this session, for front-channel logout.
    pub clients: Vec<String>,
}

impl AppState {
    fn new(cfg: &Config, env: &web::RoleEnv) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&env.data_dir)?;
        let issuer = env.public_url.as_str().trim_end_matches('/').to_owned();
        let cookie_path = match env.public_url.path().trim_end_matches('/') {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        let key = pki::SigningKey::load_or_create(&env.data_dir.join(KEY_FILE))?;
        let previous = env.data_dir.join(PREVIOUS_KEY_FILE);
        let previous_key = if previous.exists() {
            Some(pki::SigningKey::load_or_create(&previous)?)
        } else {
            None
        };
        let salt_path = env.data_dir.join("idporten-pairwise-salt");
        let pairwise_salt = match std::fs::read(&salt_path) {
            Ok(s) if s.len() >= 16 => s,
            _ => {
                let s = random_bytes(32).to_vec();
                std::fs::write(&salt_path, &s)?;
                s
            }
        };
        let origin = env.public_url.origin().ascii_serialization();
        let fixtures_path = env.data_dir.join(&cfg.fixtures);
        // The stand-in only ever serves test identities, so synthetic numbers are always fine.
        let fnr_policy = domain::FnrPolicy {
            allow_synthetic: true,
            ..env.fnr_policy
        };
        let registry = fixtures::load_or_create(&fixtures_path, &origin, &fnr_policy)?;
        tracing::info!(
            issuer,
            clients = registry.clients.len(),
            persons = registry.persons.len(),
            "idporten stand-in ready"
        );
        Ok(Self {
            cfg: cfg.clone(),
            issuer,
            cookie_path,
            secure_cookies: env.public_url.scheme() == "https",
            key,
            previous_key,
            pairwise_salt,
            registry,
            fnr_policy,
            mem: Mutex::new(Mem::default()),
        })
    }

    /// Current key first, then the previous one.
    pub fn public_keys(&self) -> impl Iterator<Item = &pki::SigningKey> {
        std::iter::once(&self.key).chain(self.previous_key.as_ref())
    }

    /// Checks a token this provider signed, with the current or the previous key.
    pub fn verify_own(&self, jws: &jose::Decoded) -> bool {
        self.public_keys().any(|k| jws.verify_with(k.key()).is_ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn mem(&self) -> std::sync::MutexGuard<'_, Mem> {
        // A poisoned lock only means another request panicked; the maps are still usable.
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pairwise `sub`: HMAC-SHA256(salt, sector ‖ pid), so services cannot correlate users.
    pub fn pairwise_sub(&self, sector: &str, pid: &str) -> String {
        use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
        let mac = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let k = PKey::hmac(&self.pairwise_salt)?;
            let mut s = Signer::new(MessageDigest::sha256(), &k)?;
            s.update(sector.as_bytes())?;
            s.update(b"\0")?;
            s.update(pid.as_bytes())?;
            s.sign_to_vec()
        })();
        match mac {
            Ok(m) => jose::b64(&m),
            // Never reached with a valid salt; fall back to a plain hash rather than fail.
            Err(_) => {
                use sha2::{Digest, Sha256};
                jose::b64(&Sha256::digest(format!("{sector}\0{pid}").as_bytes()))
            }
        }
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// A random URL-safe token with 256 bits of entropy.
pub(crate) fn random_token() -> String {
    jose::b64(&random_bytes(32))
}

async fn discovery(State(st): State<Arc<AppState>>) -> Response {
    let doc = json!({
        "issuer": st.issuer,
        "authorization_endpoint": st.url("/authorize"),
        "pushed_authorization_request_endpoint": st.url("/par"),
        "token_endpoint": st.url("/token"),
        "userinfo_endpoint": st.url("/userinfo"),
        "end_session_endpoint": st.url("/logout"),
        "jwks_uri": st.url("/jwks.json"),
        "scopes_supported": ["openid", "profile"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "acr_values_supported": ["idporten-loa-substantial", "idporten-loa-high"],
        "ui_locales_supported": ["nb", "nn", "en"],
        "prompt_values_supported": ["login", "none"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "jti", "nonce",
                             "pid", "acr", "amr", "sid", "locale", "name"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
    });
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(doc)).into_response()
}

async fn jwks(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(json!({ "keys": st.public_keys().map(|k| k.jwk()).collect::<Vec<_>>() })),
    )
        .into_response()
}
