//! The citizen's mailbox web app (DPI corner 4, the citizen side of `postkasse`): login with
//! ID-porten through [`oidc_rp`], the inbox with filters, search, keyset paging, folders and
//! bulk actions, the letter view (PDF, text, images, sanitized HTML under a strict CSP, the
//! opening-receipt consent), smart views of the `lenke`, `arrangement` and `bevis`
//! extensions (barcodes as SVG, `.ics` download), step-up to `idporten-loa-high` for level-4
//! letters, the citizen's own uploaded documents, and the notification pages.
//!
//! Server-rendered with askama (escaping on), no JavaScript, Designsystemet CSS served from
//! `assets/node_modules` when installed (pages stay usable without it), in bokmål, nynorsk
//! and English ([`i18n`]). Every letter operation goes through [`postkasse::Mailbox`], which
//! scopes every query to the logged-in citizen.
//!
//! Routes, relative to where [`router`] is mounted (the role's public URL):
//! `/innboks…` (pages), `/auth/…` (login, callback, logout, front-channel logout).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod barcode;
pub mod escape;
pub mod html;
pub mod i18n;
pub mod ics;
pub mod notify;
mod pages;
pub mod uploads;
pub mod views;
mod worker;

pub use worker::spawn_workers;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, Request},
    http::{HeaderMap, HeaderValue, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use bytes::Bytes;
use domain::Organisasjonsnummer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Configuration of the citizen web app. Printing it never shows the OIDC settings or the
/// client secret (they are not serialized).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The OpenID Connect relying party (ID-porten). When absent it is derived from the
    /// role's public URL: the `idporten` role next to this one, client `samspill-postkasse`
    /// with the stand-in's default secret, callback `<public url>/auth/callback`.
    #[serde(skip_serializing)]
    pub oidc: Option<oidc_rp::RpConfig>,
    /// Client secret used when `oidc` is derived (the stand-in's default fixture secret).
    #[serde(skip_serializing)]
    pub client_secret: String,
    /// Folder with the npm packages (`scripts/setup-assets`); the Designsystemet CSS is read
    /// from it at start. Relative paths are taken from the working directory.
    pub assets_dir: PathBuf,
    /// Letters per inbox page (1–100).
    pub page_size: u32,
    /// Largest document a citizen may upload, in bytes.
    pub max_upload_bytes: usize,
    /// Most documents one citizen may keep.
    pub max_uploads_per_citizen: usize,
    /// Folder for uploaded documents and the notification outbox, relative to the role's
    /// data folder.
    pub files_dir: PathBuf,
    /// Notifications of letters (e-mail and SMS).
    pub notify: notify::NotifyConfig,
    /// Where login sessions live (see [`session_store`]).
    pub session_store: SessionStoreKind,
    /// Seconds a session read from the database is trusted without asking it again. A logout
    /// on another instance takes effect here after at most this long; 0 asks every time.
    pub session_cache_secs: u64,
}

/// Where the app keeps its citizens' login sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStoreKind {
    /// The service's database: a restart logs no one out, and instances on the same
    /// database share the sessions.
    #[default]
    Database,
    /// This process only: a restart logs every citizen out.
    Memory,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            oidc: None,
            client_secret: "samspill-postkasse-secret-change-me".into(),
            assets_dir: PathBuf::from("assets/node_modules"),
            page_size: 20,
            max_upload_bytes: 10 * 1024 * 1024,
            max_uploads_per_citizen: 200,
            files_dir: PathBuf::from("innboks"),
            notify: notify::NotifyConfig::default(),
            session_store: SessionStoreKind::default(),
            session_cache_secs: 5,
        }
    }
}

