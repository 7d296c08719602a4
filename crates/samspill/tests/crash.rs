//! Crash safety of the chain: while letters flow, the access point and the mailbox provider
//! are killed with SIGKILL at random moments and started again. Afterwards every letter the
//! access point accepted is stored exactly once at the mailbox, and every sender sees its
//! verified leveringskvittering. Bounded: a fixed number of letters and kills.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, digital_letter, krr_person};
use rand::Rng;
use store::sqlx;

const LETTERS: usize = 30;
const KILLS: usize = 8;

#[tokio::test]
async fn letters_survive_sigkill_of_the_access_point_and_the_mailbox() {
    let mut c = Cluster::start("").await;
    let data = c.data_dir();
    let citizens = [
        krr_person(&data, "hos Digipost"),
        krr_person(&data, "hos e-Boks"),
    ];

    // The sender keeps submitting in the background; it is not one of the victims.
    let http = c.http.clone();
    let submit_url = c.url("avsender", "/avsender/api/v1/letters");
    let letters: Vec<serde_json::Value> = (0..LETTERS)
        .map(|i| digital_letter(&citizens[i % 2], &format!("Brev nummer {i}"), i % 3 == 0))
        .collect();
    let to_send = letters.clone();
    let submitter = tokio::spawn(async move {
        for l in to_send {
            loop {
                let r = http
                    .post(&submit_url)
                    .header("x-api-key", common::API_KEY)
                    .json(&l)
                    .send()
                    .await;
                if matches!(r.map(|r| r.status().as_u16()), Ok(200 | 201)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    });

    let mut rng = rand::thread_rng();
    for n in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..900))).await;
        let victim = if n % 2 == 0 { "formidler" } else { "postkasse" };
        c.kill(victim);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..600))).await;
        c.spawn(victim).await;
    }
    submitter.await.unwrap();

    // Everything arrives, once.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut message_ids = Vec::new();
    for l in &letters {
        let id = l["id"].as_str().unwrap();
        let left = deadline.saturating_duration_since(Instant::now());
        let done = c.wait_status(id, &["delivered"], left).await;
        let kvitteringer = done["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "leveringskvittering")
            .count();
        assert_eq!(
            kvitteringer, 1,
            "one leveringskvittering per letter: {done:#}"
        );
        message_ids.push(done["message_id"].as_str().unwrap().to_owned());
    }
    for mid in &message_ids {
        let stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_letters WHERE message_id = $1")
                .bind(mid)
                .fetch_one(c.db("postkasse").pool())
                .await
                .unwrap();
        assert_eq!(stored, 1, "message {mid} stored {stored} times");
        let status: String =
            sqlx::query_scalar("SELECT status FROM formidler_messages WHERE message_id = $1")
                .bind(mid)
                .fetch_one(c.db("formidler").pool())
                .await
                .unwrap();
        assert_eq!(status, "SENDT", "{mid} at the access point");
    }
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_letters")
        .fetch_one(c.db("postkasse").pool())
        .await
        .unwrap();
    assert_eq!(
        total as usize, LETTERS,
        "no letter stored twice or out of nowhere"
    );
    println!(
        "crash test: {LETTERS} letters, {KILLS} SIGKILLs of formidler/postkasse, all delivered exactly once"
    );
}
