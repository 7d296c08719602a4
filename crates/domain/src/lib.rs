//! Pure domain types of samspill: Norwegian identifiers as parse-don't-validate newtypes,
//! typed ids and the rules that need no I/O. Every other crate depends on this one; it
//! depends on nothing of ours.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod fodselsnummer;
mod ids;
mod organisasjonsnummer;

pub use fodselsnummer::{ControlDigitRule, FnrKind, FnrPolicy, Fodselsnummer};
pub use ids::{ConversationId, JobId, LetterId, MessageId, Postkasseadresse};
pub use organisasjonsnummer::{ActorId, Organisasjonsnummer};

/// Why an identifier was refused. The `code` is stable and ends up in problem+json bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected} digits, got {got:?}")]
    Length { expected: usize, got: String },
    #[error("only digits are allowed")]
    NotDigits,
    #[error("control digit does not match")]
    ControlDigit,
    #[error("not a valid date of birth")]
    Date,
    #[error("synthetic test numbers are not accepted here")]
    SyntheticNotAllowed,
    #[error("unsupported identifier scheme {0:?} (expected 0192 or 9908)")]
    Scheme(String),
    #[error("malformed identifier: {0}")]
    Malformed(&'static str),
}

impl IdError {
    /// Stable snake_case code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Length { .. } => "invalid_length",
            IdError::NotDigits => "not_digits",
            IdError::ControlDigit => "invalid_control_digit",
            IdError::Date => "invalid_date",
            IdError::SyntheticNotAllowed => "synthetic_not_allowed",
            IdError::Scheme(_) => "unsupported_scheme",
            IdError::Malformed(_) => "malformed_identifier",
        }
    }
}

/// Parses `s` as exactly `N` ASCII digits.
pub(crate) fn digits<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    let bytes = s.as_bytes();
    if bytes.len() != N {
        return Err(IdError::Length {
            expected: N,
            got: s.chars().take(40).collect(),
        });
    }
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        if !b.is_ascii_digit() {
            return Err(IdError::NotDigits);
        }
        *o = b - b'0';
    }
    Ok(out)
}

/// Weighted sum modulo 11 of `digits` with `weights` (zipped, the shorter one wins).
pub(crate) fn mod11_remainder(digits: &[u8], weights: &[u8]) -> u32 {
    digits
        .iter()
        .zip(weights)
        .map(|(d, w)| u32::from(*d) * u32::from(*w))
        .sum::<u32>()
        % 11
}
