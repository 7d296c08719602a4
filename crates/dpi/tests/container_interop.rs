//! Independent tools accept our output and we accept theirs: `openssl cms` decrypts our CMS to
//! our zip (and we decrypt its DER and streamed BER output, OAEP SHA-256 and SHA-1 defaults); an
//! independent Python verifier (lxml C14N + `cryptography`, `container_xades_verify.py`) verifies
//! our `signatures.xml`, and so does the `xmlsec1` CLI. Runs `$SAMSPILL_PYTHON` (else `python3`);
//! prints SKIPPED when a tool or module is missing (CI installs them: scripts/setup-test-env).

mod container_common;
use container_common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use dpi::container::{
    Avsender, Document, DocumentRole, Dokumentpakke, Limits, Manifest, cms, read_asice, write_asice,
};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("samspill-container-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl_available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: openssl CLI not found");
    }
    ok
}

fn package() -> Dokumentpakke {
    let doc = |href: &str, mime: &str, role| Document {
        href: href.into(),
        mime: mime.into(),
        title: Some(format!("Tittel {href}")),
        lang: Some("nb".into()),
        role,
        bytes: format!("%PDF-1.4 innhold for {href}\n")
            .repeat(200)
            .into_bytes(),
        data: None,
    };
    Dokumentpakke {
        manifest: Manifest {
            mottaker: None,
            avsender: Avsender {
                organisasjon: "0192:991825827".into(),
                avsenderidentifikator: None,
                faktura_referanse: None,
            },
            lenke: None,
        },
        documents: vec![
            doc(
                "vedtak om plass (endelig).pdf",
                "application/pdf",
                DocumentRole::Hoveddokument,
            ),
            doc("vedlegg æøå.txt", "text/plain", DocumentRole::Vedlegg),
        ],
    }
}

