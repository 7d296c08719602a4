//! The mailbox provider over real HTTP: letters from the test (as the kommune) through a real
//! access point to both tenants, receipts back to the sender, corner-4 refusals, idempotent
//! redelivery, restart safety, and the citizen API's authorization and security levels.

mod common;

use std::time::Duration;

use common::{Chain, LetterOpts, PDF, seal_tampered, spec, start, start_with};
use dpi::message::{Body, Feiltype, MessageType, Sbd, Sikkerhetsnivaa};
use postkasse::{CitizenRef, Folder, LetterQuery, Loa};
use serde_json::Value;

fn citizen(_c: &Chain, tenant: domain::Organisasjonsnummer, pid: &str) -> CitizenRef {
    CitizenRef {
        tenant,
        fnr: domain::Fodselsnummer::parse(pid, &domain::FnrPolicy::PERMISSIVE).unwrap(),
    }
}

async fn list(c: &Chain, who: &CitizenRef) -> Vec<postkasse::LetterSummary> {
    c.postkasse
        .mailbox()
        .list_letters(who, Loa::High, &LetterQuery::default())
        .await
        .unwrap()
        .letters
}

fn feil_of(receipt: &Sbd) -> (Feiltype, String) {
    match &receipt.body {
        Body::Feil(f) => (f.feiltype, f.detaljer.clone().unwrap_or_default()),
        other => panic!("expected feil, got {:?}", other.message_type()),
    }
}

#[tokio::test]
async fn tenant_certificates_are_the_ones_krr_publishes() {
    let c = start().await;
    let fx = krr::fixtures::default_fixtures(&c.pki).unwrap();
    for orgnr in [pki::demo::digipost(), pki::demo::eboks()] {
        let published = fx
            .providers
            .iter()
            .find(|p| p.orgnr == orgnr)
            .unwrap()
            .certificate
            .clone();
        let ours = c.tenant_cert(&orgnr).to_der().unwrap();
        assert_eq!(
            pki::cert_from_b64(&published).unwrap().to_der().unwrap(),
            ours,
            "KRR publishes the certificate tenant {orgnr} decrypts with"
        );
    }
    c.stop().await;
}

async fn delivered_to_exactly_that_citizen(tenant: domain::Organisasjonsnummer) {
    let c = start().await;
    let (addr, pid, slug) = if tenant == pki::demo::digipost() {
        (c.kari_address(), c.pids.digipost.clone(), "digipost")
    } else {
        (c.ola_address(), c.pids.eboks.clone(), "eboks")
    };
    let sent = c
        .send(&LetterOpts::to(tenant, &addr, "Tilbud om barnehageplass"))
        .await;
    let receipt = c.wait_receipt(&sent).await;
    assert_eq!(receipt.message_type(), MessageType::Leveringskvittering);
    assert_eq!(receipt.header.sender.value, tenant.actor_id().to_string());
    assert_eq!(
        receipt.header.receiver.value,
        pki::demo::kommune().actor_id().to_string()
    );

    // Stored once, for exactly that citizen.
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let other_tenant = if slug == "digipost" {
        pki::demo::eboks()
    } else {
        pki::demo::digipost()
    };
    assert_eq!(c.postkasse.letter_count(&other_tenant).await.unwrap(), 0);
    let mine = list(&c, &citizen(&c, tenant, &pid)).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].ikkesensitivtittel, "Tilbud om barnehageplass");
    assert_eq!(mine[0].attachments, 1, "one vedlegg");
    assert_eq!(
        mine[0].sender_orgnr,
        pki::demo::kommune().to_string(),
        "sender recorded"
    );
    assert_eq!(
        mine[0].sender_name.as_deref(),
        Some(pki::demo::KOMMUNE_NAME)
    );
    for other in [&c.pids.stale, &c.pids.classic, &c.pids.d_nummer] {
        let who = citizen(&c, tenant, other);
        if let Ok(page) = c
            .postkasse
            .mailbox()
            .list_letters(&who, Loa::High, &LetterQuery::default())
            .await
        {
            assert!(page.letters.is_empty(), "another citizen sees nothing");
        }
    }
    // The detail: documents and the parsed lenke.
    let detail = c
        .postkasse
        .mailbox()
        .get_letter(&citizen(&c, tenant, &pid), Loa::High, mine[0].id)
        .await
        .unwrap();
    assert_eq!(detail.documents.len(), 2);
    assert_eq!(detail.documents[0].mime, "application/pdf");
    assert_eq!(detail.documents[1].role, "vedlegg");
    assert_eq!(
        detail.lenke.as_ref().map(|l| l.url.as_str()),
        Some("https://minside.samspill.invalid/barnehage/svar")
    );
    assert!(matches!(
        detail.documents[0].extension,
        Some(dpi::container::Extension::Lenke(_))
    ));
    assert_eq!(detail.message_id, sent.message_id().to_string());
    // The receipt was sent, and only one was issued; once the access point has it, the
    // mailbox keeps its row but not the signed message.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let receipts = loop {
        let r = c
            .postkasse
            .receipts(&tenant, &sent.message_id().to_string())
            .await
            .unwrap();
        if r.iter().all(|(_, _, sent)| *sent) || std::time::Instant::now() > until {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, "leveringskvittering");
    assert!(receipts[0].2, "sent");
    assert_eq!(
        receipts[0].1, "",
        "the signed receipt is not kept once sent"
    );
    c.stop().await;
}

