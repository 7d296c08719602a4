//! Compact JWS (RFC 7515) as DPI uses it (§3.2): `alg` RS256 only, the signing certificate (and
//! optionally its chain) in `x5c`. Verification refuses every other algorithm (`none`, HS*, PS*,
//! ES*…), a missing or empty `x5c`, `crit` headers, and RSA keys under 2048 bits.

use openssl::hash::MessageDigest;
use openssl::pkey::{HasPrivate, PKeyRef};
use openssl::sign::{Signer, Verifier};
use openssl::x509::{X509, X509Ref};
use serde::Deserialize;
use serde_json::Value;

/// Largest compact JWS accepted (business messages are a few KB).
pub const MAX_JWS_BYTES: usize = 512 * 1024;
/// Smallest RSA modulus accepted for a signature.
pub const MIN_RSA_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("JWS is larger than {MAX_JWS_BYTES} bytes")]
    TooLarge,
    #[error("not a compact JWS (three base64url parts): {0}")]
    Malformed(&'static str),
    #[error("JWS header is not valid JSON: {0}")]
    Header(String),
    #[error("algorithm {0:?} is not allowed; only RS256")]
    Algorithm(String),
    #[error("JWS header has no x5c certificate")]
    MissingX5c,
    #[error("x5c certificate is not valid: {0}")]
    BadCertificate(String),
    #[error("JWS header has critical extensions {0:?}, none are understood")]
    Critical(String),
    #[error("signing key is not RSA")]
    NotRsa,
    #[error("RSA key of {0} bits is below the 2048-bit minimum")]
    WeakKey(u32),
    #[error("signature does not verify")]
    BadSignature,
    #[error("crypto failure: {0}")]
    Crypto(String),
}

impl JwsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "jws_too_large",
            Self::Malformed(_) => "jws_malformed",
            Self::Header(_) => "jws_header_malformed",
            Self::Algorithm(_) => "jws_alg_not_allowed",
            Self::MissingX5c => "jws_x5c_missing",
            Self::BadCertificate(_) => "jws_x5c_invalid",
            Self::Critical(_) => "jws_crit_unsupported",
            Self::NotRsa => "jws_key_not_rsa",
            Self::WeakKey(_) => "jws_key_too_small",
            Self::BadSignature => "jws_signature_invalid",
            Self::Crypto(_) => "jws_crypto",
        }
    }
}

impl From<openssl::error::ErrorStack> for JwsError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// A JWS whose signature verified under `chain[0]`. Trust in the chain is checked separately
/// ([`crate::trust`]).
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The decoded payload bytes (what was signed).
    pub payload: Vec<u8>,
    /// `x5c` certificates in header order; `chain[0]` signed.
    pub chain: Vec<X509>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<Value>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
    #[serde(default)]
    crit: Option<Value>,
}

/// Sign `payload` as a compact RS256 JWS with header `{"x5c":[…],"alg":"RS256"}` (exactly the two
/// members Digdir's client emits).
pub fn sign<T: HasPrivate>(
    payload: &[u8],
    chain: &[&X509Ref],
    key: &PKeyRef<T>,
) -> Result<String, JwsError> {
    let rsa = key.rsa().map_err(|_| JwsError::NotRsa)?;
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(JwsError::WeakKey(bits));
    }
    let x5c = chain
        .iter()
        .map(|c| c.to_der().map(|d| crate::b64_std(&d)))
        .collect::<Result<Vec<_>, _>>()?;
    let header = serde_json::json!({ "x5c": x5c, "alg": "RS256" });
    let header = serde_json::to_vec(&header).map_err(|e| JwsError::Header(e.to_string()))?;
    let mut out = String::with_capacity(payload.len() * 4 / 3 + 2048);
    out.push_str(&crate::b64_url(&header));
    out.push('.');
    out.push_str(&crate::b64_url(payload));
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.update(out.as_bytes())?;
    let sig = signer.sign_to_vec()?;
    out.push('.');
    out.push_str(&crate::b64_url(&sig));
    Ok(out)
}

/// The hex SHA-256 of a compact JWS as received: what a party keeps of a business message it
/// no longer needs, to tell an identical retry (same bytes) from another message under a
/// used id.
pub fn digest(jws: &str) -> String {
    // SHA-256 cannot fail in OpenSSL's default provider; an empty digest would only make a
    // retry look like another message.
    openssl::hash::hash(MessageDigest::sha256(), jws.as_bytes())
        .map(hex::encode)
        .unwrap_or_default()
}

