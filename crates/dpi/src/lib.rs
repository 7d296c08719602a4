//! DPI wire formats, sans-I/O: SBD business messages signed as JWS, the ASiC-E dokumentpakke
//! with manifest and XAdES signature, CMS encryption, extensions and receipts. No I/O, no
//! panics on any input.
//!
//! Entry points: [`letter::open_letter`] (corner-4 validation of a received letter),
//! [`letter::seal_letter`] (build, sign and encrypt one), [`receipt`] (signed receipts),
//! [`message::Sbd`] (typed business messages), [`jws`], [`trust`], [`token`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod certcache;
pub mod container;
pub mod html_rules;
pub mod jws;
pub mod letter;
pub mod message;
pub mod receipt;
#[doc(hidden)]
pub mod testkit;
pub mod token;
pub mod trust;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

pub(crate) fn b64_std(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// Standard base64, tolerating the line breaks and `&#13;` remnants some producers insert.
pub(crate) fn b64_std_decode(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|c| c.is_ascii_whitespace()) {
        let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD.decode(clean).ok()
    } else {
        STANDARD.decode(s).ok()
    }
}

pub(crate) fn b64_url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// base64url without padding (RFC 7515 §2); padded input is tolerated.
pub(crate) fn b64_url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(b)
}

/// One finding while opening a letter or receipt: a stable snake_case `code` and a detail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub code: String,
    pub detail: String,
}

impl Issue {
    pub fn new(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            detail: detail.into(),
        }
    }
}