#[tokio::test]
async fn letter_to_tenant_a_is_stored_for_its_citizen_and_the_sender_gets_a_verified_receipt() {
    delivered_to_exactly_that_citizen(pki::demo::digipost()).await;
}

#[tokio::test]
async fn letter_to_tenant_b_is_stored_for_its_citizen_and_the_sender_gets_a_verified_receipt() {
    delivered_to_exactly_that_citizen(pki::demo::eboks()).await;
}

#[tokio::test]
async fn tampered_letter_is_answered_with_feil_klient_and_the_reason() {
    let c = start().await;
    let o = LetterOpts::to(pki::demo::digipost(), &c.kari_address(), "Forfalsket");
    let (sealed, sbd) = seal_tampered(&c, &o).await;
    assert_eq!(
        c.post_out(&sealed).await,
        201,
        "the access point cannot tell"
    );
    let receipt = c.wait_receipt(&sbd).await;
    let (feiltype, detaljer) = feil_of(&receipt);
    assert_eq!(feiltype, Feiltype::Klient);
    assert!(
        detaljer.contains("digest") || detaljer.contains("signature"),
        "reason names the broken signature: {detaljer}"
    );
    assert_eq!(
        c.postkasse
            .letter_count(&pki::demo::digipost())
            .await
            .unwrap(),
        0
    );
    c.stop().await;
}

#[tokio::test]
async fn letter_for_another_providers_key_or_unknown_address_gets_feil_klient() {
    let c = start().await;
    // Unknown postkasseadresse.
    let sent = c
        .send(&LetterOpts::to(
            pki::demo::digipost(),
            "ingen.slik#0000",
            "Til ingen",
        ))
        .await;
    let (t, d) = feil_of(&c.wait_receipt(&sent).await);
    assert_eq!(t, Feiltype::Klient);
    assert_eq!(d, "Recipient is not a user");
    // Ola is an e-Boks citizen: Digipost does not know his address.
    let sent = c
        .send(&LetterOpts::to(
            pki::demo::digipost(),
            &c.ola_address(),
            "Feil leverandør",
        ))
        .await;
    let (_, d) = feil_of(&c.wait_receipt(&sent).await);
    assert_eq!(d, "Recipient is not a user");
    // Encrypted to e-Boks but addressed to Digipost: cannot decrypt.
    let o = LetterOpts::to(pki::demo::digipost(), &c.kari_address(), "Feil nøkkel");
    let (sealed, sbd) = c.seal(&spec(&o), &c.tenant_cert(&pki::demo::eboks())).await;
    assert_eq!(c.post_out(&sealed).await, 201);
    let (t, d) = feil_of(&c.wait_receipt(&sbd).await);
    assert_eq!(t, Feiltype::Klient);
    assert!(d.contains("cms"), "decryption failure named: {d}");
    assert_eq!(
        c.postkasse
            .letter_count(&pki::demo::digipost())
            .await
            .unwrap(),
        0
    );
    c.stop().await;
}

