//! Who a letter belongs to: the organization it is sent for (a databehandler sending on a
//! kommune's behalf) and the case system (API key) that submitted it. Runs on the backend
//! named by `SAMSPILL_TEST_BACKEND`.

mod common;

use avsender::client::AvsenderClient;
use common::{API_KEY, letter, start_databehandler, start_with};
use dpi::{container::Limits, message::Body, receipt::ReceiptKind, trust::TrustAnchors};
use maskinporten::defaults;
use store::{sqlx, sqlx::Row};

const OTHER_KEY: &str = "other-case-system-key-0123";

#[tokio::test]
async fn a_databehandler_sends_for_the_kommune_and_the_receipts_come_back_to_it() {
    let kommune = pki::demo::kommune();
    let databehandler = pki::demo::databehandler();
    let w = start_databehandler(|c| c.on_behalf_of = vec![kommune]).await;
    let pid = krr::default_pids().digipost;

    let mut l = letter(&pid);
    l.avsender = Some(kommune.to_string());
    let sub = w.avsender.submit(&l).await.unwrap();
    assert!(sub.created);
    assert_eq!(sub.letter["avsender"], kommune.to_string());
    let v = w.wait_status(&l.id, "sent").await;
    assert_eq!(v["provider"], pki::demo::digipost().to_string());

    // At the access point: avsender (consumer) = the kommune, supplier = the databehandler.
    let message_id = v["message_id"].as_str().unwrap();
    let row = sqlx::query(
        "SELECT sender_orgnr, supplier_orgnr FROM formidler_messages WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_one(w.db.db().pool())
    .await
    .unwrap();
    assert_eq!(
        row.try_get::<String, _>("sender_orgnr").unwrap(),
        kommune.to_string()
    );
    assert_eq!(
        row.try_get::<Option<String>, _>("supplier_orgnr").unwrap(),
        Some(databehandler.to_string())
    );

    // Corner 4's validation (§3.6 d, e) passes, and every field says who is what.
    let (_, _, jws, cms) = w.at_formidler(message_id).await.unwrap();
    let provider = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
    let opened = dpi::letter::open_letter(
        &jws,
        &cms,
        provider.key(),
        &TrustAnchors::new(vec![w.pki.ca_cert().clone()]),
        time::OffsetDateTime::now_utc(),
        &Limits::default(),
    );
    assert!(opened.valid, "{:?}", opened.errors);
    let sbd = opened.sbd.unwrap();
    assert_eq!(
        sbd.header.sender.value,
        databehandler.actor_id().to_string()
    );
    let Body::Digital(d) = &sbd.body else {
        panic!("not digital")
    };
    assert_eq!(
        d.avsender.virksomhetsidentifikator.actor_id().unwrap(),
        kommune.actor_id()
    );
    let token = opened.token.unwrap();
    assert_eq!(
        token.consumer.unwrap().actor_id().unwrap(),
        kommune.actor_id()
    );
    assert_eq!(
        token.supplier.unwrap().actor_id().unwrap(),
        databehandler.actor_id()
    );
    assert_eq!(
        dpi::trust::org_number(opened.jws_signer.as_ref().unwrap()).unwrap(),
        databehandler
    );
    assert_eq!(
        opened.package.unwrap().manifest.avsender.organisasjon,
        kommune.actor_id().to_string()
    );

    // The provider's receipt is addressed to the databehandler, listed for the kommune, and
    // polled with the kommune's delegated token.
    let status = w
        .provider_receipt(
            &provider,
            defaults::DIGIPOST_CLIENT,
            &jws,
            ReceiptKind::Levering,
        )
        .await;
    assert_eq!(status, 202);
    let v = w.wait_status(&l.id, "delivered").await;
    let receipts = v["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["verified"], true, "{v:#}");
    assert_eq!(receipts[0]["outcome"], "applied");
    w.stop().await;
}

#[tokio::test]
async fn a_letter_for_an_organization_not_delegated_is_refused_before_anything_is_stored() {
    let kommune = pki::demo::kommune();
    let w = start_databehandler(|c| c.on_behalf_of = vec![kommune]).await;
    let pid = krr::default_pids().digipost;

    // e-Boks has delegated nothing to this service.
    let mut l = letter(&pid);
    l.avsender = Some(pki::demo::eboks().to_string());
    let e = w.avsender.submit(&l).await.unwrap_err();
    assert_eq!(e.code(), "avsender_not_delegated");
    assert!(matches!(
        e,
        avsender::client::ClientError::Problem { status: 422, .. }
    ));
    // Also in ISO 6523 form.
    l.avsender = Some(pki::demo::eboks().actor_id().to_string());
    assert_eq!(
        w.avsender.submit(&l).await.unwrap_err().code(),
        "avsender_not_delegated"
    );
    l.avsender = Some("123456789".into());
    assert_eq!(
        w.avsender.submit(&l).await.unwrap_err().code(),
        "invalid_avsender"
    );
    let letters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM avsender_letters")
        .fetch_one(w.db.db().pool())
        .await
        .unwrap();
    assert_eq!(letters, 0);
    // The kommune in ISO 6523 form is the delegated one.
    l.avsender = Some(kommune.actor_id().to_string());
    let sub = w.avsender.submit(&l).await.unwrap();
    assert_eq!(sub.letter["avsender"], kommune.to_string());
    w.stop().await;
}

#[tokio::test]
async fn each_case_system_sees_only_its_own_letters_and_ids_stay_per_key() {
    let w = start_with(|c| {
        c.api_keys.push(avsender::ApiKey {
            name: "arkiv".into(),
            secret: OTHER_KEY.into(),
        })
    })
    .await;
    let other = AvsenderClient::new(format!("{}/avsender", w.avsender_base()), OTHER_KEY);
    let pid = krr::default_pids().digipost;

    let l = letter(&pid);
    assert!(w.avsender.submit(&l).await.unwrap().created);
    w.wait_status(&l.id, "sent").await;

    // Another key gets exactly the answer of an unknown id.
    let raw = |key: &'static str, id: String| {
        let http = w.http.clone();
        let url = format!("{}/avsender/api/v1/letters/{id}", w.avsender_base());
        async move {
            let r = http.get(url).header("x-api-key", key).send().await.unwrap();
            let status = r.status().as_u16();
            let mut body: serde_json::Value = r.json().await.unwrap();
            body.as_object_mut().unwrap().remove("instance");
            (status, body)
        }
    };
    let hidden = raw(OTHER_KEY, l.id.clone()).await;
    let unknown = raw(OTHER_KEY, uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(hidden.0, 404);
    assert_eq!(hidden, unknown);
    assert_eq!(raw(API_KEY, l.id.clone()).await.0, 200);

    // The same id from another key is neither the other's letter nor a second letter.
    let e = other.submit(&l).await.unwrap_err();
    assert_eq!(e.code(), "letter_id_in_use");
    assert!(matches!(
        e,
        avsender::client::ClientError::Problem { status: 409, .. }
    ));
    let mut changed = l.clone();
    changed.ikkesensitivtittel = "Noe annet".into();
    assert_eq!(
        other.submit(&changed).await.unwrap_err().code(),
        "letter_id_in_use"
    );
    // The owner's idempotency is untouched.
    assert!(!w.avsender.submit(&l).await.unwrap().created);
    assert_eq!(
        w.avsender.submit(&changed).await.unwrap_err().code(),
        "letter_id_conflict"
    );

    // Each key has its own letters.
    let m = letter(&pid);
    assert!(other.submit(&m).await.unwrap().created);
    assert_eq!(other.status(&m.id).await.unwrap()["id"], m.id);
    assert_eq!(
        w.avsender.status(&m.id).await.unwrap_err().code(),
        "not_found"
    );
    let owners: Vec<(String, Option<String>)> =
        sqlx::query("SELECT letter_id, api_key_name FROM avsender_letters ORDER BY created_at")
            .fetch_all(w.db.db().pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("letter_id").unwrap(),
                    r.try_get("api_key_name").unwrap(),
                )
            })
            .collect();
    assert_eq!(
        owners,
        [
            (l.id.clone(), Some("test".to_owned())),
            (m.id.clone(), Some("arkiv".to_owned()))
        ]
    );

    // Letters stored before keys were recorded stay visible to every key.
    sqlx::query("UPDATE avsender_letters SET api_key_name = NULL WHERE letter_id = $1")
        .bind(&l.id)
        .execute(w.db.db().pool())
        .await
        .unwrap();
    assert_eq!(other.status(&l.id).await.unwrap()["id"], l.id);
    w.stop().await;
}
