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
use store::sqlx;

fn statuses(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (20 s at most) until the sender has posted `n` letters to the unanswering access
/// point and returns them.
async fn wait_posted(posted: &common::Posted, n: usize) -> Vec<(String, Vec<u8>)> {
    for _ in 0..400 {
        let p = posted.lock().unwrap().clone();
        if p.len() >= n {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sender did not post {n} letters");
}

/// The first posting of the letter with message id `id` (waiting 20 s at most for it).
async fn first_posting(posted: &common::Posted, id: &str) -> (String, Vec<u8>) {
    for _ in 0..400 {
        let p = posted.lock().unwrap().clone();
        if let Some(x) = p.into_iter().find(|(jws, _)| message_id_of(jws) == id) {
            return x;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("letter {id} was never posted");
}

/// The message id of a posted forretningsmelding.
fn message_id_of(jws: &str) -> String {
    let (_, payload) = dpi::jws::decode_unverified(jws).unwrap();
    dpi::message::Sbd::parse(&payload)
        .unwrap()
        .message_id()
        .to_string()
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
    let (w, posted) = w.with_unanswering_formidler().await;
    let l = letter(&krr::default_pids().eboks);
    let sub = w.avsender.submit(&l).await.unwrap();
    assert!(sub.created);
    // Tried twice, each time sealed again under the letter's one message id.
    let tries = wait_posted(&posted, 2).await;
    // The 201 is built from what was inserted, not read back: it must say what a read says
    // of the letter as accepted (the route is recorded since, by the tries).
    let read = w.avsender.status(&l.id).await.unwrap();
    let accepted = &sub.letter;
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(accepted), keys(&read));
    for field in [
        "id",
        "avsender",
        "message_id",
        "conversation_id",
        "created_at",
        "error",
    ] {
        assert_eq!(accepted[field], read[field], "{field}");
    }
    assert_eq!(accepted["status"], "created");
    assert_eq!(accepted["updated_at"], read["created_at"]);
    assert_eq!(accepted["history"], read["history"]);
    assert_eq!(accepted["receipts"], serde_json::json!([]));
    assert_eq!(
        (&accepted["channel"], &accepted["provider"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    assert_eq!(message_id_of(&tries[0].0), message_id_of(&tries[1].0));
    assert_ne!(tries[0].1, tries[1].1, "sealed again");
    let mut w = w;
    w.formidler.take().unwrap().stop().await;
    // Still trying: created, nothing else.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = w.avsender.status(&l.id).await.unwrap();
    assert_eq!(statuses(&v), ["created"]);

    let w = w.with_formidler().await;
    let v = w.wait_status(&l.id, "sent").await;
    assert_eq!(statuses(&v), ["created", "sent"]);
    assert_eq!(w.formidler_count().await, 1);
    assert_eq!(
        v["message_id"].as_str().unwrap(),
        message_id_of(&tries[0].0)
    );
    w.stop().await;
}

/// A letter sealed by a version that kept the sealed dokumentpakke in the blob store is sent
/// with those very bytes after the upgrade, and the blob is deleted afterwards.
#[tokio::test]
async fn a_letter_sealed_by_an_earlier_version_is_sent_with_the_bytes_it_kept() {
    let (w, posted) = start_down(|_| {}).await.with_unanswering_formidler().await;
    let mut w = w.with_sender().await;
    let l = letter(&krr::default_pids().eboks);
    assert!(w.avsender.submit(&l).await.unwrap().created);
    // The earlier version sealed it, and stops; where it kept the sealed letter:
    let (jws, cms) = wait_posted(&posted, 1).await.remove(0);
    w.sender.take().unwrap().kill().await;
    w.formidler.take().unwrap().stop().await;
    let blob = w.avsender_blobs.put(cms.clone()).await.unwrap();
    sqlx::query(
        "UPDATE avsender_letters SET forretningsmelding = $2, dokumentpakke_sha256 = $3, \
         dokumentpakke_size = $4 WHERE letter_id = $1",
    )
    .bind(&l.id)
    .bind(&jws)
    .bind(&blob.sha256)
    .bind(blob.size as i64)
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
    let (w, posted) = start_down(|c| c.http_timeout_secs = 2)
        .await
        .with_unanswering_formidler()
        .await;
    let mut w = w.with_sender().await;
    let pid = krr::default_pids().digipost;
    let a = letter(&pid);
    let b = letter(&pid);
    w.avsender.submit(&a).await.unwrap();
    w.avsender.submit(&b).await.unwrap();
    let id_a = w.avsender.status(&a.id).await.unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id_b = w.avsender.status(&b.id).await.unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first posting of each letter.
    let (jws_a, cms_a) = first_posting(&posted, &id_a).await;
    let (jws_b, cms_b) = first_posting(&posted, &id_b).await;

    // The sender dies; its requests had reached the access point, whose answers were lost.
    w.sender.take().unwrap().kill().await;
    w.formidler.take().unwrap().stop().await;
    let mut w = w.with_formidler().await;
    assert_eq!(post_to_formidler(&w, &jws_a, cms_a).await, 201);
    assert_eq!(post_to_formidler(&w, &jws_b, cms_b).await, 201);

    // After the restart each is sealed again (new bytes, same message id) and the access
    // point answers 409 duplicate_message_id: sent, by the earlier attempt.
    w = w.with_sender().await;
    for (l, jws) in [(&a, &jws_a), (&b, &jws_b)] {
        let v = w.wait_status(&l.id, "sent").await;
        assert_eq!(statuses(&v), ["created", "sent"]);
        assert!(
            v["history"][1]["detail"]
                .as_str()
                .unwrap()
                .contains("earlier attempt"),
            "{v:#}"
        );
        // The access point holds the version that reached it first.
        let (_, _, held, _) = w
            .at_formidler(v["message_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(&held, jws);
    }
    assert_eq!(w.formidler_count().await, 2);
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
