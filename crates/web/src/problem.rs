//! RFC 9457 problem details, the one error shape of every samspill API.

use std::{borrow::Cow, fmt};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An API error: HTTP status, a stable snake_case `code` clients can branch on, a short
/// human title and an optional detail. Serialised as `application/problem+json`.
///
/// Kept under clippy's `result_large_err` size so handlers can return it directly.
#[derive(Debug, Clone)]
pub struct Problem {
    pub title: String,
    pub status: u16,
    pub code: Cow<'static, str>,
    pub detail: Option<String>,
    /// Extra members (RFC 9457 §3.2), e.g. a list of validation errors.
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", &format!("{PROBLEM_BASE}{}", self.code))?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("code", &self.code)?;
        if let Some(detail) = &self.detail {
            map.serialize_entry("detail", detail)?;
        }
        if let Some(ext) = &self.extensions {
            for (k, v) in ext.iter() {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Problem type URIs are `<base><code>`; the codes are documented per service.
const PROBLEM_BASE: &str = "https://samspill.invalid/problems/";

pub type ApiResult<T> = Result<T, Problem>;

impl Problem {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            status: status.as_u16(),
            code: code.into(),
            detail: None,
            extensions: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(v) = serde_json::to_value(value) {
            self.extensions
                .get_or_insert_with(Default::default)
                .insert(key.to_owned(), v);
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request").with_detail(detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, "Unauthorized").with_detail(detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, "Forbidden").with_detail(detail)
    }

    /// An axum extractor's rejection (or a body it could not read) as a problem, since axum's
    /// own answers are text/plain: 413 `payload_too_large` for a body over the limit, `code`
    /// for what the client sent wrong, 500 for our own faults.
    pub fn from_rejection(status: StatusCode, code: &'static str, text: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(status, "payload_too_large", "Request body too large").with_detail(text)
        } else if status.is_server_error() {
            Self::internal(text)
        } else if status == StatusCode::BAD_REQUEST {
            Self::bad_request(code, text)
        } else {
            Self::new(status, code, status.canonical_reason().unwrap_or("Refused"))
                .with_detail(text)
        }
    }

    /// Every hop's answer to another letter under a message id it has seen (409), as
    /// docs/CHAIN.md gives it; the same letter again is acknowledged instead.
    pub fn duplicate_message_id(message_id: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "duplicate_message_id",
            "Message id already used",
        )
        .with_detail(format!(
            "another letter with the message id {message_id} was received before"
        ))
    }

    /// An internal error: the cause is logged, never shown to the client.
    pub fn internal(err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.title, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

impl From<domain::IdError> for Problem {
    fn from(e: domain::IdError) -> Self {
        Problem::bad_request(e.code(), e.to_string())
    }
}
