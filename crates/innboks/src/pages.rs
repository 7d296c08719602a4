//! The page handlers. Each resolves the logged-in citizen to a [`CitizenRef`] and calls the
//! mailbox service; nothing here touches another citizen's data because the service scopes
//! every query to that reference.

use askama::Template;
use axum::{
    body::Bytes,
    extract::{FromRequestParts, Multipart, Path, Query, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use domain::{Fodselsnummer, LetterId, Organisasjonsnummer};
use dpi::container::Extension;
use oidc_rp::Citizen;
use postkasse::{CitizenRef, Folder, LetterQuery, Loa, ServiceError};
use serde::Deserialize;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, macros::format_description};

use crate::{
    AppState,
    i18n::{LANG_COOKIE, Lang, Tr},
    views::{self, ArrangementView, BevisView, LenkeView},
};

/// The page language of a request.
pub struct L(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for L {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(L(Lang::from_headers(&parts.headers)))
    }
}

/// The path and query of the request, for the language switch to come back to.
pub struct Here(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Here {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Here(
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        ))
    }
}

/// What every page shows around its content.
pub struct Chrome {
    pub base: String,
    pub lang: Lang,
    pub tr: Tr,
    pub user: Option<String>,
    pub nav: &'static str,
    pub csrf: String,
    pub languages: Vec<(&'static str, &'static str, String, bool)>,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Chrome {
    fn new(
        st: &AppState,
        lang: Lang,
        here: &str,
        user: Option<&Citizen>,
        nav: &'static str,
    ) -> Self {
        let base = st.inner().base.clone();
        let languages = Lang::ALL
            .iter()
            .map(|l| {
                (
                    l.code(),
                    l.native_name(),
                    format!("{base}/innboks/sprak/{}?til={}", l.code(), enc(here)),
                    *l == lang,
                )
            })
            .collect();
        Chrome {
            lang,
            tr: lang.tr(),
            user: user.map(|u| u.name.clone().unwrap_or_else(|| "—".into())),
            nav,
            csrf: user
                .map(|u| st.form_token(&u.session_id))
                .unwrap_or_default(),
            languages,
            base,
        }
    }
}

fn html_response(status: StatusCode, r: askama::Result<String>) -> Response {
    match r {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    title: &'static str,
    text: &'static str,
}

fn error_page(c: Chrome, status: StatusCode, title: &'static str, text: &'static str) -> Response {
    let p = ErrorPage { c, title, text };
    html_response(status, p.render())
}

/// The citizen's identity at the tenant where they have a mailbox.
pub(crate) struct Who {
    pub who: CitizenRef,
    pub loa: Loa,
    /// "tenant:fnr", the key of the citizen's own files.
    pub owner: String,
}

enum WhoError {
    NoMailbox,
    Internal,
}

async fn resolve(st: &AppState, c: &Citizen) -> Result<Who, WhoError> {
    let fnr =
        Fodselsnummer::parse(&c.pid, &st.inner().fnr_policy).map_err(|_| WhoError::NoMailbox)?;
    let loa = Loa::from_acr(Some(c.acr.as_str()));
    let cached = st
        .inner()
        .tenant_of
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&c.pid)
        .copied();
    let tenant = match cached {
        Some(t) => t,
        None => {
            let mailbox = st.inner().postkasse.mailbox();
            let mut found: Option<Organisasjonsnummer> = None;
            for t in st.inner().postkasse.tenants() {
                let who = CitizenRef {
                    tenant: t.orgnr,
                    fnr,
                };
                let q = LetterQuery {
                    limit: Some(1),
                    ..Default::default()
                };
                match mailbox.list_letters(&who, loa, &q).await {
                    Ok(_) => {
                        found = Some(t.orgnr);
                        break;
                    }
                    Err(ServiceError::NotAUser) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "tenant lookup failed");
                        return Err(WhoError::Internal);
                    }
                }
            }
            let t = found.ok_or(WhoError::NoMailbox)?;
            let mut m = st
                .inner()
                .tenant_of
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(c.pid.clone(), t);
            t
        }
    };
    Ok(Who {
        owner: format!("{tenant}:{}", fnr.as_string()),
        who: CitizenRef { tenant, fnr },
        loa,
    })
}

