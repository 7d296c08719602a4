//! `/login`, `/callback`, `/logout` and `/frontchannel-logout`.

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use jose::b64;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Acr, PendingLogin, Rp, RpError, random_token, session_key};

/// The relying party's routes, to be nested at `cfg.base_path`.
pub fn router<S: Clone + Send + Sync + 'static>(rp: Rp) -> Router<S> {
    Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        // POST only: a link or redirect from another site (a top-level GET, which carries the
        // SameSite=Lax session cookie) must not end the citizen's sessions everywhere.
        .route("/logout", post(logout))
        .route("/frontchannel-logout", get(frontchannel_logout))
        .with_state(rp)
}

const MAX_RETURN_TO: usize = 2048;

/// Only same-origin relative paths: `/x`, never `//host`, `/\host` or a scheme.
pub(crate) fn safe_return_to(s: Option<&str>) -> Option<&str> {
    let s = s?;
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s.starts_with("/\\")
        && s.len() <= MAX_RETURN_TO
        // Visible ASCII only: a Location header cannot carry anything else.
        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    ok.then_some(s)
}

pub(crate) fn get_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn cookie(
    rp: &Rp,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    let cfg = rp.config();
    let age = match max_age {
        Some(a) => format!("; Max-Age={a}"),
        None => String::new(),
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax{age}{}",
        if cfg.cookie_secure { "; Secure" } else { "" }
    ))
    .ok()
}

/// The cookie of the login started with `state`: one per login in progress, so that logins
/// started in several tabs each complete. Named by the state's first characters (the seal
/// binds the whole state); only token characters of a callback's `state` count.
fn state_cookie_name(rp: &Rp, state: &str) -> String {
    let tag: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(STATE_COOKIE_TAG)
        .collect();
    format!("{}_state_{tag}", rp.config().cookie_name)
}

/// Characters of the state in its cookie's name: 72 random bits, so a browser's logins in
/// progress never share a name.
const STATE_COOKIE_TAG: usize = 12;

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"nb\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title></head>\n\
         <body><main><h1>{t}</h1><p>{x}</p></main></body>\n</html>\n",
        t = esc(title),
        x = esc(text)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors *"),
    );
    r
}

fn error_page(e: &RpError) -> Response {
    tracing::warn!(error = %e, code = e.code(), "login failed");
    let status = match e {
        RpError::Provider(_) => StatusCode::BAD_GATEWAY,
        RpError::Store(_) | RpError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        RpError::InsufficientAcr { .. } => StatusCode::FORBIDDEN,
        RpError::LoginRequired => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    page(
        status,
        "Innloggingen mislyktes / Login failed",
        &format!("{} ({})", e, e.code()),
    )
}

async fn login(State(rp): State<Rp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let cfg = rp.config();
    let return_to = safe_return_to(q.get("return_to").map(String::as_str))
        .unwrap_or(&cfg.default_return_to)
        .to_owned();
    let acr = q
        .get("acr")
        .and_then(|a| Acr::parse(a))
        .map_or(cfg.acr, |a| a.max(cfg.acr));
    let meta = match rp.metadata().await {
        Ok(m) => m,
        Err(e) => return error_page(&e),
    };
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let mut scopes = cfg.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let mut params: Vec<(&'static str, String)> = vec![
        ("response_type", "code".into()),
        ("client_id", cfg.client_id.clone()),
        ("redirect_uri", cfg.redirect_uri.clone()),
        ("scope", scopes.join(" ")),
        ("state", state.clone()),
        ("nonce", nonce.clone()),
        ("acr_values", acr.as_str().into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ];
    if let Some(l) = &cfg.ui_locales {
        params.push(("ui_locales", l.clone()));
    }
    let login = PendingLogin {
        nonce,
        verifier,
        return_to,
        acr,
        expires_at: crate::now() + crate::PENDING_TTL_SECS,
    };
    let sealed = match rp.seal_pending(&state, &login) {
        Ok(v) => v,
        Err(e) => return error_page(&e),
    };
    let target = match (cfg.use_par, &meta.pushed_authorization_request_endpoint) {
        (true, Some(par)) => {
            // Client authentication adds client_id itself where the method needs it.
            params.retain(|(k, _)| {
                *k != "client_id"
                    || !matches!(
                        cfg.client_auth,
                        crate::ClientAuth::ClientSecretPost { .. }
                            | crate::ClientAuth::PrivateKeyJwt { .. }
                    )
            });
            match rp.post_form(par, params).await {
                Ok(v) => match v.get("request_uri").and_then(Value::as_str) {
                    Some(uri) => with_query(
                        &meta.authorization_endpoint,
                        &[("client_id", &cfg.client_id), ("request_uri", uri)],
                    ),
                    None => {
                        return error_page(&RpError::Provider(
                            "PAR answer without request_uri".into(),
                        ));
                    }
                },
                Err(e) => return error_page(&e),
            }
        }
        _ => {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            with_query(&meta.authorization_endpoint, &p)
        }
    };
    let mut res = Redirect::to(&target).into_response();
    if let Some(c) = cookie(
        &rp,
        &state_cookie_name(&rp, &state),
        &sealed,
        &cfg.base_path_or_root(),
        Some(crate::PENDING_TTL_SECS.unsigned_abs()),
    ) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn with_query(base: &str, p: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(p);
            u.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

impl crate::RpConfig {
    fn base_path_or_root(&self) -> String {
        match self.base_path.trim_end_matches('/') {
            "" => "/".into(),
            p => p.into(),
        }
    }
}

async fn callback(
    State(rp): State<Rp>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cfg = rp.config();
    let Some(state) = q.get("state") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "state is missing (invalid_state)",
        );
    };
    // The state must be the one this browser started with (login CSRF): its cookie opens
    // only for that state. A used callback cannot be replayed either: the provider takes
    // each code once.
    let pending = get_cookie(&headers, &state_cookie_name(&rp, state))
        .and_then(|c| rp.open_pending(state, c));
    let Some(pending) = pending else {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "unknown, expired or foreign state (invalid_state); start the login again",
        );
    };
    if let Some(iss) = q.get("iss")
        && iss != &cfg.issuer
    {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "iss does not match the provider (mix-up)",
        );
    }
    if let Some(err) = q.get("error") {
        let status = if err == "access_denied" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        return page(
            status,
            "Innloggingen ble avbrutt / Login cancelled",
            &format!(
                "{err}: {}",
                q.get("error_description").map(String::as_str).unwrap_or("")
            ),
        );
    }
    let Some(code) = q.get("code") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "code is missing",
        );
    };
    let (session, secret) = match rp.finish_login(code, &pending).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    // A fresh session id on every login (no fixation); the old session ends.
    if let Some(old) = get_cookie(&headers, &cfg.cookie_name)
        && let Err(e) = rp.store().delete(&session_key(old)).await
    {
        return error_page(&RpError::Store(e));
    }
    if let Err(e) = rp.store().put(&session).await {
        return error_page(&RpError::Store(e));
    }
    tracing::info!(acr = session.acr.as_str(), "citizen logged in");
    let mut res = Redirect::to(&pending.return_to).into_response();
    let h = res.headers_mut();
    if let Some(c) = cookie(
        &rp,
        &cfg.cookie_name,
        &secret,
        &cfg.cookie_path,
        Some(cfg.session_ttl_secs),
    ) {
        h.append(header::SET_COOKIE, c);
    }
    // This login's cookie goes; those of logins in other tabs stay for their callbacks.
    if let Some(c) = cookie(
        &rp,
        &state_cookie_name(&rp, state),
        "",
        &cfg.base_path_or_root(),
        Some(0),
    ) {
        h.append(header::SET_COOKIE, c);
    }
    res
}

