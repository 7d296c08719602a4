//! Validation of a JWT grant against the rules of the Maskinporten contract, and the access
//! token issued for it.

use std::time::{SystemTime, UNIX_EPOCH};

use domain::{ActorId, Fodselsnummer, Organisasjonsnummer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{AppState, OAuthError};

/// Claims a grant may carry; anything else is refused (contract: "Invalid assertion").
const ALLOWED_CLAIMS: &[&str] = &[
    "aud",
    "iss",
    "iat",
    "exp",
    "jti",
    "scope",
    "resource",
    "pid",
    "consumer_org",
    "authorization_details",
];

const AUTH_FAILED: &str = "Invalid assertion. Client authentication failed.";

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) struct IssuedToken {
    pub access_token: String,
    pub scope: String,
}

fn str_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(OAuthError::grant(format!(
            "Invalid assertion. Claim {name} must be a string"
        ))),
    }
}

fn int_claim(claims: &Map<String, Value>, name: &str) -> Result<i64, OAuthError> {
    match claims.get(name) {
        None => Err(OAuthError::grant(format!(
            "Invalid assertion. Missing required claim {name}"
        ))),
        Some(v) => v.as_i64().ok_or_else(|| {
            OAuthError::grant(format!(
                "Invalid assertion. Claim {name} must be an integer NumericDate"
            ))
        }),
    }
}

fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._-".contains(c))
}