/// Shared prologue: chrome plus the resolved citizen, or the error page.
async fn start(
    st: &AppState,
    lang: Lang,
    here: &str,
    citizen: &Citizen,
    nav: &'static str,
) -> Result<(Chrome, Who), Response> {
    let c = Chrome::new(st, lang, here, Some(citizen), nav);
    match resolve(st, citizen).await {
        Ok(w) => Ok((c, w)),
        Err(WhoError::NoMailbox) => {
            let tr = c.tr;
            Err(error_page(
                c,
                StatusCode::FORBIDDEN,
                tr.no_mailbox_title(),
                tr.no_mailbox_text(),
            ))
        }
        Err(WhoError::Internal) => {
            let tr = c.tr;
            Err(error_page(
                c,
                StatusCode::INTERNAL_SERVER_ERROR,
                tr.error_title(),
                tr.error_title(),
            ))
        }
    }
}

fn service_error(c: Chrome, e: &ServiceError) -> Response {
    let tr = c.tr;
    match e {
        ServiceError::NotFound => error_page(
            c,
            StatusCode::NOT_FOUND,
            tr.not_found_title(),
            tr.not_found_text(),
        ),
        ServiceError::NotAUser => error_page(
            c,
            StatusCode::FORBIDDEN,
            tr.no_mailbox_title(),
            tr.no_mailbox_text(),
        ),
        ServiceError::Locked => error_page(
            c,
            StatusCode::FORBIDDEN,
            tr.locked_title(),
            tr.locked_text(),
        ),
        ServiceError::OpeningReceiptRequired => error_page(
            c,
            StatusCode::FORBIDDEN,
            tr.receipt_title(),
            tr.receipt_text(),
        ),
        ServiceError::InvalidQuery(_) => error_page(
            c,
            StatusCode::BAD_REQUEST,
            tr.bad_request_title(),
            tr.not_found_text(),
        ),
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            tracing::error!(error = %e, code = e.code(), "mailbox service failed");
            error_page(
                c,
                StatusCode::INTERNAL_SERVER_ERROR,
                tr.error_title(),
                tr.error_title(),
            )
        }
    }
}

fn not_found_page(c: Chrome) -> Response {
    let tr = c.tr;
    error_page(
        c,
        StatusCode::NOT_FOUND,
        tr.not_found_title(),
        tr.not_found_text(),
    )
}

fn forbidden_form(c: Chrome) -> Response {
    let tr = c.tr;
    error_page(
        c,
        StatusCode::FORBIDDEN,
        tr.forbidden_title(),
        tr.forbidden_text(),
    )
}

fn parse_id(s: &str) -> Option<LetterId> {
    LetterId::parse(s).ok()
}

fn folder_param(s: Option<&str>) -> Folder {
    s.and_then(Folder::parse).unwrap_or_default()
}

