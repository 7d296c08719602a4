//! Throughput of the print provider in the chain, on loopback: N sealed `utskrift` letters
//! are posted to a real access point, which delivers them to the print provider; measures
//! accepted/s (201 from the access point), spooled/s (validated, PDF written), receipts/s
//! (mottakskvittering handed back), and the batch (leveringskvittering for all). Prints
//! numbers, asserts nothing about time. `UTSKRIFT_BENCH_N` (default 300) letters, on SQLite
//! and (when reachable) PostgreSQL.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Options, World, norsk, pdf_doc, print_letter};
use dpi::container::DocumentRole;
use dpi::message::Returposthaandtering;
use futures::StreamExt;
use store::sqlx;

async fn count(w: &World, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(w.db.db().pool())
        .await
        .unwrap()
}

async fn wait_for(w: &World, sql: &'static str, n: i64) -> Duration {
    let t = Instant::now();
    while count(w, sql).await < n {
        assert!(t.elapsed() < Duration::from_secs(600), "stuck: {sql}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.elapsed()
}

async fn run(backend: store::Backend, n: usize) {
    let w = World::start_with(Options {
        backend: Some(backend),
        ..Options::default()
    })
    .await;
    // About 100 KB of PDF per letter: a 2-page letter and a 10-page attachment of text
    // that does not compress much.
    let filler = filler();
    let filler: Vec<&str> = filler.iter().map(String::as_str).collect();
    let t = Instant::now();
    let mut letters = Vec::with_capacity(n);
    for _ in 0..n {
        let spec = print_letter(
            norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
            Returposthaandtering::MakuleringMedMelding,
            vec![
                pdf_doc(
                    "brev.pdf",
                    DocumentRole::Hoveddokument,
                    &["Side 1", "Side 2"],
                ),
                pdf_doc("vedlegg.pdf", DocumentRole::Vedlegg, &filler),
            ],
        );
        let (jwt, cms, _) = w.seal(&spec).await;
        letters.push((jwt, cms));
    }
    let seal = t.elapsed();
    let cms_kb = letters.iter().map(|(_, c)| c.len()).sum::<usize>() / n.max(1) / 1024;

    let start = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(letters.iter())
        .map(|(jwt, cms)| w.send(jwt, cms))
        .buffer_unordered(16)
        .collect()
        .await;
    let accepted = start.elapsed();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let n64 = i64::try_from(n).unwrap();
    wait_for(
        &w,
        "SELECT COUNT(*) FROM utskrift_letters WHERE status = 'spooled'",
        n64,
    )
    .await;
    let spooled = start.elapsed();
    wait_for(
        &w,
        "SELECT COUNT(*) FROM utskrift_receipts WHERE kind = 'mottakskvittering' AND status = 'sent'",
        n64,
    )
    .await;
    let received = start.elapsed();
    let b = Instant::now();
    let report = utskrift::run_batch_now(w.db.db(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(report.letters, n);
    let batch = b.elapsed();
    wait_for(
        &w,
        "SELECT COUNT(*) FROM utskrift_receipts WHERE kind = 'leveringskvittering' AND status = 'sent'",
        n64,
    )
    .await;
    let delivered = b.elapsed();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "utskrift bench [{}] {n} letters, dokumentpakke ≈{cms_kb} KB (sender sealing {:.0}/s, not counted):\n  \
         accepted by the access point  {:>8.1} letters/s ({:.2} s)\n  \
         spooled (validated + PDF)     {:>8.1} letters/s ({:.2} s from first POST)\n  \
         mottakskvittering at C2       {:>8.1} receipts/s ({:.2} s)\n  \
         batch marking                 {:>8.1} letters/s ({:.2} s)\n  \
         leveringskvittering at C2     {:>8.1} receipts/s ({:.2} s from batch start)",
        backend.name(),
        rate(seal),
        rate(accepted),
        accepted.as_secs_f64(),
        rate(spooled),
        spooled.as_secs_f64(),
        rate(received),
        received.as_secs_f64(),
        rate(batch),
        batch.as_secs_f64(),
        rate(delivered),
        delivered.as_secs_f64(),
    );
}

/// The CPU parts alone, one thread: opening a letter (decrypt, verify) and composing its
/// print file.
fn cpu_parts(n: usize) {
    let filler = filler();
    let filler: Vec<&str> = filler.iter().map(String::as_str).collect();
    let a = utskrift::pdf::simple_pdf(&["Side 1", "Side 2"]);
    let b = utskrift::pdf::simple_pdf(&filler);
    let page = utskrift::pdf::AddressPage {
        recipient: vec![
            "Aud Testesen".into(),
            "Storgata 1".into(),
            "0155 OSLO".into(),
        ],
        ..Default::default()
    };
    let parts = [
        utskrift::pdf::Part {
            href: "brev.pdf",
            mime: "application/pdf",
            bytes: &a,
        },
        utskrift::pdf::Part {
            href: "vedlegg.pdf",
            mime: "application/pdf",
            bytes: &b,
        },
    ];
    let t = Instant::now();
    for _ in 0..n {
        let c = utskrift::pdf::compose(&page, &parts, &utskrift::pdf::Rules::default()).unwrap();
        assert_eq!(c.pages, 13);
    }
    let d = t.elapsed();
    println!(
        "utskrift bench [cpu] compose print file (2 PDFs, {} KB): {:.0}/s on one thread ({:.2} ms each)",
        (a.len() + b.len()) / 1024,
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64() * 1000.0 / n as f64
    );
}

fn filler() -> Vec<String> {
    (0..10)
        .map(|_| {
            (0..10_000)
                .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
                .collect()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("UTSKRIFT_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    cpu_parts(n);
    rt.block_on(async {
        run(store::Backend::Sqlite, n).await;
        if store::testing::postgres_available().await {
            run(store::Backend::Postgres, n).await;
        } else {
            println!("utskrift bench [postgres] SKIPPED: PostgreSQL not reachable");
        }
    });
}
