//! Compact JWS with RS256 only, on the system OpenSSL: verifying id tokens against the
//! provider's JWKS and signing `private_key_jwt` client assertions. Anything but RS256 is
//! refused before any key is used.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use openssl::{
    bn::BigNum,
    hash::MessageDigest,
    pkey::{PKey, Private, Public},
    rsa::Rsa,
    sign::{Signer, Verifier},
};
use serde_json::{Map, Value, json};

/// Upper bound for any JWT we are asked to parse; real tokens are a few kilobytes.
pub const MAX_JWT_LEN: usize = 16 * 1024;

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

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// Signs `claims` as a compact RS256 JWS (for `private_key_jwt`).
pub fn sign(
    key: &PKey<Private>,
    kid: Option<&str>,
    claims: &Value,
) -> Result<String, openssl::error::ErrorStack> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let (Some(k), Some(o)) = (kid, header.as_object_mut()) {
        o.insert("kid".into(), json!(k));
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.update(input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&signer.sign_to_vec()?)))
}

/// The public JWK of an RSA private key (to register it with the provider).
pub fn public_jwk(key: &PKey<Private>, kid: &str) -> Result<Value, openssl::error::ErrorStack> {
    let rsa = key.rsa()?;
    Ok(
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
              "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())}),
    )
}

/// A parsed but not yet verified compact JWS.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_JWT_LEN {
            return Err(JwtError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three dot-separated parts"));
        };
        let header = decode_object(h).ok_or(JwtError::Malformed("header is not a JSON object"))?;
        let claims = decode_object(p).ok_or(JwtError::Malformed("payload is not a JSON object"))?;
        let signature = b64_decode(s).ok_or(JwtError::Malformed("signature is not base64url"))?;
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
        let signing_input = token
            .rsplit_once('.')
            .map(|(i, _)| i)
            .ok_or(JwtError::Malformed("no signature"))?;
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    pub fn verify_with(&self, key: &PKey<Public>) -> Result<(), JwtError> {
        let ok = (|| -> Result<bool, openssl::error::ErrorStack> {
            let mut v = Verifier::new(MessageDigest::sha256(), key)?;
            v.update(self.signing_input.as_bytes())?;
            v.verify(&self.signature)
        })()
        .unwrap_or(false);
        if ok { Ok(()) } else { Err(JwtError::Signature) }
    }

    /// Verifies against a JWK set: the key named by `kid`, or every RSA key when there is none.
    pub fn verify_with_jwks(&self, jwks: &[Jwk]) -> Result<(), JwtError> {
        let candidates: Vec<&Jwk> = match self.kid() {
            Some(kid) => jwks
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => jwks.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(JwtError::NoKey);
        }
        for k in candidates {
            if self.verify_with(&k.key).is_ok() {
                return Ok(());
            }
        }
        Err(JwtError::Signature)
    }

    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn int_claim(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = b64_decode(part)?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// An RSA public key from a JWK set.
#[derive(Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    pub key: PKey<Public>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk").field("kid", &self.kid).finish()
    }
}

/// Reads the RSA signing keys of a JWK set (`{"keys":[…]}`), skipping other key types and
/// encryption keys. Errors name what is wrong so fixture mistakes are easy to find.
pub fn parse_jwks(v: &Value) -> Result<Vec<Jwk>, String> {
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
        let n = k
            .get("n")
            .and_then(Value::as_str)
            .and_then(b64_decode)
            .ok_or("RSA JWK without a valid \"n\"")?;
        let e = k
            .get("e")
            .and_then(Value::as_str)
            .and_then(b64_decode)
            .ok_or("RSA JWK without a valid \"e\"")?;
        let key = (|| -> Result<PKey<Public>, openssl::error::ErrorStack> {
            PKey::from_rsa(Rsa::from_public_components(
                BigNum::from_slice(&n)?,
                BigNum::from_slice(&e)?,
            )?)
        })()
        .map_err(|e| format!("unusable RSA JWK: {e}"))?;
        out.push(Jwk {
            kid: k.get("kid").and_then(Value::as_str).map(str::to_owned),
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_tamper() {
        let k = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let t = sign(&k, Some("k1"), &json!({"a":1})).unwrap();
        let jwks = parse_jwks(&json!({"keys":[public_jwk(&k, "k1").unwrap()]})).unwrap();
        Jws::parse(&t).unwrap().verify_with_jwks(&jwks).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(br#"{"a":2}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            Jws::parse(&forged).unwrap().verify_with_jwks(&jwks),
            Err(JwtError::Signature)
        );
        let other = parse_jwks(&json!({"keys":[public_jwk(&k, "k2").unwrap()]})).unwrap();
        assert_eq!(
            Jws::parse(&t).unwrap().verify_with_jwks(&other),
            Err(JwtError::NoKey)
        );
    }

    #[test]
    fn refuses_other_algorithms() {
        let h = b64(br#"{"alg":"none"}"#);
        let p = b64(br#"{"sub":"x"}"#);
        assert!(matches!(
            Jws::parse(&format!("{h}.{p}.")),
            Err(JwtError::Algorithm(a)) if a == "none"
        ));
        let h = b64(br#"{"alg":"HS256"}"#);
        assert!(matches!(
            Jws::parse(&format!("{h}.{p}.AAAA")),
            Err(JwtError::Algorithm(_))
        ));
        assert!(matches!(Jws::parse("a.b"), Err(JwtError::Malformed(_))));
    }
}
