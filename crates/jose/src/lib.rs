//! Minimal JOSE on OpenSSL: compact JWS with RS256/RS384/RS512 and RSA JWKs.
//!
//! Only what Maskinporten, ID-porten and KRR need. Parsing is strict (three base64url
//! parts without padding, JSON objects, bounded size) because every token here comes
//! from the network.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::{
    bn::BigNum,
    hash::MessageDigest,
    pkey::{PKey, PKeyRef, Private, Public},
    rsa::Rsa,
    sign::{Signer, Verifier},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Upper bound for a compact JWS we are willing to parse (x5c chains make grants ~5 KiB).
pub const MAX_TOKEN_LEN: usize = 32 * 1024;

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

    /// Verify the signature with `key` using the header's `alg`.
    pub fn verify(&self, key: &PKeyRef<Public>) -> Result<bool, JoseError> {
        let alg = self.alg()?;
        let mut v = Verifier::new(alg.digest(), key)?;
        v.update(self.signing_input.as_bytes())?;
        // A wrong-length signature is an OpenSSL error, not a panic: treat it as "invalid".
        Ok(v.verify(&self.signature).unwrap_or(false))
    }
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn unb64(s: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| JoseError::Base64)
}

/// Split and decode a compact JWS without verifying it.
pub fn decode(token: &str) -> Result<Decoded, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed);
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&unb64(h)?).map_err(|_| JoseError::Json)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&unb64(p)?).map_err(|_| JoseError::Json)?;
    let signature = unb64(s)?;
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
    pub fn from_rsa<T: openssl::pkey::HasPublic>(
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
        let n = BigNum::from_slice(&unb64(&self.n).map_err(|_| JoseError::BadJwk)?)?;
        let e = BigNum::from_slice(&unb64(&self.e).map_err(|_| JoseError::BadJwk)?)?;
        if n.num_bits() < 2048 {
            return Err(JoseError::BadJwk);
        }
        Ok(PKey::from_rsa(Rsa::from_public_components(n, e)?)?)
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
