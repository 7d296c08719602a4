//! `/token` (authorization code grant, three client authentication methods) and `/userinfo`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use pki::jose::{b64, decode_oidc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    Acr, AppState, MAX_ENTRIES, RefreshGrant,
    fixtures::Client,
    html::Lang,
    now,
    oauth::{OAuthError, Params, form_body, resource_indicators, secret_eq},
    random_token,
};

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const BASIC_CHALLENGE: &str = "Basic realm=\"idporten\"";

/// Percent-decoding of `application/x-www-form-urlencoded` text (RFC 6749 §2.3.1 asks for it
/// on the Basic credentials).
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the client of a `/token` or `/par` request; returns its client id.
pub(crate) fn authenticate_client(
    st: &AppState,
    headers: &HeaderMap,
    p: &Params,
) -> Result<String, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        });
    let post = p.get("client_secret").is_some();
    let jwt = p.get("client_assertion").is_some() || p.get("client_assertion_type").is_some();
    if [basic.is_some(), post, jwt].iter().filter(|b| **b).count() > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method was used",
        ));
    }
    let param_id = p.get("client_id");

    if let Some(cred) = basic {
        let fail = |d: &str| OAuthError::invalid_client(d).with_challenge(BASIC_CHALLENGE);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cred)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| fail("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| fail("malformed Basic credentials"))?;
        let (id, secret) = (
            form_decode(id).ok_or_else(|| fail("malformed Basic credentials"))?,
            form_decode(secret).ok_or_else(|| fail("malformed Basic credentials"))?,
        );
        if param_id.is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Basic credentials",
            ));
        }
        return check_secret(st, &id, &secret, "client_secret_basic")
            .map_err(|e| e.with_challenge(BASIC_CHALLENGE));
    }
    if post {
        let id = param_id.ok_or_else(|| OAuthError::invalid_client("client_id is missing"))?;
        let secret = p.get("client_secret").unwrap_or("");
        return check_secret(st, id, secret, "client_secret_post");
    }
    if jwt {
        return check_assertion(st, p);
    }
    Err(OAuthError::invalid_client(
        "client authentication is required",
    ))
}

fn check_secret(st: &AppState, id: &str, secret: &str, method: &str) -> Result<String, OAuthError> {
    let client = st
        .registry
        .clients
        .get(id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    if !client.allows_method(method) {
        return Err(OAuthError::invalid_client(format!(
            "{method} is not registered for this client"
        )));
    }
    match &client.reg.client_secret {
        Some(s) if secret_eq(s, secret) => Ok(id.to_owned()),
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// `private_key_jwt` (RFC 7523 §3): signed by a registered key, `iss` = `sub` = client id,
/// `aud` the issuer (or the endpoint), short-lived, `jti` never seen before.
fn check_assertion(st: &AppState, p: &Params) -> Result<String, OAuthError> {
    if p.get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {ASSERTION_TYPE}"
        )));
    }
    let token = p
        .get("client_assertion")
        .ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
    let bad = |d: String| OAuthError::invalid_client(d);
    let jws = decode_oidc(token).map_err(|e| bad(format!("client assertion: {e}")))?;
    let iss = jws
        .str_claim("iss")
        .ok_or_else(|| bad("client assertion has no iss".into()))?;
    if jws.str_claim("sub") != Some(iss) {
        return Err(bad("client assertion sub must equal iss".into()));
    }
    if p.get("client_id").is_some_and(|c| c != iss) {
        return Err(bad("client assertion iss does not match client_id".into()));
    }
    let client = st
        .registry
        .clients
        .get(iss)
        .ok_or_else(|| bad("unknown client".into()))?;
    if !client.allows_method("private_key_jwt") {
        return Err(bad(
            "private_key_jwt is not registered for this client".into()
        ));
    }
    jws.verify_with_jwks(&client.keys)
        .map_err(|e| bad(format!("client assertion: {e}")))?;
    let accepted = [
        st.issuer.clone(),
        format!("{}/", st.issuer),
        st.url("/token"),
        st.url("/par"),
    ];
    let aud_ok = match jws.claims.get("aud") {
        Some(Value::String(a)) => accepted.contains(a),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|x| accepted.iter().any(|y| y == x)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("client assertion aud must be the issuer".into()));
    }
    let t = now();
    let exp = jws
        .int_claim("exp")
        .ok_or_else(|| bad("client assertion has no exp".into()))?;
    if exp <= t {
        return Err(bad("client assertion has expired".into()));
    }
    let iat = jws.int_claim("iat").unwrap_or(t);
    if iat > t + 10 {
        return Err(bad("client assertion iat is in the future".into()));
    }
    if exp - iat > st.cfg.max_assertion_lifetime_secs {
        return Err(bad(format!(
            "client assertion lifetime exceeds {} seconds",
            st.cfg.max_assertion_lifetime_secs
        )));
    }
    let jti = jws
        .str_claim("jti")
        .ok_or_else(|| bad("client assertion has no jti".into()))?;
    let mut mem = st.mem();
    mem.assertion_jtis.retain(|_, e| *e > t);
    if mem.assertion_jtis.contains_key(jti) {
        return Err(bad("client assertion jti was already used".into()));
    }
    if mem.assertion_jtis.len() >= MAX_ENTRIES {
        return Err(OAuthError::new(
            "temporarily_unavailable",
            "too many assertions in flight",
        ));
    }
    mem.assertion_jtis.insert(jti.to_owned(), exp);
    Ok(iss.to_owned())
}