/// Check everything and, if the grant is good, record it as used and issue a token.
pub(crate) fn accept(st: &AppState, assertion: &str, now: i64) -> Result<IssuedToken, OAuthError> {
    let jws = pki::jose::decode(assertion.trim())
        .map_err(|e| OAuthError::grant(format!("{AUTH_FAILED} Malformed JWT: {e} (MP-100)")))?;
    jws.alg()
        .map_err(|e| OAuthError::grant(format!("{AUTH_FAILED} {e} (MP-100)")))?;

    // Header: exactly one of kid / x5c.
    let kid = match jws.header.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(OAuthError::grant(format!(
                "{AUTH_FAILED} kid must be a string"
            )));
        }
    };
    let x5c = match jws.header.get("x5c") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| OAuthError::grant(format!("{AUTH_FAILED} x5c must hold strings")))?,
        ),
        Some(_) => {
            return Err(OAuthError::grant(format!(
                "{AUTH_FAILED} x5c must be an array"
            )));
        }
    };
    if kid.is_some() == x5c.is_some() {
        return Err(OAuthError::grant(format!(
            "{AUTH_FAILED} The JWT header must hold either kid or x5c"
        )));
    }

    // Claims: the set is closed.
    if let Some(unknown) = jws
        .claims
        .keys()
        .find(|k| !ALLOWED_CLAIMS.contains(&k.as_str()))
    {
        let shown: String = unknown.chars().take(40).collect();
        return Err(OAuthError::grant(format!(
            "Invalid assertion. Unknown claim {shown:?} is not allowed"
        )));
    }

    // Client.
    let client_id = str_claim(&jws.claims, "iss")?
        .ok_or_else(|| OAuthError::grant("Invalid assertion. Missing required claim iss"))?;
    let Some(client) = st.registry.clients.get(client_id) else {
        return Err(OAuthError::new(
            "invalid_client",
            "Client authentication failed. Unknown client",
        ));
    };

    // Signature: by the enterprise certificate or a registered key.
    let (public, client_amr) = if let Some(chain) = x5c {
        if !client.reg.allow_certificate {
            return Err(OAuthError::grant(format!(
                "{AUTH_FAILED} Client is not registered for certificate authentication (MP-120)"
            )));
        }
        let leaf = pki::verify_chain(&st.anchors, &chain).map_err(|e| {
            OAuthError::grant(format!("{AUTH_FAILED} Invalid certificate: {e} (MP-120)"))
        })?;
        match pki::orgnr_of(&leaf) {
            Some(o) if o == client.reg.orgnr => {}
            _ => {
                return Err(OAuthError::grant(format!(
                    "{AUTH_FAILED} Certificate does not belong to the client's organization (MP-120)"
                )));
            }
        }
        let public = leaf.public_key().map_err(|_| {
            OAuthError::grant(format!("{AUTH_FAILED} Invalid certificate (MP-120)"))
        })?;
        (public, "virksomhetssertifikat")
    } else {
        let kid = kid.unwrap_or_default();
        let Some(key) = client.keys.get(kid) else {
            return Err(OAuthError::grant(format!(
                "{AUTH_FAILED} Unknown kid for this client (MP-100)"
            )));
        };
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(OAuthError::grant(format!(
                "{AUTH_FAILED} Expired key (MP-121)"
            )));
        }
        (key.public.clone(), "private_key_jwt")
    };
    if !jws.verify(&public).unwrap_or(false) {
        return Err(OAuthError::grant(format!(
            "{AUTH_FAILED} Invalid signature (MP-100)"
        )));
    }

    // aud: exactly the issuer, one value.
    let aud_ok = match jws.claims.get("aud") {
        Some(Value::String(s)) => s == &st.issuer,
        Some(Value::Array(a)) => {
            a.len() == 1 && a.first().and_then(Value::as_str) == Some(&st.issuer)
        }
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::grant(format!(
            "Invalid assertion. Invalid JWT claim aud: expected exactly {} (MP-110)",
            st.issuer
        )));
    }

    // Time.
    let iat = int_claim(&jws.claims, "iat")?;
    let exp = int_claim(&jws.claims, "exp")?;
    if (now - iat).abs() > st.cfg.iat_skew_secs {
        return Err(OAuthError::grant(format!(
            "Invalid assertion. Invalid JWT claim iat: must be within {} seconds of the server clock",
            st.cfg.iat_skew_secs
        )));
    }
    if exp <= iat || exp - iat > st.cfg.max_grant_lifetime_secs {
        return Err(OAuthError::grant(format!(
            "Invalid assertion. Invalid JWT claim exp: exp - iat must be between 1 and {} seconds",
            st.cfg.max_grant_lifetime_secs
        )));
    }
    if exp <= now {
        return Err(OAuthError::grant(
            "Invalid assertion. The JWT has expired (exp)",
        ));
    }

    let jti = str_claim(&jws.claims, "jti")?;
    if jti.is_some_and(|j| j.is_empty() || j.len() > 256) {
        return Err(OAuthError::grant(
            "Invalid assertion. Invalid JWT claim jti",
        ));
    }

    // Scopes, own or delegated.
    let scope = str_claim(&jws.claims, "scope")?
        .ok_or_else(|| OAuthError::new("invalid_scope", "Missing required claim scope"))?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.is_empty() || scopes.len() > 50 {
        return Err(OAuthError::new(
            "invalid_scope",
            "The scope claim must name 1 to 50 scopes",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !valid_scope_token(s)) {
        let shown: String = bad.chars().take(40).collect();
        return Err(OAuthError::new(
            "invalid_scope",
            format!("Malformed scope {shown:?}"),
        ));
    }
    let consumer_org = match str_claim(&jws.claims, "consumer_org")? {
        None => None,
        Some(s) => Some(Organisasjonsnummer::parse(s).map_err(|e| {
            OAuthError::grant(format!("Invalid assertion. Invalid consumer_org: {e}"))
        })?),
    };
    let delegated = consumer_org.as_ref().filter(|c| *c != &client.reg.orgnr);
    for s in &scopes {
        let ok = match delegated {
            Some(consumer) => st.registry.delegated(consumer, &client.reg.orgnr, s),
            None => client.reg.scopes.iter().any(|r| r == s),
        };
        if !ok {
            let msg = match delegated {
                Some(c) => {
                    format!("Scope {s} has not been delegated by {c} to the client's organization")
                }
                None => format!("Scope {s} is not registered for the client"),
            };
            return Err(OAuthError::new("invalid_scope", msg));
        }
    }

    // resource: audience restriction.
    let resources: Vec<String> = match jws.claims.get("resource") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| OAuthError::new("invalid_target", "resource must hold strings"))?,
        Some(_) => {
            return Err(OAuthError::new(
                "invalid_target",
                "resource must be an array",
            ));
        }
    };
    if resources.len() > 10
        || resources.iter().any(|r| {
            url::Url::parse(r)
                .map(|u| u.cannot_be_a_base())
                .unwrap_or(true)
        })
    {
        return Err(OAuthError::new(
            "invalid_target",
            "resource must be up to 10 absolute URLs",
        ));
    }

    let pid = match str_claim(&jws.claims, "pid")? {
        None => None,
        Some(p) => Some(
            Fodselsnummer::parse(p, &st.fnr_policy)
                .map_err(|e| OAuthError::grant(format!("Invalid assertion. Invalid pid: {e}")))?,
        ),
    };
    if jws.claims.contains_key("authorization_details") {
        return Err(OAuthError::new(
            "invalid_authorization_details",
            "authorization_details (Altinn system users and consents) is not supported by this stand-in",
        ));
    }

    // Replay: the jti, and the exact grant even without a jti.
    let keep_until = exp + st.cfg.iat_skew_secs;
    let digest = hex::encode(Sha256::digest(assertion.trim().as_bytes()));
    {
        let mut cache = st.replay.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= st.cfg.max_replay_entries {
            cache.retain(|_, until| *until > now);
        }
        let jti_key = jti.map(|j| format!("jti\u{0}{client_id}\u{0}{j}"));
        let grant_key = format!("grant\u{0}{digest}");
        let used = cache.get(&grant_key).is_some_and(|u| *u > now)
            || jti_key
                .as_ref()
                .is_some_and(|k| cache.get(k).is_some_and(|u| *u > now));
        if used {
            return Err(OAuthError::grant(
                "Invalid assertion. The JWT has already been used (jti must be unique)",
            ));
        }
        if cache.len() >= st.cfg.max_replay_entries {
            return Err(OAuthError {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: "Too many grants in flight; retry shortly".into(),
            });
        }
        cache.insert(grant_key, keep_until);
        if let Some(k) = jti_key {
            cache.insert(k, keep_until);
        }
    }

    // The access token.
    let actor = |o: &Organisasjonsnummer| json!({ "authority": ActorId::AUTHORITY, "ID": ActorId::from(*o).to_string() });
    let scope_out = scopes.join(" ");
    let mut claims = json!({
        "iss": st.issuer,
        "client_amr": client_amr,
        "token_type": "Bearer",
        "aud": match resources.len() { 0 => json!("unspecified"), 1 => json!(resources.first()), _ => json!(resources) },
        "scope": scope_out,
        "client_id": client_id,
        "consumer": actor(delegated.unwrap_or(&client.reg.orgnr)),
        "iat": now,
        "exp": now + st.cfg.token_ttl_secs,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(obj) = claims.as_object_mut() {
        if delegated.is_some() {
            obj.insert("supplier".into(), actor(&client.reg.orgnr));
            obj.insert("delegation_source".into(), json!(st.cfg.delegation_source));
        }
        if let Some(p) = pid {
            obj.insert("pid".into(), json!(p.as_string()));
        }
    }
    let access_token = st.key.sign_jwt(&claims, None).map_err(|e| OAuthError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        error: "server_error",
        description: format!("signing failed: {}", e.code()),
    })?;
    Ok(IssuedToken {
        access_token,
        scope: scope_out,
    })
}