/// The session store `cfg` asks for, for the relying party the app will be (its `client_id`
/// scopes the sessions in a shared database, its credential keys what rests there).
pub fn session_store(
    cfg: &Config,
    env: &web::RoleEnv,
    db: store::Db,
) -> Result<Arc<dyn oidc_rp::SessionStore>, oidc_rp::RpError> {
    Ok(match cfg.session_store {
        SessionStoreKind::Memory => Arc::new(oidc_rp::MemoryStore::new()),
        SessionStoreKind::Database => Arc::new(oidc_rp::DbStore::new(
            db,
            &rp_config(cfg, env),
            std::time::Duration::from_secs(cfg.session_cache_secs),
        )?),
    })
}

/// What the composition root hands the app.
#[derive(Clone)]
pub struct Deps {
    /// The mailbox provider whose citizens this app serves (all its tenants).
    pub postkasse: postkasse::AppState,
    /// Where login sessions live.
    pub sessions: Arc<dyn oidc_rp::SessionStore>,
    /// SMS gateway for notifications; none = SMS go to the outbox folder only.
    pub sms: Option<Arc<dyn notify::SmsGateway>>,
}

/// Router state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub cfg: Config,
    pub postkasse: postkasse::AppState,
    pub rp: oidc_rp::Rp,
    /// Path prefix under which the router is mounted, without trailing slash (may be "").
    pub base: String,
    pub fnr_policy: domain::FnrPolicy,
    pub css: Option<Bytes>,
    pub theme_css: Option<Bytes>,
    /// Key of the form tokens (CSRF), alike on every instance.
    pub form_key: [u8; 32],
    /// fødselsnummer → the tenant where the citizen has a mailbox.
    pub tenant_of: Mutex<HashMap<String, Organisasjonsnummer>>,
    pub uploads: uploads::Uploads,
    pub outbox: notify::Outbox,
    pub email: Option<Arc<dyn notify::EmailGateway>>,
    pub sms: Option<Arc<dyn notify::SmsGateway>>,
    /// `received_at` (ms) of the newest letter the notification scanner has seen.
    pub scan_mark: Mutex<Option<i64>>,
}

impl FromRef<AppState> for oidc_rp::Rp {
    fn from_ref(s: &AppState) -> oidc_rp::Rp {
        s.0.rp.clone()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("base", &self.0.base)
            .finish_non_exhaustive()
    }
}

fn sibling(public_url: &url::Url, role: &str) -> String {
    let mut u = public_url.clone();
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty().pop().push(role);
    }
    u.as_str().trim_end_matches('/').to_owned()
}

/// The relying party the app is: `cfg.oidc`, or else the one derived from the role's URL.
fn rp_config(cfg: &Config, env: &web::RoleEnv) -> oidc_rp::RpConfig {
    cfg.oidc
        .clone()
        .unwrap_or_else(|| default_rp_config(cfg, env))
}

/// The relying-party configuration derived from the role's public URL.
pub fn default_rp_config(cfg: &Config, env: &web::RoleEnv) -> oidc_rp::RpConfig {
    let public = env.public_url.as_str().trim_end_matches('/').to_owned();
    let path = env.public_url.path().trim_end_matches('/').to_owned();
    oidc_rp::RpConfig {
        issuer: sibling(&env.public_url, "idporten"),
        client_id: "samspill-postkasse".into(),
        client_auth: oidc_rp::ClientAuth::ClientSecretBasic {
            secret: cfg.client_secret.clone().into(),
        },
        redirect_uri: format!("{public}/auth/callback"),
        post_logout_redirect_uri: Some(format!("{public}/")),
        scopes: vec!["openid".into(), "profile".into()],
        acr: oidc_rp::Acr::Substantial,
        ui_locales: None,
        base_path: format!("{path}/auth"),
        default_return_to: format!("{path}/innboks"),
        cookie_name: "innboks_session".into(),
        cookie_secure: env.public_url.scheme() == "https",
        cookie_path: if path.is_empty() { "/".into() } else { path },
        ..oidc_rp::RpConfig::default()
    }
}

fn read_asset(dir: &std::path::Path, rel: &str) -> Option<Bytes> {
    let p = dir.join(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(Bytes::from(b)),
        Err(_) => {
            tracing::warn!(
                path = %p.display(),
                "Designsystemet CSS not found (run scripts/setup-assets); pages use the fallback styles"
            );
            None
        }
    }
}