fn set(v: &mut Value, k: &str, val: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(k.to_owned(), val);
    }
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub(crate) async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match token_inner(&st, &headers, body) {
        Ok(v) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(v),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn token_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, OAuthError> {
    let p = form_body(headers, body)?;
    let client_id = authenticate_client(st, headers, &p)?;
    let client = st
        .registry
        .clients
        .get(&client_id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    match p.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => code_grant(st, &p, client),
        Some("refresh_token") if client.reg.refresh_tokens => refresh_grant(st, &p, client),
        Some("refresh_token") => Err(OAuthError::new(
            "unauthorized_client",
            "refresh tokens are not enabled for this client",
        )),
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
    }
}

/// What a token response is about, from a code or a refresh token.
struct Grant {
    pid: String,
    sid: String,
    acr: Acr,
    auth_time: i64,
    scope: Vec<String>,
    lang: Lang,
    nonce: Option<String>,
    /// The resource indicators of the authorization request (RFC 8707), kept by refresh
    /// tokens.
    resources: Vec<String>,
}

/// The access token's audience (RFC 8707 §2.2): the token request's `resource` values, each
/// one the grant was asked for when it names any; else the grant's. Empty = none requested.
fn audience(p: &Params, granted: &[String]) -> Result<Vec<String>, OAuthError> {
    let asked =
        resource_indicators(p.resources()).map_err(|d| OAuthError::new("invalid_target", d))?;
    if asked.is_empty() {
        return Ok(granted.to_vec());
    }
    if !granted.is_empty()
        && let Some(bad) = asked.iter().find(|r| !granted.contains(r))
    {
        return Err(OAuthError::new(
            "invalid_target",
            format!("resource {bad} was not requested in the authorization request"),
        ));
    }
    Ok(asked)
}

fn code_grant(st: &AppState, p: &Params, client: &Client) -> Result<Value, OAuthError> {
    let client_id = &client.reg.client_id;
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let verifier = p
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    if !valid_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43-128 unreserved characters",
        ));
    }
    let grant = {
        let mut mem = st.mem();
        let g = mem
            .codes
            .get_mut(code)
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired authorization code"))?;
        if &g.req.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if g.used {
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ));
        }
        // Burned on the first attempt, successful or not, so a verifier cannot be guessed.
        g.used = true;
        if g.created.elapsed() >= Duration::from_secs(st.cfg.code_ttl_secs) {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        g.clone()
    };
    match p.get("redirect_uri") {
        None => return Err(OAuthError::invalid_request("redirect_uri is missing")),
        Some(r) if r != grant.req.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        Some(_) => {}
    }
    if b64(&Sha256::digest(verifier.as_bytes())) != grant.req.code_challenge {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match code_challenge",
        ));
    }
    let aud = audience(p, &grant.req.resources)?;
    let g = Grant {
        pid: grant.pid,
        sid: grant.sid,
        acr: grant.acr,
        auth_time: grant.auth_time,
        scope: grant.req.scope,
        lang: grant.req.lang,
        nonce: grant.req.nonce,
        resources: grant.req.resources,
    };
    let refresh = client
        .reg
        .refresh_tokens
        .then(|| new_refresh(st, client_id, &g, &random_token()))
        .transpose()?;
    issue(st, client, &g, &aud, true, refresh)
}

/// One-time refresh tokens (RFC 9700 §4.14.2): each use returns a new one; presenting a used
/// one revokes the whole chain, since it means the token was stolen or replayed.
fn refresh_grant(st: &AppState, p: &Params, client: &Client) -> Result<Value, OAuthError> {
    let token = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let ttl = Duration::from_secs(st.cfg.refresh_token_ttl_secs);
    let old = {
        let mut mem = st.mem();
        let r = mem.refresh.get_mut(token).ok_or_else(|| {
            OAuthError::invalid_grant("unknown, expired or revoked refresh token")
        })?;
        if r.client_id != client.reg.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if r.used {
            let chain = r.chain.clone();
            mem.refresh.retain(|_, x| x.chain != chain);
            tracing::warn!(client = %client.reg.client_id, "refresh token reuse; chain revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ));
        }
        r.used = true;
        if r.created.elapsed() >= ttl {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        r.clone()
    };
    let mut scope = old.scope.clone();
    if let Some(asked) = p.get("scope") {
        let asked: Vec<String> = asked
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = asked.iter().find(|s| !old.scope.contains(s)) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {bad} was not granted"),
            ));
        }
        scope = asked;
    }
    let aud = audience(p, &old.resources)?;
    let g = Grant {
        pid: old.pid,
        sid: old.sid,
        acr: old.acr,
        auth_time: old.auth_time,
        scope,
        lang: old.lang,
        nonce: None,
        resources: old.resources,
    };
    let refresh = new_refresh(st, &client.reg.client_id, &g, &old.chain)?;
    issue(st, client, &g, &aud, false, Some(refresh))
}