#[tokio::test]
async fn redelivery_of_a_message_id_is_acknowledged_and_stored_once() {
    let c = start().await;
    let o = LetterOpts::to(pki::demo::digipost(), &c.kari_address(), "To ganger");
    let (sealed, sbd) = c
        .seal(&spec(&o), &c.tenant_cert(&pki::demo::digipost()))
        .await;
    let token = c.formidler_token().await;
    let first = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(first.status(), 202);
    let again = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(again.status(), 200, "seen before: acknowledged");
    // Wait for processing, then deliver once more.
    let tenant = pki::demo::digipost();
    let id = sbd.message_id().to_string();
    for _ in 0..200 {
        if !c.postkasse.receipts(&tenant, &id).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Processed, the inbound row keeps only the digest of the business message (the stored
    // letter has its own copy), and that digest recognizes the same message coming again.
    let jws = sealed.jwt.clone();
    let (inbound, digest): (String, Option<String>) = store::sqlx::query_as(
        "SELECT forretningsmelding, forretningsmelding_sha256 FROM postkasse_inbound \
         WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(c.postkasse_db.db().pool())
    .await
    .unwrap();
    assert_eq!(
        (inbound.as_str(), digest),
        ("", Some(dpi::jws::digest(&jws)))
    );
    let stored: String = store::sqlx::query_scalar(
        "SELECT forretningsmelding FROM postkasse_letters WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(c.postkasse_db.db().pool())
    .await
    .unwrap();
    assert_eq!(stored, jws);
    let late = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(late.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let receipts = c.postkasse.receipts(&tenant, &id).await.unwrap();
    assert_eq!(receipts.len(), 1, "one receipt for one letter");
    // Another letter under the same message id is refused.
    let mut other = spec(&o);
    other.sbd.header = sbd.header.clone();
    if let Body::Digital(d) = &mut other.sbd.body {
        d.ikkesensitivtittel = "Noe annet".into();
    }
    let (sealed2, _) = c.seal(&other, &c.tenant_cert(&tenant)).await;
    let clash = c.post_inbound("digipost", Some(&token), &sealed2).await;
    assert_eq!(clash.status(), 409);
    let body: Value = clash.json().await.unwrap();
    assert_eq!(body["code"], "duplicate_message_id");
    c.stop().await;
}

#[tokio::test]
async fn intake_requires_an_access_point_token_and_both_parts() {
    let c = start().await;
    let o = LetterOpts::to(pki::demo::digipost(), &c.kari_address(), "Uautorisert");
    let (sealed, _) = c
        .seal(&spec(&o), &c.tenant_cert(&pki::demo::digipost()))
        .await;
    let r = c.post_inbound("digipost", None, &sealed).await;
    assert_eq!(r.status(), 401);
    let r = c
        .post_inbound("digipost", Some("not.a.token"), &sealed)
        .await;
    assert_eq!(r.status(), 401);
    // The sender's own token lacks the formidling scope.
    let send = c.send_token().await;
    let r = c.post_inbound("digipost", Some(&send), &sealed).await;
    assert_eq!(r.status(), 403);
    // A provider has the scope but is not an access point.
    let provider = c
        .digipost_tokens
        .token_for(postkasse::SCOPE_FORMIDLING, None)
        .await
        .unwrap()
        .access_token;
    let r = c.post_inbound("digipost", Some(&provider), &sealed).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_an_access_point");
    // Missing part.
    let token = c.formidler_token().await;
    let form = reqwest::multipart::Form::new().text("forretningsmelding", sealed.jwt.clone());
    let r = c
        .http
        .post(c.url("/postkasse/digipost/dpi/inbound"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(
        c.postkasse
            .letter_count(&pki::demo::digipost())
            .await
            .unwrap(),
        0
    );
    c.stop().await;
}

/// The intake answers 202 only once the letter is processed and recorded: the letter is
/// there for the citizen and its receipt queued with no worker running, and nothing of the
/// ciphertext is kept, neither in the database nor as a file. The same letter again is
/// acknowledged with 200 and stored once.
#[tokio::test]
async fn the_intake_records_a_processed_letter_and_keeps_no_ciphertext() {
    let c = start_with(|_| {}, false).await;
    let tenant = pki::demo::digipost();
    let o = LetterOpts::to(tenant, &c.kari_address(), "Behandlet ved mottak");
    let (sealed, sbd) = c.seal(&spec(&o), &c.tenant_cert(&tenant)).await;
    let token = c.formidler_token().await;
    let r = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(r.status(), 202);
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let id = sbd.message_id().to_string();
    assert_eq!(
        c.postkasse.inbound_status(&tenant, &id).await.unwrap(),
        Some(("stored".into(), None))
    );
    let receipts = c.postkasse.receipts(&tenant, &id).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, "leveringskvittering");
    assert!(!receipts[0].2, "no receipt worker runs");
    assert_eq!(payload_rows(&c).await, 0);
    assert!(
        !c.postkasse_blobs
            .exists(&store::BlobRef::of(&sealed.cms))
            .await
            .unwrap()
    );
    let again = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(again.status(), 200);
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    assert_eq!(c.postkasse.receipts(&tenant, &id).await.unwrap().len(), 1);
    c.stop().await;
}

/// What a version that processed letters in a worker left on the way: the inbound row in
/// `received`, the ciphertext (in `postkasse_payloads`, or by an older version in the blob
/// store) and the processing job, whose payload is pinned here as that version wrote it.
async fn received_by_an_earlier_version(
    c: &Chain,
    tenant: domain::Organisasjonsnummer,
    sealed: &dpi::letter::SealedLetter,
    sbd: &Sbd,
    ciphertext_in_database: bool,
) {
    let db = c.postkasse.db();
    let message_id = sbd.message_id().to_string();
    let blob = store::BlobRef::of(&sealed.cms);
    let mut tx = db.begin_write().await.unwrap();
    store::sqlx::query(
        "INSERT INTO postkasse_inbound (tenant, message_id, forretningsmelding, \
         dokumentpakke_sha256, dokumentpakke_size, state, received_at) \
         VALUES ($1, $2, $3, $4, $5, 'received', $6)",
    )
    .bind(tenant.to_string())
    .bind(&message_id)
    .bind(&sealed.jwt)
    .bind(&blob.sha256)
    .bind(blob.row_size())
    .bind(store::to_ms(time::OffsetDateTime::now_utc()))
    .execute(&mut *tx)
    .await
    .unwrap();
    if ciphertext_in_database {
        store::sqlx::query(
            "INSERT INTO postkasse_payloads (tenant, message_id, data) VALUES ($1, $2, $3)",
        )
        .bind(tenant.to_string())
        .bind(&message_id)
        .bind(&sealed.cms)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let job = store::NewJob::new(
        postkasse::PROCESS_QUEUE,
        &serde_json::json!({ "tenant": tenant.to_string(), "message_id": message_id }),
    )
    .unwrap();
    store::Jobs::new(db.clone())
        .enqueue_in(&mut tx, job)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// A letter an earlier version received and left for its processing worker is processed
/// once after the upgrade, by two sets of workers racing for it, and its ciphertext goes.
#[tokio::test]
async fn a_letter_an_earlier_version_received_is_processed_once_after_the_upgrade() {
    let c = start_with(|_| {}, false).await;
    let tenant = pki::demo::digipost();
    let o = LetterOpts::to(tenant, &c.kari_address(), "Etter oppgradering");
    let (sealed, sbd) = c.seal(&spec(&o), &c.tenant_cert(&tenant)).await;
    received_by_an_earlier_version(&c, tenant, &sealed, &sbd, true).await;
    assert_eq!(payload_rows(&c).await, 1);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut handles = postkasse::spawn_workers(c.postkasse.clone(), rx.clone());
    handles.extend(postkasse::spawn_workers(c.postkasse.clone(), rx));
    let id = sbd.message_id().to_string();
    wait_for_a_letter(&c, tenant).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let receipts = c.postkasse.receipts(&tenant, &id).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, "leveringskvittering");
    assert_eq!(
        payload_rows(&c).await,
        0,
        "the ciphertext goes once processed"
    );
    // The access point delivering it again is acknowledged, not stored twice.
    let token = c.formidler_token().await;
    let again = c.post_inbound("digipost", Some(&token), &sealed).await;
    assert_eq!(again.status(), 200);
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let _ = tx.send(true);
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    c.stop().await;
}

/// Waits (10 s at most) until the tenant has stored a letter.
async fn wait_for_a_letter(c: &Chain, tenant: domain::Organisasjonsnummer) {
    for _ in 0..200 {
        if c.postkasse.letter_count(&tenant).await.unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn payload_rows(c: &Chain) -> i64 {
    store::sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_payloads")
        .fetch_one(c.postkasse.db().pool())
        .await
        .unwrap()
}

/// A letter received by a version that kept the raw payload in the blob store is processed
/// after the upgrade, and that blob is deleted afterwards.
#[tokio::test]
async fn a_payload_left_in_the_blob_store_by_an_earlier_version_is_processed_then_deleted() {
    let c = start_with(|_| {}, false).await;
    let tenant = pki::demo::digipost();
    let o = LetterOpts::to(tenant, &c.kari_address(), "Fra forrige versjon");
    let (sealed, sbd) = c.seal(&spec(&o), &c.tenant_cert(&tenant)).await;
    // Where the earlier version kept it.
    let blob = c.postkasse_blobs.put(sealed.cms.clone()).await.unwrap();
    received_by_an_earlier_version(&c, tenant, &sealed, &sbd, false).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handles = postkasse::spawn_workers(c.postkasse.clone(), rx);
    wait_for_a_letter(&c, tenant).await;
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let mine = list(&c, &citizen(&c, tenant, &c.pids.digipost)).await;
    assert_eq!(mine[0].ikkesensitivtittel, "Fra forrige versjon");
    // The blob goes right after the transaction that stored the letter.
    assert!(
        store::testing::blob_gone_within(&c.postkasse_blobs, &blob, Duration::from_secs(2)).await,
        "deleted once processed"
    );
    let _ = tx.send(true);
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    c.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The end-user API

async fn deliver(c: &Chain, o: &LetterOpts) -> Sbd {
    let sent = c.send(o).await;
    let r = c.wait_receipt(&sent).await;
    assert_eq!(r.message_type(), MessageType::Leveringskvittering);
    sent
}

#[tokio::test]
async fn a_citizen_can_never_reach_another_citizens_letters() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    deliver(&c, &LetterOpts::to(tenant, &c.kari_address(), "Til Kari")).await;
    let kari = c.citizen_token(&c.pids.digipost, "idporten-loa-high").await;
    let sigrid = c.citizen_token(&c.pids.stale, "idporten-loa-high").await;
    // Tokens for both providers' APIs, to show that each provider keeps to its own citizens.
    let (digipost_api, eboks_api) = (c.api_resource("digipost"), c.api_resource("eboks"));
    let both = [digipost_api.as_str(), eboks_api.as_str()];
    let access = |v: Value| v["access_token"].as_str().unwrap().to_owned();
    let ola = access(
        c.citizen_tokens(&c.pids.eboks, "idporten-loa-high", &both)
            .await,
    );
    let kari_both = access(
        c.citizen_tokens(&c.pids.digipost, "idporten-loa-high", &both)
            .await,
    );

    let r = c.api_get("digipost", "/letters", &kari).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let letters = page["letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.api_get("digipost", &format!("/letters/{id}/documents/0"), &kari)
            .await
            .status(),
        200
    );

    // Sigrid, also a Digipost citizen, by every route.
    let page: Value = c
        .api_get("digipost", "/letters", &sigrid)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["letters"].as_array().unwrap().len(), 0);
    for folder in ["archive", "bin"] {
        let page: Value = c
            .api_get("digipost", &format!("/letters?folder={folder}"), &sigrid)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["letters"].as_array().unwrap().len(), 0);
    }
    for path in [
        format!("/letters/{id}"),
        format!("/letters/{id}/documents/0"),
        format!("/letters/{id}/documents/1"),
    ] {
        let r = c.api_get("digipost", &path, &sigrid).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
    }
    for (path, body) in [
        (format!("/letters/{id}/opened"), None),
        (format!("/letters/{id}/unread"), None),
        (
            format!("/letters/{id}/folder"),
            Some(serde_json::json!({"folder": "bin"})),
        ),
        (format!("/letters/{id}/opening-receipt"), None),
    ] {
        let r = c.api_post("digipost", &path, &sigrid, body).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    // Kari's letter is untouched by Sigrid's attempts.
    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &kari)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["folder"], "inbox");
    // Ola is not a Digipost citizen at all; his provider does not have Kari's letter either.
    let r = c.api_get("digipost", "/letters", &ola).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_a_user");
    let r = c.api_get("eboks", &format!("/letters/{id}"), &ola).await;
    assert_eq!(r.status(), 404);
    // Kari at e-Boks: not a user there.
    let r = c
        .api_get("eboks", &format!("/letters/{id}/documents/0"), &kari_both)
        .await;
    assert_eq!(r.status(), 403);
    // Her token for Digipost's API is no token at e-Boks's.
    let r = c
        .api_get("eboks", &format!("/letters/{id}/documents/0"), &kari)
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "wrong_audience");
    // No token, a forged token.
    assert_eq!(
        c.http
            .get(c.url("/postkasse/digipost/api/v1/letters"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Kari's token with Sigrid's pid swapped in: the signature no longer holds.
    let forged = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = kari.split('.').collect();
        let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let swapped = claims.replace(&c.pids.digipost, &c.pids.stale);
        assert_ne!(claims, swapped);
        format!("{}.{}.{}", parts[0], b64.encode(swapped), parts[2])
    };
    assert_eq!(
        c.api_get("digipost", "/letters", &forged).await.status(),
        401
    );
    // A Maskinporten token is not a citizen's token.
    let mp = c.send_token().await;
    assert_eq!(c.api_get("digipost", "/letters", &mp).await.status(), 401);
    c.stop().await;
}

/// 401 problem+json with `code`.
async fn refused(r: reqwest::Response, code: &str) {
    assert_eq!(r.status(), 401, "{code}");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], code);
}

#[tokio::test]
async fn only_access_tokens_issued_for_this_api_open_the_citizens_letters() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    deliver(&c, &LetterOpts::to(tenant, &c.kari_address(), "Til Kari")).await;
    let kari = c.pids.digipost.clone();
    let api = c.api_resource("digipost");

    // The login of some other service of Kari's: its ID token (aud = that client) and an
    // access token for another API, or for none.
    let other = c
        .citizen_tokens(
            &kari,
            "idporten-loa-high",
            &["https://skatt.samspill.invalid/api"],
        )
        .await;
    refused(
        c.api_get("digipost", "/letters", other["id_token"].as_str().unwrap())
            .await,
        "not_an_access_token",
    )
    .await;
    refused(
        c.api_get(
            "digipost",
            "/letters",
            other["access_token"].as_str().unwrap(),
        )
        .await,
        "wrong_audience",
    )
    .await;
    let none = c.citizen_tokens(&kari, "idporten-loa-high", &[]).await;
    refused(
        c.api_get(
            "digipost",
            "/letters",
            none["access_token"].as_str().unwrap(),
        )
        .await,
        "wrong_audience",
    )
    .await;
    // Another provider's API.
    let eboks = c
        .citizen_tokens(&kari, "idporten-loa-high", &[&c.api_resource("eboks")])
        .await;
    refused(
        c.api_get(
            "digipost",
            "/letters",
            eboks["access_token"].as_str().unwrap(),
        )
        .await,
        "wrong_audience",
    )
    .await;

    // Even the ID token of a login that asked for this API is not its access token.
    let ours = c.citizen_tokens(&kari, "idporten-loa-high", &[&api]).await;
    let id_token = ours["id_token"].as_str().unwrap();
    refused(
        c.api_get("digipost", "/letters", id_token).await,
        "not_an_access_token",
    )
    .await;
    let r = c
        .api_get(
            "digipost",
            "/letters",
            ours["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["letters"][0]["ikkesensitivtittel"], "Til Kari");
    c.stop().await;
}

#[tokio::test]
async fn a_configured_api_audience_replaces_the_default() {
    const AUD: &str = "https://api.digipost.samspill.invalid/postkasse";
    let c = start_with(|cfg| cfg.providers[0].api_audience = Some(AUD.into()), true).await;
    assert_eq!(c.postkasse.tenants()[0].slug, "digipost");
    let kari = c.pids.digipost.clone();
    let configured = c.citizen_tokens(&kari, "idporten-loa-high", &[AUD]).await;
    let r = c
        .api_get(
            "digipost",
            "/letters",
            configured["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let default = c.citizen_token(&kari, "idporten-loa-high").await;
    refused(
        c.api_get("digipost", "/letters", &default).await,
        "wrong_audience",
    )
    .await;
    c.stop().await;
}

#[tokio::test]
async fn level_4_letters_show_only_the_non_sensitive_title_below_loa_high() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    let mut o = LetterOpts::to(tenant, &c.kari_address(), "Brev fra kommunen");
    o.sikkerhetsnivaa = Sikkerhetsnivaa::Nivaa4;
    deliver(&c, &o).await;
    let low = c
        .citizen_token(&c.pids.digipost, "idporten-loa-substantial")
        .await;
    let high = c.citizen_token(&c.pids.digipost, "idporten-loa-high").await;

    let page: Value = c
        .api_get("digipost", "/letters", &low)
        .await
        .json()
        .await
        .unwrap();
    let l = &page["letters"][0];
    assert_eq!(l["locked"], true);
    assert_eq!(l["ikkesensitivtittel"], "Brev fra kommunen");
    assert!(l["tittel"].is_null());
    let id = l["id"].as_str().unwrap().to_owned();
    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &low)
        .await
        .json()
        .await
        .unwrap();
    assert!(detail["tittel"].is_null());
    assert!(detail["lenke"].is_null());
    assert_eq!(detail["documents"].as_array().unwrap().len(), 0);
    let r = c
        .api_get("digipost", &format!("/letters/{id}/documents/0"), &low)
        .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "insufficient_security_level");
    assert_eq!(
        c.api_post("digipost", &format!("/letters/{id}/opened"), &low, None)
            .await
            .status(),
        403
    );

    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &high)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["locked"], false);
    assert_eq!(detail["tittel"], "Brev fra kommunen (sensitiv)");
    assert_eq!(detail["documents"].as_array().unwrap().len(), 2);
    assert_eq!(detail["unread"], true);
    let r = c
        .api_get("digipost", &format!("/letters/{id}/documents/0"), &high)
        .await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"vedtak.pdf\""
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), PDF);
    // Reading a document opened the letter.
    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &high)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["unread"], false);
    assert_eq!(
        c.api_get("digipost", &format!("/letters/{id}/documents/7"), &high)
            .await
            .status(),
        404
    );
    c.stop().await;
}

