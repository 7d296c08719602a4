//! Minimal JOSE on OpenSSL: compact JWS with RS256/RS384/RS512 and RSA JWKs.
//!
//! The one JOSE layer of samspill (also reachable as `pki::jose`): Maskinporten, ID-porten,
//! KRR, the clients and the OIDC relying party all sign and verify through it. Parsing is
//! strict (three base64url parts without padding, JSON objects, bounded size) because every
//! token here comes from the network, and only RSA signatures are ever accepted: `none` and
//! HMAC algorithms are refused before any key is used, and RSA keys from JWKs must have a
//! modulus of at least [`MIN_RSA_BITS`].
//!
//! Two ways in: [`decode`] (RS256/RS384/RS512, up to [`MAX_TOKEN_LEN`], for Maskinporten
//! grants with `x5c` chains and KRR responses) and [`decode_oidc`] (the OpenID Connect
//! profile ID-porten and its relying parties use: RS256 only, no `crit`, up to
//! [`MAX_JWT_LEN`]). Both give a [`Decoded`] token to verify with a key or a JWK set.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::{
    bn::BigNum,
    hash::MessageDigest,
    pkey::{HasPublic, PKey, PKeyRef, Private, Public},
    rsa::Rsa,
    sign::{Signer, Verifier},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Upper bound for a compact JWS we are willing to parse (x5c chains make grants ~5 KiB).
pub const MAX_TOKEN_LEN: usize = 32 * 1024;

/// Upper bound for a token in the OpenID Connect profile; real ones are a few kilobytes.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// Smallest RSA modulus accepted in a JWK.
pub const MIN_RSA_BITS: i32 = 2048;

/// Why a token could not be decoded, signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    #[error("token is larger than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("token is not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("token part is not valid base64url")]
    Base64,
    #[error("token header or payload is not a JSON object")]
    Json,
    #[error("unsupported or missing alg {0:?}")]
    UnsupportedAlg(String),
    #[error("JWK is not a usable RSA key")]
    BadJwk,
    #[error("crypto error: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

impl JoseError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            JoseError::TooLarge => "token_too_large",
            JoseError::Malformed | JoseError::Base64 | JoseError::Json => "malformed_token",
            JoseError::UnsupportedAlg(_) => "unsupported_alg",
            JoseError::BadJwk => "bad_jwk",
            JoseError::Crypto(_) => "crypto_error",
        }
    }
}

/// Why a token in the OpenID Connect profile ([`decode_oidc`]) was refused. The messages end
/// up in OAuth2 `error_description`s, so they say what is wrong without echoing secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    #[error("unsupported JWS algorithm {0:?}; only RS256 is accepted")]
    Algorithm(String),
    #[error("no key matches the JWT")]
    NoKey,
    #[error("signature does not verify")]
    Signature,
}

/// The RSA signature algorithms accepted anywhere in samspill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
}

impl Alg {
    pub fn parse(s: &str) -> Result<Self, JoseError> {
        match s {
            "RS256" => Ok(Alg::RS256),
            "RS384" => Ok(Alg::RS384),
            "RS512" => Ok(Alg::RS512),
            other => Err(JoseError::UnsupportedAlg(other.chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Alg::RS256 => MessageDigest::sha256(),
            Alg::RS384 => MessageDigest::sha384(),
            Alg::RS512 => MessageDigest::sha512(),
        }
    }
}

/// A decoded but not yet verified compact JWS.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Decoded {
    /// `alg` from the header, restricted to the RSA algorithms.
    pub fn alg(&self) -> Result<Alg, JoseError> {
        match self.header.get("alg") {
            Some(Value::String(s)) => Alg::parse(s),
            _ => Err(JoseError::UnsupportedAlg(String::new())),
        }
    }

    /// `kid` from the header, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// `typ` from the header, if it is a string.
    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    /// A claim, if it is a string.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A claim, if it is an integer.
    pub fn int_claim(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }

    /// Verify the signature with `key` using the header's `alg`.
    pub fn verify<T: HasPublic>(&self, key: &PKeyRef<T>) -> Result<bool, JoseError> {
        let alg = self.alg()?;
        let mut v = Verifier::new(alg.digest(), key)?;
        v.update(self.signing_input.as_bytes())?;
        // A wrong-length signature is an OpenSSL error, not a panic: treat it as "invalid".
        Ok(v.verify(&self.signature).unwrap_or(false))
    }

    /// [`Decoded::verify`] as a yes-or-[`JwtError::Signature`]: any failure is a bad signature.
    pub fn verify_with<T: HasPublic>(&self, key: &PKeyRef<T>) -> Result<(), JwtError> {
        match self.verify(key) {
            Ok(true) => Ok(()),
            _ => Err(JwtError::Signature),
        }
    }

    /// Verifies against a JWK set: the key named by `kid`, or every key when there is none.
    pub fn verify_with_jwks(&self, jwks: &[VerifyingKey]) -> Result<(), JwtError> {
        let candidates: Vec<&VerifyingKey> = match self.kid() {
            Some(kid) => jwks
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => jwks.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(JwtError::NoKey);
        }
        if candidates.iter().any(|k| self.verify_with(&k.key).is_ok()) {
            Ok(())
        } else {
            Err(JwtError::Signature)
        }
    }
}

/// Base64url without padding, as JOSE (and PKCE) encode binary values.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn unb64(s: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| JoseError::Base64)
}

