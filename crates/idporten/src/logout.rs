//! `end_session_endpoint`: RP-initiated logout (OIDC RP-Initiated Logout 1.0) that ends the
//! single sign-on session and tells every client of it through front-channel logout iframes
//! (OIDC Front-Channel Logout 1.0), then returns to the registered `post_logout_redirect_uri`.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{RawQuery, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};
use pki::jose::decode_oidc;
use serde_json::Value;

use crate::{
    AppState,
    authorize::SSO_COOKIE,
    html::{self, Lang},
    oauth::{Params, form_body, get_cookie, with_query},
};

pub(crate) async fn end_session(
    State(st): State<Arc<AppState>>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = if method == Method::POST {
        form_body(&headers, body).map_err(|e| e.description)
    } else {
        Params::parse(q.as_deref().unwrap_or(""))
    };
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            return html::error_page(Lang::Nb, StatusCode::BAD_REQUEST, "invalid_request", &e);
        }
    };
    let lang = Lang::from_ui_locales(p.get("ui_locales"));
    let bad = |d: &str| html::error_page(lang, StatusCode::BAD_REQUEST, "invalid_request", d);

    // The hint may be expired (that is the normal case), but it must be ours.
    let (hint_client, hint_sid) = match p.get("id_token_hint") {
        None => (None, None),
        Some(t) => {
            let Ok(jws) = decode_oidc(t) else {
                return bad("id_token_hint is not a valid JWT");
            };
            if !st.verify_own(&jws) || jws.str_claim("iss") != Some(st.issuer.as_str()) {
                return bad("id_token_hint was not issued by this provider");
            }
            let aud = match jws.claims.get("aud") {
                Some(Value::String(a)) => Some(a.clone()),
                Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
                _ => None,
            };
            (aud, jws.str_claim("sid").map(str::to_owned))
        }
    };
    let client_id = match (hint_client, p.get("client_id")) {
        (Some(h), Some(c)) if h != c => return bad("client_id does not match id_token_hint"),
        (Some(h), _) => Some(h),
        (None, c) => c.map(str::to_owned),
    };
    let continue_to = match p.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client) = client_id
                .as_deref()
                .and_then(|c| st.registry.clients.get(c))
            else {
                return bad(
                    "post_logout_redirect_uri needs id_token_hint or client_id of a known client",
                );
            };
            if !client
                .reg
                .post_logout_redirect_uris
                .iter()
                .any(|u| u == uri)
            {
                return bad("post_logout_redirect_uri is not registered for the client");
            }
            Some(match p.get("state") {
                Some(s) => with_query(uri, &[("state", s)]),
                None => uri.to_owned(),
            })
        }
    };

    let cookie_key = get_cookie(&headers, SSO_COOKIE).map(str::to_owned);
    let ended = {
        let mut mem = st.mem();
        let key = match &hint_sid {
            Some(sid) => mem
                .sessions
                .iter()
                .find(|(_, s)| &s.sid == sid)
                .map(|(k, _)| k.clone()),
            None => cookie_key.filter(|k| mem.sessions.contains_key(k)),
        };
        let ended = key.and_then(|k| mem.sessions.remove(&k));
        // Logging out also ends what the session's refresh tokens could still obtain.
        if let Some(s) = &ended {
            mem.refresh.retain(|_, r| r.sid != s.sid);
        }
        ended
    };
    let iframes: Vec<String> = ended
        .iter()
        .flat_map(|s| {
            s.clients.iter().filter_map(|c| {
                let uri = st
                    .registry
                    .clients
                    .get(c)?
                    .reg
                    .frontchannel_logout_uri
                    .as_deref()?;
                Some(with_query(uri, &[("iss", &st.issuer), ("sid", &s.sid)]))
            })
        })
        .collect();
    if let Some(s) = &ended {
        tracing::info!(sid = %s.sid, clients = s.clients.len(), "single sign-on session ended");
    }
    let mut res = html::logout_page(lang, &iframes, continue_to.as_deref());
    let clear = format!(
        "{SSO_COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
        st.cookie_path,
        if st.secure_cookies { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
