//! A citizen can never list, open, download, move, mark, accept a receipt for or see the
//! notifications of another citizen's letter, by any route or id: a second citizen at the
//! same provider and one at another provider try every route with the first one's ids.

mod common;

use common::*;

const SUBSTANTIAL: &str = "idporten-loa-substantial";
const HIGH: &str = "idporten-loa-high";

#[tokio::test]
async fn other_citizens_get_nothing_by_any_route() {
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    let arr = dpi::container::Extension::Arrangement(dpi::container::Arrangement {
        tittel: dpi::container::Tekst::new("Time", "no"),
        tidsrom_tittel: None,
        tidsrom: vec![dpi::container::Tidsrom {
            fra: Some("2030-01-01T10:00:00+01:00".into()),
            til: None,
        }],
        oppmote_informasjon: None,
        moteplass: dpi::container::Moteplass {
            tittel: dpi::container::Tekst::new("Sted", "no"),
            navn: "Klinikken".into(),
            gateadresse: None,
            postnummer: None,
            sted: None,
            land: None,
        },
        strekkode: None,
        info: vec![],
        lenker: vec![],
    });
    chain
        .deliver(&Letter::to(&chain, &kari, "Karis private brev").docs(vec![
            Doc::new("brev.pdf", "application/pdf", "Karis hemmelige vedtak", PDF)
                .with("arrangement.xml", arr),
            Doc::new("side.html", "text/html", "Karis HTML", b"<p>Karis innhold</p>"),
        ]))
        .await;
    let receipt_sbd = chain
        .deliver(&Letter::to(&chain, &kari, "Karis kvitteringsbrev").receipt())
        .await;

    let kari_b = chain.browser(&kari, HIGH).await;
    let inbox = kari_b.get("/postkasse/innboks").await;
    let ids = letter_ids(&inbox.body);
    assert_eq!(ids.len(), 2);
    // Kari's own upload, to try by id too.
    let token = csrf(&inbox.body);
    let form = reqwest::multipart::Form::new().text("csrf", token).part(
        "fil",
        reqwest::multipart::Part::bytes(b"Karis notat".to_vec()).file_name("notat.txt"),
    );
    let r = kari_b
        .client
        .post(kari_b.abs("/postkasse/innboks/dokumenter"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let docs = kari_b.get("/postkasse/innboks/dokumenter").await;
    let i = docs.body.find("/innboks/dokumenter/").unwrap();
    let upload_href: String = docs.body[i..].chars().take_while(|c| *c != '"').collect();

    for (who, name) in [
        (chain.pids.classic.clone(), "same provider"),
        (chain.pids.eboks.clone(), "other provider"),
    ] {
        let b = chain.browser(&who, HIGH).await;
        let own = b.get("/postkasse/innboks").await;
        assert!(letter_ids(&own.body).is_empty(), "{name}: an empty inbox");
        assert!(!own.body.contains("Karis"), "{name}");
        let token = csrf(&b.get("/postkasse/innboks/dokumenter").await.body);
        // Lists, filtered any way, never show Kari's letters.
        for q in [
            "?mappe=inbox",
            "?mappe=archive",
            "?mappe=bin",
            "?sok=Karis",
            &format!("?avsender={}", pki::demo::kommune()),
            "?ulest=1",
        ] {
            let p = b.get(&format!("/postkasse/innboks{q}")).await;
            assert_eq!(p.status, 200);
            assert!(letter_ids(&p.body).is_empty(), "{name} {q}");
            assert!(!p.body.contains("Karis private"), "{name} {q}");
            assert!(!p.body.contains("Karis kvittering"), "{name} {q}");
        }
        for id in &ids {
            let base = format!("/postkasse/innboks/brev/{id}");
            for path in [
                base.clone(),
                format!("{base}/dokument/0"),
                format!("{base}/dokument/0?last_ned=1"),
                format!("{base}/dokument/1"),
                format!("{base}/dokument/1/vis"),
                format!("{base}/dokument/0/kalender.ics"),
            ] {
                let (status, _, body) = b.get_bytes(&path).await;
                assert_eq!(status, 404, "{name} GET {path}");
                assert!(
                    !String::from_utf8_lossy(&body).contains("Karis"),
                    "{name} {path}"
                );
            }
            for (path, form) in [
                (format!("{base}/flytt"), vec![("til", "bin")]),
                (format!("{base}/flytt"), vec![("til", "archive")]),
                (format!("{base}/ulest"), vec![]),
                (format!("{base}/kvittering"), vec![]),
            ] {
                let mut f = vec![("csrf", token.as_str())];
                f.extend(form);
                let r = b.post(&path, &f).await;
                assert_eq!(r.status, 404, "{name} POST {path}");
            }
            for action in [
                "archive",
                "bin",
                "inbox",
                "unread",
                "delete",
                "delete_confirmed",
            ] {
                let r = b
                    .post(
                        "/postkasse/innboks/handling",
                        &[("csrf", &token), ("id", id), ("action", action)],
                    )
                    .await;
                assert_eq!(r.status, 404, "{name} bulk {action}");
            }
        }
        let (status, _, _) = b.get_bytes(&format!("/postkasse{upload_href}")).await;
        assert_eq!(status, 404, "{name}: Kari's upload");
        let n = b.get("/postkasse/innboks/varsler").await;
        assert!(!n.body.contains("Karis"));
    }

    // Nothing changed for Kari: both letters still in the inbox and unread, no receipt sent.
    let inbox = kari_b.get("/postkasse/innboks").await;
    assert_eq!(letter_ids(&inbox.body).len(), 2);
    assert_eq!(inbox.body.matches("letter--unread").count(), 2);
    let receipts = chain
        .postkasse
        .receipts(
            &pki::demo::digipost(),
            &receipt_sbd.message_id().to_string(),
        )
        .await
        .unwrap();
    assert!(
        receipts
            .iter()
            .all(|(kind, _, _)| kind != "aapningskvittering"),
        "{receipts:?}"
    );
    // Kari's own upload is hers.
    let (status, _, bytes) = kari_b.get_bytes(&format!("/postkasse{upload_href}")).await;
    assert_eq!((status, bytes.as_slice()), (200, b"Karis notat".as_slice()));
    // Another session's form token is not accepted either.
    let ola = chain.browser(&chain.pids.eboks, SUBSTANTIAL).await;
    let ola_token = csrf(&ola.get("/postkasse/innboks/dokumenter").await.body);
    let r = kari_b
        .post(
            &format!("/postkasse/innboks/brev/{}/flytt", ids[0]),
            &[("csrf", &ola_token), ("til", "bin")],
        )
        .await;
    assert_eq!(r.status, 403);
    chain.stop().await;
}