#[tokio::test]
async fn opening_receipt_is_asked_for_then_sent_to_the_sender() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    let mut o = LetterOpts::to(tenant, &c.kari_address(), "Med åpningskvittering");
    o.aapningskvittering = true;
    let sent = deliver(&c, &o).await;
    let kari = c.citizen_token(&c.pids.digipost, "idporten-loa-high").await;
    let page: Value = c
        .api_get("digipost", "/letters", &kari)
        .await
        .json()
        .await
        .unwrap();
    let l = &page["letters"][0];
    assert_eq!(l["requires_opening_receipt"], true);
    assert!(l["tittel"].is_null(), "{l}");
    let id = l["id"].as_str().unwrap().to_owned();
    // Before the receipt is accepted the letter shows what the consent step needs and
    // nothing of its content: no sensitive title, no link, no documents or extensions.
    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &kari)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["requires_opening_receipt"], true);
    assert_eq!(detail["ikkesensitivtittel"], "Med åpningskvittering");
    assert_eq!(detail["sender_orgnr"], pki::demo::kommune().to_string());
    assert!(detail["received_at"].is_string());
    assert!(detail["tittel"].is_null(), "{detail}");
    assert!(detail["lenke"].is_null(), "{detail}");
    assert_eq!(detail["documents"], serde_json::json!([]));
    assert!(!detail.to_string().contains("minside.samspill.invalid"));
    let r = c
        .api_get("digipost", &format!("/letters/{id}/documents/0"), &kari)
        .await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "opening_receipt_required");
    let r = c
        .api_post(
            "digipost",
            &format!("/letters/{id}/opening-receipt"),
            &kari,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["queued"], true);
    let again: Value = c
        .api_post(
            "digipost",
            &format!("/letters/{id}/opening-receipt"),
            &kari,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["queued"], false, "one receipt per letter");
    let receipt = c.wait_receipt(&sent).await;
    assert_eq!(receipt.message_type(), MessageType::Aapningskvittering);
    let detail: Value = c
        .api_get("digipost", &format!("/letters/{id}"), &kari)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["requires_opening_receipt"], false);
    assert_eq!(detail["tittel"], "Med åpningskvittering (sensitiv)");
    assert_eq!(
        detail["lenke"]["url"],
        "https://minside.samspill.invalid/barnehage/svar"
    );
    assert_eq!(detail["documents"].as_array().unwrap().len(), 2);
    assert!(detail["documents"][0]["extension"].is_object(), "{detail}");
    assert_eq!(
        c.api_get("digipost", &format!("/letters/{id}/documents/0"), &kari)
            .await
            .status(),
        200
    );
    c.stop().await;
}