fn folder_name(tr: Tr, f: Folder) -> &'static str {
    match f {
        Folder::Inbox => tr.inbox(),
        Folder::Archive => tr.archive(),
        Folder::Bin => tr.bin(),
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `application/x-www-form-urlencoded` pairs (repeated keys kept, unlike serde forms).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn form_get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------

pub async fn root(State(st): State<AppState>) -> Response {
    see_other(&format!("{}/innboks", st.inner().base))
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage {
    c: Chrome,
    login_href: String,
}

pub async fn welcome(State(st): State<AppState>, L(lang): L, Here(here): Here) -> Response {
    let base = st.inner().base.clone();
    let p = WelcomePage {
        c: Chrome::new(&st, lang, &here, None, "welcome"),
        login_href: format!(
            "{}/login?return_to={}",
            st.inner().rp.config().base_path.trim_end_matches('/'),
            enc(&format!("{base}/innboks"))
        ),
    };
    html_response(StatusCode::OK, p.render())
}

#[derive(Deserialize)]
pub struct LangQuery {
    til: Option<String>,
}

pub async fn set_language(
    State(st): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let base = st.inner().base.clone();
    let lang = Lang::parse(&code).unwrap_or_default();
    // Only back into this app: a same-origin path under our prefix.
    let target = q
        .til
        .filter(|t| {
            t.starts_with(&format!("{base}/innboks"))
                && !t.starts_with("//")
                && !t.contains('\\')
                && t.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| format!("{base}/innboks"));
    let mut res = see_other(&target);
    let path = if base.is_empty() { "/" } else { base.as_str() };
    let secure = st.inner().rp.config().cookie_secure;
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path={path}; Max-Age=31536000; SameSite=Lax{}",
        lang.code(),
        if secure { "; Secure" } else { "" }
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

// --------------------------------------------------------------------------------------------- inbox

#[derive(Deserialize, Default)]
pub struct InboxQuery {
    mappe: Option<String>,
    avsender: Option<String>,
    fra: Option<String>,
    til: Option<String>,
    ulest: Option<String>,
    sok: Option<String>,
    etter: Option<String>,
    melding: Option<String>,
}

/// One letter of the list, borrowed from the service's page; the template writes the links.
struct Row<'a> {
    id: String,
    sender_orgnr: &'a str,
    sender: &'a str,
    title: &'a str,
    /// The list shows the day, not the time (`{{ r.date.iso() }}` for `<time datetime>`).
    date: views::ShownDay,
    unread: bool,
    attachments: u32,
    locked: bool,
    receipt: bool,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage<'a> {
    c: Chrome,
    heading: &'static str,
    folder: &'static str,
    rows: Vec<Row<'a>>,
    sok: String,
    fra: String,
    til: String,
    unread_only: bool,
    sender: Option<(String, String)>,
    clear_sender_href: String,
    filtered: bool,
    next_href: Option<String>,
    first_href: Option<String>,
    flash: Option<&'static str>,
    error: Option<&'static str>,
    /// On the bin: after how many days its letters are deleted for good (0 = never).
    bin_retention_days: u32,
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]")).ok()
}

/// Midnight Norwegian time at the start of `d`.
fn day_start(d: Date) -> OffsetDateTime {
    let p = PrimitiveDateTime::new(d, Time::MIDNIGHT);
    p.assume_offset(views::oslo_offset(p.assume_utc()))
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

fn flash_text(tr: Tr, m: Option<&str>) -> Option<&'static str> {
    match m? {
        "flyttet" => Some(tr.done_moved()),
        "oppdatert" => Some(tr.done_marked()),
        "kvittert" => Some(tr.receipt_sent()),
        "lastetopp" => Some(tr.upload_done()),
        "ingen" => Some(tr.none_selected()),
        "slettet" => Some(tr.done_deleted()),
        _ => None,
    }
}

pub async fn inbox(
    State(st): State<AppState>,
    L(lang): L,
    Here(here): Here,
    citizen: Citizen,
    Query(q): Query<InboxQuery>,
) -> Response {
    let folder = folder_param(q.mappe.as_deref());
    let nav = match folder {
        Folder::Inbox => "inbox",
        Folder::Archive => "archive",
        Folder::Bin => "bin",
    };
    let (c, w) = match start(&st, lang, &here, &citizen, nav).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let tr = c.tr;
    let mut error = None;
    let sender = q
        .avsender
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| Organisasjonsnummer::parse(s).ok());
    let fra = q.fra.as_deref().and_then(parse_date);
    let til = q.til.as_deref().and_then(parse_date);
    if q.fra
        .as_deref()
        .is_some_and(|s| !s.is_empty() && fra.is_none())
        || q.til
            .as_deref()
            .is_some_and(|s| !s.is_empty() && til.is_none())
    {
        error = Some(tr.bad_request_title());
    }
    let unread_only = q.ulest.as_deref() == Some("1");
    let sok = q.sok.clone().unwrap_or_default();
    let query = LetterQuery {
        folder,
        sender,
        from: fra.map(day_start),
        to: til.and_then(|d| d.next_day()).map(day_start),
        unread_only,
        search: Some(sok.clone()).filter(|s| !s.trim().is_empty()),
        limit: Some(st.inner().cfg.page_size.clamp(1, 100)),
        cursor: q.etter.clone().filter(|s| !s.is_empty()),
    };
    let mailbox = st.inner().postkasse.mailbox();
    let page = match mailbox.list_letters(&w.who, w.loa, &query).await {
        Ok(p) => p,
        Err(e) => return service_error(c, &e),
    };
    let base = c.base.clone();
    let sender_name = sender.map(|s| {
        let name = page
            .letters
            .first()
            .and_then(|l| l.sender_name.clone())
            .unwrap_or_else(|| s.to_string());
        (s.to_string(), name)
    });
    let fra_s = q.fra.clone().unwrap_or_default();
    let til_s = q.til.clone().unwrap_or_default();
    let sender_s = sender.map(|s| s.to_string()).unwrap_or_default();
    let filter_pairs = |cursor: &str, sender: &str| {
        query_string(&[
            ("mappe", folder.as_str()),
            ("avsender", sender),
            ("fra", &fra_s),
            ("til", &til_s),
            ("ulest", if unread_only { "1" } else { "" }),
            ("sok", &sok),
            ("etter", cursor),
        ])
    };
    let rows = page
        .letters
        .iter()
        .map(|l| Row {
            id: l.id.to_string(),
            sender_orgnr: &l.sender_orgnr,
            sender: l.sender_name.as_deref().unwrap_or(&l.sender_orgnr),
            title: &l.ikkesensitivtittel,
            date: views::ShownDay::of(lang, l.received_at),
            unread: l.unread,
            attachments: l.attachments,
            locked: l.locked,
            receipt: l.requires_opening_receipt,
        })
        .collect();
    let next_href = page
        .next_cursor
        .as_deref()
        .map(|cur| format!("{base}/innboks?{}", filter_pairs(cur, &sender_s)));
    let first_href = query
        .cursor
        .is_some()
        .then(|| format!("{base}/innboks?{}", filter_pairs("", &sender_s)));
    let p = InboxPage {
        heading: folder_name(tr, folder),
        folder: folder.as_str(),
        rows,
        filtered: !sok.is_empty() || fra.is_some() || til.is_some() || unread_only,
        clear_sender_href: format!("{base}/innboks?{}", filter_pairs("", "")),
        sok,
        fra: fra_s.clone(),
        til: til_s.clone(),
        unread_only,
        sender: sender_name,
        next_href,
        first_href,
        flash: flash_text(tr, q.melding.as_deref()),
        error,
        bin_retention_days: mailbox.bin_retention_days(),
        c,
    };
    // Rendered into one allocation of about the page's size (the list is most of it).
    let mut body = String::with_capacity(8 * 1024 + 768 * p.rows.len());
    html_response(StatusCode::OK, p.render_into(&mut body).map(|()| body))
}

/// Bulk actions from the inbox form: archive, bin, restore or mark unread the chosen letters.
pub async fn bulk(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let (c, w) = match start(&st, lang, "/", &citizen, "inbox").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !st.check_form_token(&citizen.session_id, form_get(&pairs, "csrf").unwrap_or("")) {
        return forbidden_form(c);
    }
    let folder = folder_param(form_get(&pairs, "mappe"));
    let action = form_get(&pairs, "action").unwrap_or("");
    let ids: Vec<LetterId> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| parse_id(v))
        .take(200)
        .collect();
    let back = |m: &str| {
        see_other(&format!(
            "{}/innboks?{}",
            c.base,
            query_string(&[("mappe", folder.as_str()), ("melding", m)])
        ))
    };
    if ids.is_empty() {
        return back("ingen");
    }
    let mailbox = st.inner().postkasse.mailbox();
    if action == "delete" || action == "delete_confirmed" {
        // Every letter must be the citizen's and in the bin before any goes.
        let mut letters = Vec::with_capacity(ids.len());
        for id in &ids {
            match mailbox.title_in_bin(&w.who, *id).await {
                Ok(title) => letters.push((id.to_string(), title)),
                Err(e) => return service_error(c, &e),
            }
        }
        if action == "delete" {
            // Deleting for good is asked for once more, naming the letters.
            let p = ConfirmDeletePage { c, letters };
            return html_response(StatusCode::OK, p.render());
        }
    }
    for id in ids {
        let r = match action {
            "archive" => mailbox.move_to(&w.who, id, Folder::Archive).await,
            "bin" => mailbox.move_to(&w.who, id, Folder::Bin).await,
            "inbox" => mailbox.move_to(&w.who, id, Folder::Inbox).await,
            "unread" => mailbox.mark_unread(&w.who, id).await,
            "delete_confirmed" => mailbox.delete_for_good(&w.who, id).await,
            _ => Err(ServiceError::InvalidQuery("unknown action".into())),
        };
        if let Err(e) = r {
            return service_error(c, &e);
        }
    }
    back(match action {
        "unread" => "oppdatert",
        "delete_confirmed" => "slettet",
        _ => "flyttet",
    })
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage {
    c: Chrome,
    /// (id, ikkesensitivtittel) of each letter to delete.
    letters: Vec<(String, String)>,
}

// --------------------------------------------------------------------------------------------- letter

struct DocView {
    n: u32,
    title: String,
    role: &'static str,
    size: String,
    kind: &'static str,
    inline_href: String,
    download_href: String,
    html_href: String,
    ics_href: String,
    text: Option<String>,
    lenke: Option<LenkeView>,
    arrangement: Option<ArrangementView>,
    bevis: Option<BevisView>,
}

#[derive(Template)]
#[template(path = "letter.html")]
struct LetterPage {
    c: Chrome,
    id: String,
    title: String,
    sender: String,
    received: String,
    received_iso: String,
    folder: &'static str,
    folder_name: &'static str,
    /// When a letter in the bin is deleted for good.
    deleted: Option<views::ShownDay>,
    back_href: String,
    locked: bool,
    step_up_href: String,
    receipt_required: bool,
    flash: Option<&'static str>,
    lenke: Option<LenkeView>,
    docs: Vec<DocView>,
}

/// How a document is shown inline.
fn doc_kind(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "application/pdf" => "pdf",
        "image/png" | "image/jpeg" | "image/gif" => "image",
        "text/html" => "html",
        "text/plain" => "text",
        _ => "other",
    }
}

