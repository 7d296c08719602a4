//! Clients of the national infrastructure that every samspill service uses, written so that
//! the same code runs against the real services and the stand-ins by configuration alone:
//!
//! - [`maskinporten::MaskinportenClient`]: obtains Maskinporten access tokens with a JWT grant
//!   signed by an enterprise certificate (`x5c`) or a registered key (`kid`), cached per scope
//!   set until shortly before expiry; implements [`web::TokenSource`].
//! - [`verify::MaskinportenVerifier`]: verifies incoming Maskinporten tokens (issuer, RS256
//!   signature via a JWKS fetched over HTTP and refetched on an unknown `kid`, expiry) and
//!   exposes `consumer`/`supplier`; implements [`web::TokenVerifier`], so services use the
//!   [`web::auth::Org`] extractor and authorize on `consumer`, never on `client_id`.
//! - [`verify::JwtVerifier`]: the generic part (issuer + JWKS), also used for ID-porten tokens.
//! - [`krr::KrrClient`]: KRR lookups batched 1000 per request, plus the KRR data model.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod jwks;
pub mod krr;
pub mod maskinporten;
pub mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

/// Errors of the outbound clients.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{service} refused the request ({status}): {error}: {description}")]
    Refused {
        service: &'static str,
        status: u16,
        error: String,
        description: String,
    },
    #[error("unexpected response from {0}")]
    BadResponse(&'static str),
    #[error("could not sign the grant: {0}")]
    Sign(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Http(_) => "upstream_unreachable",
            ClientError::Refused { .. } => "upstream_refused",
            ClientError::BadResponse(_) => "upstream_bad_response",
            ClientError::Sign(_) => "grant_signing_failed",
            ClientError::Config(_) => "client_config",
        }
    }
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
