//! Hostile corpus: one case (at least) per limit and defence of the dokumentpakke reader, each
//! refused with its own stable code.

mod container_common;
use container_common::*;

use std::io::Write;

use dpi::container::{ContainerError, Limits, read_asice, xades};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

const MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><manifest xmlns="http://begrep.difi.no/sdp/schema_v10"><mottaker><person><postkasseadresse>ola#1</postkasseadresse></person></mottaker><avsender><organisasjon authority="iso6523-actorid-upis">0192:991825827</organisasjon></avsender><hoveddokument href="brev.txt" mime="text/plain"><tittel lang="no">Brev</tittel></hoveddokument></manifest>"#;

fn t0() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

struct Signer {
    cert: X509,
    key: PKey<Private>,
}

fn signer() -> &'static Signer {
    static S: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let (cert, key) = self_signed("Avsender", 2048);
        Signer { cert, key }
    })
}

/// A zip from raw entries (mimetype first, stored, unless `raw` says otherwise).
fn zip_of(entries: &[(&str, &[u8])], with_mimetype: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    if with_mimetype {
        w.start_file(
            "mimetype",
            SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
        )
        .unwrap();
        w.write_all(dpi::container::ASIC_MIMETYPE.as_bytes())
            .unwrap();
    }
    for (n, d) in entries {
        w.start_file(
            *n,
            SimpleFileOptions::default().compression_method(CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Signs `files` (name, mime, bytes) and returns (signatures.xml, files).
fn sign(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let s = signer();
    let sf: Vec<xades::SignedFile> = files
        .iter()
        .map(|(n, m, d)| xades::SignedFile {
            name: n,
            mime: m,
            data: d,
        })
        .collect();
    xades::sign(&sf, std::slice::from_ref(&s.cert), &s.key, t0()).unwrap()
}

/// A complete signed container with `manifest` and the given documents, plus `extra` unsigned entries.
fn package(manifest: &str, docs: &[(&str, &str, &[u8])], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut files: Vec<(&str, &str, &[u8])> =
        vec![("manifest.xml", "application/xml", manifest.as_bytes())];
    files.extend_from_slice(docs);
    let sig = sign(&files);
    let mut entries: Vec<(&str, &[u8])> = files.iter().map(|(n, _, d)| (*n, *d)).collect();
    entries.extend_from_slice(extra);
    entries.push(("META-INF/signatures.xml", &sig));
    zip_of(&entries, true)
}

fn valid() -> Vec<u8> {
    package(MANIFEST, &[("brev.txt", "text/plain", b"Hei")], &[])
}

fn code(r: Result<dpi::container::VerifiedAsice, ContainerError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn read(zip: &[u8]) -> &'static str {
    code(read_asice(zip, &Limits::default()))
}

#[test]
fn baseline_is_valid() {
    assert_eq!(read(&valid()), "ok");
}

// --- size and count limits ----------------------------------------------------------------------

#[test]
fn total_size_limit() {
    let limits = Limits {
        max_total_bytes: 1000,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&valid(), &limits)), "package_too_large");
    // Inflated total over the limit although the zip itself is small.
    let big = vec![b'a'; 40_000];
    let z = package(MANIFEST, &[("brev.txt", "text/plain", &big)], &[]);
    let limits = Limits {
        max_total_bytes: 30_000,
        max_compression_ratio: 1_000_000,
        ..Limits::default()
    };
    assert!(z.len() < 30_000);
    assert_eq!(code(read_asice(&z, &limits)), "package_too_large");
}

#[test]
fn entry_count_limit() {
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&valid(), &limits)), "too_many_entries");
}

#[test]
fn entry_size_limit_on_inflated_bytes() {
    let big = vec![b'a'; 200_000];
    let z = package(MANIFEST, &[("brev.txt", "text/plain", &big)], &[]);
    let limits = Limits {
        max_entry_bytes: 100_000,
        max_compression_ratio: 1_000_000,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&z, &limits)), "entry_too_large");
}