/// Largest plain-text document shown inline (larger ones are downloaded).
const MAX_INLINE_TEXT: i64 = 256 * 1024;

#[derive(Deserialize, Default)]
pub struct LetterQueryParams {
    melding: Option<String>,
}

pub async fn letter(
    State(st): State<AppState>,
    L(lang): L,
    Here(here): Here,
    citizen: Citizen,
    Path(id): Path<String>,
    Query(q): Query<LetterQueryParams>,
) -> Response {
    let (c, w) = match start(&st, lang, &here, &citizen, "letter").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = parse_id(&id) else {
        return not_found_page(c);
    };
    let tr = c.tr;
    let mailbox = st.inner().postkasse.mailbox();
    let detail = match mailbox.get_letter(&w.who, w.loa, id).await {
        Ok(d) => d,
        Err(e) => return service_error(c, &e),
    };
    let s = &detail.summary;
    let locked = s.locked;
    let receipt_required = s.requires_opening_receipt;
    if !locked
        && !receipt_required
        && let Err(e) = mailbox.mark_opened(&w.who, w.loa, id).await
    {
        return service_error(c, &e);
    }
    let base = c.base.clone();
    let now = OffsetDateTime::now_utc();
    let mut docs = Vec::new();
    if !locked && !receipt_required {
        for d in &detail.documents {
            let kind = doc_kind(&d.mime);
            let text = if kind == "text" && d.size <= MAX_INLINE_TEXT {
                match mailbox.document(&w.who, w.loa, id, d.n).await {
                    Ok(b) => Some(String::from_utf8_lossy(&b.bytes).into_owned()),
                    Err(e) => return service_error(c, &e),
                }
            } else {
                None
            };
            let doc_href = format!("{base}/innboks/brev/{id}/dokument/{}", d.n);
            let (mut lenke, mut arrangement, mut bevis) = (None, None, None);
            match &d.extension {
                // The provider also lifts the hoveddokument's lenke to the letter; show it once.
                Some(Extension::Lenke(l)) if detail.lenke.as_ref() == Some(l) => {}
                Some(Extension::Lenke(l)) => lenke = Some(views::lenke(tr, l, now)),
                Some(Extension::Arrangement(a)) => arrangement = Some(views::arrangement(tr, a)),
                Some(Extension::Bevis(b)) => bevis = Some(views::bevis(tr, b, now)),
                _ => {}
            }
            docs.push(DocView {
                n: d.n,
                title: d.title.clone().unwrap_or_else(|| d.href.clone()),
                role: if d.role == "hoveddokument" {
                    tr.main_document()
                } else {
                    tr.attachment()
                },
                size: views::size(d.size),
                kind: if kind == "text" && text.is_none() {
                    "other"
                } else {
                    kind
                },
                inline_href: doc_href.clone(),
                download_href: format!("{doc_href}?last_ned=1"),
                html_href: format!("{doc_href}/vis"),
                ics_href: format!("{doc_href}/kalender.ics"),
                text,
                lenke,
                arrangement,
                bevis,
            });
        }
    }
    let folder = s.folder;
    let p = LetterPage {
        id: id.to_string(),
        title: s
            .tittel
            .clone()
            .unwrap_or_else(|| s.ikkesensitivtittel.clone()),
        sender: s
            .sender_name
            .clone()
            .unwrap_or_else(|| s.sender_orgnr.clone()),
        received: views::date_time(lang, s.received_at),
        received_iso: views::iso(s.received_at),
        folder: folder.as_str(),
        folder_name: folder_name(tr, folder),
        deleted: detail.deleted_at.map(|t| views::ShownDay::of(lang, t)),
        back_href: format!("{base}/innboks?mappe={}", folder.as_str()),
        locked,
        step_up_href: format!(
            "{}/login?acr=idporten-loa-high&return_to={}",
            st.inner().rp.config().base_path.trim_end_matches('/'),
            enc(&format!("{base}/innboks/brev/{id}"))
        ),
        receipt_required,
        flash: flash_text(tr, q.melding.as_deref()),
        lenke: detail.lenke.as_ref().map(|l| views::lenke(tr, l, now)),
        docs,
        c,
    };
    html_response(StatusCode::OK, p.render())
}

