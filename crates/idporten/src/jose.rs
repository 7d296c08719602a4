//! Compact JWS with RS256 only, on the system OpenSSL: what an OIDC provider needs to issue
//! tokens and to check client assertions. Anything but RS256 is refused before any key is used.

use std::path::Path;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use openssl::{
    bn::BigNum,
    hash::MessageDigest,
    pkey::{PKey, Private, Public},
    rsa::Rsa,
    sign::{Signer, Verifier},
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

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

/// The provider's RS256 signing key with its key id and public JWK.
pub struct SigningKey {
    pkey: PKey<Private>,
    public: PKey<Public>,
    kid: String,
    jwk: Value,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM RSA key from `path`, or creates a 2048-bit one there (mode 0600).
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let pem = std::fs::read(path)?;
            return Self::from_pem(&pem);
        }
        let rsa = Rsa::generate(2048)?;
        let pkey = PKey::from_rsa(rsa)?;
        let pem = pkey.private_key_to_pem_pkcs8()?;
        write_private(path, &pem)?;
        Self::from_pem(&pem)
    }

    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let pkey = PKey::private_key_from_pem(pem)?;
        let rsa = pkey.rsa()?;
        let n = rsa.n().to_vec();
        let e = rsa.e().to_vec();
        let public = PKey::from_rsa(Rsa::from_public_components(
            BigNum::from_slice(&n)?,
            BigNum::from_slice(&e)?,
        )?)?;
        // RFC 7638 thumbprint as key id: stable across restarts and unique per key.
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(&e), b64(&n));
        let kid = b64(&Sha256::digest(canonical.as_bytes()));
        let jwk = json!({"kty":"RSA","use":"sig","alg":"RS256","kid":kid,"n":b64(&n),"e":b64(&e)});
        Ok(Self {
            pkey,
            public,
            kid,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    pub fn public(&self) -> &PKey<Public> {
        &self.public
    }

    /// Signs `claims` as a compact JWS with header `{alg: RS256, kid, typ}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, openssl::error::ErrorStack> {
        let header = json!({"alg":"RS256","kid":self.kid,"typ":typ});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), &self.pkey)?;
        signer.update(input.as_bytes())?;
        let sig = signer.sign_to_vec()?;
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)
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
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::load_or_create(&dir.path().join("k.pem")).unwrap();
        let again = SigningKey::load_or_create(&dir.path().join("k.pem")).unwrap();
        assert_eq!(k.kid(), again.kid(), "key is reused on restart");
        let t = k.sign("JWT", &json!({"a":1})).unwrap();
        let jwks = parse_jwks(&json!({"keys":[k.jwk()]})).unwrap();
        Jws::parse(&t).unwrap().verify_with_jwks(&jwks).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(br#"{"a":2}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            Jws::parse(&forged).unwrap().verify_with_jwks(&jwks),
            Err(JwtError::Signature)
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
