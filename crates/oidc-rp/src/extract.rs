//! The `Citizen` extractors: a logged-in citizen, or a redirect to login (browsers) / a 401
//! problem (API clients). `CitizenHigh` additionally steps up to `idporten-loa-high`.

use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts, OriginalUri},
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};

use crate::{Acr, Rp, routes::get_cookie, session_key};

/// A citizen with a valid session at (at least) the configured level.
#[derive(Debug, Clone)]
pub struct Citizen {
    /// Fødselsnummer or D-nummer.
    pub pid: String,
    pub acr: Acr,
    /// ID-porten session id.
    pub sid: Option<String>,
    /// Pairwise subject at this client.
    pub sub: String,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Storage key of the session (not the cookie value).
    pub session_id: String,
}

/// A citizen logged in at `idporten-loa-high`; a lower session is sent to log in again at
/// high and comes back to the same URL.
#[derive(Debug, Clone)]
pub struct CitizenHigh(pub Citizen);

fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn login_url(rp: &Rp, parts: &Parts, acr: Option<Acr>) -> String {
    // A nested router sees its path without the mount prefix; the citizen must come back to
    // the URL the browser asked for, which axum keeps as `OriginalUri`.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut u = format!(
        "{}/login?return_to={}",
        rp.config().base_path.trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
    );
    if let Some(a) = acr {
        u.push_str("&acr=");
        u.push_str(a.as_str());
    }
    u
}

fn reject(rp: &Rp, parts: &Parts, acr: Option<Acr>) -> Response {
    if wants_html(&parts.method, &parts.headers) {
        return Redirect::to(&login_url(rp, parts, acr)).into_response();
    }
    match acr {
        Some(a) => web::Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient_acr",
            "A higher level of assurance is required",
        )
        .with_detail(format!("log in again at {}", a.as_str()))
        .with_extension("login", login_url(rp, parts, acr))
        .into_response(),
        None => web::Problem::unauthorized("login_required", "log in with ID-porten first")
            .with_extension("login", login_url(rp, parts, None))
            .into_response(),
    }
}

impl<S> FromRequestParts<S> for Citizen
where
    Rp: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let rp = Rp::from_ref(state);
        let Some(cookie) = get_cookie(&parts.headers, &rp.config().cookie_name) else {
            return Err(reject(&rp, parts, None));
        };
        let key = session_key(cookie);
        let session = match rp.store().get(&key).await {
            // Stores should hide expired sessions; do not rely on it.
            Ok(Some(s)) if s.expires_at > crate::now() => s,
            Ok(_) => return Err(reject(&rp, parts, None)),
            Err(e) => return Err(web::Problem::internal(e).into_response()),
        };
        if session.acr < rp.config().acr {
            return Err(reject(&rp, parts, Some(rp.config().acr)));
        }
        Ok(Citizen {
            pid: session.pid,
            acr: session.acr,
            sid: session.sid,
            sub: session.sub,
            name: session.name,
            locale: session.locale,
            session_id: session.id,
        })
    }
}

/// `Option<Citizen>`: `None` when nobody is logged in (for pages that work either way).
impl<S> OptionalFromRequestParts<S> for Citizen
where
    Rp: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Citizen as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(c) => Ok(Some(c)),
            Err(r) if r.status().is_server_error() => Err(r),
            Err(_) => Ok(None),
        }
    }
}

impl<S> FromRequestParts<S> for CitizenHigh
where
    Rp: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let c = <Citizen as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if c.acr < Acr::High {
            let rp = Rp::from_ref(state);
            return Err(reject(&rp, parts, Some(Acr::High)));
        }
        Ok(CitizenHigh(c))
    }
}
