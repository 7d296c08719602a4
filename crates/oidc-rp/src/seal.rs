//! Authenticated encryption of what the relying party hands to storage it does not trust
//! with secrets: session rows in the database ([`crate::DbStore`]) and the login in progress
//! in the browser's state cookie.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::session::StoreError;

/// Marks the format of a sealed value: `v1.` + base64url(nonce ‖ ciphertext ‖ tag), which is
/// also a valid cookie value.
const SEALED_V1: &str = "v1.";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// AES-256-GCM with a random nonce per value. The caller names the value's place (`context`:
/// table or cookie, client, row key or `state`) as associated data, so a sealed value opens
/// only in the place it was sealed for.
pub(crate) struct Sealer {
    key: [u8; 32],
}

impl Sealer {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn aad(context: &[&str]) -> Vec<u8> {
        context.join("\0").into_bytes()
    }

    pub(crate) fn seal(&self, context: &[&str], plain: &[u8]) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(StoreError::new)?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            &Self::aad(context),
            plain,
            &mut tag,
        )
        .map_err(StoreError::new)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(format!("{SEALED_V1}{}", B64.encode(out)))
    }

    /// `None` when the value was not sealed under this key for this `context`.
    pub(crate) fn open(&self, context: &[&str], sealed: &str) -> Option<Vec<u8>> {
        let raw = B64.decode(sealed.strip_prefix(SEALED_V1)?).ok()?;
        let (nonce, rest) = raw.split_at_checked(NONCE_LEN)?;
        let (ciphertext, tag) = rest.split_at_checked(rest.len().checked_sub(TAG_LEN)?)?;
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            &Self::aad(context),
            ciphertext,
            tag,
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    #[test]
    fn a_value_opens_only_under_its_key_and_context() {
        let s = Sealer::new([7; 32]);
        let v = s.seal(&["t", "c", "a"], b"secret").unwrap();
        assert!(!v.contains("secret"));
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "a cookie value: {v}"
        );
        assert_eq!(
            s.open(&["t", "c", "a"], &v).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(s.open(&["t", "c", "b"], &v), None, "another row");
        assert_eq!(s.open(&["t", "ca"], &v), None, "the parts are separated");
        assert_eq!(Sealer::new([8; 32]).open(&["t", "c", "a"], &v), None);
        assert_ne!(
            s.seal(&["t", "c", "a"], b"secret").unwrap(),
            v,
            "fresh nonce"
        );
        for bad in ["", "v1.", "v1.AAAA", "secret", &v[..v.len() - 1]] {
            assert_eq!(s.open(&["t", "c", "a"], bad), None, "{bad}");
        }
    }
}
