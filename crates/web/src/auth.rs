//! Authentication seams between services and the national infrastructure clients: a verifier
//! of incoming Maskinporten bearer tokens and a source of outgoing ones. The `clients` crate
//! implements both against Maskinporten (real or stand-in); services depend only on these
//! traits, and authorize on `consumer`, never on `client_id`.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use domain::ActorId;

use crate::Problem;

/// Scope of the bilateral DPI hops between the access point and the providers (corner 3 ↔ 4),
/// carried by the access point's tokens on delivery and by the providers' tokens on receipts.
pub const SCOPE_FORMIDLING: &str = "samspill:dpi.formidling";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A verified Maskinporten access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgPrincipal {
    /// The organization the token acts for; what services authorize on.
    pub consumer: ActorId,
    /// The organization acting on the consumer's behalf (databehandler), when delegated.
    pub supplier: Option<ActorId>,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// The token as presented (compared with tokens embedded in business messages).
    pub token: String,
}

impl OrgPrincipal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), Problem> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "insufficient_scope",
                format!("the token lacks the scope {scope}"),
            ))
        }
    }
}

/// Verifies incoming bearer tokens (signature, issuer, audience, expiry).
pub trait TokenVerifier: Send + Sync {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<OrgPrincipal, Problem>>;
}

/// Obtains outgoing bearer tokens for a scope (cached by the implementation).
pub trait TokenSource: Send + Sync {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, anyhow::Result<String>>;
}

/// Axum extractor: the verified Maskinporten principal of the request. Needs the router state
/// to hand out the verifier via [`HasTokenVerifier`].
#[derive(Debug, Clone)]
pub struct Org(pub OrgPrincipal);

/// Router states that can verify bearer tokens.
pub trait HasTokenVerifier {
    fn token_verifier(&self) -> Arc<dyn TokenVerifier>;
}

impl<S> FromRequestParts<S> for Org
where
    S: HasTokenVerifier + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let verifier = state.token_verifier();
        verifier.verify(&token).await.map(Org)
    }
}

/// The bearer token of a request, or 401 `missing_token`.
pub fn bearer_token(parts: &Parts) -> Result<String, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing_token", "no Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthorized("invalid_token", "Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(Problem::unauthorized(
            "missing_token",
            "expected Authorization: Bearer <token>",
        )),
    }
}
