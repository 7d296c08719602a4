//! Helpers shared by the `container_*` integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

pub struct Vectors {
    pub root: PathBuf,
    pub komplette: PathBuf,
    pub utvidelser: PathBuf,
    pub derived: PathBuf,
}

/// The shared conformance vectors, or `None` (after printing SKIPPED) when absent.
pub fn vectors() -> Option<Vectors> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if !root.is_dir() {
        println!("SKIPPED: ../shared/vectors not found");
        return None;
    }
    let sdp = root.join("felleslosninger-docs/resources/begrep/sikkerDigitalPost");
    Some(Vectors {
        komplette: sdp.join("nyinf/eksempler/komplette"),
        utvidelser: sdp.join("eksempler/utvidelser"),
        derived: root.join("derived"),
        root,
    })
}

pub fn read(p: impl AsRef<std::path::Path>) -> Vec<u8> {
    std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

pub fn recipient_key(v: &Vectors) -> PKey<Private> {
    PKey::private_key_from_pem(&read(v.derived.join("eksempel-recipient-key.pem"))).unwrap()
}

pub fn pem_cert(p: impl AsRef<std::path::Path>) -> X509 {
    X509::from_pem(&read(p)).unwrap()
}

/// A self-signed RSA certificate and its key, for tests that need fresh key material.
pub fn self_signed(cn: &str, bits: u32) -> (X509, PKey<Private>) {
    let key = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("C", "NO").unwrap();
    name.append_entry_by_text("O", "Testvirksomhet").unwrap();
    name.append_entry_by_text("serialNumber", "991825827")
        .unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(0x1234_5678)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}
