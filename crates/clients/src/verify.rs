//! Verification of incoming RS256 JWTs: the generic [`JwtVerifier`] (issuer + JWKS) and the
//! Maskinporten-specific [`MaskinportenVerifier`] that services plug into
//! [`web::auth::Org`].

use std::sync::Arc;

use axum::http::StatusCode;
use domain::ActorId;
use serde_json::{Map, Value};
use web::{
    Problem,
    auth::{BoxFuture, OrgPrincipal, TokenVerifier},
};

use crate::jwks::{JwksCache, JwksError};

/// Why a token was refused. Codes are stable and end up in problem+json bodies.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("unsupported algorithm")]
    Alg,
    #[error("token has no kid")]
    NoKid,
    #[error("{0}")]
    Key(#[from] JwksError),
    #[error("signature does not verify")]
    Signature,
    #[error("token is from another issuer")]
    Issuer,
    #[error("token is for another audience")]
    Audience,
    #[error("token is not an access token (typ at+jwt)")]
    NotAccessToken,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token lacks a required claim: {0}")]
    Claim(&'static str),
    #[error("token lacks the scope {0}")]
    Scope(String),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed_token",
            VerifyError::Alg => "unsupported_alg",
            VerifyError::NoKid => "missing_kid",
            VerifyError::Key(JwksError::UnknownKid(_)) => "unknown_kid",
            VerifyError::Key(JwksError::Unavailable(..)) => "jwks_unavailable",
            VerifyError::Signature => "invalid_signature",
            VerifyError::Issuer => "wrong_issuer",
            VerifyError::Audience => "wrong_audience",
            VerifyError::NotAccessToken => "not_an_access_token",
            VerifyError::Expired => "token_expired",
            VerifyError::NotYetValid => "token_not_yet_valid",
            VerifyError::Claim(_) => "missing_claim",
            VerifyError::Scope(_) => "insufficient_scope",
        }
    }

    /// As an HTTP problem: 401 for bad tokens, 403 for a missing scope, 503 when the JWKS
    /// cannot be fetched (the token may well be good).
    pub fn to_problem(&self) -> Problem {
        match self {
            VerifyError::Scope(_) => Problem::forbidden(self.code(), self.to_string()),
            VerifyError::Key(JwksError::Unavailable(..)) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                self.code(),
                "Token issuer unavailable",
            ),
            _ => Problem::unauthorized(self.code(), self.to_string()),
        }
    }
}

/// Verifies RS256/384/512 JWTs from one issuer.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    issuer: String,
    audience: Option<String>,
    access_tokens_only: bool,
    jwks: JwksCache,
    /// Allowed clock skew in seconds for `exp`, `nbf` and `iat`.
    pub leeway_secs: i64,
}

impl JwtVerifier {
    /// `issuer` must match `iss` exactly (Maskinporten: with trailing slash; ID-porten:
    /// without). `audience`, when set, must be in `aud`.
    pub fn new(issuer: impl Into<String>, jwks: JwksCache, audience: Option<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience,
            access_tokens_only: false,
            jwks,
            leeway_secs: 5,
        }
    }

    /// Accept only access tokens (header `typ` `at+jwt`, RFC 9068 §2.1): an ID token or other
    /// JWT of the same issuer is refused as [`VerifyError::NotAccessToken`], checked before
    /// the audience.
    pub fn access_tokens_only(mut self) -> Self {
        self.access_tokens_only = true;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// Verify and return the claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        let d =
            pki::jose::decode(token.trim()).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        d.alg().map_err(|_| VerifyError::Alg)?;
        let kid = d.kid().ok_or(VerifyError::NoKid)?;
        let key = self.jwks.key(kid).await?;
        if !d.verify(&key).unwrap_or(false) {
            return Err(VerifyError::Signature);
        }
        let access_token = matches!(
            d.typ().map(str::to_ascii_lowercase).as_deref(),
            Some("at+jwt" | "application/at+jwt")
        );
        let claims = d.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(VerifyError::Issuer);
        }
        let now = crate::now_unix();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(VerifyError::Claim("exp"))?;
        if exp.saturating_add(self.leeway_secs) <= now {
            return Err(VerifyError::Expired);
        }
        for name in ["nbf", "iat"] {
            if let Some(t) = claims.get(name) {
                let t = t.as_i64().ok_or(VerifyError::Claim(name))?;
                if t.saturating_sub(self.leeway_secs) > now {
                    return Err(VerifyError::NotYetValid);
                }
            }
        }
        if self.access_tokens_only && !access_token {
            return Err(VerifyError::NotAccessToken);
        }
        if let Some(aud) = &self.audience
            && !has_audience(&claims, aud)
        {
            return Err(VerifyError::Audience);
        }
        Ok(claims)
    }
}