#[test]
fn compression_ratio_bomb() {
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let z = zip_of(
        &[("manifest.xml", MANIFEST.as_bytes()), ("bomb.txt", &zeros)],
        true,
    );
    assert!(
        z.len() < 100_000,
        "the bomb compresses to {} bytes",
        z.len()
    );
    assert_eq!(read(&z), "compression_ratio");
}

// --- names ----------------------------------------------------------------------------------------

/// Replaces every occurrence of `from` with `to` (same length) in the raw zip bytes, i.e. in both
/// the local and central headers.
fn patch_name(zip: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = zip.to_vec();
    let (f, t) = (from.as_bytes(), to.as_bytes());
    let mut i = 0;
    let mut n = 0;
    while i + f.len() <= out.len() {
        if &out[i..i + f.len()] == f {
            out[i..i + f.len()].copy_from_slice(t);
            n += 1;
            i += f.len();
        } else {
            i += 1;
        }
    }
    assert!(n >= 2, "{from} patched {n} times");
    out
}

#[test]
fn absolute_traversal_backslash_names() {
    let base = zip_of(
        &[("manifest.xml", MANIFEST.as_bytes()), ("xxxxxxxxxx", b"x")],
        true,
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "/etc/passw")),
        "absolute_path"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "C:/windows")),
        "absolute_path"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "../../evil")),
        "path_traversal"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "a/../../bb")),
        "path_traversal"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "dir\\a.txtx")),
        "backslash_in_name"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "a//b.txtxx")),
        "invalid_name"
    );
    assert_eq!(
        read(&patch_name(&base, "xxxxxxxxxx", "a\u{1}b.txtxxx")),
        "invalid_name"
    );
}

#[test]
fn duplicate_and_case_colliding_names() {
    let base = zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("brev.txt", b"1"),
            ("brev.TXX", b"2"),
        ],
        true,
    );
    assert_eq!(
        read(&patch_name(&base, "brev.TXX", "brev.txt")),
        "duplicate_name"
    );
    assert_eq!(
        read(&patch_name(&base, "brev.TXX", "BREV.txt")),
        "case_collision"
    );
}

/// Offsets of central-directory and local headers of the entry named `name`.
fn header_offsets(zip: &[u8], name: &str) -> (usize, usize) {
    let n = name.as_bytes();
    let find = |sig: &[u8; 4], name_at: usize| {
        (0..zip.len() - 4)
            .find(|&i| {
                &zip[i..i + 4] == sig && zip.get(i + name_at..i + name_at + n.len()) == Some(n)
            })
            .unwrap()
    };
    (find(b"PK\x01\x02", 46), find(b"PK\x03\x04", 30))
}

#[test]
fn unsupported_compression_and_encryption() {
    let base = valid();
    let (cd, lh) = header_offsets(&base, "brev.txt");
    let mut z = base.clone();
    z[cd + 10] = 12; // bzip2
    z[lh + 8] = 12;
    assert_eq!(read(&z), "unsupported_compression");
    let mut z = base.clone();
    z[cd + 8] |= 1; // general purpose bit 0: encrypted
    z[lh + 6] |= 1;
    assert_eq!(read(&z), "encrypted_entry");
}

