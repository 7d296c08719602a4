//! CMS EnvelopedData: the real Digdir vectors decrypt to the published zips byte for byte; our
//! own output round-trips and is readable by `openssl cms`; hostile CMS gets a stable code.

mod container_common;
use container_common::*;

use dpi::container::{Limits, cms};

#[test]
fn digdir_vectors_decrypt_to_published_zip() {
    let Some(v) = vectors() else { return };
    let key = recipient_key(&v);
    for name in ["digital", "utskrift"] {
        let c = std::fs::read(v.komplette.join(format!("{name}-dokumentpakke.cms"))).unwrap();
        let z = std::fs::read(v.komplette.join(format!("{name}-dokumentpakke.zip"))).unwrap();
        let out = cms::decrypt(&c, &key, &Limits::default()).unwrap();
        assert_eq!(
            out, z,
            "{name}: decrypted container differs from the published zip"
        );
    }
}

#[test]
fn roundtrip_our_der() {
    let (cert, key) = self_signed("mottaker", 2048);
    let data = b"hello dokumentpakke".repeat(100);
    let c = cms::encrypt(&data, &cert).unwrap();
    assert_eq!(cms::decrypt(&c, &key, &Limits::default()).unwrap(), data);
    // Another key cannot decrypt it.
    let (_, other) = self_signed("annen", 2048);
    assert_eq!(
        cms::decrypt(&c, &other, &Limits::default())
            .unwrap_err()
            .code(),
        "cms_key_decrypt_failed"
    );
}

/// Walks `der` as DER: every length definite and in its shortest form, every constructed
/// value exactly filled by its children, nothing after the outermost value. Returns how many
/// values it saw.
fn assert_der(der: &[u8]) -> usize {
    fn walk(mut rest: &[u8], depth: usize) -> usize {
        let mut seen = 0;
        while !rest.is_empty() {
            let identifier = rest[0];
            assert_ne!(identifier & 0x1F, 0x1F, "only low tag numbers are written");
            let first = rest[1] as usize;
            let (len, header) = if first < 0x80 {
                (first, 2)
            } else {
                let n = first & 0x7F;
                assert!((1..=8).contains(&n), "indefinite or oversized length");
                let bytes = &rest[2..2 + n];
                assert_ne!(bytes[0], 0, "length with a leading zero byte");
                let len = bytes.iter().fold(0usize, |a, b| a << 8 | *b as usize);
                assert!(len >= 0x80, "long form for a length under 128");
                (len, 2 + n)
            };
            let contents = &rest[header..header + len];
            // Constructed: the children fill the contents. (The ciphertext is [0] IMPLICIT
            // OCTET STRING, primitive: 0x80.)
            seen += 1 + if identifier & 0x20 != 0 {
                walk(contents, depth + 1)
            } else {
                0
            };
            rest = &rest[header + len..];
            if depth == 0 {
                assert!(rest.is_empty(), "bytes after the outermost value");
            }
        }
        seen
    }
    walk(der, 0)
}

#[test]
fn our_output_is_der_at_every_length_boundary() {
    let (cert, key) = self_signed("mottaker", 2048);
    // Ciphertext lengths cross the one-, two- and three-byte length forms, and so do the
    // lengths of the values around it.
    for len in [
        0,
        1,
        15,
        16,
        17,
        100,
        111,
        112,
        127,
        128,
        200,
        255,
        256,
        65_000,
        65_519,
        65_520,
        65_536,
        100_000,
        1 << 20,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let c = cms::encrypt(&data, &cert).unwrap();
        assert!(assert_der(&c) > 20, "{len}: too few values");
        assert_eq!(
            cms::decrypt(&c, &key, &Limits::default()).unwrap(),
            data,
            "{len} bytes"
        );
    }
}

#[test]
fn truncated_and_garbage_refused() {
    let (cert, key) = self_signed("mottaker", 2048);
    let c = cms::encrypt(b"abc", &cert).unwrap();
    for cut in [0, 1, 2, 10, c.len() / 2, c.len() - 1] {
        let e = cms::decrypt(&c[..cut], &key, &Limits::default()).unwrap_err();
        assert_eq!(e.code(), "ber_truncated", "cut at {cut}");
    }
    let mut trailing = c.clone();
    trailing.push(0);
    assert_eq!(
        cms::decrypt(&trailing, &key, &Limits::default())
            .unwrap_err()
            .code(),
        "ber_malformed"
    );
    // A SEQUENCE of the wrong shape.
    let e = cms::decrypt(&[0x30, 0x03, 0x02, 0x01, 0x00], &key, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "cms_structure");
}

#[test]
fn deep_nesting_refused() {
    let (_, key) = self_signed("mottaker", 2048);
    let mut deep = Vec::new();
    for _ in 0..1000 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..1000 {
        deep.extend_from_slice(&[0, 0]);
    }
    assert_eq!(
        cms::decrypt(&deep, &key, &Limits::default())
            .unwrap_err()
            .code(),
        "ber_limit"
    );
}

#[test]
fn oversized_input_refused() {
    let (_, key) = self_signed("mottaker", 2048);
    let limits = Limits {
        max_total_bytes: 1000,
        ..Limits::default()
    };
    let big = vec![0u8; 200_000];
    assert_eq!(
        cms::decrypt(&big, &key, &limits).unwrap_err().code(),
        "package_too_large"
    );
}

#[test]
fn decrypt_for_checks_the_recipient_identifier() {
    let Some(v) = vectors() else { return };
    let key = recipient_key(&v);
    let cert = pem_cert(v.derived.join("eksempel-recipient-cert.pem"));
    let c = std::fs::read(v.komplette.join("digital-dokumentpakke.cms")).unwrap();
    let z = std::fs::read(v.komplette.join("digital-dokumentpakke.zip")).unwrap();
    assert_eq!(
        cms::decrypt_for(&c, &key, &cert, &Limits::default()).unwrap(),
        z
    );
    let (other_cert, _) = self_signed("annen", 2048);
    let e = cms::decrypt_for(&c, &key, &other_cert, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "cms_recipient_mismatch");
    // Our own output names the recipient by issuer and serial too.
    let (rc, rk) = self_signed("mottaker", 2048);
    let ours = cms::encrypt(b"x", &rc).unwrap();
    assert_eq!(
        cms::decrypt_for(&ours, &rk, &rc, &Limits::default()).unwrap(),
        b"x"
    );
}
