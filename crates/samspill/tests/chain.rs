//! The DPI chain end to end: every role in its own `samspill` process on loopback (national
//! stand-ins, access point, mailbox provider with two tenants, print provider, sender), real
//! HTTP between them, each with its own database. Issue #5's acceptance walk.

mod common;

use std::time::Duration;

use common::{Cluster, digital_letter, krr_person};
use domain::MessageId;
use store::sqlx::{self, Row};

const WITHIN: Duration = Duration::from_secs(60);

/// Which tenant and citizen (fnr) the mailbox stored a message for; one row per stored letter.
async fn stored_for(c: &Cluster, message_id: &str) -> Vec<(String, String)> {
    let rows = sqlx::query(
        "SELECT l.tenant, c.fnr FROM postkasse_letters l \
         JOIN postkasse_citizens c ON c.id = l.citizen_id WHERE l.message_id = $1",
    )
    .bind(message_id)
    .fetch_all(c.db("postkasse").pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| (r.get::<String, _>("tenant"), r.get::<String, _>("fnr")))
        .collect()
}

#[tokio::test]
async fn letters_flow_through_every_role_and_receipts_come_back() {
    let mut c = Cluster::start("").await;
    let data = c.data_dir();
    let kari = krr_person(&data, "hos Digipost");
    let ola = krr_person(&data, "hos e-Boks");
    let aud = krr_person(&data, "reservert");

    // 1. A letter with a lenke to a citizen at provider A.
    let to_kari = digital_letter(&kari, "Tilbud om barnehageplass", true);
    assert_eq!(c.submit(&to_kari).await, 201);
    let l = c
        .wait_status(to_kari["id"].as_str().unwrap(), &["delivered"], WITHIN)
        .await;
    let mid = l["message_id"].as_str().unwrap().to_owned();
    assert_eq!(l["provider"], pki::demo::digipost().to_string());
    let receipts = l["receipts"].as_array().unwrap();
    assert!(
        receipts.iter().any(|r| r["type"] == "leveringskvittering"),
        "a verified leveringskvittering: {l:#}"
    );
    let history: Vec<&str> = l["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["created", "sent", "delivered"]);
    // Stored once, for exactly that citizen at that provider, with its lenke.
    let tenant = pki::demo::digipost().to_string();
    let stored = stored_for(&c, &mid).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, kari);
    assert!(
        stored[0].0 == "digipost" || stored[0].0 == tenant,
        "{stored:?}"
    );
    let lenke: Option<String> =
        sqlx::query_scalar("SELECT lenke FROM postkasse_letters WHERE message_id = $1")
            .bind(&mid)
            .fetch_one(c.db("postkasse").pool())
            .await
            .unwrap();
    assert!(
        lenke
            .unwrap_or_default()
            .contains("minside.example.no/barnehage/svar"),
        "the lenke travelled with the letter"
    );

    // 2. The same to a citizen at provider B.
    let to_ola = digital_letter(&ola, "Time for vaksine", false);
    assert_eq!(c.submit(&to_ola).await, 201);
    let l = c
        .wait_status(to_ola["id"].as_str().unwrap(), &["delivered"], WITHIN)
        .await;
    assert_eq!(l["provider"], pki::demo::eboks().to_string());
    let stored = stored_for(&c, l["message_id"].as_str().unwrap()).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, ola);

    // 3. A reserved citizen gets paper: received by print, then delivered after the batch.
    let mut to_aud = digital_letter(&aud, "Eiendomsskatt 2027", false);
    to_aud["documents"][0]["mime"] = "application/pdf".into();
    to_aud["documents"][0]["filename"] = "skatt.pdf".into();
    to_aud["documents"][0]["content_base64"] = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(minimal_pdf())
            .into()
    };
    to_aud["utskrift"] = serde_json::json!({
        "mottaker": { "navn": "Aud Testesen", "adresselinje1": "Storgata 1",
            "postnummer": "0155", "poststed": "Oslo" },
        "retur": { "navn": "Samspill kommune", "adresselinje1": "Postboks 1",
            "postnummer": "0001", "poststed": "Oslo" },
        "returposthaandtering": "MAKULERING_MED_MELDING",
        "utskriftstype": "SORT_HVIT",
    });
    let status = c.submit(&to_aud).await;
    assert_eq!(status, 201);
    let aud_id = to_aud["id"].as_str().unwrap().to_owned();
    let l = c.wait_status(&aud_id, &["received_by_print"], WITHIN).await;
    assert_eq!(l["channel"], "print");
    let print_mid = l["message_id"].as_str().unwrap().to_owned();
    let spool = data.join("utskrift/spool");
    let pdf = find_file(&spool, &format!("{print_mid}.pdf"))
        .unwrap_or_else(|| panic!("no spooled PDF for {print_mid} under {}", spool.display()));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"), "the spool holds a PDF");
    let out = std::process::Command::new(common::BIN)
        .args([
            "--config",
            c.procs["utskrift"].config.to_str().unwrap(),
            "utskrift",
            "batch",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = c.wait_status(&aud_id, &["delivered"], WITHIN).await;
    let history: Vec<&str> = l["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["created", "sent", "received_by_print", "delivered"]
    );

    // 4. A tampered letter ends as failed with the mailbox's KLIENT reason (see below).
    // 5. A provider that is down receives the letter after it comes back.
    c.kill("postkasse");
    let late = digital_letter(&kari, "Påminnelse", false);
    assert_eq!(c.submit(&late).await, 201);
    let late_id = late["id"].as_str().unwrap();
    c.wait_status(late_id, &["sent"], WITHIN).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.letter(late_id).await["status"], "sent");
    c.spawn("postkasse").await;
    let l = c.wait_status(late_id, &["delivered"], WITHIN).await;
    assert_eq!(
        stored_for(&c, l["message_id"].as_str().unwrap())
            .await
            .len(),
        1
    );

    // Idempotent submission: the same letter again is the same letter.
    assert!(matches!(c.submit(&to_kari).await, 200 | 201));
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_letters")
        .fetch_one(c.db("postkasse").pool())
        .await
        .unwrap();
    assert_eq!(count, 3, "Kari's two letters and Ola's, each once");
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// A one-page PDF with a line of text, written by hand (the offsets are computed).
pub fn minimal_pdf() -> Vec<u8> {
    let stream = "BT /F1 12 Tf 72 720 Td (Eiendomsskatt 2027) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A letter whose manifest names another avsender than its business message: only the
/// mailbox can see it (the access point does not open the dokumentpakke). It must end as a
/// `feil` KLIENT with that reason at its sender, and a reused message id is refused by the
/// access point.
#[tokio::test]
async fn a_tampered_letter_fails_with_the_mailbox_reason_and_a_reused_id_is_refused() {
    use clients::maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig};
    use web::auth::TokenSource;

    let c = Cluster::start("").await;
    let pki = pki::TestPki::load_or_init(c.data_dir().join("pki")).unwrap();
    let kommune = pki
        .issue_enterprise(&pki::demo::kommune(), pki::demo::KOMMUNE_NAME)
        .unwrap();
    let digipost = pki
        .issue_enterprise(&pki::demo::digipost(), pki::demo::DIGIPOST_NAME)
        .unwrap();
    let tokens = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: c.url("national", "/maskinporten/"),
            token_endpoint: None,
            client_id: maskinporten::fixtures::defaults::KOMMUNE_CLIENT.into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&kommune),
        reqwest::Client::new(),
    );
    let token = tokens.token(dpi::token::SCOPE_SEND).await.unwrap();
    let kari = krr_person(&c.data_dir(), "hos Digipost");
    let address: String =
        sqlx::query_scalar("SELECT postkasseadresse FROM postkasse_citizens WHERE fnr = $1")
            .bind(&kari)
            .fetch_optional(c.db("postkasse").pool())
            .await
            .unwrap()
            .expect("Kari is a Digipost citizen");

    let message_id = MessageId::new();
    let mut spec = common_letter(&address, message_id);
    spec.package.manifest.avsender.organisasjon = pki::demo::eboks().actor_id().to_string();
    let (sealed, _) = dpi::letter::seal_letter(
        &spec,
        &[kommune.cert().clone()],
        kommune.key(),
        digipost.cert(),
        &token,
    )
    .unwrap();
    let post = |jwt: String, cms: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .part(
                "forretningsmelding",
                reqwest::multipart::Part::text(jwt)
                    .mime_str("application/jwt")
                    .unwrap(),
            )
            .part(
                "dokumentpakke",
                reqwest::multipart::Part::bytes(cms)
                    .mime_str("application/cms")
                    .unwrap(),
            );
        c.http
            .post(c.url("formidler", "/formidler/messages/out?kanal=tamper"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    assert_eq!(
        post(sealed.jwt.clone(), sealed.cms.clone())
            .await
            .unwrap()
            .status(),
        201
    );

    // The mailbox refuses it with a KLIENT feil, which reaches the sender at the access point.
    let deadline = std::time::Instant::now() + WITHIN;
    let feil = loop {
        let r = c
            .http
            .get(c.url("formidler", "/formidler/messages/in?kanal=tamper"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let list: Vec<serde_json::Value> = r.json().await.unwrap();
            break list[0]["forretningsmelding"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no feil arrived:\n{}",
            c.log_tail("postkasse")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut anchors = dpi::trust::TrustAnchors::none();
    anchors
        .add_pem_or_der(pki.ca_cert_pem().as_bytes())
        .unwrap();
    let opened = dpi::receipt::open_receipt(&feil, &anchors, time::OffsetDateTime::now_utc());
    assert!(opened.valid, "{:?}", opened.errors);
    match opened.sbd.unwrap().body {
        dpi::message::Body::Feil(f) => {
            assert_eq!(f.feiltype, dpi::message::Feiltype::Klient);
            let detail = f.detaljer.unwrap_or_default();
            assert!(detail.to_lowercase().contains("manifest"), "{detail}");
        }
        other => panic!("expected a feil, got {other:?}"),
    }
    assert!(
        stored_for(&c, &message_id.to_string()).await.is_empty(),
        "nothing stored"
    );

    // The same message id with other content is refused at the access point.
    let again = common_letter(&address, message_id);
    let (resealed, _) = dpi::letter::seal_letter(
        &again,
        &[kommune.cert().clone()],
        kommune.key(),
        digipost.cert(),
        &token,
    )
    .unwrap();
    let r = post(resealed.jwt, resealed.cms).await.unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "duplicate_message_id");
}

fn common_letter(postkasseadresse: &str, message_id: MessageId) -> dpi::letter::LetterSpec {
    use dpi::container::{self, Document, DocumentRole, Dokumentpakke, Manifest};
    use dpi::message::*;
    let kommune = pki::demo::kommune().actor_id();
    let now = time::OffsetDateTime::now_utc();
    LetterSpec {
        sbd: Sbd {
            header: Header::new(
                MessageType::Digital,
                &kommune,
                &pki::demo::digipost().actor_id(),
                message_id,
                domain::ConversationId::new(),
                Process::Digital,
                Timestamp(now.replace_nanosecond(0).unwrap()),
                None,
            ),
            body: Body::Digital(Digital {
                avsender: Avsender::new(&kommune),
                mottaker: Personmottaker {
                    postkasseadresse: postkasseadresse.into(),
                },
                dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk::of(b""),
                maskinportentoken: String::new(),
                sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa3,
                virkningsdato: None,
                virkningstidspunkt: None,
                aapningskvittering: None,
                ikkesensitivtittel: "Et brev".into(),
                spraak: "NO".into(),
                varsler: None,
            }),
        },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: Some(container::Mottaker {
                    personidentifikator: None,
                    postkasseadresse: postkasseadresse.into(),
                }),
                avsender: container::Avsender {
                    organisasjon: kommune.to_string(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: vec![Document {
                href: "brev.txt".into(),
                mime: "text/plain".into(),
                title: Some("Brev".into()),
                lang: Some("NO".into()),
                role: DocumentRole::Hoveddokument,
                bytes: b"Innhold".to_vec(),
                data: None,
            }],
        },
        signing_time: now,
    }
}

use dpi::letter::LetterSpec;

/// An IT supplier (the demo databehandler, with its own certificate and Maskinporten client)
/// runs the sender for the kommune: the letter goes through every role with the kommune as
/// avsender and token consumer and the supplier as SBDH sender, signer and token supplier,
/// the mailbox accepts it (§3.6 d, e), and the receipt comes back to the supplier's sender.
#[tokio::test]
async fn a_databehandler_sends_for_the_kommune_and_gets_the_receipts() {
    let mut c = Cluster::start("").await;
    let data = c.data_dir();
    let kommune = pki::demo::kommune();
    let databehandler = pki::demo::databehandler();
    // The national process created the shared test PKI; the supplier's certificate as the
    // PEM files an operator would configure.
    let test_pki = pki::TestPki::load_or_init(data.join("pki")).unwrap();
    let issued = test_pki
        .issue_enterprise(&databehandler, pki::demo::DATABEHANDLER_NAME)
        .unwrap();
    let key = c.dir.path().join("databehandler.key.pem");
    let chain = c.dir.path().join("databehandler.chain.pem");
    std::fs::write(&key, &issued.key_pem).unwrap();
    std::fs::write(
        &chain,
        std::iter::once(issued.cert_pem.clone())
            .chain(issued.chain.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    c.reconfigure(
        "avsender",
        &format!(
            r#"
[identities.avsender]
client_id = "{client}"
key = "{key}"
certificate = "{chain}"
[avsender]
on_behalf_of = ["{kommune}"]
"#,
            client = maskinporten::fixtures::defaults::DATABEHANDLER_CLIENT,
            key = key.display(),
            chain = chain.display(),
        ),
    )
    .await;

    let kari = krr_person(&data, "hos Digipost");
    let mut letter = digital_letter(&kari, "Vedtak om skoleskyss", false);
    letter["avsender"] = kommune.to_string().into();
    assert_eq!(c.submit(&letter).await, 201);
    let l = c
        .wait_status(letter["id"].as_str().unwrap(), &["delivered"], WITHIN)
        .await;
    assert_eq!(l["avsender"], kommune.to_string());
    let receipts = l["receipts"].as_array().unwrap();
    assert!(
        receipts
            .iter()
            .any(|r| r["type"] == "leveringskvittering" && r["verified"] == true),
        "a verified leveringskvittering: {l:#}"
    );
    let mid = l["message_id"].as_str().unwrap().to_owned();

    // The access point took it as the kommune's letter sent by its supplier.
    let row = sqlx::query(
        "SELECT sender_orgnr, supplier_orgnr FROM formidler_messages WHERE message_id = $1",
    )
    .bind(&mid)
    .fetch_one(c.db("formidler").pool())
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("sender_orgnr"), kommune.to_string());
    assert_eq!(
        row.get::<Option<String>, _>("supplier_orgnr"),
        Some(databehandler.to_string())
    );
    // The mailbox stored it once, for Kari, from the kommune.
    assert_eq!(
        stored_for(&c, &mid).await,
        [(pki::demo::digipost().to_string(), kari.clone())]
    );
    let sender: String =
        sqlx::query_scalar("SELECT sender_orgnr FROM postkasse_letters WHERE message_id = $1")
            .bind(&mid)
            .fetch_one(c.db("postkasse").pool())
            .await
            .unwrap();
    assert_eq!(sender, kommune.to_string());

    // An organization that delegated nothing is refused before anything is stored.
    let mut other = digital_letter(&kari, "Ikke delegert", false);
    other["avsender"] = pki::demo::eboks().to_string().into();
    assert_eq!(c.submit(&other).await, 422);
}
