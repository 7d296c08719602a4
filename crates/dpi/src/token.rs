//! The Maskinporten access token embedded in `digital`/`utskrift`/`flyttet` (§3.3). Its
//! signature is Maskinporten's and is checked by the services that hold Maskinporten's keys,
//! not here; this module only exposes the claims (`consumer`, `supplier`, `scope`…).

use domain::ActorId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The scope a sender's token must carry.
pub const SCOPE_SEND: &str = "digitalpostinnbygger:send";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(rename = "ID")]
    pub id: String,
}

impl OrgClaim {
    pub fn actor_id(&self) -> Result<ActorId, domain::IdError> {
        ActorId::parse(&self.id)
    }
}

/// Claims of a Maskinporten token (unknown claims kept in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<OrgClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<OrgClaim>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl TokenClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == scope))
    }

    /// The organisation whose certificate signs: `supplier` if present, else `consumer` (§3.6 e).
    pub fn signing_party(&self) -> Option<&OrgClaim> {
        self.supplier.as_ref().or(self.consumer.as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("maskinportentoken is not a JWT: {0}")]
    Malformed(String),
    #[error("maskinportentoken claims are not valid: {0}")]
    Claims(String),
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::Claims(_) => "token_claims_invalid",
        }
    }
}

/// Decode the claims of a token WITHOUT verifying its signature (see module docs).
pub fn parse_unverified(token: &str) -> Result<TokenClaims, TokenError> {
    let (_, payload) =
        crate::jws::decode_unverified(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    serde_json::from_slice(&payload).map_err(|e| TokenError::Claims(e.to_string()))
}
