//! `/authorize`, the login form behind it, and `/par`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{RawQuery, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde_json::json;

use crate::{
    Acr, AppState, MAX_ENTRIES, Mem, SsoSession,
    html::{self, Lang},
    now,
    oauth::{OAuthError, Params, form_body, get_cookie, resource_indicators, with_query},
    random_token,
};

pub(crate) const SSO_COOKIE: &str = "idporten_sso";
const MAX_PARAM_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    Query,
    FormPost,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub acr: Acr,
    pub lang: Lang,
    pub prompt_login: bool,
    pub prompt_none: bool,
    pub code_challenge: String,
    pub response_mode: ResponseMode,
    /// RFC 8707 resource indicators: the `aud` of the access tokens of this grant.
    pub resources: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub req: AuthRequest,
    pub sid: String,
    pub pid: String,
    pub acr: Acr,
    pub auth_time: i64,
    pub created: Instant,
    pub used: bool,
}

/// Where an error can be sent: back to the client, or only shown to the user.
#[derive(Debug)]
pub(crate) enum AuthError {
    Page(&'static str, String),
    /// A page error in the user's language.
    PageIn(Lang, &'static str, String),
    Redirect(Box<AuthRequestTarget>, &'static str, String),
}

#[derive(Debug)]
pub(crate) struct AuthRequestTarget {
    redirect_uri: String,
    state: Option<String>,
    mode: ResponseMode,
    lang: Lang,
}

impl AuthError {
    fn respond(self, st: &AppState) -> Response {
        match self {
            AuthError::Page(e, d) => html::error_page(Lang::Nb, StatusCode::BAD_REQUEST, e, &d),
            AuthError::PageIn(l, e, d) => html::error_page(l, StatusCode::BAD_REQUEST, e, &d),
            AuthError::Redirect(t, e, d) => {
                let mut p = vec![("error", e), ("error_description", d.as_str())];
                if let Some(s) = &t.state {
                    p.push(("state", s));
                }
                p.push(("iss", &st.issuer));
                send_to_client(&t.redirect_uri, t.mode, t.lang, &p)
            }
        }
    }

    /// The same error as JSON, for `/par`.
    fn into_oauth(self) -> OAuthError {
        match self {
            AuthError::Page(e, d) | AuthError::PageIn(_, e, d) | AuthError::Redirect(_, e, d) => {
                OAuthError::new(e, d)
            }
        }
    }
}

impl AuthError {
    fn page_in(self, lang: Lang) -> Self {
        match self {
            AuthError::Page(e, d) => AuthError::PageIn(lang, e, d),
            other => other,
        }
    }
}

fn send_to_client(
    redirect_uri: &str,
    mode: ResponseMode,
    lang: Lang,
    p: &[(&str, &str)],
) -> Response {
    match mode {
        ResponseMode::Query => Redirect::to(&with_query(redirect_uri, p)).into_response(),
        ResponseMode::FormPost => html::form_post_page(lang, redirect_uri, p),
    }
}

/// Validates authorization request parameters in the order the errors are defined: first
/// those that forbid a redirect (client, redirect URI), then those reported to the client.
pub(crate) fn validate(st: &AppState, p: &Params) -> Result<AuthRequest, AuthError> {
    let page = |e: &'static str, d: &str| AuthError::Page(e, d.to_owned());
    let client_id = p
        .get("client_id")
        .ok_or_else(|| page("invalid_request", "client_id is missing"))?;
    let client = st
        .registry
        .clients
        .get(client_id)
        .ok_or_else(|| page("invalid_client", "unknown client_id"))?;
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| page("invalid_request", "redirect_uri is missing"))?;
    if !client.reg.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(page(
            "invalid_request",
            "redirect_uri does not exactly match a registered redirect URI",
        ));
    }
    let state = p.get("state").map(str::to_owned);
    let lang = Lang::from_ui_locales(p.get("ui_locales"));
    let mut target = AuthRequestTarget {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        mode: ResponseMode::Query,
        lang,
    };
    let mode = match p.get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => {
            return Err(AuthError::Redirect(
                Box::new(target),
                "invalid_request",
                "unsupported response_mode".into(),
            ));
        }
    };
    target.mode = mode;
    let err =
        move |e: &'static str, d: &str| AuthError::Redirect(Box::new(target), e, d.to_owned());

