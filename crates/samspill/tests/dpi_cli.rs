//! `samspill dpi open|verify-asice|seal` as other tools call it: the built binary, real Digdir
//! vectors, and letters sealed here with a throwaway PKI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dpi::testkit::{TestPki, maskinporten_token};
use openssl::pkey::PKey;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_samspill"))
}

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

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn creation_time(root: &Path, x: &str) -> String {
    let v: Value = serde_json::from_slice(
        &std::fs::read(
            root.join(KOMPLETTE)
                .join(format!("{x}-forretningsmelding.json")),
        )
        .unwrap(),
    )
    .unwrap();
    v["standardBusinessDocument"]["standardBusinessDocumentHeader"]["documentIdentification"]
        ["creationDateAndTime"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn real_digital_and_utskrift_open_valid_and_decrypt_byte_for_byte() {
    let Some(root) = vectors() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for (x, doc_href) in [("digital", "Test.txt"), ("utskrift", "my.pdf")] {
        let zip_out = tmp.path().join(format!("{x}.zip"));
        let k = root.join(KOMPLETTE);
        let o = bin()
            .args(["dpi", "open", "--json"])
            .arg("--forretningsmelding")
            .arg(k.join(format!("{x}-forretningsmelding.jwt")))
            .arg("--dokumentpakke")
            .arg(k.join(format!("{x}-dokumentpakke.cms")))
            .arg("--key")
            .arg(root.join("derived/eksempel-recipient-key.pem"))
            .arg("--trust")
            .arg(root.join("derived/buypass-class3-test4-root-ca.pem"))
            .arg("--trust")
            .arg(root.join("derived/buypass-class3-test4-root-ca-g2-st.pem"))
            .args(["--at", &creation_time(&root, x)])
            .arg("--save-container")
            .arg(&zip_out)
            .output()
            .unwrap();
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(0), "{x}: {v:#}");
        assert_eq!(v["valid"], true);
        assert_eq!(v["type"], x);
        assert_eq!(v["avsender"], "0192:991825827");
        assert!(v["errors"].as_array().unwrap().is_empty());
        assert_eq!(v["documents"][0]["href"], doc_href);
        assert_eq!(v["documents"][0]["role"], "hoveddokument");
        for key in [
            "message_id",
            "conversation_id",
            "mottaker",
            "sikkerhetsnivaa",
            "avsenderidentifikator",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        let published = std::fs::read(k.join(format!("{x}-dokumentpakke.zip"))).unwrap();
        assert_eq!(
            std::fs::read(&zip_out).unwrap(),
            published,
            "{x} container differs"
        );
        let sha = hex::encode(openssl::sha::sha256(
            &std::fs::read(k.join(format!("{x}-dokumentpakke.zip"))).unwrap(),
        ));
        assert_ne!(
            v["documents"][0]["sha256"], sha,
            "document hash, not container hash"
        );

        // Without --trust the same letter is reported untrusted and invalid (exit 1).
        let o = bin()
            .args(["dpi", "open", "--json"])
            .arg("--forretningsmelding")
            .arg(k.join(format!("{x}-forretningsmelding.jwt")))
            .arg("--dokumentpakke")
            .arg(k.join(format!("{x}-dokumentpakke.cms")))
            .arg("--key")
            .arg(root.join("derived/eksempel-recipient-key.pem"))
            .args(["--at", &creation_time(&root, x)])
            .output()
            .unwrap();
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(v["valid"], false);
        assert_eq!(v["errors"][0]["code"], "chain_untrusted_no_anchors");

        // The unencrypted published container verifies on its own.
        let o = bin()
            .args(["dpi", "verify-asice", "--json"])
            .arg(k.join(format!("{x}-dokumentpakke.zip")))
            .arg("--trust")
            .arg(root.join("derived/buypass-class3-test4-root-ca.pem"))
            .arg("--trust")
            .arg(root.join("derived/buypass-class3-test4-root-ca-g2-st.pem"))
            .args(["--at", &creation_time(&root, x)])
            .output()
            .unwrap();
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(0), "{v:#}");
        assert_eq!(v["avsender"], "0192:991825827");
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = bin().args(["dpi", "open"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .args(["dpi", "open", "--forretningsmelding", "/nonexistent/f.jwt"])
        .args([
            "--dokumentpakke",
            "/nonexistent/d.cms",
            "--key",
            "/nonexistent/k.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/f.jwt"));
    let o = bin()
        .args(["dpi", "verify-asice", "/nonexistent.zip"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin().args(["dpi", "frobnicate"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn write(p: &Path, b: impl AsRef<[u8]>) {
    std::fs::write(p, b).unwrap();
}

#[test]
fn seal_then_open_with_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = TestPki::new().unwrap();
    let (cert, key) = pki.enterprise("991825827", true, 2048).unwrap();
    let (pcert, pkey) = pki.enterprise("922020175", false, 2048).unwrap();
    // Signer file carries the chain after the leaf; signer key as PKCS#1 PEM, recipient key as
    // PKCS#8 DER and PKCS#1 DER.
    let mut chain_pem = cert.to_pem().unwrap();
    chain_pem.extend(pki.ca.to_pem().unwrap());
    chain_pem.extend(pki.root.to_pem().unwrap());
    write(&d.join("signer.pem"), &chain_pem);
    write(
        &d.join("signer-key.pem"),
        key.rsa().unwrap().private_key_to_pem().unwrap(),
    );
    write(&d.join("provider.pem"), pcert.to_pem().unwrap());
    write(
        &d.join("provider-key.der"),
        pkey.private_key_to_pkcs8().unwrap(),
    );
    write(
        &d.join("provider-key1.der"),
        pkey.rsa().unwrap().private_key_to_der().unwrap(),
    );
    write(
        &d.join("provider-key.pem"),
        pkey.private_key_to_pem_pkcs8().unwrap(),
    );
    write(&d.join("root.pem"), pki.root.to_pem().unwrap());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    write(
        &d.join("token.jwt"),
        maskinporten_token("0192:991825827", None, now).unwrap(),
    );
    write(&d.join("tilbud.pdf"), b"%PDF-1.4 tilbud");
    write(&d.join("vedlegg.txt"), "Vedtekter for barnehagen");
    write(
        &d.join("L.toml"),
        r#"
type = "digital"
avsender = "0192:991825827"
avsenderidentifikator = "barnehage"
mottaker_leverandor = "0192:922020175"

[digital]
postkasseadresse = "ola.nordmann#9YDT"
sikkerhetsnivaa = 3
ikkesensitivtittel = "Tilbud om barnehageplass"

[digital.epostvarsel]
epostadresse = "ola@example.no"
tekst = "Du har fått et brev fra kommunen."
repetisjoner = [0, 7]

[[documents]]
file = "tilbud.pdf"
mime = "application/pdf"
title = "Tilbud om barnehageplass"

[documents.lenke]
url = "https://minside.kommune.no/barnehage/svar"
beskrivelse = { text = "Svar på tilbudet innen fristen.", lang = "nb" }
knapp_tekst = { text = "Svar nå", lang = "nb" }
frist = "2026-04-01T12:00:00+02:00"

[[documents]]
file = "vedlegg.txt"
mime = "text/plain"
title = "Vedtekter"
"#,
    );
    let out = d.join("out");
    let o = bin()
        .args(["dpi", "seal", "--letter"])
        .arg(d.join("L.toml"))
        .arg("--signer-cert")
        .arg(d.join("signer.pem"))
        .arg("--signer-key")
        .arg(d.join("signer-key.pem"))
        .arg("--recipient-cert")
        .arg(d.join("provider.pem"))
        .arg("--token")
        .arg(d.join("token.jwt"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for key_file in ["provider-key.der", "provider-key1.der", "provider-key.pem"] {
        let o = bin()
            .args(["dpi", "open", "--json", "--forretningsmelding"])
            .arg(out.join("forretningsmelding.jwt"))
            .arg("--cert")
            .arg(d.join("provider.pem"))
            .arg("--dokumentpakke")
            .arg(out.join("dokumentpakke.cms"))
            .arg("--key")
            .arg(d.join(key_file))
            .arg("--trust")
            .arg(d.join("root.pem"))
            .arg("--save-container")
            .arg(d.join("ours.zip"))
            .output()
            .unwrap();
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(0), "{key_file}: {v:#}");
        assert_eq!(v["avsenderidentifikator"], "barnehage");
        assert_eq!(v["mottaker"], "ola.nordmann#9YDT");
        assert_eq!(v["sikkerhetsnivaa"], 3);
        assert!(v.get("databehandler").is_none());
        let docs = v["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0]["extension"]["mime"],
            "application/vnd.difi.dpi.lenke+xml"
        );
        assert_eq!(
            docs[0]["extension"]["value"]["url"], "https://minside.kommune.no/barnehage/svar",
            "{:#}",
            docs[0]["extension"]
        );
        assert_eq!(docs[0]["extension"]["value"]["kind"], "lenke");
        assert_eq!(docs[1]["role"], "vedlegg");
        assert_eq!(docs[1]["size"], "Vedtekter for barnehagen".len());
    }
    // An independent tool decrypts our dokumentpakke to the very container we opened.
    if let Ok(o) = Command::new("openssl")
        .args(["cms", "-decrypt", "-inform", "DER", "-in"])
        .arg(out.join("dokumentpakke.cms"))
        .arg("-inkey")
        .arg(d.join("provider-key.pem"))
        .output()
    {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, std::fs::read(d.join("ours.zip")).unwrap());
    } else {
        println!("openssl binary not found; independent decryption not checked");
    }
    // A tampered letter: exit 1 and a code.
    let mut cms = std::fs::read(out.join("dokumentpakke.cms")).unwrap();
    let n = cms.len() - 1;
    cms[n] ^= 1;
    write(&d.join("tampered.cms"), &cms);
    let o = bin()
        .args(["dpi", "open", "--json", "--forretningsmelding"])
        .arg(out.join("forretningsmelding.jwt"))
        .arg("--dokumentpakke")
        .arg(d.join("tampered.cms"))
        .arg("--key")
        .arg(d.join("provider-key.pem"))
        .arg("--trust")
        .arg(d.join("root.pem"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["errors"][0]["code"], "fingerprint_mismatch");

    // A databehandler sealing for the avsender: reported as `databehandler`.
    let (dcert, dkey) = pki.enterprise("810969342", false, 2048).unwrap();
    write(&d.join("db.pem"), dcert.to_pem().unwrap());
    write(
        &d.join("db-key.pem"),
        dkey.private_key_to_pem_pkcs8().unwrap(),
    );
    write(
        &d.join("token-db.jwt"),
        maskinporten_token("0192:991825827", Some("0192:810969342"), now).unwrap(),
    );
    let toml = std::fs::read_to_string(d.join("L.toml")).unwrap().replacen(
        "mottaker_leverandor",
        "databehandler = \"0192:810969342\"\nmottaker_leverandor",
        1,
    );
    write(&d.join("L2.toml"), toml);
    let out2 = d.join("out2");
    let o = bin()
        .args(["dpi", "seal", "--letter"])
        .arg(d.join("L2.toml"))
        .arg("--signer-cert")
        .arg(d.join("db.pem"))
        .arg("--signer-key")
        .arg(d.join("db-key.pem"))
        .arg("--recipient-cert")
        .arg(d.join("provider.pem"))
        .arg("--token")
        .arg(d.join("token-db.jwt"))
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The signer file holds only the leaf here: the chain needs the issuing CA as a trust file.
    write(&d.join("ca.pem"), pki.ca.to_pem().unwrap());
    let o = bin()
        .args(["dpi", "open", "--json", "--forretningsmelding"])
        .arg(out2.join("forretningsmelding.jwt"))
        .arg("--dokumentpakke")
        .arg(out2.join("dokumentpakke.cms"))
        .arg("--key")
        .arg(d.join("provider-key.pem"))
        .arg("--trust")
        .arg(d.join("root.pem"))
        .arg("--trust")
        .arg(d.join("ca.pem"))
        .output()
        .unwrap();
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["avsender"], "0192:991825827");
    assert_eq!(v["databehandler"], "0192:810969342");

    let _ =
        PKey::private_key_from_pem(&std::fs::read(d.join("provider-key.pem")).unwrap()).unwrap();
}