/// Ends the local session and sends the browser to the provider's end-session endpoint,
/// which ends the single sign-on session and the sessions of every other client.
async fn logout(State(rp): State<Rp>, headers: HeaderMap) -> Response {
    let cfg = rp.config();
    // A form posted from another site: browsers say so (Fetch Metadata); such a POST carries
    // no Lax cookie anyway, but it must not send the browser to the end-session endpoint.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return page(
            StatusCode::FORBIDDEN,
            "Utlogging avvist / Logout refused",
            "Utlogging må startes fra denne tjenesten. / Log out from this service's own page.",
        );
    }
    let session = match get_cookie(&headers, &cfg.cookie_name) {
        Some(c) => {
            let key = session_key(c);
            let s = rp.store().get(&key).await.ok().flatten();
            if let Err(e) = rp.store().delete(&key).await {
                return error_page(&RpError::Store(e));
            }
            s
        }
        None => None,
    };
    let fallback = cfg
        .post_logout_redirect_uri
        .clone()
        .unwrap_or_else(|| cfg.default_return_to.clone());
    let target = match (
        session,
        rp.metadata()
            .await
            .ok()
            .and_then(|m| m.end_session_endpoint),
    ) {
        (Some(s), Some(end)) => {
            let mut p = vec![("id_token_hint", s.id_token.as_str())];
            if let Some(u) = &cfg.post_logout_redirect_uri {
                p.push(("post_logout_redirect_uri", u));
            }
            if let Some(l) = &cfg.ui_locales {
                p.push(("ui_locales", l));
            }
            with_query(&end, &p)
        }
        _ => fallback,
    };
    let mut res = Redirect::to(&target).into_response();
    if let Some(c) = cookie(&rp, &cfg.cookie_name, "", &cfg.cookie_path, Some(0)) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// OIDC Front-Channel Logout: the provider loads this in an iframe with `iss` and `sid`;
/// every session of that `sid` ends, whatever browser it belongs to.
async fn frontchannel_logout(
    State(rp): State<Rp>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cfg = rp.config();
    if q.get("iss") != Some(&cfg.issuer) {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "iss is missing or not the provider",
        );
    }
    let Some(sid) = q.get("sid").filter(|s| !s.is_empty() && s.len() <= 256) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Ugyldig forespørsel / Bad request",
            "sid is missing",
        );
    };
    match rp.store().delete_by_sid(sid).await {
        Ok(n) => {
            tracing::info!(sessions = n, "front-channel logout");
            page(StatusCode::OK, "Logget ut / Logged out", "")
        }
        Err(e) => error_page(&RpError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_same_origin_only() {
        assert_eq!(safe_return_to(Some("/me?x=1")), Some("/me?x=1"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "me",
            "/a\nb",
            "/a\\b",
            "/ø",
            "/a b",
        ] {
            assert_eq!(safe_return_to(Some(bad)), None, "{bad}");
        }
    }
}
