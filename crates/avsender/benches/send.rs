//! Throughput of the sender service on loopback: N letters of 100 KB submitted by C
//! concurrent case-system clients, then sealed and sent into the real access point (with the
//! real Maskinporten and KRR stand-ins). Prints accepted/s and sent/s; asserts nothing about
//! time. `SAMSPILL_TEST_BACKEND=sqlite|postgres`, `BENCH_LETTERS` (default 500),
//! `BENCH_CONCURRENCY` (default 32), `BENCH_WORKERS` (send workers, default 16).
//!
//! `cargo bench -p avsender --bench send`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use store::sqlx;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let metrics = web::metrics_handle();
    let n = env("BENCH_LETTERS", 500);
    let concurrency = env("BENCH_CONCURRENCY", 32);
    let workers = env("BENCH_WORKERS", 16);
    let w = common::start_with(|c| {
        c.send_workers = workers;
        c.poll_interval_ms = 1000;
    })
    .await;
    let pids = krr::default_pids();
    let mut pdf = b"%PDF-1.4\n".to_vec();
    while pdf.len() < 100 * 1024 {
        pdf.extend_from_slice(format!("% filler line {}\n", pdf.len()).as_bytes());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let letters: Vec<_> = (0..n)
        .map(|i| {
            let mut l = common::letter(if i % 2 == 0 {
                &pids.digipost
            } else {
                &pids.eboks
            });
            l.documents[0].content_base64 = Some(b64.clone());
            l
        })
        .collect();

    // The CPU cost of sealing alone, on one core (ASiC-E + XAdES, CMS, JWS).
    {
        let kommune = w
            .pki
            .issue_enterprise(&pki::demo::kommune(), pki::demo::KOMMUNE_NAME)
            .unwrap();
        let provider = w.provider(pki::demo::digipost(), pki::demo::DIGIPOST_NAME);
        let mut l = common::letter(&pids.digipost);
        l.documents[0].content_base64 = Some(b64.clone());
        let stored = avsender::letter::validate(
            &l,
            &[bytes::Bytes::from(pdf.clone())],
            &domain::FnrPolicy::PERMISSIVE,
            None,
        )
        .unwrap();
        let me = pki::demo::kommune().actor_id();
        let route = avsender::letter::Route {
            receiver: pki::demo::digipost().actor_id(),
            recipient_cert: Some(provider.cert().clone()),
            kind: avsender::letter::RouteKind::Digital {
                postkasseadresse: "kari.nordmann#1234".into(),
                epost: None,
                mobil: None,
            },
        };
        let chain = vec![kommune.cert().clone(), w.pki.ca_cert().clone()];
        let rounds = 100;
        let t = Instant::now();
        for _ in 0..rounds {
            let spec = dpi::letter::LetterSpec {
                sbd: avsender::letter::build_sbd(
                    &stored,
                    &me,
                    &me,
                    &route,
                    domain::MessageId::new(),
                    domain::ConversationId::new(),
                    dpi::message::Timestamp::now(),
                )
                .unwrap(),
                package: avsender::letter::build_package(&stored, &me, &route, vec![pdf.clone()]),
                signing_time: time::OffsetDateTime::now_utc(),
            };
            dpi::letter::seal_letter(&spec, &chain, kommune.key(), provider.cert(), "token")
                .unwrap();
        }
        println!(
            "  seal alone: {:>6.1} letters/s on one core ({:.2} ms each)",
            rounds as f64 / t.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64() * 1000.0 / rounds as f64
        );
    }

    let t0 = Instant::now();
    let client = &w.avsender;
    let results: Vec<_> = futures::stream::iter(letters.iter())
        .map(|l| async move { client.submit(l).await })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let accepted = t0.elapsed();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!("a submission failed: {e}");
    }

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let sent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM avsender_letters WHERE status = 'sent'")
                .fetch_one(w.db.db().pool())
                .await
                .unwrap();
        if sent as usize >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_sent = t0.elapsed();
    let at_formidler = w.formidler_count().await;
    let krr_requests = w.krr_client.as_ref().map_or(0, |k| k.request_count());
    println!(
        "avsender bench ({}, {n} letters of 100 KB, {concurrency} clients, {workers} send workers)",
        store::testing::test_backend().name()
    );
    println!(
        "  accepted: {:>8.1} letters/s  ({:.2} s)",
        n as f64 / accepted.as_secs_f64(),
        accepted.as_secs_f64()
    );
    println!(
        "  sent:     {:>8.1} letters/s  ({:.2} s from the first submission; {at_formidler} at the access point)",
        n as f64 / all_sent.as_secs_f64(),
        all_sent.as_secs_f64()
    );
    println!("  KRR requests: {krr_requests} for {n} letters");
    for line in metrics.render().lines() {
        if line.starts_with("avsender_send_step_seconds") && !line.contains("quantile=\"0\"") {
            println!("  {line}");
        }
    }
    w.stop().await;
}
