//! Throughput numbers for the job queue and the blob store (printed, never asserted):
//! `cargo bench -p store --bench store`. PostgreSQL is measured when reachable.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use store::testing::{fresh_blobs, fresh_db_on, postgres_available};
use store::{Backend, BlobBackendKind, Jobs};
use time::OffsetDateTime;

const JOBS: usize = 2000;
const CLAIMERS: usize = 8;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut backends = vec![Backend::Sqlite];
        if postgres_available().await {
            backends.push(Backend::Postgres);
        }
        for backend in backends {
            queue_bench(backend).await?;
        }
        for kind in [BlobBackendKind::Local, BlobBackendKind::Memory] {
            blob_bench(kind).await?;
        }
        Ok(())
    })
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn queue_bench(backend: Backend) -> Result<()> {
    let db = fresh_db_on(backend).await;
    let jobs = Jobs::new(db.db().clone());
    let now = OffsetDateTime::now_utc();
    let name = backend.name();

    let start = Instant::now();
    for i in 0..JOBS {
        jobs.enqueue("bench", &i, Some(&format!("k{i}")), now)
            .await?;
    }
    println!(
        "{name}: enqueue (dedup key) {:>8.0} jobs/s",
        rate(JOBS, start.elapsed())
    );

    let start = Instant::now();
    let mut n = 0;
    while let Some(job) = jobs
        .claim("bench", "w", Duration::from_secs(60), now)
        .await?
    {
        jobs.complete(&job).await?;
        n += 1;
    }
    println!(
        "{name}: claim+complete, 1 worker {:>8.0} jobs/s",
        rate(n, start.elapsed())
    );

    for i in 0..JOBS {
        jobs.enqueue("bench2", &i, None, now).await?;
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..CLAIMERS {
        let jobs = jobs.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut n = 0usize;
            while let Some(job) = jobs
                .claim("bench2", &worker, Duration::from_secs(60), now)
                .await?
            {
                jobs.complete(&job).await?;
                n += 1;
            }
            Ok::<_, store::StoreError>(n)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.context("join")??;
    }
    println!(
        "{name}: claim+complete, {CLAIMERS} workers {:>8.0} jobs/s",
        rate(total, start.elapsed())
    );
    Ok(())
}

async fn blob_bench(kind: BlobBackendKind) -> Result<()> {
    const SIZE: usize = 1 << 20;
    const COUNT: usize = 50;
    let blobs = fresh_blobs(kind);
    let data: Vec<Vec<u8>> = (0..COUNT)
        .map(|i| (0..SIZE).map(|j| ((i * 31 + j) % 251) as u8).collect())
        .collect();
    let start = Instant::now();
    let mut refs = Vec::new();
    for d in &data {
        refs.push(blobs.put(d.clone()).await?);
    }
    let mib = (SIZE * COUNT) as f64 / (1024.0 * 1024.0);
    let put = start.elapsed();
    let start = Instant::now();
    for r in &refs {
        blobs.get(r).await?;
    }
    let get = start.elapsed();
    println!(
        "blobs-{kind:?}: put {:>7.1} MiB/s, get+verify {:>7.1} MiB/s (1 MiB blobs)",
        mib / put.as_secs_f64(),
        mib / get.as_secs_f64()
    );
    Ok(())
}
