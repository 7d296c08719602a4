//! Maskinporten stand-in (role `maskinporten`): the OAuth2 JWT-bearer grant (RFC 7523) for
//! organizations, enforcing the rules of the real service, issuing RS256 access tokens with
//! `consumer`/`supplier` claims, and publishing metadata and JWKS.
//!
//! Replay protection keeps every accepted grant's `jti` (and a hash of the whole grant) in
//! memory until the grant's `exp` plus the clock-skew allowance has passed. Because a grant
//! lives at most `max_grant_lifetime_secs + iat_skew_secs` (130 s), a restart forgets only
//! entries that can be replayed for at most that window; the cache is per process, so run
//! one instance (the real service is the place for HA).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod fixtures;
mod grant;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use fixtures::{
    ClientKey, ClientRegistration, Delegation, Fixtures, SCOPE_DPI_SEND, SCOPE_FORMIDLING,
    SCOPE_KRR_DIGITALPOST, SCOPE_KRR_KONTAKTINFO, defaults, orgnr_near,
};

/// The grant type Maskinporten accepts.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Configuration of the `maskinporten` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Fixture file with `[[clients]]` and `[[delegations]]`. Relative paths are taken from
    /// the role's data folder; default `maskinporten-fixtures.toml`, created on first start.
    pub fixtures: PathBuf,
    /// Folder of the shared test PKI (trust anchor for `x5c`, the token-signing key).
    /// Relative paths are taken from the role's data folder; default `../pki`.
    pub pki_dir: PathBuf,
    /// Further trust anchors (PEM files, relative to the data folder) for `x5c` chains, e.g.
    /// the Buypass/Commfides test roots to accept real test enterprise certificates. The
    /// test PKI's CA is always trusted.
    pub trust_anchors: Vec<PathBuf>,
    /// Name of the PKI signing key that signs access tokens.
    pub signing_key: String,
    /// Further PKI key names published in the JWKS (old keys during a rotation).
    pub published_keys: Vec<String>,
    /// Lifetime of issued access tokens in seconds.
    pub token_ttl_secs: i64,
    /// Largest `exp - iat` of a grant in seconds (the real service: 120).
    pub max_grant_lifetime_secs: i64,
    /// Allowed distance between a grant's `iat` and the server clock in seconds (real: 10).
    pub iat_skew_secs: i64,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// `delegation_source` claim of delegated tokens (the real service names Altinn).
    pub delegation_source: String,
    /// Most entries in the replay cache; further grants are refused until entries expire.
    pub max_replay_entries: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fixtures: PathBuf::from("maskinporten-fixtures.toml"),
            pki_dir: PathBuf::from("../pki"),
            trust_anchors: Vec::new(),
            signing_key: "maskinporten".into(),
            published_keys: Vec::new(),
            token_ttl_secs: 120,
            max_grant_lifetime_secs: 120,
            iat_skew_secs: 10,
            max_body_bytes: 64 * 1024,
            delegation_source: "https://tt02.altinn.no/".into(),
            max_replay_entries: 1_000_000,
        }
    }
}

pub(crate) struct AppState {
    pub cfg: Config,
    /// `public_url` + `/`: the issuer and the only accepted `aud`.
    pub issuer: String,
    pub key: pki::SigningKey,
    pub jwks: pki::jose::Jwks,
    /// Roots `x5c` chains must lead to.
    pub anchors: Vec<openssl::x509::X509>,
    pub registry: fixtures::Registry,
    pub fnr_policy: domain::FnrPolicy,
    /// replay key -> unix time after which it may be forgotten
    pub replay: Mutex<HashMap<String, i64>>,
}

/// The issuer for a role mounted at `public_url`: always with exactly one trailing slash.
pub fn issuer_for(public_url: &url::Url) -> String {
    format!("{}/", public_url.as_str().trim_end_matches('/'))
}

/// Builds the router. Mount it anywhere; issuer and endpoints come from `env.public_url`.
pub async fn router(cfg: &Config, env: &web::RoleEnv) -> anyhow::Result<Router> {
    let pki_dir = env.data_dir.join(&cfg.pki_dir);
    let pki = pki::TestPki::load_or_init(&pki_dir)?;
    let fx = fixtures::load_or_create(&env.data_dir.join(&cfg.fixtures), &pki)?;
    let registry = fixtures::Registry::from_fixtures(fx)?;
    let key = pki.signing_key(&cfg.signing_key)?;
    let mut jwks = pki::jose::Jwks {
        keys: vec![key.jwk()],
    };
    for name in &cfg.published_keys {
        jwks.keys.push(pki.signing_key(name)?.jwk());
    }
    let mut anchors = vec![pki.ca_cert().clone()];
    for path in &cfg.trust_anchors {
        let path = env.data_dir.join(path);
        let pem = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?;
        anchors.extend(
            openssl::x509::X509::stack_from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?,
        );
    }
    let state = AppState {
        cfg: cfg.clone(),
        issuer: issuer_for(&env.public_url),
        key,
        jwks,
        anchors,
        registry,
        fnr_policy: env.fnr_policy,
        replay: Mutex::new(HashMap::new()),
    };
    Ok(Router::new()
        .route("/token", post(token))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwk", get(jwks_handler))
        .with_state(Arc::new(state)))
}

/// An OAuth2 error response (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }
    pub fn grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

async fn token(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match token_inner(&st, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = e.error, description = %e.description, "maskinporten grant refused");
            e.into_response()
        }
    }
}

async fn token_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, st.cfg.max_body_bytes)
        .await
        .map_err(|_| OAuthError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "invalid_request",
            description: format!("Request body larger than {} bytes", st.cfg.max_body_bytes),
        })?;
    let mut grant_type = None;
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        let slot = match k.as_ref() {
            "grant_type" => &mut grant_type,
            "assertion" => &mut assertion,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("Parameter {k} is repeated"),
            ));
        }
        *slot = Some(v.into_owned());
    }
    match grant_type.as_deref() {
        None => return Err(OAuthError::new("invalid_request", "Missing grant_type")),
        Some(JWT_BEARER) => {}
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("Only {JWT_BEARER} is supported"),
            ));
        }
    }
    let Some(assertion) = assertion else {
        return Err(OAuthError::new("invalid_request", "Missing assertion"));
    };
    let issued = grant::accept(st, &assertion, grant::now())?;
    let mut res = Json(json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": st.cfg.token_ttl_secs,
        "scope": issued.scope,
    }))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn metadata(State(st): State<Arc<AppState>>) -> Response {
    Json(json!({
        "issuer": st.issuer,
        "token_endpoint": format!("{}token", st.issuer),
        "jwks_uri": format!("{}jwk", st.issuer),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "grant_types_supported": [JWT_BEARER],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512"],
        "authorization_details_types_supported": [],
    }))
    .into_response()
}

async fn jwks_handler(State(st): State<Arc<AppState>>) -> Response {
    let mut res = Json(&st.jwks).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}
