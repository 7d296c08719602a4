//! Inbox page latency and throughput for a citizen with 10,000 letters among 1,000,000 stored
//! letters, next to `/healthz` on the same server in the same run (`scripts/bench-inbox`
//! runs it on SQLite and PostgreSQL). Prints numbers; asserts nothing about time.
//!
//! The letters are written straight into the provider's tables (the DPI chain would need
//! hours for a million letters); the citizen logs in through the ID-porten stand-in and every
//! request goes over HTTP through the application shell like in production.
//! `BENCH_TOTAL_LETTERS`, `BENCH_CITIZEN_LETTERS`, `BENCH_REQUESTS`, `BENCH_CONCURRENCY`
//! override the sizes; `BENCH_SAVE_PAGE=FILE` writes the first page there.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use store::{sqlx, sqlx::Row};

// As in the `samspill` binary, so the figures are the server's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const COLS: usize = 16;

async fn insert_letters(
    db: &store::Db,
    tenant: &str,
    rows: &[(String, String, i64)],
) -> anyhow::Result<()> {
    // (citizen_id, title, visible_from); multi-row INSERTs, one transaction per call.
    let mut tx = db.pool().begin().await?;
    for chunk in rows.chunks(1000) {
        let mut sql = String::from(
            "INSERT INTO postkasse_letters (id, tenant, citizen_id, message_id, conversation_id, \
             sender_orgnr, sender_name, ikkesensitivtittel, sikkerhetsnivaa, spraak, \
             aapningskvittering, forretningsmelding, folder, visible_from, received_at, \
             attachments) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLS {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * COLS + c + 1));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (n, (citizen, title, t)) in chunk.iter().enumerate() {
            let sender = if n % 3 == 0 { "991825827" } else { "974760673" };
            q = q
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(tenant.to_owned())
                .bind(citizen.clone())
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(sender)
                .bind(if n % 3 == 0 {
                    "Digitaliseringsdirektoratet"
                } else {
                    "Skatteetaten"
                })
                .bind(title.clone())
                .bind(3i64)
                .bind("no")
                .bind(0i64)
                .bind("-")
                .bind("inbox")
                .bind(*t)
                .bind(*t)
                // Every fourth letter has an attachment, shown on its row.
                .bind(i64::from(n % 4 == 0));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// What a batch of requests took: every latency, the wall time, and the CPU seconds the
/// whole machine was busy meanwhile (server, database server and this client together).
#[derive(Default)]
struct Batch {
    latencies: Vec<Duration>,
    wall: Duration,
    machine_cpu: f64,
}

impl Batch {
    fn add(&mut self, other: Batch) {
        self.latencies.extend(other.latencies);
        self.wall += other.wall;
        self.machine_cpu += other.machine_cpu;
    }
}

/// One batch of `requests` GETs from `concurrency` clients.
async fn get_batch(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
    concurrency: usize,
) -> Batch {
    // Warm up connections and caches.
    for _ in 0..20 {
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.bytes().await.unwrap();
    }
    let cpu_before = store::testing::machine_busy_seconds();
    let start = Instant::now();
    let per = requests / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                let ok = r.status() == 200;
                r.bytes().await.unwrap();
                assert!(ok);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    let machine_cpu = match (cpu_before, store::testing::machine_busy_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    Batch {
        latencies,
        wall,
        machine_cpu,
    }
}

/// p50 and p99 latency, requests per second, and the machine's CPU per request.
struct Summary {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    cpu_per_request: Duration,
}

fn summary(mut b: Batch) -> Summary {
    b.latencies.sort();
    let n = b.latencies.len().max(1) as f64;
    Summary {
        p50: pct(&b.latencies, 0.5),
        p99: pct(&b.latencies, 0.99),
        per_second: n / b.wall.as_secs_f64(),
        cpu_per_request: Duration::try_from_secs_f64(b.machine_cpu / n).unwrap_or_default(),
    }
}

/// Measures the endpoints in alternating batches, so that whatever the machine does during
/// the run (its speed varies by tens of percent here) falls on all of them alike.
async fn interleaved(
    client: &reqwest::Client,
    urls: &[&str],
    requests: usize,
    concurrency: usize,
) -> Vec<Summary> {
    const ROUNDS: usize = 10;
    let mut batches: Vec<Batch> = urls.iter().map(|_| Batch::default()).collect();
    for _ in 0..ROUNDS {
        for (url, all) in urls.iter().zip(batches.iter_mut()) {
            all.add(
                get_batch(
                    client,
                    url,
                    (requests / ROUNDS).max(concurrency),
                    concurrency,
                )
                .await,
            );
        }
    }
    batches.into_iter().map(summary).collect()
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let total = env_num("BENCH_TOTAL_LETTERS", 1_000_000);
    let mine = env_num("BENCH_CITIZEN_LETTERS", 10_000).min(total);
    let requests = env_num("BENCH_REQUESTS", 20_000);
    let concurrency = env_num("BENCH_CONCURRENCY", 4).max(1);
    let backend = format!("{:?}", store::testing::test_backend()).to_lowercase();
    let chain = common::start().await;
    let db = chain.postkasse_db.db().clone();
    let tenant = pki::demo::digipost().to_string();
    let kari = chain.pids.digipost.clone();
    let kari_id: String = sqlx::query("SELECT id FROM postkasse_citizens WHERE fnr = $1")
        .bind(&kari)
        .fetch_one(db.pool())
        .await?
        .try_get("id")?;

    // 1,000 other citizens share the rest of the letters.
    let t0 = Instant::now();
    let others = 1000usize;
    let mut other_ids = Vec::new();
    let mut tx = db.pool().begin().await?;
    for i in 0..others {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO postkasse_citizens (id, tenant, postkasseadresse, fnr, name, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, NULL, 0, 0)",
        )
        .bind(&id)
        .bind(&tenant)
        .bind(format!("bench.{i}#X1"))
        .bind(format!("bench-{i:06}"))
        .execute(&mut *tx)
        .await?;
        other_ids.push(id);
    }
    tx.commit().await?;
    let now = store::to_ms(time::OffsetDateTime::now_utc());
    let year_ms = 365 * 24 * 3600 * 1000i64;
    let mut batch = Vec::with_capacity(10_000);
    let mut written = 0usize;
    let step = (total.max(1) / mine.max(1)).max(1);
    for n in 0..total {
        // Every `step`-th letter is the citizen's, spread over the same time range.
        let citizen = if n % step == 0 && n / step < mine {
            kari_id.clone()
        } else {
            other_ids[n % others].clone()
        };
        let t = now - (n as i64 * year_ms / total.max(1) as i64) - 1;
        batch.push((citizen, format!("Brev nummer {n} om skatt og avgift"), t));
        if batch.len() == 10_000 {
            insert_letters(&db, &tenant, &batch).await?;
            written += batch.len();
            batch.clear();
        }
    }
    insert_letters(&db, &tenant, &batch).await?;
    written += batch.len();
    let mine_count: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM postkasse_letters WHERE citizen_id = $1")
            .bind(&kari_id)
            .fetch_one(db.pool())
            .await?
            .try_get("n")?;
    if store::testing::test_backend() == store::Backend::Postgres {
        // Steady state: autovacuum would otherwise work through the million fresh rows
        // while the requests are measured.
        sqlx::query("VACUUM ANALYZE").execute(db.pool()).await?;
    }
    println!(
        "seeded {written} letters ({mine_count} for the citizen) on {backend} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let b = chain.browser(&kari, "idporten-loa-substantial").await;
    let client = b.client.clone();
    // A cursor deep in the citizen's letters: follow "older letters" 50 times.
    let mut deep = chain.url("/postkasse/innboks");
    for _ in 0..50 {
        let page = client.get(&deep).send().await?.text().await?;
        match common::href_with(&page, "rel=\"next\"") {
            Some(h) => deep = b.abs(&h),
            None => break,
        }
    }
    println!("{backend}: {requests} requests per endpoint, {concurrency} concurrent clients");
    let first_page = client
        .get(chain.url("/postkasse/innboks"))
        .send()
        .await?
        .bytes()
        .await?;
    println!("first page: {} bytes of HTML", first_page.len());
    // To see what the bytes are: BENCH_SAVE_PAGE=/tmp/page.html.
    if let Ok(path) = std::env::var("BENCH_SAVE_PAGE") {
        std::fs::write(&path, &first_page)?;
    }
    // CPU per request is the whole machine's (server, database server and client): on a
    // saturated machine it is the steadier measure of what a change saves.
    println!("| endpoint | p50 ms | p99 ms | requests/s | machine CPU µs/request |");
    println!("|---|---|---|---|---|");
    // The target compares the first page with /healthz: measured interleaved.
    let healthz_url = chain.url("/healthz");
    let first_url = chain.url("/postkasse/innboks");
    let pair = interleaved(&client, &[&healthz_url, &first_url], requests, concurrency).await;
    let row = |name: &str, s: &Summary| {
        println!(
            "| {name} | {:.3} | {:.3} | {:.0} | {:.0} |",
            s.p50.as_secs_f64() * 1000.0,
            s.p99.as_secs_f64() * 1000.0,
            s.per_second,
            s.cpu_per_request.as_secs_f64() * 1e6,
        );
    };
    let [healthz, first] = &pair[..] else {
        unreachable!("two endpoints measured")
    };
    row("/healthz", healthz);
    row("inbox, first page", first);
    for (name, url) in [
        ("inbox, page 51 (keyset)", deep.clone()),
        (
            "inbox, search",
            chain.url("/postkasse/innboks?sok=nummer+9"),
        ),
        (
            "inbox, unread only",
            chain.url("/postkasse/innboks?ulest=1"),
        ),
    ] {
        row(
            name,
            &summary(get_batch(&client, &url, requests, concurrency).await),
        );
    }
    println!(
        "{backend}: inbox p99 / healthz p99 = {:.2} (target ≤ 5; the two measured in \
         alternating batches); CPU per request: {:.2}×",
        first.p99.as_secs_f64() / healthz.p99.as_secs_f64().max(1e-9),
        first.cpu_per_request.as_secs_f64() / healthz.cpu_per_request.as_secs_f64().max(1e-9),
    );
    chain.stop().await;
    Ok(())
}