/// Checks the form token of a letter action and parses the id.
async fn letter_action(
    st: &AppState,
    lang: Lang,
    citizen: &Citizen,
    id: &str,
    pairs: &[(String, String)],
) -> Result<(Chrome, Who, LetterId), Response> {
    let (c, w) = start(st, lang, "/", citizen, "letter").await?;
    if !st.check_form_token(&citizen.session_id, form_get(pairs, "csrf").unwrap_or("")) {
        return Err(forbidden_form(c));
    }
    match parse_id(id) {
        Some(id) => Ok((c, w, id)),
        None => Err(not_found_page(c)),
    }
}

pub async fn accept_receipt(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let (c, w, id) = match letter_action(&st, lang, &citizen, &id, &pairs).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mailbox = st.inner().postkasse.mailbox();
    match mailbox.accept_opening_receipt(&w.who, w.loa, id).await {
        Ok(_) => see_other(&format!("{}/innboks/brev/{id}?melding=kvittert", c.base)),
        Err(e) => service_error(c, &e),
    }
}

pub async fn move_letter(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let (c, w, id) = match letter_action(&st, lang, &citizen, &id, &pairs).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(to) = form_get(&pairs, "til").and_then(Folder::parse) else {
        let tr = c.tr;
        return error_page(
            c,
            StatusCode::BAD_REQUEST,
            tr.bad_request_title(),
            tr.not_found_text(),
        );
    };
    let mailbox = st.inner().postkasse.mailbox();
    match mailbox.move_to(&w.who, id, to).await {
        Ok(()) => see_other(&format!(
            "{}/innboks?mappe={}&melding=flyttet",
            c.base,
            to.as_str()
        )),
        Err(e) => service_error(c, &e),
    }
}

