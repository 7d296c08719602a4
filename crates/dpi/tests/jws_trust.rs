//! JWS (RS256 + x5c), Maskinporten token claims, chain trust and receipts: real vectors and
//! hostile variants.

use std::path::PathBuf;

use dpi::jws;
use dpi::message::{MessageType, Sbd, Timestamp};
use dpi::receipt::{ReceiptKind, build_receipt, open_receipt, sign_sbd};
use dpi::testkit::{TestPki, rsa_key};
use dpi::trust::{TrustAnchors, org_number};
use openssl::hash::MessageDigest;
use openssl::x509::X509;

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIPPED: ../shared/vectors not found");
        None
    }
}

const KOMPLETTE: &str =
    "felleslosninger-docs/resources/begrep/sikkerDigitalPost/nyinf/eksempler/komplette";

fn pem(root: &std::path::Path, f: &str) -> X509 {
    X509::from_pem(&std::fs::read(root.join("derived").join(f)).unwrap()).unwrap()
}

#[test]
fn real_forretningsmeldinger_verify_and_match_their_json() {
    let Some(root) = vectors() else { return };
    for (x, ca, rootca) in [
        (
            "digital",
            "buypass-class3-test4-ca3.pem",
            "buypass-class3-test4-root-ca.pem",
        ),
        (
            "utskrift",
            "buypass-class3-test4-ca-g2-st-business.pem",
            "buypass-class3-test4-root-ca-g2-st.pem",
        ),
    ] {
        let jwt = std::fs::read_to_string(
            root.join(KOMPLETTE)
                .join(format!("{x}-forretningsmelding.jwt")),
        )
        .unwrap();
        let v = jws::verify(&jwt).unwrap();
        assert_eq!(v.chain.len(), 1, "leaf only in x5c");
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                root.join(KOMPLETTE)
                    .join(format!("{x}-forretningsmelding.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&v.payload).unwrap();
        assert_eq!(payload, json);
        let sbd = Sbd::parse(&v.payload).unwrap();
        assert_eq!(org_number(&v.chain[0]).unwrap().to_string(), "991825827");

        // The embedded token's claims equal the published autorisasjonsbevis.
        let claims = dpi::token::parse_unverified(sbd.body.maskinportentoken().unwrap()).unwrap();
        let bevis: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                root.join(KOMPLETTE)
                    .join(format!("{x}-forretningsmelding-autorisasjonsbevis.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&claims).unwrap(), bevis);
        assert_eq!(claims.consumer.as_ref().unwrap().id, "0192:991825827");
        assert!(claims.has_scope(dpi::token::SCOPE_SEND));

        // Trust: root anchor + intermediate as an untrusted helper, at creation time.
        let anchors = TrustAnchors::new(vec![pem(&root, rootca)]);
        let at = sbd.created().0;
        let chain = vec![v.chain[0].clone(), pem(&root, ca)];
        anchors.verify(&chain, at).unwrap();
        assert_eq!(
            TrustAnchors::none().verify(&chain, at).unwrap_err().code(),
            "chain_untrusted_no_anchors"
        );
        let late = at + time::Duration::days(365 * 30);
        assert_eq!(
            anchors.verify(&chain, late).unwrap_err().code(),
            "chain_validity_period"
        );
        // The other Buypass generation does not anchor this chain.
        let other = if x == "digital" {
            "buypass-class3-test4-root-ca-g2-st.pem"
        } else {
            "buypass-class3-test4-root-ca.pem"
        };
        let wrong = TrustAnchors::new(vec![pem(&root, other)]);
        assert_eq!(
            wrong.verify(&chain, at).unwrap_err().code(),
            "chain_untrusted"
        );
    }
}

fn b64u(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn raw_jws(
    header: &serde_json::Value,
    payload: &[u8],
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> String {
    let mut s = format!(
        "{}.{}",
        b64u(&serde_json::to_vec(header).unwrap()),
        b64u(payload)
    );
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
    signer.update(s.as_bytes()).unwrap();
    let sig = signer.sign_to_vec().unwrap();
    s.push('.');
    s.push_str(&b64u(&sig));
    s
}

#[test]
fn jws_round_trip_and_hostile_headers() {
    let pki = TestPki::new().unwrap();
    let (cert, key) = pki.enterprise("991825827", true, 2048).unwrap();
    let payload = br#"{"hello":"verden"}"#;
    let jwt = jws::sign(payload, &[&cert], &key).unwrap();
    let v = jws::verify(&jwt).unwrap();
    assert_eq!(v.payload, payload);
    assert_eq!(org_number(&v.chain[0]).unwrap().to_string(), "991825827");
    pki.anchors()
        .verify(
            &[v.chain[0].clone(), pki.ca.clone()],
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let header: serde_json::Value = jws::decode_unverified(&jwt).unwrap().0;
    assert_eq!(header.as_object().unwrap().len(), 2);

    let x5c = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        cert.to_der().unwrap(),
    );
    let p = b64u(payload);
    // alg none
    let none = format!("{}.{}.", b64u(br#"{"alg":"none"}"#), p);
    assert_eq!(jws::verify(&none).unwrap_err().code(), "jws_malformed");
    let none2 = format!(
        "{}.{}.AAAA",
        b64u(&serde_json::to_vec(&serde_json::json!({"alg":"none","x5c":[x5c]})).unwrap()),
        p
    );
    assert_eq!(
        jws::verify(&none2).unwrap_err().code(),
        "jws_alg_not_allowed"
    );
    // HS256 keyed with the certificate bytes (classic confusion attack)
    let hs_header =
        b64u(&serde_json::to_vec(&serde_json::json!({"alg":"HS256","x5c":[x5c]})).unwrap());
    let hs = format!("{hs_header}.{p}.{}", b64u(&[0u8; 32]));
    assert_eq!(jws::verify(&hs).unwrap_err().code(), "jws_alg_not_allowed");
    for alg in ["PS256", "RS512", "ES256", "rs256"] {
        let j = raw_jws(&serde_json::json!({"alg":alg,"x5c":[x5c]}), payload, &key);
        assert_eq!(
            jws::verify(&j).unwrap_err().code(),
            "jws_alg_not_allowed",
            "{alg}"
        );
    }
    // missing / empty x5c
    let j = raw_jws(&serde_json::json!({"alg":"RS256"}), payload, &key);
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_x5c_missing");
    let j = raw_jws(&serde_json::json!({"alg":"RS256","x5c":[]}), payload, &key);
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_x5c_missing");
    let j = raw_jws(
        &serde_json::json!({"alg":"RS256","x5c":["!!"]}),
        payload,
        &key,
    );
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_x5c_invalid");
    let j = raw_jws(
        &serde_json::json!({"alg":"RS256","x5c":[x5c],"crit":["exp"]}),
        payload,
        &key,
    );
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_crit_unsupported");
    // signed by another key than x5c[0]
    let other = rsa_key(2048).unwrap();
    let j = raw_jws(
        &serde_json::json!({"alg":"RS256","x5c":[x5c]}),
        payload,
        &other,
    );
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_signature_invalid");
    // 1024-bit key
    let (weak_cert, weak_key) = pki.enterprise("991825827", false, 1024).unwrap();
    let wx5c = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        weak_cert.to_der().unwrap(),
    );
    let j = raw_jws(
        &serde_json::json!({"alg":"RS256","x5c":[wx5c]}),
        payload,
        &weak_key,
    );
    assert_eq!(jws::verify(&j).unwrap_err().code(), "jws_key_too_small");
    assert_eq!(
        jws::sign(payload, &[&weak_cert], &weak_key)
            .unwrap_err()
            .code(),
        "jws_key_too_small"
    );
    // payload swapped after signing
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let evil = b64u(br#"{"hello":"evil"}"#);
    parts[1] = &evil;
    assert_eq!(
        jws::verify(&parts.join(".")).unwrap_err().code(),
        "jws_signature_invalid"
    );
    // structure
    for bad in ["", "a", "a.b", "a.b.c.d", "....", "e30.e30.@@@"] {
        let c = jws::verify(bad).unwrap_err().code();
        assert!(c.starts_with("jws_"), "{bad}: {c}");
    }
}

#[test]
fn every_bit_flip_of_a_jws_is_refused() {
    let pki = TestPki::new().unwrap();
    let (cert, key) = pki.enterprise("991825827", false, 2048).unwrap();
    let jwt = jws::sign(br#"{"a":1}"#, &[&cert], &key).unwrap();
    let bytes = jwt.as_bytes();
    let mut accepted = 0;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << bit;
            let Ok(s) = std::str::from_utf8(&b) else {
                continue;
            };
            if let Ok(v) = jws::verify(s) {
                // base64 decoders may ignore trailing bits in the last char: payload must be intact
                assert_eq!(v.payload, br#"{"a":1}"#);
                accepted += 1;
            }
        }
    }
    // Only flips in unused trailing bits of a base64url group can survive.
    assert!(accepted < 16, "{accepted} flips accepted");
}

#[test]
fn trust_org_number_both_styles() {
    let pki = TestPki::new().unwrap();
    let (old, _) = pki.enterprise("974761076", false, 2048).unwrap();
    let (new, _) = pki.enterprise("910076787", true, 2048).unwrap();
    assert_eq!(org_number(&old).unwrap().to_string(), "974761076");
    assert_eq!(org_number(&new).unwrap().to_string(), "910076787");
    assert!(org_number(&pki.ca).is_none());
    // chain with intermediate from the pki, anchors = root
    let at = time::macros::datetime!(2030-01-01 0:00 UTC);
    pki.anchors().verify(&pki.chain_for(&new), at).unwrap();
    // leaf alone cannot chain to the root
    assert_eq!(
        pki.anchors()
            .verify(std::slice::from_ref(&new), at)
            .unwrap_err()
            .code(),
        "chain_untrusted"
    );
    // another PKI's root does not anchor it
    let other = TestPki::new().unwrap();
    assert_eq!(
        other
            .anchors()
            .verify(&pki.chain_for(&new), at)
            .unwrap_err()
            .code(),
        "chain_untrusted"
    );
    let mut anchors = TrustAnchors::none();
    assert_eq!(
        anchors.add_pem_or_der(&pki.root.to_pem().unwrap()).unwrap(),
        1
    );
    assert!(anchors.add_pem_or_der(b"garbage").is_err());
}

#[test]
fn receipts_answer_the_real_digital_letter() {
    let Some(root) = vectors() else { return };
    let letter = Sbd::parse(
        &std::fs::read(root.join(KOMPLETTE).join("digital-forretningsmelding.json")).unwrap(),
    )
    .unwrap();
    let pki = TestPki::new().unwrap();
    let provider = domain::ActorId::parse("0192:922020175").unwrap();
    let (cert, key) = pki.enterprise("922020175", false, 2048).unwrap();
    let now = Timestamp::parse("2022-03-16T14:20:00+01:00").unwrap();
    for kind in [
        ReceiptKind::Levering,
        ReceiptKind::Aapning,
        ReceiptKind::VarslingFeilet {
            kanal: dpi::message::Varslingskanal::Sms,
            beskrivelse: Some("Ugyldig nummer".into()),
        },
        ReceiptKind::Feil {
            feiltype: dpi::message::Feiltype::Klient,
            detaljer: Some("Kan ikke dekryptere".into()),
        },
    ] {
        let r = build_receipt(
            &letter,
            kind.clone(),
            &provider,
            now,
            domain::MessageId::new(),
        )
        .unwrap();
        assert_eq!(r.message_type(), kind.message_type());
        assert_eq!(r.conversation_id(), letter.conversation_id());
        assert_eq!(r.header.receiver, letter.header.sender);
        assert_eq!(r.dpi_issues(), vec![]);
        let jwt = sign_sbd(&r, &cert, &key).unwrap();
        let opened = open_receipt(
            &jwt,
            &TrustAnchors::new(vec![pki.root.clone(), pki.ca.clone()]),
            now.0,
        );
        assert!(opened.valid, "{:?}", opened.errors);
        assert_eq!(opened.sbd.unwrap(), r);
        let untrusted = open_receipt(&jwt, &TrustAnchors::none(), now.0);
        assert!(!untrusted.valid);
        assert_eq!(untrusted.errors[0].code, "chain_untrusted_no_anchors");
    }
    // The print process: mottak, levering, returpost; aapning is not allowed there.
    let print = Sbd::parse(
        &std::fs::read(
            root.join(KOMPLETTE)
                .join("utskrift-forretningsmelding.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let printer = domain::ActorId::parse("0192:974761076").unwrap();
    for kind in [
        ReceiptKind::Mottak,
        ReceiptKind::Levering,
        ReceiptKind::Returpost,
    ] {
        let r = build_receipt(&print, kind, &printer, now, domain::MessageId::new()).unwrap();
        assert_eq!(r.dpi_issues(), vec![]);
        assert_eq!(r.process(), Some(dpi::message::Process::Utskrift));
    }
    assert_eq!(
        build_receipt(
            &print,
            ReceiptKind::Aapning,
            &printer,
            now,
            domain::MessageId::new()
        )
        .unwrap_err()
        .code(),
        "receipt_not_allowed_in_process"
    );
    // A receipt cannot answer a receipt.
    let r = build_receipt(
        &letter,
        ReceiptKind::Levering,
        &provider,
        now,
        domain::MessageId::new(),
    )
    .unwrap();
    assert_eq!(
        build_receipt(
            &r,
            ReceiptKind::Levering,
            &provider,
            now,
            domain::MessageId::new()
        )
        .unwrap_err()
        .code(),
        "receipt_not_a_letter"
    );
    // Mottakskvittering belongs to the print process only.
    let e = build_receipt(
        &letter,
        ReceiptKind::Mottak,
        &provider,
        now,
        domain::MessageId::new(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "receipt_not_allowed_in_process");
    // A receipt signed by someone else than the SBDH sender is flagged.
    let (cert2, key2) = pki.enterprise("984661185", false, 2048).unwrap();
    let r = build_receipt(
        &letter,
        ReceiptKind::Levering,
        &provider,
        now,
        domain::MessageId::new(),
    )
    .unwrap();
    let opened = open_receipt(
        &sign_sbd(&r, &cert2, &key2).unwrap(),
        &TrustAnchors::new(vec![pki.root.clone(), pki.ca.clone()]),
        now.0,
    );
    assert!(
        opened
            .errors
            .iter()
            .any(|e| e.code == "jws_signer_mismatch")
    );
    assert_eq!(
        MessageType::Leveringskvittering.key(),
        "leveringskvittering"
    );
}