#[test]
fn mimetype_rules() {
    let manifest = ("manifest.xml", MANIFEST.as_bytes());
    // Absent is tolerated (the 2014 containers have none).
    let files: [(&str, &str, &[u8]); 2] = [
        ("manifest.xml", "application/xml", MANIFEST.as_bytes()),
        ("brev.txt", "text/plain", b"Hei"),
    ];
    let sig = sign(&files);
    let z = zip_of(
        &[
            manifest,
            ("brev.txt", b"Hei"),
            ("META-INF/signatures.xml", &sig),
        ],
        false,
    );
    assert_eq!(read(&z), "ok");
    // Present but not first, compressed, or with other content: refused.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("manifest.xml", SimpleFileOptions::default())
        .unwrap();
    w.write_all(MANIFEST.as_bytes()).unwrap();
    w.start_file(
        "mimetype",
        SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
    )
    .unwrap();
    w.write_all(dpi::container::ASIC_MIMETYPE.as_bytes())
        .unwrap();
    assert_eq!(read(&w.finish().unwrap().into_inner()), "invalid_mimetype");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "mimetype",
        SimpleFileOptions::default().compression_method(CompressionMethod::Deflated),
    )
    .unwrap();
    w.write_all(dpi::container::ASIC_MIMETYPE.as_bytes())
        .unwrap();
    assert_eq!(read(&w.finish().unwrap().into_inner()), "invalid_mimetype");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "mimetype",
        SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
    )
    .unwrap();
    w.write_all(b"application/zip").unwrap();
    assert_eq!(read(&w.finish().unwrap().into_inner()), "invalid_mimetype");
    assert_eq!(read(&zip_of(&[manifest], true)), "missing_entry");
}

#[test]
fn malformed_and_truncated_zip() {
    let z = valid();
    assert_eq!(read(b"not a zip at all"), "zip_malformed");
    assert_eq!(read(&z[..z.len() / 2]), "zip_malformed");
    assert_eq!(read(&[]), "zip_malformed");
    // Flip a byte inside the stored mimetype content: CRC mismatch.
    let mut bad = z.clone();
    bad[40] ^= 0x20;
    assert_eq!(read(&bad), "zip_malformed");
}

// --- XML --------------------------------------------------------------------------------------------

const XXE: &str = r#"<?xml version="1.0"?><!DOCTYPE manifest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><manifest xmlns="http://begrep.difi.no/sdp/schema_v10">&xxe;</manifest>"#;
const LAUGHS: &str = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"#;

#[test]
fn xxe_and_billion_laughs_refused() {
    // In the signed manifest (signature valid, so the manifest parser is reached).
    for evil in [XXE, LAUGHS] {
        let z = package(evil, &[("brev.txt", "text/plain", b"Hei")], &[]);
        assert_eq!(read(&z), "xml_dtd_forbidden");
    }
    // As signatures.xml itself.
    for evil in [XXE, LAUGHS] {
        let z = zip_of(
            &[
                ("manifest.xml", MANIFEST.as_bytes()),
                ("META-INF/signatures.xml", evil.as_bytes()),
            ],
            true,
        );
        assert_eq!(read(&z), "xml_dtd_forbidden");
    }
    // In an extension document.
    let m = MANIFEST.replace(
        "</tittel></hoveddokument>",
        r#"</tittel><data href="lenke.xml" mime="application/vnd.difi.dpi.lenke+xml"/></hoveddokument>"#,
    );
    let z = package(
        &m,
        &[
            ("brev.txt", "text/plain", b"Hei"),
            (
                "lenke.xml",
                "application/vnd.difi.dpi.lenke+xml",
                XXE.as_bytes(),
            ),
        ],
        &[],
    );
    assert_eq!(read(&z), "xml_dtd_forbidden");
}

#[test]
fn xml_size_and_node_limits() {
    let limits = Limits {
        max_xml_bytes: 500,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&valid(), &limits)), "xml_limit");
    let limits = Limits {
        max_xml_nodes: 20,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&valid(), &limits)), "xml_limit");
    let many = format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000));
    let z = zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("META-INF/signatures.xml", many.as_bytes()),
        ],
        true,
    );
    let limits = Limits {
        max_xml_nodes: 1000,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&z, &limits)), "xml_limit");
}

#[test]
fn malformed_xml() {
    let z = package("<manifest", &[("brev.txt", "text/plain", b"Hei")], &[]);
    assert_eq!(read(&z), "xml_malformed");
    let z = package(
        "\u{FEFF}<manifest\u{0}/>",
        &[("brev.txt", "text/plain", b"Hei")],
        &[],
    );
    assert_eq!(read(&z), "xml_malformed");
}