pub async fn mark_unread(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let (c, w, id) = match letter_action(&st, lang, &citizen, &id, &pairs).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mailbox = st.inner().postkasse.mailbox();
    match mailbox.mark_unread(&w.who, id).await {
        Ok(()) => see_other(&format!("{}/innboks?melding=oppdatert", c.base)),
        Err(e) => service_error(c, &e),
    }
}

// --------------------------------------------------------------------------------------------- documents

/// `Content-Disposition` with an ASCII fallback and the UTF-8 name.
fn disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let utf8: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Types the browser may show inline; anything else is downloaded as opaque bytes.
fn inline_type(mime: &str) -> Option<&'static str> {
    match mime.split(';').next().unwrap_or("").trim() {
        "application/pdf" => Some("application/pdf"),
        "image/png" => Some("image/png"),
        "image/jpeg" => Some("image/jpeg"),
        "image/gif" => Some("image/gif"),
        "text/plain" => Some("text/plain; charset=utf-8"),
        _ => None,
    }
}

/// Headers of a served document: a fixed type the browser cannot reinterpret (`nosniff`
/// from the outer layer), no scripts, frameable only by our pages, never cached shared.
pub(crate) fn document_response(
    mime: &str,
    filename: &str,
    bytes: Bytes,
    download: bool,
) -> Response {
    let (ct, disp) = match (inline_type(mime), download) {
        (Some(t), false) => (t, "inline"),
        (Some(t), true) => (t, "attachment"),
        (None, _) => ("application/octet-stream", "attachment"),
    };
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_DISPOSITION, disposition(disp, filename));
    let csp = if ct == "application/pdf" {
        // The browser's PDF viewer must be allowed to run; the document still gets no
        // network access and cannot frame or be framed by anyone else.
        "default-src 'none'; frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
    } else {
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; \
         frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[derive(Deserialize, Default)]
pub struct DocQuery {
    last_ned: Option<String>,
}

pub async fn document(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path((id, n)): Path<(String, u32)>,
    Query(q): Query<DocQuery>,
) -> Response {
    let (c, w) = match start(&st, lang, "/", &citizen, "letter").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = parse_id(&id) else {
        return not_found_page(c);
    };
    let mailbox = st.inner().postkasse.mailbox();
    match mailbox.document(&w.who, w.loa, id, n).await {
        Ok(d) => document_response(&d.mime, &d.filename, d.bytes, q.last_ned.is_some()),
        Err(e) => service_error(c, &e),
    }
}

/// An HTML document, sanitized, as its own page for the sandboxed frame.
pub async fn html_document(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let (c, w) = match start(&st, lang, "/", &citizen, "letter").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = parse_id(&id) else {
        return not_found_page(c);
    };
    let mailbox = st.inner().postkasse.mailbox();
    let d = match mailbox.document(&w.who, w.loa, id, n).await {
        Ok(d) => d,
        Err(e) => return service_error(c, &e),
    };
    if doc_kind(&d.mime) != "html" {
        return not_found_page(c);
    }
    let text = String::from_utf8_lossy(&d.bytes);
    let page = crate::html::document(&text, &d.filename, "no");
    let mut res = (StatusCode::OK, Html(page)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::html::DOCUMENT_CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    res
}

pub async fn calendar(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let (c, w) = match start(&st, lang, "/", &citizen, "letter").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = parse_id(&id) else {
        return not_found_page(c);
    };
    let mailbox = st.inner().postkasse.mailbox();
    let detail = match mailbox.get_letter(&w.who, w.loa, id).await {
        Ok(d) => d,
        Err(e) => return service_error(c, &e),
    };
    if detail.summary.locked {
        return service_error(c, &ServiceError::Locked);
    }
    if detail.summary.requires_opening_receipt {
        return service_error(c, &ServiceError::OpeningReceiptRequired);
    }
    let Some(a) = detail.documents.iter().find_map(|d| match &d.extension {
        Some(Extension::Arrangement(a)) if d.n == n => Some(a),
        _ => None,
    }) else {
        return not_found_page(c);
    };
    let ics = crate::ics::calendar(a, &id.to_string(), OffsetDateTime::now_utc());
    let mut res = (StatusCode::OK, ics).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition("attachment", "arrangement.ics"),
    );
    res
}

// --------------------------------------------------------------------------------------------- own documents

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage {
    c: Chrome,
    flash: Option<&'static str>,
    error: Option<&'static str>,
    max_size: String,
    docs: Vec<(String, String, String, String)>,
}

async fn documents_page(
    st: &AppState,
    c: Chrome,
    w: &Who,
    status: StatusCode,
    flash: Option<&'static str>,
    error: Option<&'static str>,
) -> Response {
    let uploads = &st.inner().uploads;
    let list = match uploads.list(&w.owner).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "listing uploads failed");
            Vec::new()
        }
    };
    let base = c.base.clone();
    let lang = c.lang;
    let p = DocumentsPage {
        flash,
        error,
        max_size: views::size(i64::try_from(uploads.max_bytes()).unwrap_or(i64::MAX)),
        docs: list
            .into_iter()
            .map(|u| {
                (
                    format!("{base}/innboks/dokumenter/{}", u.id),
                    u.name,
                    views::size(i64::try_from(u.size).unwrap_or(i64::MAX)),
                    views::date(lang, u.uploaded_at),
                )
            })
            .collect(),
        c,
    };
    html_response(status, p.render())
}