/// Whether `aud` is `audience` or an array holding it (RFC 7519 §4.1.3).
pub fn has_audience(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(audience)),
        _ => false,
    }
}

/// The space-separated `scope` claim as a list.
pub fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn actor(claims: &Map<String, Value>, name: &str) -> Option<ActorId> {
    let id = claims.get(name)?.get("ID")?.as_str()?;
    ActorId::parse(id).ok()
}

/// Settings for verifying Maskinporten tokens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskinportenVerifierConfig {
    /// Maskinporten's issuer with trailing slash, e.g. `https://test.maskinporten.no/`.
    pub issuer: String,
    /// JWKS; default `{issuer}jwk` (the real service's location).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Required `aud` (the `resource` the token was asked for); none = not checked.
    #[serde(default)]
    pub audience: Option<String>,
}

/// Verifier of Maskinporten access tokens; a [`web::auth::TokenVerifier`].
#[derive(Debug, Clone)]
pub struct MaskinportenVerifier {
    inner: JwtVerifier,
}

impl MaskinportenVerifier {
    pub fn new(cfg: &MaskinportenVerifierConfig, http: reqwest::Client) -> Self {
        let jwks_uri = cfg
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}jwk", cfg.issuer));
        Self {
            inner: JwtVerifier::new(
                cfg.issuer.clone(),
                JwksCache::new(jwks_uri, http),
                cfg.audience.clone(),
            ),
        }
    }

    /// Build on an already configured generic verifier (e.g. a tuned JWKS cache).
    pub fn from_jwt_verifier(inner: JwtVerifier) -> Self {
        Self { inner }
    }

    pub fn jwt_verifier(&self) -> &JwtVerifier {
        &self.inner
    }

    /// As the trait object [`web::auth::HasTokenVerifier`] hands out.
    pub fn into_dyn(self) -> Arc<dyn TokenVerifier> {
        Arc::new(self)
    }

    /// Verify and map to the principal services authorize on.
    pub async fn principal(&self, token: &str) -> Result<OrgPrincipal, VerifyError> {
        let claims = self.inner.verify(token).await?;
        let consumer = actor(&claims, "consumer").ok_or(VerifyError::Claim("consumer"))?;
        let supplier = match claims.get("supplier") {
            None => None,
            Some(_) => Some(actor(&claims, "supplier").ok_or(VerifyError::Claim("supplier"))?),
        };
        Ok(OrgPrincipal {
            consumer,
            supplier,
            scopes: scopes_of(&claims),
            client_id: claims
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            token: token.trim().to_owned(),
        })
    }
}

impl TokenVerifier for MaskinportenVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<OrgPrincipal, Problem>> {
        Box::pin(async move {
            self.principal(token).await.map_err(|e| {
                tracing::info!(code = e.code(), error = %e, "bearer token refused");
                e.to_problem()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_the_string_or_in_the_array() {
        let claims = |aud: serde_json::Value| {
            serde_json::json!({ "aud": aud })
                .as_object()
                .unwrap()
                .clone()
        };
        let api = "https://h/postkasse/digipost/api/v1";
        assert!(has_audience(&claims(serde_json::json!(api)), api));
        assert!(has_audience(
            &claims(serde_json::json!(["https://other/", api])),
            api
        ));
        assert!(!has_audience(
            &claims(serde_json::json!("https://h/idporten")),
            api
        ));
        assert!(!has_audience(
            &claims(serde_json::json!(["https://other/"])),
            api
        ));
        assert!(!has_audience(&claims(serde_json::json!(null)), api));
        assert!(!has_audience(&serde_json::Map::new(), api));
    }
}
