//! The sender service over real HTTP with the real Maskinporten and KRR stand-ins and the
//! real access point: routing, sealing, idempotency, refusals, receipts. Runs on the backend
//! named by `SAMSPILL_TEST_BACKEND`.

mod common;

use common::{API_KEY, letter, print_address, start};
use dpi::{
    container::Limits,
    message::{Body, Feiltype, Varslingskanal},
    receipt::ReceiptKind,
    trust::TrustAnchors,
};
use maskinporten::defaults;
use serde_json::Value;
use store::sqlx;

fn statuses(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn digital_letters_reach_the_access_point_sealed_for_the_citizens_provider() {
    let w = start().await;
    let pids = krr::default_pids();
    for (pid, provider, name, postkasse_prefix) in [
        (
            &pids.digipost,
            pki::demo::digipost(),
            pki::demo::DIGIPOST_NAME,
            "kari.nordmann#",
        ),
        (
            &pids.eboks,
            pki::demo::eboks(),
            pki::demo::EBOKS_NAME,
            "ola.nordmann#",
        ),
    ] {
        let l = letter(pid);
        let sub = w.avsender.submit(&l).await.unwrap();
        assert!(sub.created);
        assert_eq!(sub.letter["status"], "created");
        let v = w.wait_status(&l.id, "sent").await;
        assert_eq!(v["channel"], "digital");
        assert_eq!(v["provider"], provider.to_string());
        assert_eq!(statuses(&v), ["created", "sent"]);

        let message_id = v["message_id"].as_str().unwrap();
        let (receiver, message_type, jws, cms) = w.at_formidler(message_id).await.unwrap();
        assert_eq!(receiver, provider.to_string());
        assert_eq!(message_type, "digital");
        // Corner 4's own validation, with the provider's private key.
        let key = w.provider(provider, name);
        let anchors = TrustAnchors::new(vec![w.pki.ca_cert().clone()]);
        let opened = dpi::letter::open_letter(
            &jws,
            &cms,
            key.key(),
            &anchors,
            time::OffsetDateTime::now_utc(),
            &Limits::default(),
        );
        assert!(opened.valid, "{:?}", opened.errors);
        let sbd = opened.sbd.unwrap();
        assert_eq!(
            sbd.conversation_id().unwrap().to_string(),
            v["conversation_id"]
        );
        let Body::Digital(d) = &sbd.body else {
            panic!("not digital")
        };
        assert!(d.mottaker.postkasseadresse.starts_with(postkasse_prefix));
        assert_eq!(d.sikkerhetsnivaa.as_u8(), 3);
        // The e-mail notification got the citizen's address from KRR.
        let epost = d.varsler.as_ref().unwrap().epostvarsel.as_ref().unwrap();
        assert_eq!(epost.epostadresse, format!("{pid}-test@samspill.invalid"));
        let token = opened.token.unwrap();
        assert_eq!(
            token.consumer.unwrap().actor_id().unwrap(),
            pki::demo::kommune().actor_id()
        );
        let pkg = opened.package.unwrap();
        assert_eq!(pkg.documents.len(), 1);
        assert_eq!(pkg.documents[0].bytes, b"%PDF-1.4\n% samspill\n");
        assert!(pkg.lenke().is_some());
        assert_eq!(
            pkg.manifest
                .mottaker
                .unwrap()
                .personidentifikator
                .as_deref(),
            Some(pid.as_str())
        );
        // The sealed form was never kept, neither in the database nor as a file.
        let kept: i64 = store::sqlx::query_scalar(
            "SELECT COUNT(*) FROM avsender_payloads WHERE letter_id = $1",
        )
        .bind(&l.id)
        .fetch_one(w.db.db().pool())
        .await
        .unwrap();
        assert_eq!(kept, 0);
        assert!(
            !w.avsender_blobs
                .exists(&store::BlobRef::of(&cms))
                .await
                .unwrap()
        );
        // The submitted document goes too, once the letter is sent.
        let document = store::BlobRef::of(&pkg.documents[0].bytes);
        assert!(
            store::testing::blob_gone_within(
                &w.avsender_blobs,
                &document,
                std::time::Duration::from_secs(5)
            )
            .await,
            "the sent letter's document is deleted"
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn the_same_letter_twice_is_one_letter_and_other_content_under_its_id_is_refused() {
    let w = start().await;
    let pid = krr::default_pids().digipost;
    let l = letter(&pid);
    let first = w.avsender.submit(&l).await.unwrap();
    let second = w.avsender.submit(&l).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.letter["message_id"], second.letter["message_id"]);
    let mut other = l.clone();
    other.ikkesensitivtittel = "Noe helt annet".into();
    let e = w.avsender.submit(&other).await.unwrap_err();
    assert_eq!(e.code(), "letter_id_conflict");
    // The same letter as multipart (same content, other transport) is still the same letter.
    let mut mp = l.clone();
    mp.documents[0].content_base64 = None;
    mp.documents[0].part = Some("file1".into());
    let again = w
        .avsender
        .submit_multipart(
            &mp,
            vec![(
                "file1".into(),
                "tilbud.pdf".into(),
                b"%PDF-1.4\n% samspill\n".to_vec(),
            )],
        )
        .await
        .unwrap();
    assert!(!again.created);

    w.wait_status(&l.id, "sent").await;
    // Give a second (wrong) send a chance to show up, then count.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.formidler_count().await, 1);
    let letters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM avsender_letters")
        .fetch_one(w.db.db().pool())
        .await
        .unwrap();
    assert_eq!(letters, 1);
    w.stop().await;
}

#[tokio::test]
async fn a_reserved_citizen_gets_paper_and_without_an_address_the_letter_fails() {
    let w = start().await;
    let pids = krr::default_pids();

    let mut l = letter(&pids.reserved);
    l.utskrift = Some(print_address());
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    assert_eq!(v["channel"], "print");
    assert_eq!(v["provider"], pki::demo::print().to_string());
    let (receiver, message_type, jws, cms) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(receiver, pki::demo::print().to_string());
    assert_eq!(message_type, "utskrift");
    let key = w.provider(pki::demo::print(), pki::demo::PRINT_NAME);
    let opened = dpi::letter::open_letter(
        &jws,
        &cms,
        key.key(),
        &TrustAnchors::new(vec![w.pki.ca_cert().clone()]),
        time::OffsetDateTime::now_utc(),
        &Limits::default(),
    );
    assert!(opened.valid, "{:?}", opened.errors);
    let Body::Utskrift(u) = &opened.sbd.unwrap().body else {
        panic!("not utskrift")
    };
    assert_eq!(u.mottaker.navn.as_deref(), Some("Aud Testesen"));
    assert_eq!(u.retur.mottaker.navn.as_deref(), Some("Samspill kommune"));

    // Reserved, no mailbox, not registered: no address → failed, nothing sent.
    let before = w.formidler_count().await;
    for pid in [&pids.reserved, &pids.no_mailbox, &pids.not_registered] {
        let l = letter(pid);
        w.avsender.submit(&l).await.unwrap();
        let v = w.wait_status(&l.id, "failed").await;
        assert_eq!(v["error"]["code"], "no_print_address", "{v:#}");
        assert_eq!(statuses(&v), ["created", "failed"]);
        assert!(v["channel"].is_null());
    }
    assert_eq!(w.formidler_count().await, before);
    w.stop().await;
}

#[tokio::test]
async fn receipts_move_the_letter_in_order_and_keep_the_history() {
    let w = start().await;
    let pids = krr::default_pids();
    let digipost = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
    let print = w.provider(pki::demo::print(), pki::demo::PRINT_NAME);

    // Digital: levering, a failed notification, aapning.
    let l = letter(&pids.digipost);
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    let (_, _, jws, _) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
    let c = defaults::DIGIPOST_CLIENT;
    assert!(
        w.provider_receipt(&digipost, c, &jws, ReceiptKind::Levering)
            .await
            .is_success()
    );
    w.wait_status(&l.id, "delivered").await;
    let varsling = ReceiptKind::VarslingFeilet {
        kanal: Varslingskanal::Sms,
        beskrivelse: Some("Nummeret svarer ikke".into()),
    };
    assert!(
        w.provider_receipt(&digipost, c, &jws, varsling)
            .await
            .is_success()
    );
    w.wait_status(&l.id, "notification_failed").await;
    assert!(
        w.provider_receipt(&digipost, c, &jws, ReceiptKind::Aapning)
            .await
            .is_success()
    );
    let v = w.wait_status(&l.id, "opened").await;
    assert_eq!(
        statuses(&v),
        [
            "created",
            "sent",
            "delivered",
            "notification_failed",
            "opened"
        ]
    );
    let receipts = v["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(
        receipts
            .iter()
            .all(|r| r["verified"] == true && r["outcome"] == "applied")
    );
    assert_eq!(receipts[0]["type"], "leveringskvittering");
    assert_eq!(receipts[0]["issuer"], pki::demo::digipost().to_string());
    assert!(
        v["history"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("Nummeret svarer ikke")
    );
    // Each receipt is in the history it caused, and the access point has nothing left for us.
    for (h, r) in v["history"].as_array().unwrap()[2..].iter().zip(receipts) {
        assert_eq!(h["receipt_id"], r["id"]);
    }
    let all_read = w
        .all_receipts_read_within(std::time::Duration::from_secs(2))
        .await;
    assert!(all_read, "every receipt marked read at the access point");

    // A second leveringskvittering (another id) cannot move an opened letter.
    assert!(
        w.provider_receipt(&digipost, c, &jws, ReceiptKind::Levering)
            .await
            .is_success()
    );
    let v = w
        .wait_for(&l.id, |v| v["receipts"].as_array().unwrap().len() == 4)
        .await;
    assert_eq!(v["status"], "opened");
    assert_eq!(v["receipts"][3]["outcome"], "out_of_order");

    // Print: mottak, levering, returpost.
    let mut l = letter(&pids.reserved);
    l.utskrift = Some(print_address());
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    let (_, _, jws, _) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
    let c = defaults::PRINT_CLIENT;
    for (kind, status) in [
        (ReceiptKind::Mottak, "received_by_print"),
        (ReceiptKind::Levering, "delivered"),
        (ReceiptKind::Returpost, "returned"),
    ] {
        assert!(w.provider_receipt(&print, c, &jws, kind).await.is_success());
        w.wait_status(&l.id, status).await;
    }
    let v = w.avsender.status(&l.id).await.unwrap();
    assert_eq!(
        statuses(&v),
        [
            "created",
            "sent",
            "received_by_print",
            "delivered",
            "returned"
        ]
    );
    w.stop().await;
}

#[tokio::test]
async fn a_klient_feil_fails_the_letter_with_the_providers_reason() {
    let w = start().await;
    let digipost = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
    let l = letter(&krr::default_pids().digipost);
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    let (_, _, jws, _) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
    let feil = ReceiptKind::Feil {
        feiltype: Feiltype::Klient,
        detaljer: Some("Feil signatur".into()),
    };
    assert!(
        w.provider_receipt(&digipost, defaults::DIGIPOST_CLIENT, &jws, feil)
            .await
            .is_success()
    );
    let v = w.wait_status(&l.id, "failed").await;
    assert_eq!(v["error"]["code"], "feil_klient");
    assert!(
        v["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("Feil signatur")
    );
    assert_eq!(statuses(&v), ["created", "sent", "failed"]);
    w.stop().await;
}

#[tokio::test]
async fn forged_and_misdirected_receipts_are_recorded_but_never_applied() {
    let w = start().await;
    let digipost = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
    let eboks = w.provider(pki::demo::eboks(), pki::demo::EBOKS_NAME);
    let l = letter(&krr::default_pids().digipost);
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    let conversation = v["conversation_id"].as_str().unwrap().to_owned();
    let (_, _, jws, _) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();

    // 1. A genuine receipt with one byte of its payload changed: the signature fails.
    let genuine = w.sign_receipt(&digipost, &jws, ReceiptKind::Levering);
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    let mut payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[1])
            .unwrap();
    let at = payload.windows(9).position(|w| w == b"tidspunkt").unwrap();
    payload[at + 14] ^= 1;
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &payload);
    let forged = parts.join(".");
    let forged_id = uuid::Uuid::new_v4().to_string();
    w.inject_incoming(&forged_id, &conversation, &forged).await;

    // 2. Signed by a certificate outside the trusted PKI (same orgnr as the provider).
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue_pki = pki::TestPki::load_or_init(rogue_dir.path()).unwrap();
    let rogue = rogue_pki
        .issue_enterprise(&pki::demo::digipost(), "Falsk Digipost")
        .unwrap();
    let untrusted = w.sign_receipt(&rogue, &jws, ReceiptKind::Levering);
    let untrusted_id = uuid::Uuid::new_v4().to_string();
    w.inject_incoming(&untrusted_id, &conversation, &untrusted)
        .await;

    // 3. Valid and trusted, but from another provider than the letter went to.
    let other = w.sign_receipt(&eboks, &jws, ReceiptKind::Levering);
    let other_id = uuid::Uuid::new_v4().to_string();
    w.inject_incoming(&other_id, &conversation, &other).await;

    let v = w
        .wait_for(&l.id, |v| v["receipts"].as_array().unwrap().len() == 3)
        .await;
    assert_eq!(v["status"], "sent");
    assert_eq!(statuses(&v), ["created", "sent"]);
    for r in v["receipts"].as_array().unwrap() {
        assert_eq!(r["verified"], false, "{r:#}");
        assert_eq!(r["outcome"], "rejected");
    }
    let reason = |id: &str| {
        v["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        reason(&forged_id).contains("jws_"),
        "{}",
        reason(&forged_id)
    );
    assert!(reason(&untrusted_id).contains("not verified"));
    assert!(reason(&other_id).contains("issued by"));

    // The genuine receipt still moves the letter afterwards.
    assert!(
        w.provider_receipt(
            &digipost,
            defaults::DIGIPOST_CLIENT,
            &jws,
            ReceiptKind::Levering
        )
        .await
        .is_success()
    );
    let v = w.wait_status(&l.id, "delivered").await;
    assert_eq!(statuses(&v), ["created", "sent", "delivered"]);
    w.stop().await;
}

#[tokio::test]
async fn the_api_refuses_what_it_cannot_take_with_problem_json() {
    let w = start().await;
    let url = format!("{}/avsender/api/v1/letters", w.sender_base);
    let l = letter(&krr::default_pids().digipost);

    let r = w.http.post(&url).json(&l).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "missing_api_key");
    let r = w
        .http
        .post(&url)
        .header("x-api-key", "wrong-key-0123456789abcdef")
        .json(&l)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let post = |body: Value| {
        let http = w.http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(&url)
                .header("x-api-key", API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let good = serde_json::to_value(&l).unwrap();
    let mut bad = good.clone();
    bad["personidentifikator"] = "12345678901".into();
    let (s, p) = post(bad).await;
    assert_eq!(
        (s, p["code"].as_str().unwrap()),
        (400, "invalid_personidentifikator")
    );
    let mut bad = good.clone();
    bad["documents"][0]["content_base64"] = "***".into();
    let (s, p) = post(bad).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (400, "invalid_base64"));
    let mut bad = good.clone();
    bad["unknown"] = 1.into();
    let (s, p) = post(bad).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (400, "invalid_json"));
    let mut bad = good.clone();
    bad["documents"] = Value::Array(vec![]);
    let (s, p) = post(bad).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (400, "no_documents"));
    let mut bad = good.clone();
    bad["documents"][0]["lenke"]["url"] = "ftp://x".into();
    let (s, p) = post(bad).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (400, "invalid_document"));
    assert_eq!(p["field"], "documents[0].lenke");
    let mut bad = good.clone();
    bad["documents"][0]["mime"] = "application/x-msdownload".into();
    let (s, p) = post(bad).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (400, "invalid_document"));
    let r = w
        .http
        .post(&url)
        .header("x-api-key", API_KEY)
        .header("content-type", "text/plain")
        .body("hei")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Multipart: a file part no document names is refused, also when another part is named
    // twice (the count of references matches the count of parts).
    let mut mp = l.clone();
    for d in &mut mp.documents {
        d.content_base64 = None;
        d.part = Some("f1".into());
    }
    let mut second = mp.documents[0].clone();
    second.filename = "kopi.pdf".into();
    mp.documents.push(second);
    let pdf = b"%PDF-1.4\n% samspill\n".to_vec();
    let e = w
        .avsender
        .submit_multipart(
            &mp,
            vec![
                ("f1".into(), "tilbud.pdf".into(), pdf.clone()),
                ("f2".into(), "annet.pdf".into(), pdf.clone()),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unexpected_part", "{e}");

    let r = w
        .http
        .get(format!("{url}/{}", uuid::Uuid::new_v4()))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = w
        .http
        .get(format!("{url}/not-a-uuid"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nothing of the refused requests was stored.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM avsender_letters")
        .fetch_one(w.db.db().pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    w.stop().await;
}

#[tokio::test]
async fn concurrent_letters_share_krr_requests() {
    let w = common::start_with(|c| {
        c.send_workers = 8;
        c.krr_batch_wait_ms = 100;
    })
    .await;
    let pids = krr::default_pids();
    let letters: Vec<_> = (0..24)
        .map(|i| {
            letter(if i % 2 == 0 {
                &pids.digipost
            } else {
                &pids.eboks
            })
        })
        .collect();
    futures::future::join_all(letters.iter().map(|l| w.avsender.submit(l)))
        .await
        .into_iter()
        .for_each(|r| assert!(r.unwrap().created));
    for l in &letters {
        w.wait_status(&l.id, "sent").await;
    }
    let requests = w.krr_client.as_ref().unwrap().request_count();
    assert!(requests >= 1);
    assert!(requests <= 12, "{requests} KRR requests for 24 letters");
    assert_eq!(w.formidler_count().await, 24);
    w.stop().await;
}

/// Letters that share one document, submitted in waves while earlier ones are sent and the
/// collector deletes the document between waves: each wave stores it again, every letter is
/// sent, and the document goes once the last one is sent. (Which letters may keep it is
/// `repo`'s unit tests' part; this is the whole service around it.)
#[tokio::test]
async fn letters_sharing_a_document_each_keep_it_until_sent() {
    let w = start().await;
    let pid = krr::default_pids().digipost;
    let document = store::BlobRef::of(b"%PDF-1.4\n% samspill\n");
    let mut ids = Vec::new();
    let mut found_gone = 0;
    for wave in 0..5 {
        if wave > 0 && !w.avsender_blobs.exists(&document).await.unwrap() {
            found_gone += 1;
        }
        let letters: Vec<_> = (0..6).map(|_| letter(&pid)).collect();
        ids.extend(letters.iter().map(|l| l.id.clone()));
        let submitted =
            futures::future::join_all(letters.iter().map(|l| w.avsender.submit(l))).await;
        for s in submitted {
            assert!(s.unwrap().created);
        }
        // A collector pass (every second) after the wave is sent.
        tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    }
    for id in &ids {
        let v = w.wait_status(id, "sent").await;
        assert_eq!(statuses(&v), ["created", "sent"], "{v}");
    }
    assert!(
        found_gone > 0,
        "the collector never took the document between waves"
    );
    assert!(
        store::testing::blob_gone_within(
            &w.avsender_blobs,
            &document,
            std::time::Duration::from_secs(5)
        )
        .await,
        "the shared document goes with the last letter"
    );
    w.stop().await;
}