#[derive(Deserialize, Default)]
pub struct FlashQuery {
    melding: Option<String>,
}

pub async fn my_documents(
    State(st): State<AppState>,
    L(lang): L,
    Here(here): Here,
    citizen: Citizen,
    Query(q): Query<FlashQuery>,
) -> Response {
    let (c, w) = match start(&st, lang, &here, &citizen, "documents").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let flash = flash_text(c.tr, q.melding.as_deref());
    documents_page(&st, c, &w, StatusCode::OK, flash, None).await
}

pub async fn upload(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    mut multipart: Multipart,
) -> Response {
    let (c, w) = match start(&st, lang, "/innboks/dokumenter", &citizen, "documents").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let tr = c.tr;
    let mut csrf = String::new();
    let mut file: Option<(String, Bytes)> = None;
    let mut too_large = false;
    loop {
        match multipart.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or_default().to_owned();
                let filename = f.file_name().unwrap_or_default().to_owned();
                match f.bytes().await {
                    Ok(b) if name == "csrf" => {
                        csrf = String::from_utf8_lossy(&b).into_owned();
                    }
                    Ok(b) if name == "fil" && file.is_none() => file = Some((filename, b)),
                    Ok(_) => {}
                    Err(_) => {
                        too_large = true;
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                too_large = true;
                break;
            }
        }
    }
    if too_large {
        let msg = Some(tr.upload_too_large());
        return documents_page(&st, c, &w, StatusCode::PAYLOAD_TOO_LARGE, None, msg).await;
    }
    if !st.check_form_token(&citizen.session_id, &csrf) {
        return forbidden_form(c);
    }
    let Some((name, bytes)) = file else {
        return documents_page(
            &st,
            c,
            &w,
            StatusCode::BAD_REQUEST,
            None,
            Some(tr.upload_empty()),
        )
        .await;
    };
    use crate::uploads::UploadError as E;
    match st.inner().uploads.add(&w.owner, &name, &bytes).await {
        Ok(_) => see_other(&format!("{}/innboks/dokumenter?melding=lastetopp", c.base)),
        Err(e) => {
            let (status, msg) = match e {
                E::Empty => (StatusCode::BAD_REQUEST, tr.upload_empty()),
                E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, tr.upload_too_large()),
                E::BadType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, tr.upload_bad_type()),
                E::Quota(_) => (StatusCode::CONFLICT, tr.upload_quota()),
                E::NotFound | E::Io(_) => {
                    tracing::error!(error = %e, "upload failed");
                    (StatusCode::INTERNAL_SERVER_ERROR, tr.error_title())
                }
            };
            documents_page(&st, c, &w, status, None, Some(msg)).await
        }
    }
}

