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

/// One DER value at the start of `b`: (header length, total length).
fn der_tlv(b: &[u8]) -> (usize, usize) {
    let first = b[1] as usize;
    if first < 0x80 {
        return (2, 2 + first);
    }
    let n = first & 0x7F;
    let len = b[2..2 + n].iter().fold(0usize, |a, x| a << 8 | *x as usize);
    (2 + n, 2 + n + len)
}

/// The DER values concatenated in `content`.
fn der_children(mut content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, total) = der_tlv(content);
        out.push(&content[..total]);
        content = &content[total..];
    }
    out
}

fn der_content(v: &[u8]) -> &[u8] {
    let (h, total) = der_tlv(v);
    &v[h..total]
}

fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `cms` (our DER output) with `extra` KeyTransRecipientInfos added to its recipientInfos.
fn with_more_recipients(cms: &[u8], extra: &[&[u8]]) -> Vec<u8> {
    let content_info = der_children(der_content(cms));
    let enveloped = der_content(content_info[1]);
    let fields = der_children(der_content(enveloped));
    let mut recipients: Vec<u8> = der_content(fields[1]).to_vec();
    for r in extra {
        recipients.extend_from_slice(r);
    }
    let mut ed = fields[0].to_vec();
    ed.extend(der_wrap(0x31, &recipients));
    ed.extend_from_slice(fields[2]);
    let mut ci = content_info[0].to_vec();
    ci.extend(der_wrap(0xA0, &der_wrap(0x30, &ed)));
    der_wrap(0x30, &ci)
}

fn recipient_infos(cms: &[u8]) -> Vec<Vec<u8>> {
    let content_info = der_children(der_content(cms));
    let fields = der_children(der_content(der_content(content_info[1])));
    der_children(der_content(fields[1]))
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn exactly_one_recipient_info() {
    let (cert, key) = self_signed("mottaker", 2048);
    let (other_cert, other_key) = self_signed("annen", 2048);
    let data = b"brev til en postkasse".to_vec();
    let ours = cms::encrypt(&data, &cert).unwrap();
    // The helper rebuilds a CMS that still decrypts when nothing is added.
    assert_eq!(
        cms::decrypt(&with_more_recipients(&ours, &[]), &key, &Limits::default()).unwrap(),
        data
    );
    // A second recipient with its own copy of a content key: refused, whichever key opens it
    // and whether or not the recipient certificate is named.
    let theirs = cms::encrypt(&data, &other_cert).unwrap();
    let second = recipient_infos(&theirs).remove(0);
    let two = with_more_recipients(&ours, &[&second]);
    for (k, c) in [(&key, &cert), (&other_key, &other_cert)] {
        assert_eq!(
            cms::decrypt(&two, k, &Limits::default())
                .unwrap_err()
                .code(),
            "cms_recipient_count"
        );
        assert_eq!(
            cms::decrypt_for(&two, k, c, &Limits::default())
                .unwrap_err()
                .code(),
            "cms_recipient_count"
        );
    }
    // The same recipient twice is two recipientInfos too.
    let first = recipient_infos(&ours).remove(0);
    assert_eq!(
        cms::decrypt(
            &with_more_recipients(&ours, &[&first]),
            &key,
            &Limits::default()
        )
        .unwrap_err()
        .code(),
        "cms_recipient_count"
    );
}