fn new_refresh(
    st: &AppState,
    client_id: &str,
    g: &Grant,
    chain: &str,
) -> Result<String, OAuthError> {
    let ttl = Duration::from_secs(st.cfg.refresh_token_ttl_secs);
    let mut mem = st.mem();
    mem.refresh.retain(|_, r| r.created.elapsed() < ttl);
    if mem.refresh.len() >= MAX_ENTRIES {
        return Err(OAuthError::new(
            "temporarily_unavailable",
            "too many refresh tokens",
        ));
    }
    let token = random_token();
    mem.refresh.insert(
        token.clone(),
        RefreshGrant {
            chain: chain.to_owned(),
            client_id: client_id.to_owned(),
            pid: g.pid.clone(),
            sid: g.sid.clone(),
            acr: g.acr,
            auth_time: g.auth_time,
            scope: g.scope.clone(),
            lang: g.lang,
            resources: g.resources.clone(),
            created: Instant::now(),
            used: false,
        },
    );
    Ok(token)
}

/// `aud` of the access token: the requested resources; without any, the issuer (the real
/// service leaves `aud` out then). The ID token's is always the client.
fn issue(
    st: &AppState,
    client: &Client,
    g: &Grant,
    aud: &[String],
    with_id_token: bool,
    refresh: Option<String>,
) -> Result<Value, OAuthError> {
    let client_id = &client.reg.client_id;
    let t = now();
    let exp = t + st.cfg.token_ttl_secs as i64;
    let sub = st.pairwise_sub(client.sector(), &g.pid);
    let locale = g.lang.code();
    let scope = g.scope.join(" ");
    let fail = |_| {
        OAuthError::new("server_error", "token signing failed")
            .with_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    };
    let aud = match aud {
        [] => json!(st.issuer),
        [one] => json!(one),
        many => json!(many),
    };
    let at = json!({
        "iss": st.issuer, "aud": aud, "sub": sub, "client_id": client_id,
        "scope": scope, "pid": g.pid, "acr": g.acr.as_str(), "amr": ["TestID"],
        "locale": locale, "iat": t, "exp": exp, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut out = json!({
        "access_token": st.key.sign_jwt(&at, Some("at+jwt")).map_err(fail)?,
        "token_type": "Bearer",
        "expires_in": st.cfg.token_ttl_secs,
        "scope": scope,
    });
    if with_id_token {
        let mut id = json!({
            "iss": st.issuer, "aud": client_id, "sub": sub, "pid": g.pid,
            "acr": g.acr.as_str(), "amr": ["TestID"], "auth_time": g.auth_time,
            "sid": g.sid, "locale": locale, "iat": t, "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(n) = &g.nonce {
            set(&mut id, "nonce", json!(n));
        }
        if g.scope.iter().any(|s| s == "profile")
            && let Some(n) = st.registry.person_name(&g.pid)
        {
            set(&mut id, "name", json!(n));
        }
        set(
            &mut out,
            "id_token",
            json!(st.key.sign_jwt(&id, Some("JWT")).map_err(fail)?),
        );
    }
    if let Some(r) = refresh {
        set(&mut out, "refresh_token", json!(r));
        set(
            &mut out,
            "refresh_token_expires_in",
            json!(st.cfg.refresh_token_ttl_secs),
        );
    }
    Ok(out)
}

pub(crate) async fn userinfo(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let unauthorized = |d: &str| {
        OAuthError::new("invalid_token", d)
            .with_status(axum::http::StatusCode::UNAUTHORIZED)
            .with_challenge(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                d.replace('"', "'")
            ))
            .into_response()
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return OAuthError::new("invalid_request", "a Bearer access token is required")
            .with_status(axum::http::StatusCode::UNAUTHORIZED)
            .with_challenge("Bearer realm=\"idporten\"")
            .into_response();
    };
    let jws = match decode_oidc(token) {
        Ok(j) => j,
        Err(e) => return unauthorized(&e.to_string()),
    };
    if !st.verify_own(&jws) {
        return unauthorized("signature does not verify");
    }
    if jws.typ() != Some("at+jwt") {
        return unauthorized("not an access token");
    }
    if jws.str_claim("iss") != Some(st.issuer.as_str()) {
        return unauthorized("wrong issuer");
    }
    if jws.int_claim("exp").is_none_or(|e| e <= now()) {
        return unauthorized("the access token has expired");
    }
    let mut out = json!({
        "sub": jws.claims.get("sub"),
        "pid": jws.claims.get("pid"),
        "locale": jws.claims.get("locale"),
    });
    let has_profile = jws
        .str_claim("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == "profile"));
    if has_profile
        && let Some(n) = jws
            .str_claim("pid")
            .and_then(|p| st.registry.person_name(p))
    {
        set(&mut out, "name", json!(n));
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("bad%4"), None);
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&format!("{}!", "a".repeat(43))));
    }
}