// --- manifest ---------------------------------------------------------------------------------------

#[test]
fn manifest_rules() {
    let doc = [("brev.txt", "text/plain", b"Hei".as_slice())];
    let exe = MANIFEST.replace("mime=\"text/plain\"", "mime=\"application/x-msdownload\"");
    assert_eq!(read(&package(&exe, &doc, &[])), "mime_not_allowed");
    let missing = MANIFEST.replace("href=\"brev.txt\"", "href=\"borte.txt\"");
    assert_eq!(read(&package(&missing, &doc, &[])), "href_not_found");
    let no_avsender = MANIFEST.replace(
        r#"<avsender><organisasjon authority="iso6523-actorid-upis">0192:991825827</organisasjon></avsender>"#,
        "",
    );
    assert_eq!(read(&package(&no_avsender, &doc, &[])), "manifest_invalid");
    let bad_org = MANIFEST.replace("0192:991825827", "991825827");
    assert_eq!(read(&package(&bad_org, &doc, &[])), "manifest_invalid");
    let long_title = MANIFEST.replace(">Brev<", &format!(">{}<", "x".repeat(256)));
    assert_eq!(read(&package(&long_title, &doc, &[])), "manifest_invalid");
    let unknown_el = MANIFEST.replace("</manifest>", "<ekstra/></manifest>");
    assert_eq!(read(&package(&unknown_el, &doc, &[])), "manifest_invalid");
    // A signed file the manifest does not list.
    let docs = [
        ("brev.txt", "text/plain", b"Hei".as_slice()),
        ("ekstra.txt", "text/plain", b"x".as_slice()),
    ];
    assert_eq!(read(&package(MANIFEST, &docs, &[])), "unlisted_file");
    // Three vedlegg over a limit of two.
    let v = |n: u8| format!(r#"<vedlegg href="v{n}.txt" mime="text/plain"/>"#);
    let m = MANIFEST.replace(
        "</hoveddokument>",
        &format!("</hoveddokument>{}{}{}", v(1), v(2), v(3)),
    );
    let docs = [
        ("brev.txt", "text/plain", b"Hei".as_slice()),
        ("v1.txt", "text/plain", b"1".as_slice()),
        ("v2.txt", "text/plain", b"2".as_slice()),
        ("v3.txt", "text/plain", b"3".as_slice()),
    ];
    let z = package(&m, &docs, &[]);
    assert_eq!(read(&z), "ok");
    let limits = Limits {
        max_attachments: 2,
        ..Limits::default()
    };
    assert_eq!(code(read_asice(&z, &limits)), "too_many_attachments");
    // Unsigned extra file inside META-INF.
    assert_eq!(
        read(&package(MANIFEST, &doc, &[("META-INF/extra.xml", b"<x/>")])),
        "unlisted_file"
    );
}

// --- XAdES ------------------------------------------------------------------------------------------

/// Takes the valid container apart, edits signatures.xml, optionally re-signs, and rebuilds.
fn with_signature(edit: impl Fn(String) -> String, resign: bool) -> Vec<u8> {
    let files: [(&str, &str, &[u8]); 2] = [
        ("manifest.xml", "application/xml", MANIFEST.as_bytes()),
        ("brev.txt", "text/plain", b"Hei"),
    ];
    let sig = String::from_utf8(sign(&files)).unwrap();
    let mut edited = edit(sig).into_bytes();
    if resign {
        edited = xades::testing::resign(&edited, &signer().key).unwrap();
    }
    zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("brev.txt", b"Hei"),
            ("META-INF/signatures.xml", &edited),
        ],
        true,
    )
}

