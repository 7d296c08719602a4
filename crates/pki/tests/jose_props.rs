//! Hostile tokens and keys never panic the JOSE layer.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decode_never_panics(s in ".{0,400}") {
        let _ = pki::jose::decode(&s);
    }

    #[test]
    fn decode_of_three_base64_parts_never_panics(
        h in proptest::collection::vec(any::<u8>(), 0..200),
        p in proptest::collection::vec(any::<u8>(), 0..200),
        sig in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let t = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(&h), URL_SAFE_NO_PAD.encode(&p), URL_SAFE_NO_PAD.encode(&sig));
        if let Ok(d) = pki::jose::decode(&t) {
            // A random signature never verifies under a real key.
            let k = pki::SigningKey::generate().unwrap();
            let public = k.jwk().to_public_key().unwrap();
            prop_assert!(!d.verify(&public).unwrap_or(false));
        }
    }

    #[test]
    fn jwk_from_junk_never_panics(n in "[A-Za-z0-9_-]{0,600}", e in "[A-Za-z0-9_-]{0,12}") {
        let jwk = pki::jose::Jwk { kty: "RSA".into(), kid: None, use_: None, alg: None, n, e };
        let _ = jwk.to_public_key();
        let _ = jwk.thumbprint();
    }
}

#[test]
fn valid_json_header_with_random_signature_is_refused() {
    let k = pki::SigningKey::generate().unwrap();
    let public = k.jwk().to_public_key().unwrap();
    let hdr = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let pay = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
    for sig in [vec![], vec![0u8; 256], vec![0xffu8; 256], vec![1u8; 512]] {
        let t = format!("{hdr}.{pay}.{}", URL_SAFE_NO_PAD.encode(&sig));
        let d = pki::jose::decode(&t).unwrap();
        assert!(!d.verify(&public).unwrap_or(false));
    }
}