#[tokio::test]
async fn letters_before_their_virkningstidspunkt_are_not_listed() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    let mut o = LetterOpts::to(tenant, &c.kari_address(), "Fram i tid");
    o.virkningstidspunkt = Some(time::OffsetDateTime::now_utc() + time::Duration::days(2));
    deliver(&c, &o).await;
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 1);
    let kari = citizen(&c, tenant, &c.pids.digipost);
    assert!(list(&c, &kari).await.is_empty());
    // Too far ahead is refused.
    let mut o = LetterOpts::to(tenant, &c.kari_address(), "Altfor langt fram");
    o.virkningstidspunkt = Some(time::OffsetDateTime::now_utc() + time::Duration::days(800));
    let sent = c.send(&o).await;
    let (t, d) = feil_of(&c.wait_receipt(&sent).await);
    assert_eq!(t, Feiltype::Klient);
    assert!(d.starts_with("virkningstidspunkt_too_far_ahead"), "{d}");
    c.stop().await;
}

#[tokio::test]
async fn the_service_pages_filters_searches_and_moves_between_folders() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    let titles = [
        "Skattemelding",
        "Barnehage",
        "Byggesak",
        "Renovasjon",
        "Skolerute",
    ];
    for t in titles {
        deliver(&c, &LetterOpts::to(tenant, &c.kari_address(), t)).await;
    }
    let mb = c.postkasse.mailbox();
    let kari = citizen(&c, tenant, &c.pids.digipost);
    // Pages of two, newest first, no overlap, all five.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = mb
            .list_letters(
                &kari,
                Loa::High,
                &LetterQuery {
                    limit: Some(2),
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.letters.len() <= 2);
        seen.extend(page.letters.iter().map(|l| l.ikkesensitivtittel.clone()));
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut expected: Vec<String> = titles.iter().rev().map(|s| s.to_string()).collect();
    assert_eq!(seen.len(), 5);
    // Letters delivered in the same millisecond may swap; compare as sets plus newest-first
    // order on distinct times.
    let mut sorted = seen.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    // Search (case-insensitive, title or sender), sender filter, unread.
    let q = |s: &str| LetterQuery {
        search: Some(s.into()),
        ..Default::default()
    };
    let hits = mb.list_letters(&kari, Loa::High, &q("SK")).await.unwrap();
    let mut names: Vec<_> = hits
        .letters
        .iter()
        .map(|l| l.ikkesensitivtittel.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["Skattemelding", "Skolerute"]);
    assert_eq!(
        mb.list_letters(&kari, Loa::High, &q("kommune"))
            .await
            .unwrap()
            .letters
            .len(),
        5
    );
    assert_eq!(
        mb.list_letters(&kari, Loa::High, &q("%"))
            .await
            .unwrap()
            .letters
            .len(),
        0,
        "wildcards are literal"
    );
    let by_other_sender = LetterQuery {
        sender: Some(pki::demo::databehandler()),
        ..Default::default()
    };
    assert!(
        mb.list_letters(&kari, Loa::High, &by_other_sender)
            .await
            .unwrap()
            .letters
            .is_empty()
    );
    let all = list(&c, &kari).await;
    let target = all
        .iter()
        .find(|l| l.ikkesensitivtittel == "Byggesak")
        .unwrap()
        .id;
    mb.mark_opened(&kari, Loa::High, target).await.unwrap();
    let unread = LetterQuery {
        unread_only: true,
        ..Default::default()
    };
    assert_eq!(
        mb.list_letters(&kari, Loa::High, &unread)
            .await
            .unwrap()
            .letters
            .len(),
        4
    );
    mb.mark_unread(&kari, target).await.unwrap();
    assert_eq!(
        mb.list_letters(&kari, Loa::High, &unread)
            .await
            .unwrap()
            .letters
            .len(),
        5
    );
    // Date range: everything is from today; nothing before yesterday.
    let old = LetterQuery {
        to: Some(time::OffsetDateTime::now_utc() - time::Duration::days(1)),
        ..Default::default()
    };
    assert!(
        mb.list_letters(&kari, Loa::High, &old)
            .await
            .unwrap()
            .letters
            .is_empty()
    );
    // Folders: archive, bin, restore.
    mb.move_to(&kari, target, Folder::Archive).await.unwrap();
    assert_eq!(list(&c, &kari).await.len(), 4);
    let archived = mb
        .list_letters(
            &kari,
            Loa::High,
            &LetterQuery {
                folder: Folder::Archive,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.letters.len(), 1);
    assert_eq!(archived.letters[0].folder, Folder::Archive);
    mb.move_to(&kari, target, Folder::Bin).await.unwrap();
    mb.move_to(&kari, target, Folder::Inbox).await.unwrap();
    assert_eq!(list(&c, &kari).await.len(), 5);
    // Over the API too.
    let token = c.citizen_token(&c.pids.digipost, "idporten-loa-high").await;
    let r = c
        .api_post(
            "digipost",
            &format!("/letters/{target}/folder"),
            &token,
            Some(serde_json::json!({"folder": "archive"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let page: Value = c
        .api_get("digipost", "/letters?folder=archive&limit=10", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["letters"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.api_get("digipost", "/letters?cursor=forged", &token)
            .await
            .status(),
        400
    );
    c.stop().await;
}

#[tokio::test]
async fn a_receipt_sent_as_a_letter_is_refused_without_an_answer() {
    let c = start().await;
    let tenant = pki::demo::digipost();
    // A well-formed, signed leveringskvittering posted where letters go.
    let letter = spec(&LetterOpts::to(tenant, &c.kari_address(), "Original")).sbd;
    let kommune = &c.kommune_cert;
    let receipt = dpi::receipt::build_receipt(
        &letter,
        dpi::receipt::ReceiptKind::Levering,
        &pki::demo::kommune().actor_id(),
        dpi::message::Timestamp::now(),
        domain::MessageId::new(),
    )
    .unwrap();
    let jwt = dpi::receipt::sign_sbd(&receipt, kommune.cert(), kommune.key()).unwrap();
    let sealed = dpi::letter::SealedLetter {
        jwt,
        cms: b"not cms at all".to_vec(),
    };
    let token = c.formidler_token().await;
    assert_eq!(
        c.post_inbound("digipost", Some(&token), &sealed)
            .await
            .status(),
        202
    );
    let id = receipt.message_id().to_string();
    let mut status = None;
    for _ in 0..200 {
        status = c.postkasse.inbound_status(&tenant, &id).await.unwrap();
        if status.as_ref().is_some_and(|(s, _)| s != "received") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (state, reason) = status.unwrap();
    assert_eq!(state, "rejected");
    assert!(reason.unwrap().contains("letter_is_receipt"));
    assert!(c.postkasse.receipts(&tenant, &id).await.unwrap().is_empty());
    assert_eq!(c.postkasse.letter_count(&tenant).await.unwrap(), 0);
    c.stop().await;
}

fn varsler() -> dpi::message::Varsler {
    dpi::message::Varsler {
        epostvarsel: Some(dpi::message::Epostvarsel {
            epostadresse: "kari@example.com".into(),
            varslingstekst: "Du har fått brev".into(),
            repetisjoner: vec![0, 7],
        }),
        smsvarsel: Some(dpi::message::Smsvarsel {
            mobiltelefonnummer: "+4799999999".into(),
            varslingstekst: "Nytt brev".into(),
            repetisjoner: vec![0],
        }),
        extra: Default::default(),
    }
}

#[tokio::test]
async fn a_failed_notification_is_answered_once_per_channel_with_a_signed_varslingfeiletkvittering()
{
    use dpi::message::Varslingskanal;
    let c = start().await;
    let tenant = pki::demo::digipost();
    let kari = citizen(&c, tenant, &c.pids.digipost);
    let mut o = LetterOpts::to(tenant, &c.kari_address(), "Med varsler");
    o.varsler = Some(varsler());
    let sent = deliver(&c, &o).await;
    let plain = deliver(
        &c,
        &LetterOpts::to(tenant, &c.kari_address(), "Uten varsler"),
    )
    .await;
    let letters = list(&c, &kari).await;
    let id_of = |title: &str| {
        letters
            .iter()
            .find(|l| l.ikkesensitivtittel == title)
            .unwrap()
            .id
    };
    let (id, plain_id) = (id_of("Med varsler"), id_of("Uten varsler"));
    let mailbox = c.postkasse.mailbox();

    // The notifier's view: every stored letter in order, with its varsler, paged by keyset.
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let first = mailbox.letters_stored_since(since, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, id, "oldest first");
    assert_eq!(first[0].citizen, kari);
    assert_eq!(first[0].varsler.as_ref(), Some(&varsler()));
    let rest = mailbox
        .letters_stored_since(first[0].stored_at, Some(first[0].id), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "the next page starts after the first letter");
    assert_eq!(rest[0].id, plain_id);
    assert!(rest[0].varsler.is_none());

    // Another citizen of the tenant cannot make Kari's letter answer anything.
    let sigrid = citizen(&c, tenant, &c.pids.stale);
    let e = mailbox
        .notification_failed(&sigrid, id, Varslingskanal::Epost, "x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    // Only channels the letter asked for.
    let e = mailbox
        .notification_failed(&kari, plain_id, Varslingskanal::Sms, "x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_query");

    let long = "å".repeat(1500);
    assert!(
        mailbox
            .notification_failed(&kari, id, Varslingskanal::Epost, &long)
            .await
            .unwrap(),
        "queued"
    );
    assert!(
        !mailbox
            .notification_failed(&kari, id, Varslingskanal::Epost, "igjen")
            .await
            .unwrap(),
        "the same channel failing again (another repetition day) is not told twice"
    );
    assert!(
        mailbox
            .notification_failed(&kari, id, Varslingskanal::Sms, "550 ukjent nummer")
            .await
            .unwrap(),
        "another channel is told on its own"
    );

    let receipts = c
        .postkasse
        .receipts(&tenant, &sent.message_id().to_string())
        .await
        .unwrap();
    let mut kinds: Vec<&str> = receipts.iter().map(|r| r.0.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "leveringskvittering",
            "varslingfeiletkvittering:epost",
            "varslingfeiletkvittering:sms"
        ]
    );
    // The signed receipts as the sender gets them: from the access point (once it has a
    // receipt, the mailbox keeps the receipt's row but not its signed message).
    let conversation = sent.conversation_id().unwrap().to_string();
    let mut at_access_point: Vec<String> = Vec::new();
    for _ in 0..200 {
        at_access_point = store::sqlx::query_scalar(
            "SELECT forretningsmelding FROM formidler_incoming WHERE conversation_id = $1",
        )
        .bind(&conversation)
        .fetch_all(c.formidler_db.db().pool())
        .await
        .unwrap();
        if at_access_point.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        at_access_point.len(),
        3,
        "three receipts reach the access point"
    );
    let jws_of = |kind: &str| {
        at_access_point
            .iter()
            .find(|jws| {
                let (_, payload) = dpi::jws::decode_unverified(jws).unwrap();
                let kanal = match dpi::message::Sbd::parse(&payload).unwrap().body {
                    Body::Varslingfeiletkvittering(v) => Some(v.varslingskanal),
                    _ => None,
                };
                match kind {
                    "varslingfeiletkvittering:epost" => kanal == Some(Varslingskanal::Epost),
                    "varslingfeiletkvittering:sms" => kanal == Some(Varslingskanal::Sms),
                    _ => false,
                }
            })
            .cloned()
            .unwrap()
    };
    assert!(
        c.postkasse
            .receipts(&tenant, &plain.message_id().to_string())
            .await
            .unwrap()
            .iter()
            .all(|r| r.0 == "leveringskvittering")
    );
    let tenant_cert = c.tenant_cert(&tenant).to_der().unwrap();
    for (kind, kanal, beskrivelse) in [
        (
            "varslingfeiletkvittering:epost",
            Varslingskanal::Epost,
            "å".repeat(1000),
        ),
        (
            "varslingfeiletkvittering:sms",
            Varslingskanal::Sms,
            "550 ukjent nummer".to_owned(),
        ),
    ] {
        let jws = &jws_of(kind);
        // Signed with the tenant's enterprise certificate, valid as a receipt to the sender.
        let verified = dpi::jws::verify(jws).unwrap();
        assert_eq!(verified.chain[0].to_der().unwrap(), tenant_cert);
        let opened = dpi::receipt::open_receipt(jws, &c.anchors, time::OffsetDateTime::now_utc());
        assert!(opened.valid, "{:?}", opened.errors);
        let r = opened.sbd.unwrap();
        assert_eq!(r.message_type(), MessageType::Varslingfeiletkvittering);
        assert_eq!(r.conversation_id(), sent.conversation_id());
        assert_ne!(r.message_id(), sent.message_id());
        assert_eq!(r.header.sender.value, tenant.actor_id().to_string());
        assert_eq!(
            r.header.receiver.value,
            pki::demo::kommune().actor_id().to_string()
        );
        match &r.body {
            Body::Varslingfeiletkvittering(v) => {
                assert_eq!(v.varslingskanal, kanal);
                assert_eq!(v.beskrivelse.as_deref(), Some(beskrivelse.as_str()));
            }
            other => panic!("expected varslingfeiletkvittering, got {other:?}"),
        }
    }
    // Both reach the sender through the access point.
    for _ in 0..2 {
        let r = c.wait_receipt(&sent).await;
        assert_eq!(r.message_type(), MessageType::Varslingfeiletkvittering);
    }
    c.stop().await;
}