#[test]
fn digest_mismatch_and_unsigned_file() {
    let files: [(&str, &str, &[u8]); 2] = [
        ("manifest.xml", "application/xml", MANIFEST.as_bytes()),
        ("brev.txt", "text/plain", b"Hei"),
    ];
    let sig = sign(&files);
    let z = zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("brev.txt", b"Hallo"),
            ("META-INF/signatures.xml", &sig),
        ],
        true,
    );
    assert_eq!(read(&z), "digest_mismatch");
    assert_eq!(
        read(&package(
            MANIFEST,
            &[("brev.txt", "text/plain", b"Hei")],
            &[("smuglet.pdf", b"x")]
        )),
        "unsigned_file"
    );
}

#[test]
fn signature_value_tampering() {
    // Any change to SignedInfo without re-signing.
    let z = with_signature(|s| s.replacen("ID_1", "ID_9", 1), false);
    assert_eq!(read(&z), "signature_invalid");
    // Flipped signature value.
    let z = with_signature(
        |s| {
            let i = s.find("<SignatureValue>").unwrap() + 20;
            let c = if &s[i..i + 1] == "A" { "B" } else { "A" };
            format!("{}{}{}", &s[..i], c, &s[i + 1..])
        },
        false,
    );
    assert_eq!(read(&z), "signature_invalid");
    // The re-signing helper itself yields a valid container.
    assert_eq!(read(&with_signature(|s| s, true)), "ok");
}

#[test]
fn wrapping_defences() {
    // SignedProperties reference pointing at another element with that Id.
    let z = with_signature(
        |s| {
            s.replace("URI=\"#SignedProperties\"", "URI=\"#Fake\"")
                .replace(
                    "<SignedSignatureProperties>",
                    "<SignedSignatureProperties Id=\"Fake\">",
                )
        },
        true,
    );
    assert_eq!(read(&z), "reference_target_mismatch");
    // A second SignedProperties-like element elsewhere carrying the referenced Id: duplicate Id.
    let z = with_signature(
        |s| s.replace("<KeyInfo>", "<KeyInfo Id=\"SignedProperties\">"),
        true,
    );
    assert_eq!(read(&z), "duplicate_id");
    // Same file referenced twice.
    let z = with_signature(
        |s| {
            let a = s.find("<Reference Id=\"ID_1\"").unwrap();
            let b = s[a..].find("</Reference>").unwrap() + a + 12;
            let r = s[a..b].replace("ID_1", "ID_7");
            format!("{}{}{}", &s[..b], r, &s[b..])
        },
        true,
    );
    assert_eq!(read(&z), "duplicate_reference");
    // Reference to a file that is not there, or into META-INF.
    let z = with_signature(|s| s.replace("URI=\"brev.txt\"", "URI=\"borte.txt\""), true);
    assert_eq!(read(&z), "reference_not_found");
    let z = with_signature(
        |s| s.replace("URI=\"brev.txt\"", "URI=\"META-INF%2Fsignatures.xml\""),
        true,
    );
    assert_eq!(read(&z), "reference_not_found");
    // Transforms on a file reference.
    let z = with_signature(
        |s| {
            s.replace(
            "URI=\"brev.txt\">",
            "URI=\"brev.txt\"><Transforms><Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#base64\"/></Transforms>",
        )
        },
        true,
    );
    assert_eq!(read(&z), "signature_algorithm");
    // Two signatures.
    let z = with_signature(
        |s| {
            let a = s.find("<Signature ").unwrap();
            let b = s.rfind("</XAdESSignatures>").unwrap();
            format!("{}{}{}", &s[..b], &s[a..b], &s[b..])
        },
        false,
    );
    assert_eq!(read(&z), "duplicate_id");
}

