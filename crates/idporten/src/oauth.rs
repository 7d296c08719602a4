//! OAuth2 plumbing: strict parameter decoding, the error JSON of RFC 6749 §5.2, cookies.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An OAuth2 error answered as JSON (token, PAR, userinfo).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` value for 401 answers.
    pub challenge: Option<String>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }

    pub fn with_status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }

    pub fn with_challenge(mut self, c: impl Into<String>) -> Self {
        self.challenge = Some(c.into());
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        res
    }
}

/// Decoded parameters; every name at most once (RFC 6749 §3.1) and none empty-named, except
/// `resource`, which RFC 8707 §2 lets a request repeat.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
    resources: Vec<String>,
}

impl Params {
    pub fn parse(s: &str) -> Result<Self, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(s).map_err(|e| format!("undecodable parameters: {e}"))?;
        let mut m = HashMap::with_capacity(pairs.len());
        let mut resources = Vec::new();
        for (k, v) in pairs {
            if k == "resource" {
                // Empty counts as absent (RFC 6749 §3.1), as for every other parameter.
                if !v.is_empty() {
                    resources.push(v);
                }
                continue;
            }
            if m.contains_key(&k) {
                return Err(format!("parameter {k} is given more than once"));
            }
            m.insert(k, v);
        }
        Ok(Self {
            values: m,
            resources,
        })
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.values
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn insert(&mut self, k: &str, v: String) {
        self.values.insert(k.to_owned(), v);
    }

    /// The `resource` values (RFC 8707), in request order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
}

/// Most `resource` values one request may name; each becomes an `aud` of the access token.
const MAX_RESOURCES: usize = 10;
/// Longest accepted `resource` value.
const MAX_RESOURCE_LEN: usize = 2048;

/// Checks RFC 8707 resource indicators: each an absolute URI without a fragment (§2; the
/// real service checks nothing more). Returns them without repeats, in request order; the
/// error is the `error_description` of an `invalid_target`.
pub fn resource_indicators(values: &[String]) -> Result<Vec<String>, String> {
    if values.len() > MAX_RESOURCES {
        return Err(format!("at most {MAX_RESOURCES} resource values"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        if v.len() > MAX_RESOURCE_LEN {
            return Err("resource is too long".into());
        }
        // `Url::parse` accepts only absolute URIs; the value itself is kept as sent, since it
        // becomes the `aud` the API compares verbatim.
        match url::Url::parse(v) {
            Ok(u) if u.fragment().is_some() => {
                return Err("resource must not contain a fragment".into());
            }
            Ok(_) => {}
            Err(_) => return Err("resource must be an absolute URI".into()),
        }
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(out)
}

/// Reads a form body, enforcing the content type and the size limit with OAuth2 errors.
pub fn form_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Params, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let body = body.map_err(|e| {
        OAuthError::invalid_request(format!("unreadable request body: {e}")).with_status(e.status())
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| OAuthError::invalid_request("request body is not UTF-8"))?;
    Params::parse(text).map_err(OAuthError::invalid_request)
}

pub fn get_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `url` with `params` appended to its query, keeping what is there.
pub fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// Constant-time comparison of secrets of any length (compares SHA-256 digests).
pub fn secret_eq(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    openssl::memcmp::eq(&Sha256::digest(a.as_bytes()), &Sha256::digest(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_refused_and_empty_is_absent() {
        assert!(Params::parse("a=1&a=2").is_err());
        let p = Params::parse("a=&b=x%20y").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("x y"));
    }

    #[test]
    fn resource_may_repeat_and_must_be_an_absolute_uri_without_fragment() {
        let p =
            Params::parse("resource=https%3A%2F%2Fa%2Fx&resource=&resource=urn%3Ax%3Ay").unwrap();
        assert_eq!(p.resources(), ["https://a/x", "urn:x:y"]);
        assert_eq!(p.get("resource"), None);
        assert_eq!(
            resource_indicators(p.resources()).unwrap(),
            ["https://a/x", "urn:x:y"]
        );
        let one = |v: &str| resource_indicators(&[v.to_owned()]);
        assert_eq!(
            resource_indicators(&["https://a/".into(), "https://a/".into()]).unwrap(),
            ["https://a/"]
        );
        assert!(one("https://a/#frag").is_err());
        assert!(one("/relative").is_err());
        assert!(one("api.example").is_err());
        assert!(resource_indicators(&vec!["https://a/".to_owned(); 11]).is_err());
    }

    #[test]
    fn query_append() {
        assert_eq!(
            with_query("https://rp/cb?x=1", &[("code", "a b")]),
            "https://rp/cb?x=1&code=a+b"
        );
    }
}
