//! The access point (formidler, DPI corners 2 and 3): the sender-facing REST API of Digdir's
//! OpenAPI (`POST /messages/out`, statuses, incoming receipts), routing each letter by the SBD
//! receiver's organization number to a mailbox or print provider, durable delivery through the
//! job queue with retries, and receipts from providers back to their senders. Payloads are kept
//! only until delivered. The hop contracts are in `docs/CHAIN.md`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod api;
mod deliver;
mod repo;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::get, routing::post};
use domain::{ActorId, Organisasjonsnummer};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};
use store::{BlobStore, Db, Jobs};
use web::auth::{HasTokenVerifier, TokenSource, TokenVerifier};

pub use deliver::DELIVER_QUEUE;

pub use web::auth::SCOPE_FORMIDLING;

/// Configuration of the `formidler` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Providers this access point delivers to, by organization number (the SBD receiver).
    pub providers: Vec<ProviderRoute>,
    /// Seconds a letter may wait for a provider that does not answer before it becomes a
    /// `feil` (SERVER) for its sender.
    pub delivery_deadline_secs: u64,
    /// Largest accepted `dokumentpakke`, in bytes (DPI allows 30 MB).
    pub max_dokumentpakke_bytes: usize,
    /// Delivery workers running in this process.
    pub delivery_workers: usize,
    /// Seconds a delivery attempt may take before it counts as failed.
    pub delivery_timeout_secs: u64,
    /// Longest pause between two delivery attempts of one letter, in seconds.
    pub max_retry_delay_secs: u64,
    /// Days a receipt the sender marked read stays downloadable before it is deleted.
    pub keep_read_receipts_days: u32,
    /// Days a receipt the sender never read waits before it is deleted (the broker of the
    /// classic transport kept messages 25 + 5 days).
    pub keep_unread_receipts_days: u32,
    /// Required `aud` of incoming Maskinporten tokens (senders' and providers'): this access
    /// point's own endpoint, the `resource` they ask their tokens for (§3.4). None = not
    /// checked, as Digdir's example tokens carry no `aud` (§10.12).
    pub maskinporten_audience: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            delivery_deadline_secs: 3600,
            max_dokumentpakke_bytes: 30 * 1024 * 1024,
            delivery_workers: 4,
            delivery_timeout_secs: 60,
            max_retry_delay_secs: 60,
            keep_read_receipts_days: 7,
            keep_unread_receipts_days: 30,
            maskinporten_audience: None,
        }
    }
}

/// One provider the access point can deliver to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRoute {
    /// The provider's organization number (the SBD receiver of letters for it).
    pub orgnr: Organisasjonsnummer,
    /// Base URL of the provider's DPI intake; letters go to `<endpoint>/dpi/inbound`.
    pub endpoint: url::Url,
}

/// The access point's own enterprise certificate, used to sign the `feil` it issues itself.
#[derive(Clone)]
pub struct Signer {
    pub orgnr: ActorId,
    pub cert: X509,
    pub key: PKey<Private>,
}

/// What the composition root hands the access point.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub blobs: BlobStore,
    /// Verifies senders' and providers' Maskinporten tokens (with
    /// [`Config::maskinporten_audience`] as the required `aud`).
    pub verifier: Arc<dyn TokenVerifier>,
    /// Obtains the access point's own tokens for the provider hop.
    pub tokens: Arc<dyn TokenSource>,
    pub signer: Signer,
    /// Roots that senders' and providers' certificates must chain to.
    pub anchors: dpi::trust::TrustAnchors,
    /// Public base URL of this role (download URLs derive from it).
    pub public_url: url::Url,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    cfg: Config,
    public_url: String,
    deps: Deps,
    jobs: Jobs,
    http: reqwest::Client,
}

impl HasTokenVerifier for AppState {
    fn token_verifier(&self) -> Arc<dyn TokenVerifier> {
        self.0.deps.verifier.clone()
    }
}

impl AppState {
    pub fn new(cfg: Config, deps: Deps) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.delivery_timeout_secs.max(1)))
            .build()?;
        let jobs = Jobs::new(deps.db.clone()).with_policy(store::RetryPolicy {
            max_attempts: 100_000,
            max_delay: Duration::from_secs(cfg.max_retry_delay_secs.max(1)),
            ..store::RetryPolicy::default()
        });
        Ok(Self(Arc::new(Inner {
            cfg,
            public_url: deps.public_url.to_string(),
            deps,
            jobs,
            http,
        })))
    }

    fn route_for(&self, orgnr: &Organisasjonsnummer) -> Option<&ProviderRoute> {
        self.0.cfg.providers.iter().find(|p| &p.orgnr == orgnr)
    }
}

/// The access point's routes: Digdir's sender API under `/messages`, the provider hop under
/// `/dpi`.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.0.cfg.max_dokumentpakke_bytes + 512 * 1024;
    Router::new()
        .route(
            "/messages/out",
            post(api::post_message).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/messages/out/{id}/statuses", get(api::statuses))
        .route("/messages/in", get(api::incoming))
        .route("/messages/in/{id}", get(api::download))
        .route("/messages/in/{id}/read", post(api::mark_read))
        .route(
            "/dpi/receipts",
            post(api::receive_receipt).layer(DefaultBodyLimit::max(256 * 1024)),
        )
        .with_state(state)
}

/// Starts the delivery workers; they stop when `shutdown` resolves (a job in progress is
/// finished first; one cut off by a crash is taken over after its lease).
pub fn spawn_workers(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    deliver::spawn(state, shutdown)
}