#[test]
fn algorithms_certificates_and_time() {
    let z = with_signature(
        |s| s.replace("xmldsig-more#rsa-sha256", "xmldsig-more#rsa-md5"),
        false,
    );
    assert_eq!(read(&z), "signature_algorithm");
    let z = with_signature(
        |s| {
            s.replace(
                "xml-c14n-20010315\"/><SignatureMethod",
                "xml-exc-c14n#\"/><SignatureMethod",
            )
        },
        false,
    );
    assert_eq!(read(&z), "signature_algorithm");
    let z = with_signature(
        |s| s.replace("<X509Certificate>MII", "<X509Certificate>AII"),
        false,
    );
    assert_eq!(read(&z), "certificate_invalid");
    let z = with_signature(
        |s| {
            let a = s.find("<ns2:DigestValue>").unwrap() + 17;
            format!("{}AAAA{}", &s[..a], &s[a + 4..])
        },
        false,
    );
    assert_eq!(read(&z), "signing_certificate_mismatch");
    let z = with_signature(
        |s| s.replace("<SigningTime>2023", "<SigningTime>igår"),
        false,
    );
    assert_eq!(read(&z), "signing_time_invalid");
    let z = with_signature(
        |s| {
            s.replace(
                "XAdESSignatures xmlns=\"http://uri.etsi.org/02918",
                "XAdESSignatures xmlns=\"urn:x",
            )
        },
        false,
    );
    assert_eq!(read(&z), "signature_structure");
    // Old ASiC namespace is accepted.
    let z = with_signature(
        |s| {
            s.replace(
                "http://uri.etsi.org/02918/v1.2.1#",
                "http://uri.etsi.org/2918/v1.2.1#",
            )
        },
        false,
    );
    assert_eq!(read(&z), "ok");
    // C14N 1.1 for SignedInfo is accepted when the signature was made over it.
    let z = with_signature(
        |s| {
            s.replacen(
                "REC-xml-c14n-20010315\"/><SignatureMethod",
                "xml-c14n11\"/><SignatureMethod",
                1,
            )
            .replace(
                "REC-xml-c14n-20010315\"/><SignatureMethod",
                "xml-c14n11\"/><SignatureMethod",
            )
            .replace(
                "http://www.w3.org/TR/2001/xml-c14n11",
                "http://www.w3.org/2006/12/xml-c14n11",
            )
        },
        true,
    );
    assert_eq!(read(&z), "ok");
}

#[test]
fn weak_signer_key_refused() {
    let (cert, key) = self_signed("Svak", 1024);
    let files: [(&str, &str, &[u8]); 2] = [
        ("manifest.xml", "application/xml", MANIFEST.as_bytes()),
        ("brev.txt", "text/plain", b"Hei"),
    ];
    let sf: Vec<xades::SignedFile> = files
        .iter()
        .map(|(n, m, d)| xades::SignedFile {
            name: n,
            mime: m,
            data: d,
        })
        .collect();
    let sig = xades::sign(&sf, &[cert], &key, t0()).unwrap();
    let z = zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("brev.txt", b"Hei"),
            ("META-INF/signatures.xml", &sig),
        ],
        true,
    );
    assert_eq!(read(&z), "weak_key");
}

#[test]
fn deeply_nested_xml_does_not_crash() {
    let deep = format!("{}{}", "<a>".repeat(60_000), "</a>".repeat(60_000));
    let z = zip_of(
        &[
            ("manifest.xml", MANIFEST.as_bytes()),
            ("META-INF/signatures.xml", deep.as_bytes()),
        ],
        true,
    );
    let c = read(&z);
    assert!(
        ["signature_structure", "xml_malformed", "xml_limit"].contains(&c),
        "{c}"
    );
    // A deep manifest behind a valid signature.
    let m = MANIFEST.replace(
        "</manifest>",
        &format!(
            "{}{}</manifest>",
            "<x>".repeat(20_000),
            "</x>".repeat(20_000)
        ),
    );
    let c = read(&package(&m, &[("brev.txt", "text/plain", b"Hei")], &[]));
    assert!(
        ["manifest_invalid", "xml_malformed", "xml_limit"].contains(&c),
        "{c}"
    );
}
