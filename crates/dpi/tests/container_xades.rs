//! XAdES: the published Digdir packages and the klient-java signature verify with our C14N;
//! our own signatures verify; wrapping and tampering are refused with their codes.

mod container_common;
use container_common::*;

use std::collections::BTreeMap;

use dpi::container::{Limits, verify_zip_signature, xades};

#[test]
fn digdir_packages_verify() {
    let Some(v) = vectors() else { return };
    for (name, orgcert_cn) in [
        ("digital", "Digdir test"),
        ("utskrift", "Digdir-test-eFormidling"),
    ] {
        let z = read(v.komplette.join(format!("{name}-dokumentpakke.zip")));
        let s =
            verify_zip_signature(&z, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cn = s
            .signer_cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .unwrap();
        assert_eq!(cn.data().to_string().unwrap(), orgcert_cn);
        assert_eq!(s.chain.len(), 3);
        assert_eq!(
            s.mime_types.get("manifest.xml").map(String::as_str),
            Some("application/xml")
        );
    }
}

fn klient_java_files() -> BTreeMap<String, &'static [u8]> {
    let mut m: BTreeMap<String, &'static [u8]> = BTreeMap::new();
    m.insert("hoveddokument.pdf".into(), b"hoveddokument-innhold");
    m.insert("lenke.xml".into(), b"hoveddokumentdata");
    m.insert("manifest.xml".into(), b"manifest-innhold");
    m
}

#[test]
fn klient_java_signature_verifies() {
    let Some(v) = vectors() else { return };
    let xml = read(
        v.derived
            .join("klient-java-expected-asic-signature.compact.xml"),
    );
    let s = xades::verify(&xml, &klient_java_files(), &Limits::default()).unwrap();
    assert_eq!(s.signing_time.unix_timestamp(), 1_400_684_835);
    assert_eq!(
        s.signer_cert
            .serial_number()
            .to_bn()
            .unwrap()
            .to_dec_str()
            .unwrap()
            .to_string(),
        "589725471"
    );
    // One byte of one file changed: digest mismatch.
    let mut files = klient_java_files();
    files.insert("lenke.xml".into(), b"hoveddokumentdatA");
    assert_eq!(
        xades::verify(&xml, &files, &Limits::default())
            .unwrap_err()
            .code(),
        "digest_mismatch"
    );
    // An extra unsigned file.
    let mut files = klient_java_files();
    files.insert("extra.pdf".into(), b"x");
    assert_eq!(
        xades::verify(&xml, &files, &Limits::default())
            .unwrap_err()
            .code(),
        "unsigned_file"
    );
}

#[test]
fn our_signer_reproduces_klient_java_signature_value() {
    let Some(v) = vectors() else { return };
    let xml = String::from_utf8(read(
        v.derived
            .join("klient-java-expected-asic-signature.compact.xml"),
    ))
    .unwrap();
    let cert = pem_cert(v.derived.join("klient-java-selfsigned-avsender-cert.pem"));
    let key = openssl::pkey::PKey::private_key_from_pem(&read(
        v.derived.join("klient-java-selfsigned-avsender-key.pem"),
    ))
    .unwrap();
    let files = [
        xades::SignedFile {
            name: "hoveddokument.pdf",
            mime: "application/pdf",
            data: b"hoveddokument-innhold",
        },
        xades::SignedFile {
            name: "lenke.xml",
            mime: "application/vnd.difi.dpi.lenke+xml",
            data: b"hoveddokumentdata",
        },
        xades::SignedFile {
            name: "manifest.xml",
            mime: "application/xml",
            data: b"manifest-innhold",
        },
    ];
    let t = time::OffsetDateTime::parse(
        "2014-05-21T15:07:15.756Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ours = String::from_utf8(xades::sign(&files, &[cert], &key, t).unwrap()).unwrap();
    let sv = |s: &str| {
        let a = s.find("<SignatureValue>").unwrap() + 16;
        let b = s.find("</SignatureValue>").unwrap();
        s[a..b]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    assert_eq!(
        sv(&ours),
        sv(&xml),
        "deterministic RSA signature must equal klient-java's"
    );
    xades::verify(ours.as_bytes(), &klient_java_files(), &Limits::default()).unwrap();
}