pub async fn my_document(
    State(st): State<AppState>,
    L(lang): L,
    citizen: Citizen,
    Path(id): Path<String>,
) -> Response {
    let (c, w) = match start(&st, lang, "/", &citizen, "documents").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.inner().uploads.get(&w.owner, &id).await {
        Ok((u, bytes)) => document_response(&u.mime, &u.name, Bytes::from(bytes), false),
        Err(_) => not_found_page(c),
    }
}

// --------------------------------------------------------------------------------------------- notifications

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    c: Chrome,
    rows: Vec<(String, String, String, String)>,
}

pub async fn notifications(
    State(st): State<AppState>,
    L(lang): L,
    Here(here): Here,
    citizen: Citizen,
) -> Response {
    let (c, w) = match start(&st, lang, &here, &citizen, "notifications").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let list = st.inner().outbox.list(&w.owner).await.unwrap_or_default();
    let base = c.base.clone();
    let p = NotificationsPage {
        rows: list
            .into_iter()
            .map(|e| {
                (
                    views::date_time(lang, e.sent_at),
                    e.channel,
                    e.text,
                    format!("{base}/innboks/brev/{}", e.letter_id),
                )
            })
            .collect(),
        c,
    };
    html_response(StatusCode::OK, p.render())
}

// --------------------------------------------------------------------------------------------- static

fn css(bytes: Option<&Bytes>) -> Response {
    match bytes {
        Some(b) => {
            let mut res = (StatusCode::OK, b.clone()).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            res
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn ds_css(State(st): State<AppState>) -> Response {
    css(st.inner().css.as_ref())
}

pub async fn theme_css(State(st): State<AppState>) -> Response {
    css(st.inner().theme_css.as_ref())
}

static APP_CSS: &str = include_str!("../static/app.css");

pub async fn app_css() -> Response {
    css(Some(&Bytes::from_static(APP_CSS.as_bytes())))
}
