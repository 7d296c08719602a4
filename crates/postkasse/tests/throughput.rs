//! Throughput of the provider behind a real access point, printed (never asserted on time):
//! N letters with a 100 KB document are accepted by the access point, delivered, validated
//! and stored here, and their receipts handed back. Run with
//! `cargo test --release -p postkasse --test throughput -- --ignored --nocapture`
//! (`POSTKASSE_BENCH_N` letters, default 200; backend from `SAMSPILL_TEST_BACKEND`).

mod common;

use std::time::{Duration, Instant};

use common::{LetterOpts, spec, start_with};
use store::sqlx;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "prints throughput; run explicitly"]
async fn letters_per_second_through_the_provider() {
    let n: usize = std::env::var("POSTKASSE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // POSTKASSE_BENCH_DIRECT=1: post straight to the provider's intake (16 at a time), to
    // see the provider alone; its receipts then go to an access point that never saw the
    // letters and refuses them, which still costs the provider the same work.
    let direct = std::env::var("POSTKASSE_BENCH_DIRECT").is_ok_and(|v| v == "1");
    let c = start_with(|_| {}, true).await;
    let tenant = pki::demo::digipost();
    let cert = c.tenant_cert(&tenant);
    let doc: Vec<u8> = (0..100 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut letters = Vec::with_capacity(n);
    let t_seal = Instant::now();
    for i in 0..n {
        let mut s = spec(&LetterOpts::to(
            tenant,
            &c.kari_address(),
            &format!("Brev {i}"),
        ));
        s.package.documents[0].bytes = doc.clone();
        letters.push(c.seal(&s, &cert).await.0);
    }
    println!(
        "sealed {n} letters in {:?} (not part of the figures)",
        t_seal.elapsed()
    );

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let c = std::sync::Arc::new(c);
    let chunks: Vec<Vec<_>> = letters
        .chunks(n.div_ceil(16).max(1))
        .map(|c| c.to_vec())
        .collect();
    for chunk in chunks {
        let c = c.clone();
        tasks.spawn(async move {
            let token = if direct {
                Some(c.formidler_token().await)
            } else {
                None
            };
            for l in chunk {
                match &token {
                    Some(t) => {
                        assert_eq!(c.post_inbound("digipost", Some(t), &l).await.status(), 202)
                    }
                    None => assert_eq!(c.post_out(&l).await, 201),
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let accepted = start.elapsed();
    let db = c.postkasse_db.db().clone();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    };
    let mut stored_at = None;
    let mut delivered_at = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let delivered = count("SELECT COUNT(*) FROM postkasse_inbound").await;
        if delivered_at.is_none() && delivered as usize >= n {
            delivered_at = Some(start.elapsed());
        }
        let stored = count("SELECT COUNT(*) FROM postkasse_letters").await;
        if stored_at.is_none() && stored as usize >= n {
            stored_at = Some(start.elapsed());
        }
        let sent = count(
            "SELECT COUNT(*) FROM postkasse_receipts \
             WHERE sent_at IS NOT NULL OR last_error IS NOT NULL",
        )
        .await;
        if sent as usize >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stalled: {stored} stored, {sent} receipts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receipts = start.elapsed();
    let stored = stored_at.unwrap_or(receipts);
    let delivered = delivered_at.unwrap_or(stored);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{} backend {:?}: {n} letters of 100 KB: accepted {:.0}/s ({accepted:?}), delivered to the provider {:.0}/s ({delivered:?}), stored {:.0}/s ({stored:?}), receipts sent {:.0}/s ({receipts:?})",
        if direct {
            "direct to the provider,"
        } else {
            "through the access point,"
        },
        store::testing::test_backend(),
        rate(accepted),
        rate(delivered),
        rate(stored),
        rate(receipts),
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM postkasse_letters").await as usize,
        n
    );
}