/// Whether `jws` is the business message a party kept: compared with the message itself
/// while that is kept (`kept` not empty), else with its [`digest`].
pub fn is_same_message(kept: &str, kept_digest: Option<&str>, jws: &str) -> bool {
    if !kept.is_empty() {
        return kept == jws;
    }
    kept_digest.is_some_and(|d| !d.is_empty() && d == digest(jws))
}

/// Decode a compact JWS without verifying anything: `(header JSON, payload bytes)`.
pub fn decode_unverified(jws: &str) -> Result<(Value, Vec<u8>), JwsError> {
    let (h, p, _) = split(jws)?;
    let header = crate::b64_url_decode(h).ok_or(JwsError::Malformed("header is not base64url"))?;
    let header: Value =
        serde_json::from_slice(&header).map_err(|e| JwsError::Header(e.to_string()))?;
    let payload =
        crate::b64_url_decode(p).ok_or(JwsError::Malformed("payload is not base64url"))?;
    Ok((header, payload))
}

fn split(jws: &str) -> Result<(&str, &str, &str), JwsError> {
    if jws.len() > MAX_JWS_BYTES {
        return Err(JwsError::TooLarge);
    }
    let jws = jws.trim_end_matches(['\r', '\n']);
    let mut it = jws.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !s.is_empty() => Ok((h, p, s)),
        _ => Err(JwsError::Malformed("expected header.payload.signature")),
    }
}

/// Verify a compact JWS: RS256 only, `x5c` present, RSA ≥ 2048 bits, signature valid.
pub fn verify(jws: &str) -> Result<VerifiedJws, JwsError> {
    let (h, p, s) = split(jws)?;
    let header_bytes =
        crate::b64_url_decode(h).ok_or(JwsError::Malformed("header is not base64url"))?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|e| JwsError::Header(e.to_string()))?;
    match &header.alg {
        Some(Value::String(a)) if a == "RS256" => {}
        Some(Value::String(a)) => return Err(JwsError::Algorithm(a.clone())),
        Some(other) => return Err(JwsError::Algorithm(other.to_string())),
        None => return Err(JwsError::Algorithm(String::new())),
    }
    if let Some(c) = header.crit {
        return Err(JwsError::Critical(c.to_string()));
    }
    let x5c = header
        .x5c
        .filter(|v| !v.is_empty())
        .ok_or(JwsError::MissingX5c)?;
    if x5c.len() > 10 {
        return Err(JwsError::BadCertificate("more than 10 certificates".into()));
    }
    let chain = x5c
        .iter()
        .map(|c| {
            let der = crate::b64_std_decode(c)
                .ok_or_else(|| JwsError::BadCertificate("x5c entry is not base64".into()))?;
            crate::certcache::x509_from_der(&der)
                .map_err(|e| JwsError::BadCertificate(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = chain.first().ok_or(JwsError::MissingX5c)?;
    let key = leaf
        .public_key()
        .map_err(|e| JwsError::BadCertificate(e.to_string()))?;
    let rsa = key.rsa().map_err(|_| JwsError::NotRsa)?;
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(JwsError::WeakKey(bits));
    }
    let sig = crate::b64_url_decode(s).ok_or(JwsError::Malformed("signature is not base64url"))?;
    if sig.len() != rsa.size() as usize {
        return Err(JwsError::BadSignature);
    }
    let signing_input_len = h.len() + 1 + p.len();
    let signing_input = jws
        .as_bytes()
        .get(..signing_input_len)
        .ok_or(JwsError::Malformed("truncated"))?;
    let mut verifier = Verifier::new(MessageDigest::sha256(), &key)?;
    verifier.update(signing_input)?;
    if !verifier.verify(&sig).unwrap_or(false) {
        return Err(JwsError::BadSignature);
    }
    let payload =
        crate::b64_url_decode(p).ok_or(JwsError::Malformed("payload is not base64url"))?;
    Ok(VerifiedJws { payload, chain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_message_is_recognized_by_itself_or_its_digest() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_same_message("a.b.c", None, "a.b.c"));
        assert!(!is_same_message("a.b.c", Some(&digest("a.b.d")), "a.b.d"));
        assert!(is_same_message("", Some(&digest("a.b.c")), "a.b.c"));
        assert!(!is_same_message("", Some(&digest("a.b.c")), "a.b.d"));
        // Nothing kept at all matches nothing, not even an empty message.
        assert!(!is_same_message("", None, ""));
        assert!(!is_same_message("", Some(""), ""));
    }
}
