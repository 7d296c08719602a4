//! The JSON end-user API (`/<slug>/api/v1/letters…`), authenticated with the citizen's
//! ID-porten access token (`pid` = fødselsnummer, `acr` = level of assurance) issued for this
//! API: header `typ` `at+jwt` and the tenant's `api_audience` in `aud`, which the client
//! asks ID-porten for as `resource` (RFC 8707). A thin layer over
//! [`crate::service::Mailbox`]; errors are problem+json.

use axum::{
    Json,
    extract::{FromRequestParts, Path, Query, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use domain::{Fodselsnummer, LetterId, Organisasjonsnummer};
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use web::Problem;

use crate::TenantState;
use crate::service::{CitizenRef, Folder, LetterQuery, Loa, ServiceError};

/// The verified citizen of a request.
pub struct Citizen {
    pub who: CitizenRef,
    pub loa: Loa,
}

impl FromRequestParts<TenantState> for Citizen {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &TenantState,
    ) -> Result<Self, Self::Rejection> {
        let token = web::auth::bearer_token(parts)?;
        let claims = st
            .app
            .0
            .deps
            .citizen_verifier
            .verify(&token)
            .await
            .map_err(|e| {
                tracing::info!(code = e.code(), "citizen token refused");
                e.to_problem()
            })?;
        // Signed by ID-porten is not enough: an ID token (refused by the verifier, built for
        // access tokens only) or an access token for another API must not open letters here.
        if !clients::verify::has_audience(&claims, &st.tenant.api_audience) {
            tracing::info!(code = "wrong_audience", "citizen token refused");
            return Err(Problem::unauthorized(
                "wrong_audience",
                format!(
                    "the token is not for this API: ask ID-porten with resource={}",
                    st.tenant.api_audience
                ),
            ));
        }
        let pid = claims
            .get("pid")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| Problem::unauthorized("missing_claim", "the token has no pid"))?;
        let fnr = Fodselsnummer::parse(pid, &st.app.0.deps.fnr_policy)
            .map_err(|e| Problem::unauthorized("invalid_pid", e.to_string()))?;
        let loa = Loa::from_acr(claims.get("acr").and_then(serde_json::Value::as_str));
        Ok(Citizen {
            who: CitizenRef {
                tenant: st.tenant.orgnr,
                fnr,
            },
            loa,
        })
    }
}

fn problem(e: ServiceError) -> Problem {
    match &e {
        ServiceError::NotAUser => Problem::new(
            StatusCode::FORBIDDEN,
            e.code(),
            "No mailbox at this provider",
        )
        .with_detail(e.to_string()),
        ServiceError::NotFound => Problem::not_found().with_detail(e.to_string()),
        ServiceError::Locked => Problem::new(
            StatusCode::FORBIDDEN,
            e.code(),
            "Higher security level needed",
        )
        .with_detail(e.to_string()),
        ServiceError::OpeningReceiptRequired => {
            Problem::new(StatusCode::CONFLICT, e.code(), "Opening receipt required")
                .with_detail(e.to_string())
        }
        ServiceError::InvalidQuery(_) => Problem::bad_request(e.code(), e.to_string()),
        ServiceError::Store(_) | ServiceError::Internal(_) => Problem::internal(e),
    }
}

fn letter_id(s: &str) -> Result<LetterId, Problem> {
    // An id that is not a UUID cannot name any letter: the same answer as an unknown one.
    LetterId::parse(s).map_err(|_| Problem::not_found().with_detail("no such letter"))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    folder: Option<String>,
    sender: Option<String>,
    from: Option<String>,
    to: Option<String>,
    unread: Option<bool>,
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn parse_time(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, Problem> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            Problem::bad_request("invalid_query", format!("{name} must be an RFC 3339 time"))
        })
    })
    .transpose()
}

/// `GET /api/v1/letters?folder&sender&from&to&unread&q&limit&cursor`
pub async fn list(
    State(st): State<TenantState>,
    c: Citizen,
    Query(p): Query<ListParams>,
) -> Result<Response, Problem> {
    let folder = match p.folder.as_deref() {
        None => Folder::Inbox,
        Some(f) => Folder::parse(f).ok_or_else(|| {
            Problem::bad_request("invalid_query", "folder is inbox, archive or bin")
        })?,
    };
    let sender = p
        .sender
        .as_deref()
        .map(Organisasjonsnummer::parse)
        .transpose()
        .map_err(|e| Problem::bad_request("invalid_query", format!("sender: {e}")))?;
    let q = LetterQuery {
        folder,
        sender,
        from: parse_time("from", p.from.as_deref())?,
        to: parse_time("to", p.to.as_deref())?,
        unread_only: p.unread.unwrap_or(false),
        search: p.q,
        limit: p.limit,
        cursor: p.cursor,
    };
    let page = st
        .app
        .mailbox()
        .list_letters(&c.who, c.loa, &q)
        .await
        .map_err(problem)?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/letters/{id}`
pub async fn get_letter(
    State(st): State<TenantState>,
    c: Citizen,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    let letter = st
        .app
        .mailbox()
        .get_letter(&c.who, c.loa, id)
        .await
        .map_err(problem)?;
    Ok(Json(letter).into_response())
}

/// A file name safe in a quoted header parameter.
fn safe_filename(href: &str) -> String {
    let name = href.rsplit('/').next().unwrap_or(href);
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.trim_matches('.').is_empty() {
        "dokument".into()
    } else {
        s
    }
}

/// `GET /api/v1/letters/{id}/documents/{n}`: the bytes, as an attachment the browser never
/// renders in our origin (nosniff, sandboxing CSP).
pub async fn document(
    State(st): State<TenantState>,
    c: Citizen,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    let n: u32 = n
        .parse()
        .map_err(|_| Problem::not_found().with_detail("no such document"))?;
    let doc = st
        .app
        .mailbox()
        .document(&c.who, c.loa, id, n)
        .await
        .map_err(problem)?;
    let mut res = doc.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        safe_filename(&doc.filename)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox; frame-ancestors 'none'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// `POST /api/v1/letters/{id}/opened`
pub async fn opened(
    State(st): State<TenantState>,
    c: Citizen,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    st.app
        .mailbox()
        .mark_opened(&c.who, c.loa, id)
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/letters/{id}/unread`
pub async fn unread(
    State(st): State<TenantState>,
    c: Citizen,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    st.app
        .mailbox()
        .mark_unread(&c.who, id)
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderBody {
    folder: Folder,
}

/// `POST /api/v1/letters/{id}/folder` with `{"folder": "inbox"|"archive"|"bin"}`.
pub async fn move_folder(
    State(st): State<TenantState>,
    c: Citizen,
    Path(id): Path<String>,
    body: Result<Json<FolderBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    let Json(body) = body.map_err(|e| Problem::bad_request("invalid_body", e.body_text()))?;
    st.app
        .mailbox()
        .move_to(&c.who, id, body.folder)
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/letters/{id}/opening-receipt`: accept the sender's opening receipt.
pub async fn accept_opening_receipt(
    State(st): State<TenantState>,
    c: Citizen,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = letter_id(&id)?;
    let queued = st
        .app
        .mailbox()
        .accept_opening_receipt(&c.who, c.loa, id)
        .await
        .map_err(problem)?;
    Ok(Json(serde_json::json!({ "queued": queued })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_header_safe() {
        assert_eq!(safe_filename("brev.pdf"), "brev.pdf");
        assert_eq!(safe_filename("a\"b\r\nc.pdf"), "a_b__c.pdf");
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename(".."), "dokument");
    }
}
