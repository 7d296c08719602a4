//! Pushes N letters of ~100 KB through the whole chain on loopback — case system → avsender →
//! formidler → postkasse → receipt → avsender, each role its own `samspill` process with its
//! own database — and prints accepted/s, delivered/s, receipts/s and end-to-end latency.
//! Run it with `scripts/bench-chain` (release build, SQLite and PostgreSQL).
//!
//! Settings (environment): `BENCH_LETTERS` (default 1000), `BENCH_CONCURRENCY` (default 32),
//! `BENCH_DOC_BYTES` (default 100000), `BENCH_DB_CONNECTIONS` (each role's pool size; default
//! the product's), `SAMSPILL_TEST_BACKEND` (sqlite | postgres).

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use common::{Cluster, krr_person};
use futures::StreamExt;
use store::sqlx;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn count(db: &store::Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n = env_usize("BENCH_LETTERS", 1000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let doc_bytes = env_usize("BENCH_DOC_BYTES", 100_000);
    let backend = store::testing::test_backend();
    // Workers sized for throughput; the access point and mailbox poll their queues fast.
    let extra = format!(
        r#"
[database]
max_connections = {}
[formidler]
delivery_workers = 8
[postkasse]
process_workers = 4
receipt_workers = 4
[avsender]
send_workers = 8
poll_interval_ms = 100
poll_page_size = 500
"#,
        // The product's default unless asked otherwise (the test cluster's is smaller).
        env_usize(
            "BENCH_DB_CONNECTIONS",
            match backend {
                store::Backend::Sqlite => store::config::DEFAULT_SQLITE_CONNECTIONS,
                store::Backend::Postgres => store::config::DEFAULT_POSTGRES_CONNECTIONS,
            } as usize
        )
    );
    let c = Cluster::start(&extra).await;
    let data = c.data_dir();
    let citizens = [
        krr_person(&data, "hos Digipost"),
        krr_person(&data, "hos e-Boks"),
    ];
    // A PDF's streams are compressed, so random bytes behind a PDF header stand in for one.
    let mut content = vec![0u8; doc_bytes];
    openssl::rand::rand_bytes(&mut content).unwrap();
    content[..9].copy_from_slice(b"%PDF-1.7\n");
    let content_b64 = Arc::new(base64::engine::general_purpose::STANDARD.encode(&content));

    println!(
        "bench-chain: {n} letters of {doc_bytes} bytes, {concurrency} in flight, backend {}",
        backend.name()
    );
    let cpu = |c: &Cluster| -> Vec<(&'static str, f64)> {
        c.procs
            .iter()
            .map(|(name, p)| (*name, p.cpu_seconds().unwrap_or(f64::NAN)))
            .collect()
    };
    let cpu_before = cpu(&c);
    let machine_before = store::testing::machine_busy_seconds();
    let started = Instant::now();
    let http = c.http.clone();
    let url = c.url("avsender", "/avsender/api/v1/letters");
    let accepted = futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let pid = citizens[i % 2].clone();
            let b64 = content_b64.clone();
            async move {
                let letter = serde_json::json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "personidentifikator": pid,
                    "ikkesensitivtittel": format!("Brev {i}"),
                    "sikkerhetsnivaa": 3,
                    "spraak": "NO",
                    "documents": [{
                        "filename": "brev.pdf",
                        "mime": "application/pdf",
                        "title": "Brev",
                        "content_base64": *b64,
                    }],
                });
                let r = http
                    .post(&url)
                    .header("x-api-key", common::API_KEY)
                    .json(&letter)
                    .send()
                    .await;
                matches!(r.map(|r| r.status().as_u16()), Ok(201))
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let accept_secs = started.elapsed().as_secs_f64();

    let pk = c.db("postkasse");
    let av = c.db("avsender");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut delivered_at, mut receipts_at) = (None, None);
    loop {
        let stored = count(pk, "SELECT COUNT(*) FROM postkasse_letters").await as usize;
        let done = count(
            av,
            "SELECT COUNT(*) FROM avsender_letters WHERE status = 'delivered'",
        )
        .await as usize;
        if delivered_at.is_none() && stored >= accepted {
            delivered_at = Some(started.elapsed().as_secs_f64());
        }
        if receipts_at.is_none() && done >= accepted {
            receipts_at = Some(started.elapsed().as_secs_f64());
        }
        if (delivered_at.is_some() && receipts_at.is_some()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = cpu(&c);
    let machine_after = store::testing::machine_busy_seconds();
    // End-to-end latency per letter: accepted by the sender → its leveringskvittering applied.
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT l.created_at, h.at FROM avsender_letters l \
         JOIN avsender_history h ON h.letter_id = l.letter_id AND h.status = 'delivered'",
    )
    .fetch_all(av.pool())
    .await
    .unwrap_or_default();
    let mut lat: Vec<f64> = rows
        .iter()
        .map(|(a, b)| (*b - *a) as f64 / 1000.0)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));

    let rate = |secs: Option<f64>| match secs {
        Some(s) if s > 0.0 => format!("{:.1}/s", accepted as f64 / s),
        _ => "not finished".into(),
    };
    println!("backend:          {}", backend.name());
    println!("letters accepted: {accepted}/{n} in {accept_secs:.2} s");
    println!("accepted/s:       {:.1}/s", accepted as f64 / accept_secs);
    println!(
        "delivered/s:      {} (stored at the mailbox)",
        rate(delivered_at)
    );
    println!(
        "receipts/s:       {} (leveringskvittering applied at the sender)",
        rate(receipts_at)
    );
    println!(
        "latency e2e:      p50 {:.3} s, p99 {:.3} s, max {:.3} s ({} letters)",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    // Where the machine's time went: CPU per letter in each process (the bench client itself
    // is not counted). Sums above the cores' capacity per letter mean CPU is the limit.
    let mut total = 0.0;
    for ((name, a), (_, b)) in cpu_before.iter().zip(&cpu_after) {
        let used = b - a;
        total += used;
        println!(
            "cpu {name:<10}  {used:7.2} s  ({:.2} ms/letter)",
            used * 1000.0 / accepted.max(1) as f64
        );
    }
    println!(
        "cpu all roles    {total:7.2} s over {wall:.1} s wall ({:.2} ms/letter; {} cores)",
        total * 1000.0 / accepted.max(1) as f64,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // The roles' figure leaves out the database server (PostgreSQL) and this client.
    if let (Some(a), Some(b)) = (machine_before, machine_after) {
        println!(
            "cpu machine      {:7.2} s busy, every process ({:.2} ms/letter)",
            b - a,
            (b - a) * 1000.0 / accepted.max(1) as f64
        );
    }
}
