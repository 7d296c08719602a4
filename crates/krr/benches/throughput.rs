//! Prints throughput numbers for the Maskinporten and KRR stand-ins over loopback HTTP:
//! grants per second (each with signature, x5c chain check and replay cache) and KRR
//! lookups of 1000 persons. Numbers only; nothing is asserted.

use std::{sync::Arc, time::Instant};

use clients::{
    krr::{KrrClient, KrrConfig},
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{MaskinportenVerifier, MaskinportenVerifierConfig},
};
use maskinporten::defaults;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let env = |role: &str| -> anyhow::Result<web::RoleEnv> {
        let data_dir = dir.path().join(role);
        std::fs::create_dir_all(&data_dir)?;
        Ok(web::RoleEnv {
            data_dir,
            public_url: url::Url::parse(&format!("{base}/{role}"))?,
            fnr_policy: domain::FnrPolicy::PERMISSIVE,
        })
    };
    let app = axum::Router::new()
        .nest(
            "/maskinporten",
            maskinporten::router(&Default::default(), &env("maskinporten")?).await?,
        )
        .nest(
            "/krr",
            krr::router(&Default::default(), &env("krr")?).await?,
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let pki = pki::TestPki::load_or_init(dir.path().join("pki"))?;
    let cert = pki.issue_enterprise(&defaults::kommune(), "Samspill kommune")?;
    let cfg = MaskinportenConfig {
        issuer: format!("{base}/maskinporten/"),
        token_endpoint: None,
        client_id: defaults::KOMMUNE_CLIENT.into(),
        refresh_margin_secs: 20,
        grant_lifetime_secs: 60,
    };
    let http = reqwest::Client::new();

    // Grants: a fresh client each time so nothing is cached.
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        let c = MaskinportenClient::new(cfg.clone(), GrantKey::from_issued(&cert), http.clone());
        c.token_for("digitalpostinnbygger:send", None).await?;
    }
    let el = t.elapsed();
    println!(
        "maskinporten: {n} x5c grants sequentially in {:.2?} = {:.0} tokens/s ({:.2} ms each)",
        el,
        n as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1000.0 / n as f64
    );

    // Token verification (JWKS cached).
    let mp = MaskinportenClient::new(cfg.clone(), GrantKey::from_issued(&cert), http.clone());
    let token = mp
        .token_for("digitalpostinnbygger:send", None)
        .await?
        .access_token;
    let v = MaskinportenVerifier::new(
        &MaskinportenVerifierConfig {
            issuer: cfg.issuer.clone(),
            jwks_uri: None,
            audience: None,
        },
        http.clone(),
    );
    v.principal(&token).await?;
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        v.principal(&token).await?;
    }
    let el = t.elapsed();
    println!(
        "verifier: {n} verifications in {:.2?} = {:.0}/s",
        el,
        n as f64 / el.as_secs_f64()
    );

    // KRR lookups of 1000 persons.
    let ids: Vec<String> = (0..100u8)
        .flat_map(|y| (1..=12u8).flat_map(move |m| (1..=28u8).map(move |d| (d, m, y))))
        .take(10_000)
        .filter_map(|(d, m, y)| krr::synthetic_pid(d, m, y).map(|f| f.as_string()))
        .collect();
    let krr = KrrClient::new(KrrConfig::new(format!("{base}/krr")), Arc::new(mp), http);
    krr.lookup(&ids[..1000]).await?;
    let t = Instant::now();
    let persons = krr.lookup(&ids).await?;
    let el = t.elapsed();
    println!(
        "krr: {} persons in {} requests of <=1000 in {:.2?} = {:.0} persons/s",
        persons.len(),
        persons.len().div_ceil(1000),
        el,
        persons.len() as f64 / el.as_secs_f64()
    );
    Ok(())
}