/// Header, payload and signature of a compact JWS; `None` unless there are exactly three.
fn split(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Some((h, p, s)),
        _ => None,
    }
}

/// A base64url part holding a JSON object.
fn object(part: &str) -> Result<Map<String, Value>, JoseError> {
    serde_json::from_slice(&unb64(part)?).map_err(|_| JoseError::Json)
}

/// Split and decode a compact JWS without verifying it.
pub fn decode(token: &str) -> Result<Decoded, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLarge);
    }
    let (h, p, s) = split(token).ok_or(JoseError::Malformed)?;
    let header = object(h)?;
    let claims = object(p)?;
    let signature = unb64(s)?;
    Ok(Decoded {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// Split and decode a compact JWS in the OpenID Connect profile without verifying it:
/// `alg` must be RS256 and `crit` is refused, before any key is looked at.
pub fn decode_oidc(token: &str) -> Result<Decoded, JwtError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwtError::Malformed("token too long"));
    }
    let (h, p, s) =
        split(token).ok_or(JwtError::Malformed("expected three dot-separated parts"))?;
    let header = object(h).map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
    let claims = object(p).map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
    let signature = unb64(s).map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        Some(other) => return Err(JwtError::Algorithm(other.to_owned())),
        None => return Err(JwtError::Malformed("header has no alg")),
    }
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "crit header parameters are not supported",
        ));
    }
    Ok(Decoded {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// Sign `claims` as a compact JWS. `header` gets `alg` set; add `kid`/`x5c`/`typ` yourself.
pub fn sign(
    mut header: Map<String, Value>,
    claims: &Value,
    alg: Alg,
    key: &PKeyRef<Private>,
) -> Result<String, JoseError> {
    header.insert("alg".into(), Value::String(alg.as_str().into()));
    let h = b64(&serde_json::to_vec(&header).map_err(|_| JoseError::Json)?);
    let p = b64(&serde_json::to_vec(claims).map_err(|_| JoseError::Json)?);
    let input = format!("{h}.{p}");
    let mut signer = Signer::new(alg.digest(), key)?;
    signer.update(input.as_bytes())?;
    let sig = signer.sign_to_vec()?;
    Ok(format!("{input}.{}", b64(&sig)))
}

/// Sign `claims` as an RS256 JWT with `kid` and `typ` in the header when given.
pub fn sign_jwt(
    key: &PKeyRef<Private>,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Value,
) -> Result<String, JoseError> {
    let mut header = Map::new();
    if let Some(k) = kid {
        header.insert("kid".into(), k.into());
    }
    if let Some(t) = typ {
        header.insert("typ".into(), t.into());
    }
    sign(header, claims, Alg::RS256, key)
}

/// An RSA public key from big-endian modulus and exponent, refusing small moduli.
fn rsa_public_key(n: &[u8], e: &[u8]) -> Result<PKey<Public>, JoseError> {
    let n = BigNum::from_slice(n)?;
    let e = BigNum::from_slice(e)?;
    if n.num_bits() < MIN_RSA_BITS {
        return Err(JoseError::BadJwk);
    }
    Ok(PKey::from_rsa(Rsa::from_public_components(n, e)?)?)
}

/// An RSA public JWK (RFC 7517) as published in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default)]
    pub n: String,
    #[serde(default)]
    pub e: String,
}

impl Jwk {
    /// The public half of an RSA key, with `kid` and `use=sig`, `alg=RS256`.
    pub fn from_rsa<T: HasPublic>(
        key: &PKeyRef<T>,
        kid: Option<String>,
    ) -> Result<Self, JoseError> {
        let rsa = key.rsa()?;
        Ok(Jwk {
            kty: "RSA".into(),
            kid,
            use_: Some("sig".into()),
            alg: Some("RS256".into()),
            n: b64(&rsa.n().to_vec()),
            e: b64(&rsa.e().to_vec()),
        })
    }

    /// The OpenSSL public key this JWK describes.
    pub fn to_public_key(&self) -> Result<PKey<Public>, JoseError> {
        if self.kty != "RSA" {
            return Err(JoseError::BadJwk);
        }
        let n = unb64(&self.n).map_err(|_| JoseError::BadJwk)?;
        let e = unb64(&self.e).map_err(|_| JoseError::BadJwk)?;
        rsa_public_key(&n, &e)
    }

    /// RFC 7638 thumbprint (SHA-256, base64url), our choice of `kid`.
    pub fn thumbprint(&self) -> String {
        // Members in lexicographic order, no whitespace, as RFC 7638 §3 requires.
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, self.e, self.n);
        b64(&Sha256::digest(canonical.as_bytes()))
    }
}

/// A JWK Set document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