impl AppState {
    pub fn new(cfg: Config, env: &web::RoleEnv, deps: Deps) -> anyhow::Result<Self> {
        let rp = oidc_rp::Rp::new(rp_config(&cfg, env), deps.sessions.clone())
            .map_err(|e| anyhow::anyhow!("oidc: {e}"))?;
        let form_key = rp.derived_key("innboks form token");
        let base = env.public_url.path().trim_end_matches('/').to_owned();
        let css = read_asset(
            &cfg.assets_dir,
            "@digdir/designsystemet-css/dist/src/index.css",
        );
        let theme_css = read_asset(
            &cfg.assets_dir,
            "@digdir/designsystemet-css/dist/theme/designsystemet.css",
        );
        let files = env.data_dir.join(&cfg.files_dir);
        let uploads = uploads::Uploads::new(
            files.join("uploads"),
            cfg.max_upload_bytes,
            cfg.max_uploads_per_citizen,
        );
        let outbox = notify::Outbox::new(files.join("outbox"));
        let email: Option<Arc<dyn notify::EmailGateway>> = match &cfg.notify.smtp {
            Some(smtp) => Some(Arc::new(
                notify::SmtpGateway::new(smtp, &cfg.notify.from)
                    .map_err(|e| anyhow::anyhow!("smtp: {e}"))?,
            )),
            None => None,
        };
        Ok(Self(Arc::new(Inner {
            cfg,
            postkasse: deps.postkasse,
            rp,
            base,
            fnr_policy: env.fnr_policy,
            css,
            theme_css,
            form_key,
            tenant_of: Mutex::new(HashMap::new()),
            uploads,
            outbox,
            email,
            sms: deps.sms,
            scan_mark: Mutex::new(None),
        })))
    }

    /// The notification outbox (development channel and the citizen's notification page).
    pub fn outbox(&self) -> &notify::Outbox {
        &self.0.outbox
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.0
    }

    /// The form token (CSRF) of a session: from the session's storage id and a key every
    /// instance derives from the client credential ([`oidc_rp::Rp::derived_key`]), so it holds
    /// across restarts and instances, and reading the session table is not enough to forge it.
    pub(crate) fn form_token(&self, session_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.0.form_key);
        h.update(b"form\0");
        h.update(session_id.as_bytes());
        hex::encode(h.finalize())
    }

    pub(crate) fn check_form_token(&self, session_id: &str, token: &str) -> bool {
        let want = self.form_token(session_id);
        want.len() == token.len()
            && want
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A cookie's value from the request headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The strict policy of every page: our own CSS (plus inline style attributes, for the
/// issuer colour of a bevis card), images from us or `data:`, frames only from us
/// (documents), no scripts at all, forms only to us (and the logout redirect to ID-porten).
pub(crate) fn page_csp(idp_origin: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; \
         img-src 'self' data:; frame-src 'self'; object-src 'none'; \
         form-action 'self' {idp_origin}; base-uri 'none'; frame-ancestors 'none'"
    )
}

async fn security_headers(csp: HeaderValue, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::X_FRAME_OPTIONS) {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, private"),
        );
    }
    res
}

/// Gives handlers and extractors the URI as the browser sent it: nesting strips the mount
/// prefix, but the language switch (`pages::Here`) needs the full path. (The login redirect
/// of `oidc_rp::Citizen` reads `OriginalUri` itself.)
async fn original_uri(mut req: Request, next: Next) -> Response {
    if let Some(o) = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .cloned()
    {
        *req.uri_mut() = o.0;
    }
    next.run(req).await
}

