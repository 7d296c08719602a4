//! The sender service across failures: the access point down and back, the service killed
//! after the access point took a letter (the same bytes again, and a letter sealed again
//! under the same message id), and a receipt handed out twice. Every letter that got a 201
//! reaches the access point exactly once.

mod common;

use std::time::Duration;

use common::{letter, start_down};
use dpi::receipt::ReceiptKind;
use maskinporten::defaults;
use serde_json::Value;
use store::{sqlx, sqlx::Row};

fn statuses(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The sealed letter the sender stored before posting it.
async fn sealed(w: &common::World, id: &str) -> Option<(String, Vec<u8>)> {
    let row = sqlx::query(
        "SELECT l.forretningsmelding, p.data FROM avsender_letters l \
         LEFT JOIN avsender_payloads p ON p.letter_id = l.letter_id WHERE l.letter_id = $1",
    )
    .bind(id)
    .fetch_one(w.db.db().pool())
    .await
    .unwrap();
    let jws: Option<String> = row.try_get("forretningsmelding").unwrap();
    let cms: Option<Vec<u8>> = row.try_get("data").unwrap();
    Some((jws?, cms?))
}

async fn wait_sealed(w: &common::World, id: &str) -> (String, Vec<u8>) {
    for _ in 0..400 {
        if let Some(s) = sealed(w, id).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("letter {id} was never sealed");
}

/// What the killed process's request would have done: the sealed letter posted to the
/// access point with the token embedded in it.
async fn post_to_formidler(w: &common::World, jws: &str, cms: Vec<u8>) -> u16 {
    let (_, payload) = dpi::jws::decode_unverified(jws).unwrap();
    let sbd = dpi::message::Sbd::parse(&payload).unwrap();
    let token = sbd.body.maskinportentoken().unwrap().to_owned();
    let form = reqwest::multipart::Form::new()
        .part(
            "forretningsmelding",
            reqwest::multipart::Part::text(jws.to_owned())
                .mime_str("application/jwt")
                .unwrap(),
        )
        .part(
            "dokumentpakke",
            reqwest::multipart::Part::bytes(cms)
                .mime_str("application/cms")
                .unwrap(),
        );
    w.http
        .post(format!("{}/messages/out", w.formidler_base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_letter_waits_for_an_access_point_that_is_down() {
    let w = start_down(|_| {}).await.with_sender().await;
    let l = letter(&krr::default_pids().eboks);
    assert!(w.avsender.submit(&l).await.unwrap().created);
    wait_sealed(&w, &l.id).await;
    // Still trying: created, nothing else.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = w.avsender.status(&l.id).await.unwrap();
    assert_eq!(statuses(&v), ["created"]);

    let w = w.with_formidler().await;
    let v = w.wait_status(&l.id, "sent").await;
    assert_eq!(statuses(&v), ["created", "sent"]);
    assert_eq!(w.formidler_count().await, 1);
    w.stop().await;
}

/// A letter sealed by a version that kept the sealed dokumentpakke in the blob store is sent
/// with those very bytes after the upgrade, and the blob is deleted afterwards.
#[tokio::test]
async fn a_letter_sealed_by_an_earlier_version_is_sent_with_the_bytes_it_kept() {
    let mut w = start_down(|_| {}).await.with_sender().await;
    let l = letter(&krr::default_pids().eboks);
    assert!(w.avsender.submit(&l).await.unwrap().created);
    let (_, cms) = wait_sealed(&w, &l.id).await;
    // The earlier version stops; where it kept the sealed letter:
    w.sender.take().unwrap().kill().await;
    let blob = w.avsender_blobs.put(cms.clone()).await.unwrap();
    sqlx::query(
        "UPDATE avsender_letters SET dokumentpakke_sha256 = $2, dokumentpakke_size = $3 \
         WHERE letter_id = $1",
    )
    .bind(&l.id)
    .bind(&blob.sha256)
    .bind(blob.size as i64)
    .execute(w.db.db().pool())
    .await
    .unwrap();
    sqlx::query("DELETE FROM avsender_payloads")
        .execute(w.db.db().pool())
        .await
        .unwrap();
    let w = w.with_formidler().await.with_sender().await;
    let v = w.wait_status(&l.id, "sent").await;
    let (_, _, _, held) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(held, cms);
    // The blob goes right after the transaction that marked the letter sent.
    assert!(
        store::testing::blob_gone_within(&w.avsender_blobs, &blob, Duration::from_secs(2)).await,
        "deleted once sent"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_sender_killed_after_the_access_point_took_its_letters_sends_each_exactly_once() {
    // A short lease (3 × the HTTP timeout): the killed worker's job is taken over sooner.
    let mut w = start_down(|c| c.http_timeout_secs = 2)
        .await
        .with_sender()
        .await;
    let pid = krr::default_pids().digipost;
    let a = letter(&pid);
    let b = letter(&pid);
    w.avsender.submit(&a).await.unwrap();
    w.avsender.submit(&b).await.unwrap();
    let (jws_a, cms_a) = wait_sealed(&w, &a.id).await;
    let (jws_b, cms_b) = wait_sealed(&w, &b.id).await;

    // The sender dies; its last requests had reached the access point.
    w.sender.take().unwrap().kill().await;
    let mut w = w.with_formidler().await;
    assert_eq!(post_to_formidler(&w, &jws_a, cms_a).await, 201);
    assert_eq!(post_to_formidler(&w, &jws_b, cms_b).await, 201);
    // B's token is taken as expired on restart: it is sealed again (new bytes, same message
    // id) and the access point answers 409 duplicate_message_id.
    sqlx::query("UPDATE avsender_letters SET token_expires_at = 0 WHERE letter_id = $1")
        .bind(&b.id)
        .execute(w.db.db().pool())
        .await
        .unwrap();

    w = w.with_sender().await;
    let va = w.wait_status(&a.id, "sent").await;
    let vb = w.wait_status(&b.id, "sent").await;
    assert_eq!(statuses(&va), ["created", "sent"]);
    assert_eq!(statuses(&vb), ["created", "sent"]);
    assert!(
        vb["history"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("earlier attempt"),
        "{vb:#}"
    );
    let jws_b2: String =
        sqlx::query_scalar("SELECT forretningsmelding FROM avsender_letters WHERE letter_id = $1")
            .bind(&b.id)
            .fetch_one(w.db.db().pool())
            .await
            .unwrap();
    assert_ne!(jws_b, jws_b2, "B was not sealed again");
    assert!(
        sealed(&w, &b.id).await.is_none(),
        "sent: the payload is gone"
    );
    assert_eq!(w.formidler_count().await, 2);
    // The access point holds the first version of each.
    let (_, _, held_a, _) = w
        .at_formidler(va["message_id"].as_str().unwrap())
        .await
        .unwrap();
    let (_, _, held_b, _) = w
        .at_formidler(vb["message_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(held_a, jws_a);
    assert_eq!(held_b, jws_b);
    w.stop().await;
}

#[tokio::test]
async fn a_receipt_handed_out_again_after_a_crash_is_applied_once() {
    let w = common::start().await;
    let digipost = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
    let l = letter(&krr::default_pids().digipost);
    w.avsender.submit(&l).await.unwrap();
    let v = w.wait_status(&l.id, "sent").await;
    let (_, _, jws, _) = w
        .at_formidler(v["message_id"].as_str().unwrap())
        .await
        .unwrap();
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
    w.wait_status(&l.id, "delivered").await;
    // As if the sender had died between applying the receipt and marking it read.
    let n = sqlx::query("UPDATE formidler_incoming SET read_at = NULL")
        .execute(w.db.db().pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
    let read_again = w.all_receipts_read_within(Duration::from_secs(10)).await;
    assert!(read_again, "the receipt handed out again is marked read");
    let v = w.avsender.status(&l.id).await.unwrap();
    assert_eq!(statuses(&v), ["created", "sent", "delivered"]);
    assert_eq!(v["receipts"].as_array().unwrap().len(), 1);
    w.stop().await;
}