/// An RSA signing key of a JWK set, ready to verify with ([`Decoded::verify_with_jwks`]).
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub key: PKey<Public>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish()
    }
}

/// Reads the RSA signing keys of a JWK set (`{"keys":[…]}`), skipping other key types and
/// encryption keys. Errors name what is wrong so fixture mistakes are easy to find.
pub fn parse_jwks(v: &Value) -> Result<Vec<VerifyingKey>, String> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWK set needs a \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("kty").and_then(Value::as_str) != Some("RSA") {
            continue;
        }
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let part = |name: &str| k.get(name).and_then(Value::as_str).map(unb64);
        let Some(Ok(n)) = part("n") else {
            return Err("RSA JWK without a valid \"n\"".into());
        };
        let Some(Ok(e)) = part("e") else {
            return Err("RSA JWK without a valid \"e\"".into());
        };
        let key = rsa_public_key(&n, &e).map_err(|e| match e {
            JoseError::BadJwk => format!("RSA JWK with a modulus under {MIN_RSA_BITS} bits"),
            e => format!("unusable RSA JWK: {e}"),
        })?;
        out.push(VerifyingKey {
            kid: k.get("kid").and_then(Value::as_str).map(str::to_owned),
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rsa(bits: u32) -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
    }

    fn jwks_of(key: &PKey<Private>, kid: &str) -> Vec<VerifyingKey> {
        let jwk = Jwk::from_rsa(key, Some(kid.into())).unwrap();
        parse_jwks(&json!({ "keys": [jwk] })).unwrap()
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let k = rsa(2048);
        let t = sign_jwt(&k, Some("k1"), Some("JWT"), &json!({"a":1})).unwrap();
        let jwks = jwks_of(&k, "k1");
        let d = decode_oidc(&t).unwrap();
        assert_eq!((d.kid(), d.typ()), (Some("k1"), Some("JWT")));
        assert_eq!(d.int_claim("a"), Some(1));
        d.verify_with_jwks(&jwks).unwrap();
        d.verify_with(&k).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(br#"{"a":2}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            decode_oidc(&forged).unwrap().verify_with_jwks(&jwks),
            Err(JwtError::Signature)
        );
        let other = jwks_of(&k, "k2");
        assert_eq!(d.verify_with_jwks(&other), Err(JwtError::NoKey));
        // Without a kid every key is tried; a wrong key is a bad signature, not a panic.
        let no_kid = sign_jwt(&k, None, None, &json!({"a":1})).unwrap();
        let d = decode_oidc(&no_kid).unwrap();
        d.verify_with_jwks(&other).unwrap();
        assert_eq!(
            d.verify_with_jwks(&jwks_of(&rsa(2048), "k3")),
            Err(JwtError::Signature)
        );
    }

    #[test]
    fn oidc_profile_refuses_other_algorithms_and_crit() {
        let h = b64(br#"{"alg":"none"}"#);
        let p = b64(br#"{"sub":"x"}"#);
        assert!(matches!(
            decode_oidc(&format!("{h}.{p}.")),
            Err(JwtError::Algorithm(a)) if a == "none"
        ));
        for alg in ["HS256", "RS512", "ES256"] {
            let h = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            assert!(matches!(
                decode_oidc(&format!("{h}.{p}.AAAA")),
                Err(JwtError::Algorithm(_))
            ));
        }
        let h = b64(br#"{"alg":"RS256","crit":["exp"]}"#);
        assert!(matches!(
            decode_oidc(&format!("{h}.{p}.AAAA")),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(decode_oidc("a.b"), Err(JwtError::Malformed(_))));
        let huge = "a".repeat(MAX_JWT_LEN + 1);
        assert_eq!(
            decode_oidc(&huge).unwrap_err(),
            JwtError::Malformed("token too long")
        );
    }

    #[test]
    fn lax_decode_still_never_verifies_none_or_hmac() {
        let k = rsa(2048);
        let p = b64(br#"{"sub":"x"}"#);
        for alg in ["none", "HS256"] {
            let h = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            let d = decode(&format!("{h}.{p}.AAAA")).unwrap();
            assert_eq!(d.verify(&k).unwrap_err().code(), "unsupported_alg");
            assert_eq!(d.verify_with(&k), Err(JwtError::Signature));
        }
    }

    #[test]
    fn jwks_refuse_small_keys_and_skip_others() {
        let small = Jwk::from_rsa(&rsa(1024), Some("s".into())).unwrap();
        let err = parse_jwks(&json!({ "keys": [small] })).unwrap_err();
        assert!(err.contains("2048"), "{err}");
        assert_eq!(small.to_public_key().unwrap_err().code(), "bad_jwk");
        let k = rsa(2048);
        let enc = json!({"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"});
        let ec = json!({"kty":"EC","crv":"P-256"});
        let keys = parse_jwks(&json!({ "keys": [enc, ec, Jwk::from_rsa(&k, None).unwrap()] }));
        assert_eq!(keys.unwrap().len(), 1);
        assert!(parse_jwks(&json!({"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]})).is_err());
        assert!(parse_jwks(&json!({})).is_err());
    }
}