/// Passes the page language to ID-porten (`ui_locales`) on the login redirect, which the
/// relying party builds from its fixed configuration.
async fn login_locale(req: Request, next: Next) -> Response {
    let lang = i18n::Lang::from_headers(req.headers());
    let is_login = req.uri().path().ends_with("/login");
    let mut res = next.run(req).await;
    if !is_login || !res.status().is_redirection() {
        return res;
    }
    let new_loc = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.contains('?') && !l.contains("ui_locales="))
        .map(|l| format!("{l}&ui_locales={}", lang.code()));
    if let Some(l) = new_loc.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LOCATION, l);
    }
    res
}

/// The app's routes; mount at the role's public URL path (e.g. nest under `/postkasse`, or
/// merge into the `postkasse` role's router).
pub fn router(state: AppState) -> Router {
    let upload_limit = state.0.cfg.max_upload_bytes + 64 * 1024;
    let rp_issuer = state.0.rp.config().issuer.clone();
    let auth = oidc_rp::router::<()>(state.0.rp.clone()).layer(middleware::from_fn(login_locale));
    let pages = Router::new()
        .route("/innboks", get(pages::inbox))
        .route("/innboks/", get(pages::inbox))
        .route("/innboks/velkommen", get(pages::welcome))
        .route("/innboks/sprak/{lang}", get(pages::set_language))
        .route("/innboks/handling", post(pages::bulk))
        .route("/innboks/brev/{id}", get(pages::letter))
        .route("/innboks/brev/{id}/kvittering", post(pages::accept_receipt))
        .route("/innboks/brev/{id}/flytt", post(pages::move_letter))
        .route("/innboks/brev/{id}/ulest", post(pages::mark_unread))
        .route("/innboks/brev/{id}/dokument/{n}", get(pages::document))
        .route(
            "/innboks/brev/{id}/dokument/{n}/vis",
            get(pages::html_document),
        )
        .route(
            "/innboks/brev/{id}/dokument/{n}/kalender.ics",
            get(pages::calendar),
        )
        .route(
            "/innboks/dokumenter",
            get(pages::my_documents)
                .post(pages::upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/innboks/dokumenter/{id}", get(pages::my_document))
        .route("/innboks/varsler", get(pages::notifications))
        .route("/innboks/static/ds.css", get(pages::ds_css))
        .route("/innboks/static/theme.css", get(pages::theme_css))
        .route("/innboks/static/app.css", get(pages::app_css))
        .route("/", get(pages::root))
        .route_layer(middleware::from_fn(original_uri))
        .with_state(state);
    let idp_origin = url::Url::parse(&rp_issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let csp = HeaderValue::from_str(&page_csp(&idp_origin))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    Router::new()
        .merge(pages)
        .nest("/auth", auth)
        .layer(middleware::from_fn(move |req, next| {
            security_headers(csp.clone(), req, next)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(url: &str) -> web::RoleEnv {
        web::RoleEnv {
            data_dir: std::env::temp_dir(),
            public_url: url::Url::parse(url).unwrap(),
            fnr_policy: domain::FnrPolicy::PERMISSIVE,
        }
    }

    #[test]
    fn config_prints_without_secrets_and_reads_back() {
        let cfg = Config {
            client_secret: "very-secret".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("very-secret"));
        let back: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back.page_size, cfg.page_size);
        assert!(serde_json::from_str::<Config>("{\"nope\": 1}").is_err());
    }

    #[test]
    fn relying_party_follows_the_public_url() {
        let rp = default_rp_config(&Config::default(), &env("https://h.example/x/postkasse"));
        assert_eq!(rp.issuer, "https://h.example/x/idporten");
        assert_eq!(
            rp.redirect_uri,
            "https://h.example/x/postkasse/auth/callback"
        );
        assert_eq!(rp.base_path, "/x/postkasse/auth");
        assert_eq!(rp.default_return_to, "/x/postkasse/innboks");
        assert!(rp.cookie_secure);
        let rp = default_rp_config(&Config::default(), &env("http://127.0.0.1:8080/postkasse"));
        assert!(!rp.cookie_secure);
        assert_eq!(rp.cookie_path, "/postkasse");
    }
}