fn sealed() -> (
    Vec<u8>,
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    let (cert, key) = self_signed("Avsender", 2048);
    let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    (
        write_asice(&package(), std::slice::from_ref(&cert), &key, t).unwrap(),
        cert,
        key,
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn openssl_cli_decrypts_our_cms() {
    if !openssl_available() {
        return;
    }
    let dir = scratch("cli-decrypt");
    let (zip, _, _) = sealed();
    let (rcert, rkey) = self_signed("Postkasse", 2048);
    let c = write(
        &dir,
        "dokumentpakke.cms",
        &cms::encrypt(&zip, &rcert).unwrap(),
    );
    let cert = write(&dir, "recipient.pem", &rcert.to_pem().unwrap());
    let key = write(
        &dir,
        "recipient.key",
        &rkey.private_key_to_pem_pkcs8().unwrap(),
    );
    let out = dir.join("out.zip");
    let o = Command::new("openssl")
        .args(["cms", "-decrypt", "-inform", "DER", "-in"])
        .arg(&c)
        .arg("-recip")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl cms -decrypt failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), zip);
    // And openssl sees the OAEP SHA-256 parameters we claim to write.
    let o = Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
        .arg(&c)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("rsaesOaep")
            && printed.contains("sha256")
            && printed.contains("aes-256-cbc"),
        "{printed}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn we_decrypt_openssl_cli_output() {
    if !openssl_available() {
        return;
    }
    let dir = scratch("cli-encrypt");
    let (zip, _, _) = sealed();
    let (rcert, rkey) = self_signed("Postkasse", 2048);
    let input = write(&dir, "in.zip", &zip);
    let cert = write(&dir, "recipient.pem", &rcert.to_pem().unwrap());
    let variants: [&[&str]; 3] = [
        // OAEP SHA-256 / MGF1-SHA-256, DER.
        &[
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
        // OAEP with the SHA-1 defaults.
        &["-keyopt", "rsa_padding_mode:oaep"],
        // Streamed: BER with indefinite lengths and chunked content.
        &[
            "-stream",
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
    ];
    for (i, extra) in variants.iter().enumerate() {
        let out = dir.join(format!("out{i}.cms"));
        let o = Command::new("openssl")
            .args([
                "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in",
            ])
            .arg(&input)
            .arg("-out")
            .arg(&out)
            .arg("-recip")
            .arg(&cert)
            .args(*extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl cms -encrypt {extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let c = std::fs::read(&out).unwrap();
        let plain = cms::decrypt(&c, &rkey, &Limits::default())
            .unwrap_or_else(|e| panic!("variant {i}: {e}"));
        assert_eq!(plain, zip, "variant {i}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Runs the Python verifier; `None` when Python or its modules are missing.
fn python_verify(zip_path: &Path) -> Option<(bool, String)> {
    let python = std::env::var("SAMSPILL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/container_xades_verify.py");
    let o = match Command::new(&python).arg(&script).arg(zip_path).output() {
        Ok(o) => o,
        Err(e) => {
            println!("SKIPPED: {python} not runnable: {e}");
            return None;
        }
    };
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.code() == Some(3) {
        println!("SKIPPED: python modules missing (lxml, cryptography): {out}");
        return None;
    }
    Some((o.status.success(), out))
}

#[test]
fn python_verifier_accepts_our_signature() {
    let dir = scratch("python");
    let (zip, _, _) = sealed();
    let p = write(&dir, "ours.zip", &zip);
    let Some((ok, out)) = python_verify(&p) else {
        return;
    };
    assert!(ok, "independent verifier refused our signatures.xml: {out}");
    assert!(out.contains("OK 4 references"), "{out}");

    // The verifier is not a rubber stamp: a changed document fails it (and us).
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip.as_slice())).unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..a.len() {
        use std::io::{Read, Write};
        let mut f = a.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if name.ends_with(".txt") {
            data[0] ^= 1;
        }
        let opts = zip::write::SimpleFileOptions::default().compression_method(f.compression());
        w.start_file(name, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    let bad = w.finish().unwrap().into_inner();
    assert_eq!(
        read_asice(&bad, &Limits::default()).unwrap_err().code(),
        "digest_mismatch"
    );
    let p = write(&dir, "tampered.zip", &bad);
    let (ok, out) = python_verify(&p).unwrap();
    assert!(!ok && out.contains("digest mismatch"), "{out}");

    // And it agrees with us on Digdir's published containers.
    if let Some(v) = vectors() {
        for name in ["digital", "utskrift"] {
            let (ok, out) =
                python_verify(&v.komplette.join(format!("{name}-dokumentpakke.zip"))).unwrap();
            assert!(ok, "{name}: {out}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

fn xmlsec1_verify(dir: &Path) -> Option<(bool, String)> {
    let o = Command::new("xmlsec1")
        .current_dir(dir)
        .args([
            "--verify",
            // Detached references are relative file names, which xmlsec classifies as "remote".
            "--enabled-reference-uris",
            "empty,same-doc,local,remote",
            "--id-attr:Id",
            "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
            // Chain trust is not what this checks (the signer is self-signed): only the signature.
            "--insecure",
            "sig.xml",
        ])
        .output();
    match o {
        Ok(o) => Some((
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )),
        Err(_) => {
            println!("SKIPPED: xmlsec1 not found (Debian package xmlsec1)");
            None
        }
    }
}

#[test]
fn xmlsec1_accepts_our_signature() {
    let dir = scratch("xmlsec1");
    let mut p = package();
    // xmlsec resolves URIs as RFC 3986 references, not form-encoded: plain names here.
    p.documents[0].href = "vedtak.pdf".into();
    p.documents[1].href = "vedlegg.txt".into();
    let (cert, key) = self_signed("Avsender", 2048);
    let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let zip = write_asice(&p, std::slice::from_ref(&cert), &key, t).unwrap();
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip.as_slice())).unwrap();
    for i in 0..a.len() {
        use std::io::Read;
        let mut f = a.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        let target = if name == "META-INF/signatures.xml" {
            "sig.xml".to_string()
        } else {
            name.replace('/', "_")
        };
        write(&dir, &target, &data);
    }
    let Some((ok, out)) = xmlsec1_verify(&dir) else {
        return;
    };
    assert!(ok, "xmlsec1 refused our signatures.xml: {out}");
    assert!(out.contains("SignedInfo References (ok/all): 4/4"), "{out}");
    // Tampering is noticed by xmlsec1 too.
    write(&dir, "vedlegg.txt", b"endret");
    let (ok, out) = xmlsec1_verify(&dir).unwrap();
    assert!(!ok, "xmlsec1 accepted a changed document: {out}");
    std::fs::remove_dir_all(dir).ok();
}
