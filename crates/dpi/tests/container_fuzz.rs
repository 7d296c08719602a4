//! Bounded fuzz-style tests over `read_asice` and `cms::decrypt` (random and mutated inputs must
//! give Ok or a known code, never a panic), and each-bit-flip of a small valid container and of
//! its CMS: every flip is refused, or yields exactly the original verified letter (a flip in an
//! unauthenticated but harmless field such as a zip timestamp) — never a different one.

mod container_common;
use container_common::*;

use std::sync::OnceLock;

use dpi::container::{
    Avsender, ContainerError, Document, DocumentRole, Dokumentpakke, Limits, Manifest, cms,
    read_asice, write_asice,
};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use proptest::prelude::*;

struct Fixture {
    package: Dokumentpakke,
    zip: Vec<u8>,
    cms: Vec<u8>,
    recipient_key: PKey<Private>,
    recipient: X509,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (cert, key) = self_signed("Avsender", 2048);
        let (rcert, rkey) = self_signed("Postkasse", 2048);
        let package = Dokumentpakke {
            manifest: Manifest {
                mottaker: None,
                avsender: Avsender {
                    organisasjon: "0192:991825827".into(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: vec![Document {
                href: "brev.txt".into(),
                mime: "text/plain".into(),
                title: None,
                lang: None,
                role: DocumentRole::Hoveddokument,
                bytes: b"Hei".to_vec(),
                data: None,
            }],
        };
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let zip = write_asice(&package, &[cert], &key, t).unwrap();
        let cms = cms::encrypt(&zip, &rcert).unwrap();
        Fixture {
            package,
            zip,
            cms,
            recipient_key: rkey,
            recipient: rcert,
        }
    })
}

fn known(e: &ContainerError) -> bool {
    ContainerError::ALL_CODES.contains(&e.code())
}

/// Ok only when the verified letter is exactly the original one.
fn check_zip(bytes: &[u8]) -> Result<bool, String> {
    match read_asice(bytes, &Limits::default()) {
        Ok(v) if v.package == fixture().package => Ok(true),
        Ok(_) => Err("a modified container verified as a different letter".into()),
        Err(e) if known(&e) => Ok(false),
        Err(e) => Err(format!("unknown code {}", e.code())),
    }
}

fn check_cms(bytes: &[u8]) -> Result<bool, String> {
    let f = fixture();
    match cms::decrypt_for(bytes, &f.recipient_key, &f.recipient, &Limits::default()) {
        Ok(zip) if zip == f.zip => Ok(true),
        Ok(zip) => check_zip(&zip).map(|_| false),
        Err(e) if known(&e) => Ok(false),
        Err(e) => Err(format!("unknown code {}", e.code())),
    }
}

#[test]
fn every_bit_flip_of_the_zip() {
    let f = fixture();
    let mut harmless = 0;
    for i in 0..f.zip.len() * 8 {
        let mut z = f.zip.clone();
        z[i / 8] ^= 1 << (i % 8);
        if check_zip(&z).unwrap_or_else(|e| panic!("flip of bit {i}: {e}")) {
            harmless += 1;
        }
    }
    println!(
        "zip of {} bytes: {} bit flips, {harmless} harmless (unauthenticated zip metadata)",
        f.zip.len(),
        f.zip.len() * 8
    );
    assert!(harmless < f.zip.len() * 8 / 4);
}

#[test]
fn every_bit_flip_of_the_cms() {
    let f = fixture();
    let mut harmless = 0;
    let mut tried = 0;
    // Every bit of the structure and key transport part and of the first and last cipher blocks;
    // one bit per byte in between (those flips are all alike: they garble two CBC blocks).
    let n = f.cms.len();
    let body_start = n - f.zip.len().div_ceil(16) * 16 - 16;
    for i in 0..n * 8 {
        let byte = i / 8;
        let dense = byte < body_start + 32 || byte >= n - 32;
        if !dense && i % 8 != byte % 8 {
            continue;
        }
        tried += 1;
        let mut c = f.cms.clone();
        c[byte] ^= 1 << (i % 8);
        if check_cms(&c).unwrap_or_else(|e| panic!("flip of bit {i}: {e}")) {
            println!(
                "harmless CMS flip: byte {byte} bit {} (0x{:02x})",
                i % 8,
                f.cms[byte]
            );
            harmless += 1;
        }
    }
    println!(
        "cms of {n} bytes: {tried} bit flips tried, {harmless} decrypted to the identical container"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(check_zip(&bytes).is_ok());
        prop_assert!(check_cms(&bytes).is_ok());
    }

    #[test]
    fn mutated_zip_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut z = fixture().zip.clone();
        for (at, v) in edits {
            let i = at % z.len();
            z[i] = v;
        }
        let keep = z.len() - cut % 16;
        z.truncate(keep);
        prop_assert!(check_zip(&z).is_ok());
    }

    #[test]
    fn mutated_cms_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut c = fixture().cms.clone();
        let header = c.len().min(600);
        for (at, v) in edits {
            c[at % header] = v;
        }
        prop_assert!(check_cms(&c).is_ok());
    }
}