    if p.get("request").is_some() {
        return Err(err(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    for name in ["state", "nonce"] {
        if p.get(name).is_some_and(|v| v.len() > MAX_PARAM_LEN) {
            return Err(err("invalid_request", &format!("{name} is too long")));
        }
    }
    match p.get("response_type") {
        None => return Err(err("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(err(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let scope: Vec<String> = match p.get("scope") {
        None => return Err(err("invalid_request", "scope is missing")),
        Some(s) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if !scope.iter().any(|s| s == "openid") {
        return Err(err("invalid_scope", "the openid scope is required"));
    }
    if let Some(bad) = scope.iter().find(|s| !client.allows_scope(s)) {
        return Err(err(
            "invalid_scope",
            &format!("scope {bad} is not registered for the client"),
        ));
    }
    let resources = match resource_indicators(p.resources()) {
        Ok(r) => r,
        Err(d) => return Err(err("invalid_target", &d)),
    };
    let code_challenge = match p.get("code_challenge") {
        None => return Err(err("invalid_request", "code_challenge is required (PKCE)")),
        Some(c) => c,
    };
    if p.get("code_challenge_method") != Some("S256") {
        return Err(err("invalid_request", "code_challenge_method must be S256"));
    }
    if code_challenge.len() != 43
        || !code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(err(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 value (43 characters)",
        ));
    }
    let acr = match p.get("acr_values") {
        None => Acr::Substantial,
        Some(v) => match v.split(' ').find_map(Acr::parse) {
            Some(a) => a,
            None => return Err(err("invalid_request", "unsupported acr_values")),
        },
    };
    let (mut prompt_login, mut prompt_none) = (false, false);
    if let Some(pr) = p.get("prompt") {
        for v in pr.split(' ').filter(|s| !s.is_empty()) {
            match v {
                "login" => prompt_login = true,
                "none" => prompt_none = true,
                // There is no consent screen; consent is implied by the registration.
                "consent" => {}
                _ => return Err(err("invalid_request", "unsupported prompt value")),
            }
        }
        if prompt_none && pr.split(' ').filter(|s| !s.is_empty()).count() > 1 {
            return Err(err("invalid_request", "prompt=none cannot be combined"));
        }
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce: p.get("nonce").map(str::to_owned),
        scope,
        acr,
        lang,
        prompt_login,
        prompt_none,
        code_challenge: code_challenge.to_owned(),
        response_mode: mode,
        resources,
    })
}

fn target_of(req: &AuthRequest) -> Box<AuthRequestTarget> {
    Box::new(AuthRequestTarget {
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
        mode: req.response_mode,
        lang: req.lang,
    })
}

pub(crate) async fn authorize(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Params::parse(q.as_deref().unwrap_or("")) {
        Ok(p) => authorize_with(&st, &headers, &p),
        Err(e) => AuthError::Page("invalid_request", e).respond(&st),
    }
}

/// OIDC Core 3.1.2.1: the authorization endpoint also takes a form POST.
pub(crate) async fn authorize_post(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match form_body(&headers, body) {
        Ok(p) => authorize_with(&st, &headers, &p),
        Err(e) => AuthError::Page(e.error, e.description).respond(&st),
    }
}

fn authorize_with(st: &AppState, headers: &HeaderMap, p: &Params) -> Response {
    let req = if let Some(uri) = p.get("request_uri") {
        match take_par(st, p, uri) {
            Ok(r) => r,
            Err(e) => {
                return e
                    .page_in(Lang::from_ui_locales(p.get("ui_locales")))
                    .respond(st);
            }
        }
    } else {
        match validate(st, p) {
            Ok(r) => r,
            Err(e) => {
                return e
                    .page_in(Lang::from_ui_locales(p.get("ui_locales")))
                    .respond(st);
            }
        }
    };

    let sso = get_cookie(headers, SSO_COOKIE).map(str::to_owned);
    let mut mem = st.mem();
    let ttl = Duration::from_secs(st.cfg.session_ttl_secs);
    let usable = sso.as_ref().and_then(|k| {
        mem.sessions
            .get(k)
            .filter(|s| s.created.elapsed() < ttl && s.acr >= req.acr)
            .map(|_| k.clone())
    });
    if let (Some(key), false) = (usable, req.prompt_login) {
        return issue_code(st, &mut mem, &req, &key);
    }
    if req.prompt_none {
        return AuthError::Redirect(
            target_of(&req),
            "login_required",
            "no single sign-on session at the requested level".into(),
        )
        .respond(st);
    }
    let rid = random_token();
    let login_ttl = Duration::from_secs(st.cfg.login_ttl_secs);
    mem.pending.retain(|_, (_, t)| t.elapsed() < login_ttl);
    if mem.pending.len() >= MAX_ENTRIES {
        return html::error_page(
            req.lang,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many logins in progress",
        );
    }
    mem.pending
        .insert(rid.clone(), (req.clone(), Instant::now()));
    drop(mem);
    render_login(st, &req, &rid, None, StatusCode::OK)
}

fn take_par(st: &AppState, p: &Params, uri: &str) -> Result<AuthRequest, AuthError> {
    let client_id = p
        .get("client_id")
        .ok_or_else(|| AuthError::Page("invalid_request", "client_id is missing".into()))?;
    if !uri.starts_with("urn:idporten:") {
        return Err(AuthError::Page(
            "request_uri_not_supported",
            "only request_uri values from /par are supported".into(),
        ));
    }
    let mut mem = st.mem();
    // Single use: taken out whether or not it is still valid.
    let (req, created) = mem.par.remove(uri).ok_or_else(|| {
        AuthError::Page(
            "invalid_request_uri",
            "request_uri is unknown or was already used".into(),
        )
    })?;
    if created.elapsed() >= Duration::from_secs(st.cfg.par_ttl_secs) {
        return Err(AuthError::Page(
            "invalid_request_uri",
            "request_uri has expired".into(),
        ));
    }
    if req.client_id != client_id {
        return Err(AuthError::Page(
            "invalid_request",
            "client_id does not match the pushed request".into(),
        ));
    }
    Ok(req)
}

fn render_login(
    st: &AppState,
    req: &AuthRequest,
    rid: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let persons: Vec<(String, String)> = st
        .registry
        .persons
        .iter()
        .map(|(f, n)| (f.as_string(), n.clone()))
        .collect();
    let client_name = st
        .registry
        .clients
        .get(&req.client_id)
        .map(|c| c.display_name())
        .unwrap_or(&req.client_id);
    let mut res = html::login_page(&html::LoginForm {
        lang: req.lang,
        action: &st.url("/login"),
        rid,
        client_name,
        persons: &persons,
        min_acr: req.acr,
        error,
    });
    *res.status_mut() = status;
    res
}

/// Adds the client to the session and sends a fresh single-use code to the client.
fn issue_code(st: &AppState, mem: &mut Mem, req: &AuthRequest, session_key: &str) -> Response {
    let Some(session) = mem.sessions.get_mut(session_key) else {
        return html::error_page(
            req.lang,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "session vanished",
        );
    };
    if !session.clients.contains(&req.client_id) {
        session.clients.push(req.client_id.clone());
    }
    let grant = CodeGrant {
        req: req.clone(),
        sid: session.sid.clone(),
        pid: session.pid.clone(),
        acr: session.acr,
        auth_time: session.auth_time,
        created: Instant::now(),
        used: false,
    };
    let code_ttl = Duration::from_secs(st.cfg.code_ttl_secs);
    mem.codes.retain(|_, g| g.created.elapsed() < code_ttl);
    if mem.codes.len() >= MAX_ENTRIES {
        return AuthError::Redirect(
            target_of(req),
            "temporarily_unavailable",
            "too many codes".into(),
        )
        .respond(st);
    }
    let code = random_token();
    mem.codes.insert(code.clone(), grant);
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        p.push(("state", s));
    }
    p.push(("iss", &st.issuer));
    send_to_client(&req.redirect_uri, req.response_mode, req.lang, &p)
}

pub(crate) async fn login(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let f = match form_body(&headers, body) {
        Ok(f) => f,
        Err(e) => return html::error_page(Lang::Nb, e.status, e.error, &e.description),
    };
    let Some(rid) = f.get("rid") else {
        return html::error_page(
            Lang::Nb,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "rid is missing",
        );
    };
    let login_ttl = Duration::from_secs(st.cfg.login_ttl_secs);
    let req = {
        let mem = st.mem();
        match mem.pending.get(rid) {
            Some((r, t)) if t.elapsed() < login_ttl => r.clone(),
            _ => {
                return html::error_page(
                    Lang::Nb,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the login form has expired or was already used; start again from the service",
                );
            }
        }
    };
    let l = req.lang;
    if f.get("action") == Some("cancel") {
        st.mem().pending.remove(rid);
        return AuthError::Redirect(
            target_of(&req),
            "access_denied",
            "the user cancelled the login".into(),
        )
        .respond(&st);
    }
    let pid = match (
        f.get("pid_other").map(str::trim).filter(|s| !s.is_empty()),
        f.get("pid"),
    ) {
        (Some(other), _) => match domain::Fodselsnummer::parse(other, &st.fnr_policy) {
            Ok(p) => p.as_string(),
            Err(_) => {
                let msg = match l {
                    Lang::Nb => "Fødselsnummeret er ikke gyldig.",
                    Lang::Nn => "Fødselsnummeret er ikkje gyldig.",
                    Lang::En => "The national identity number is not valid.",
                };
                return render_login(&st, &req, rid, Some(msg), StatusCode::BAD_REQUEST);
            }
        },
        (None, Some(p)) if st.registry.person_name(p).is_some() => p.to_owned(),
        _ => {
            let msg = match l {
                Lang::Nb => "Velg en testperson.",
                Lang::Nn => "Vel ein testperson.",
                Lang::En => "Choose a test person.",
            };
            return render_login(&st, &req, rid, Some(msg), StatusCode::BAD_REQUEST);
        }
    };
    let acr = match f.get("acr").and_then(Acr::parse) {
        Some(a) if a >= req.acr => a,
        _ => {
            let msg = match l {
                Lang::Nb => "Velg et sikkerhetsnivå som tjenesten godtar.",
                Lang::Nn => "Vel eit tryggleiksnivå som tenesta godtek.",
                Lang::En => "Choose a level of assurance the service accepts.",
            };
            return render_login(&st, &req, rid, Some(msg), StatusCode::BAD_REQUEST);
        }
    };

    let mut mem = st.mem();
    if mem.pending.remove(rid).is_none() {
        drop(mem);
        return html::error_page(
            l,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the login form was already used",
        );
    }
    let ttl = Duration::from_secs(st.cfg.session_ttl_secs);
    mem.sessions.retain(|_, s| s.created.elapsed() < ttl);
    let existing = get_cookie(&headers, SSO_COOKIE)
        .filter(|k| mem.sessions.get(*k).is_some_and(|s| s.pid == pid))
        .map(str::to_owned);
    let key = match existing {
        // Same person logging in again (step-up): the session and its sid carry on.
        Some(k) => {
            if let Some(s) = mem.sessions.get_mut(&k) {
                s.acr = s.acr.max(acr);
                s.auth_time = now();
            }
            k
        }
        None => {
            if let Some(old) = get_cookie(&headers, SSO_COOKIE) {
                mem.sessions.remove(old);
            }
            if mem.sessions.len() >= MAX_ENTRIES {
                return html::error_page(
                    l,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "too many sessions",
                );
            }
            let k = random_token();
            mem.sessions.insert(
                k.clone(),
                SsoSession {
                    sid: uuid::Uuid::new_v4().to_string(),
                    pid,
                    acr,
                    auth_time: now(),
                    created: Instant::now(),
                    clients: Vec::new(),
                },
            );
            k
        }
    };
    let mut res = issue_code(&st, &mut mem, &req, &key);
    drop(mem);
    let cookie = format!(
        "{SSO_COOKIE}={key}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        st.cookie_path,
        st.cfg.session_ttl_secs,
        if st.secure_cookies { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub(crate) async fn par(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut p = match form_body(&headers, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client_id = match crate::token::authenticate_client(&st, &headers, &p) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if p.get("request_uri").is_some() {
        return OAuthError::invalid_request("request_uri is not allowed in a pushed request")
            .into_response();
    }
    match p.get("client_id") {
        Some(c) if c != client_id => {
            return OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            )
            .into_response();
        }
        Some(_) => {}
        None => {
            p.insert("client_id", client_id.clone());
        }
    }
    let req = match validate(&st, &p) {
        Ok(r) => r,
        Err(e) => return e.into_oauth().into_response(),
    };
    let uri = format!("urn:idporten:{}", random_token());
    let ttl = Duration::from_secs(st.cfg.par_ttl_secs);
    {
        let mut mem = st.mem();
        mem.par.retain(|_, (_, t)| t.elapsed() < ttl);
        if mem.par.len() >= MAX_ENTRIES {
            return OAuthError::new("temporarily_unavailable", "too many pushed requests")
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .into_response();
        }
        mem.par.insert(uri.clone(), (req, Instant::now()));
    }
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"request_uri": uri, "expires_in": st.cfg.par_ttl_secs})),
    )
        .into_response()
}
