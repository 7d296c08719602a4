//! The sender service (avsender, DPI corner 1): what an organization runs next to its case
//! systems. Case systems post letters as JSON (or multipart with files) to a small REST API;
//! the service looks the citizen up in KRR, routes the letter to the citizen's digital mailbox
//! (encrypted to the certificate KRR publishes) or to print when the citizen is reserved or
//! has no active mailbox, seals it (`dpi::letter::seal_letter`) with the organization's
//! enterprise certificate and a Maskinporten token for `digitalpostinnbygger:send` (the same
//! token is embedded and used as bearer), sends it to the access point (`POST /messages/out`),
//! and polls the access point for receipts (`GET /messages/in`), verifying each receipt's JWS
//! and certificate chain before it moves the letter's state machine
//! ([`status::Status`]) and marking it read.
//!
//! All work goes through the durable job queue: a letter acknowledged with 201 is stored,
//! with its documents and its send job, in one transaction; a crash at any point resumes from
//! the database. The API is documented in `docs/letter-json.md`, the hop contracts in
//! `docs/CHAIN.md`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod api;
pub mod client;
mod krr_batch;
pub mod letter;
mod poll;
mod repo;
mod send;
pub mod status;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::{Router, extract::DefaultBodyLimit, routing::get, routing::post};
use clients::krr::KrrClient;
use domain::{ActorId, Organisasjonsnummer};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};
use store::{BlobStore, Db, Jobs};
use web::auth::TokenSource;

pub use send::SEND_QUEUE;

/// Header that carries a case system's API key unless configured otherwise.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// Configuration of the `avsender` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Case systems allowed to use the API, each with its own key. When empty, one key is
    /// generated on first start and kept in `<data_dir>/api-key` (development).
    pub api_keys: Vec<ApiKey>,
    /// HTTP header carrying the API key.
    pub api_key_header: String,
    /// `kanal` of this sender at the access point: letters are sent with it and only the
    /// receipts tagged with it are polled (`[a-zA-Z0-9_-]{1,28}`).
    pub kanal: Option<String>,
    /// Default `avsenderidentifikator` for letters that name none.
    pub avsenderidentifikator: Option<String>,
    /// Organizations (behandlingsansvarlig) this service may send for as their databehandler:
    /// a letter naming one of them in `avsender` is sent with it as avsender and Maskinporten
    /// `consumer` (delegated token, `supplier` = this organization), signed and sent (SBDH
    /// sender) by this organization. Each needs an Altinn delegation of the DPI and KRR scopes
    /// to this organization. Empty: letters are sent only as this organization.
    pub on_behalf_of: Vec<Organisasjonsnummer>,
    /// Send workers in this process.
    pub send_workers: usize,
    /// Milliseconds between receipt polls while the access point has nothing for us.
    pub poll_interval_ms: u64,
    /// Receipts asked for per poll (`page_size`).
    pub poll_page_size: u32,
    /// Seconds a letter may stay unsent (KRR, Maskinporten or the access point unreachable)
    /// before it becomes `failed` with `send_deadline_passed`.
    pub send_deadline_secs: u64,
    /// Longest pause between two send attempts of one letter, in seconds.
    pub max_retry_delay_secs: u64,
    /// Milliseconds a KRR lookup waits for other letters' lookups to share one request. At 0
    /// (the default) lookups that queue up while a request is in flight share the next one,
    /// which batches under load without adding latency when idle.
    pub krr_batch_wait_ms: u64,
    /// Seconds an HTTP call to KRR or the access point may take.
    pub http_timeout_secs: u64,
    /// Largest accepted letter request (JSON with base64 documents, or multipart), bytes.
    pub max_request_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            api_key_header: DEFAULT_API_KEY_HEADER.into(),
            kanal: None,
            avsenderidentifikator: None,
            on_behalf_of: Vec::new(),
            // Sending is mostly waiting (KRR, the access point, the database): many workers
            // keep the CPU busy; the sealing itself runs on the blocking pool.
            send_workers: 16,
            poll_interval_ms: 1000,
            poll_page_size: 100,
            send_deadline_secs: 24 * 3600,
            max_retry_delay_secs: 60,
            krr_batch_wait_ms: 0,
            http_timeout_secs: 60,
            // 30 MB of documents, base64-inflated, plus the JSON around them.
            max_request_bytes: 42 * 1024 * 1024,
        }
    }
}

/// One case system's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who uses it: unique; stored with each letter the key submits, and only the key of that
    /// name sees the letter (rotate a secret by keeping the name).
    pub name: String,
    /// The key itself (at least 16 characters).
    pub secret: String,
}

/// The organization's enterprise certificate: signs the business message (JWS) and the
/// dokumentpakke (XAdES).
#[derive(Clone)]
pub struct Signer {
    /// The sending organization: SBDH sender always; avsender too unless the letter is sent
    /// on another organization's behalf.
    pub orgnr: ActorId,
    /// Leaf first; the issuers follow (they go into the ASiC-E `KeyInfo`).
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

/// What the composition root hands the sender service.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub blobs: BlobStore,
    /// Maskinporten tokens of the sending organization (consumer = the sender); used for
    /// `digitalpostinnbygger:send`.
    pub tokens: Arc<dyn TokenSource>,
    /// KRR lookups (with its own Maskinporten token source and KRR scopes).
    pub krr: KrrClient,
    /// Delegated Maskinporten tokens for each organization of [`Config::on_behalf_of`]
    /// (`consumer` = that organization, `supplier` = the signer's): they seal and send its
    /// letters, poll its receipts and look its citizens up in KRR. Exactly the configured
    /// organizations.
    pub delegated: HashMap<Organisasjonsnummer, Arc<dyn TokenSource>>,
    pub signer: Signer,
    /// Roots that providers' receipt certificates must chain to.
    pub anchors: dpi::trust::TrustAnchors,
    /// Base URL of the access point's sender API (`…/messages/out` is appended).
    pub formidler_url: url::Url,
    /// Organization number of the access point, accepted as the issuer of `feil` (SERVER)
    /// receipts it writes itself.
    pub formidler_orgnr: Option<domain::Organisasjonsnummer>,
    /// The role's data folder (the generated development API key lives here).
    pub data_dir: PathBuf,
    /// Identity policy for personidentifikatorer (synthetic test numbers or not).
    pub fnr_policy: domain::FnrPolicy,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    cfg: Config,
    deps: Deps,
    jobs: Jobs,
    http: reqwest::Client,
    /// `(name, secret)` of every accepted API key.
    keys: Vec<(String, String)>,
    /// The organizations letters are sent for: the signer's own first, then those of
    /// [`Config::on_behalf_of`].
    consumers: Vec<Consumer>,
    /// Taken by [`spawn_workers`], which runs one batcher per consumer.
    krr_queues: std::sync::Mutex<Vec<(krr_batch::BatchQueue, KrrClient)>>,
    /// KRR's print certificate and when it was fetched (it changes rarely).
    print_cert: tokio::sync::Mutex<Option<(std::time::Instant, clients::krr::PrintSertifikat)>>,
    /// Recipient certificates from KRR, parsed once: KRR hands out the same few providers'
    /// certificates for every citizen, and parsing one per letter was a twentieth of the
    /// sender's CPU.
    certs: std::sync::Mutex<std::collections::HashMap<String, X509>>,
}

impl AppState {
    pub fn new(cfg: Config, deps: Deps) -> anyhow::Result<Self> {
        if let Some(k) = &cfg.kanal {
            let ok = (1..=28).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            anyhow::ensure!(
                ok,
                "avsender.kanal must be 1–28 characters of a-z, A-Z, 0-9, _ and -"
            );
        }
        let mut keys: Vec<(String, String)> = Vec::new();
        for k in &cfg.api_keys {
            anyhow::ensure!(
                !k.name.trim().is_empty(),
                "avsender.api_keys: every key needs a name"
            );
            anyhow::ensure!(
                k.secret.len() >= 16,
                "avsender.api_keys: the key of {:?} is shorter than 16 characters",
                k.name
            );
            // The name owns the letters: two keys of one name would see each other's.
            anyhow::ensure!(
                !keys.iter().any(|(n, _)| n == &k.name),
                "avsender.api_keys: the name {:?} is used twice",
                k.name
            );
            anyhow::ensure!(
                !keys.iter().any(|(_, s)| s == &k.secret),
                "avsender.api_keys: {:?} has the secret of another key",
                k.name
            );
            keys.push((k.name.clone(), k.secret.clone()));
        }
        if keys.is_empty() {
            keys.push(("development".into(), dev_api_key(&deps.data_dir)?));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.http_timeout_secs.max(1)))
            .build()?;
        let jobs = Jobs::new(deps.db.clone()).with_policy(store::RetryPolicy {
            max_attempts: 100_000,
            max_delay: Duration::from_secs(cfg.max_retry_delay_secs.max(1)),
            ..store::RetryPolicy::default()
        });
        let own = deps.signer.orgnr.orgnr();
        let mut consumers = Vec::new();
        let mut krr_queues = Vec::new();
        let (krr, queue) = krr_batch::channel();
        krr_queues.push((queue, deps.krr.clone()));
        consumers.push(Consumer {
            orgnr: own,
            delegated: false,
            tokens: deps.tokens.clone(),
            krr_client: deps.krr.clone(),
            krr,
            has_letters: AtomicBool::new(false),
        });
        for o in &cfg.on_behalf_of {
            anyhow::ensure!(
                *o != own,
                "avsender.on_behalf_of: {o} is this sender's own organization"
            );
            anyhow::ensure!(
                !consumers.iter().any(|c| c.orgnr == *o),
                "avsender.on_behalf_of: {o} is listed twice"
            );
            let tokens = deps.delegated.get(o).cloned().ok_or_else(|| {
                anyhow::anyhow!("avsender.on_behalf_of: no delegated token source for {o}")
            })?;
            let krr_client = deps.krr.with_tokens(tokens.clone());
            let (krr, queue) = krr_batch::channel();
            krr_queues.push((queue, krr_client.clone()));
            consumers.push(Consumer {
                orgnr: *o,
                delegated: true,
                tokens,
                krr_client,
                krr,
                has_letters: AtomicBool::new(false),
            });
        }
        if let Some(o) = deps
            .delegated
            .keys()
            .find(|o| !cfg.on_behalf_of.contains(o))
        {
            anyhow::bail!(
                "a delegated token source for {o}, which avsender.on_behalf_of does not list"
            );
        }
        Ok(Self(Arc::new(Inner {
            cfg,
            deps,
            jobs,
            http,
            keys,
            consumers,
            krr_queues: std::sync::Mutex::new(krr_queues),
            print_cert: tokio::sync::Mutex::new(None),
            certs: std::sync::Mutex::default(),
        })))
    }

    /// The consumer a stored letter is sent for: its `avsender_orgnr`, or (NULL) this
    /// organization. `None` when the organization is no longer configured.
    fn consumer(&self, avsender_orgnr: Option<&str>) -> Option<&Consumer> {
        match avsender_orgnr {
            None => self.0.consumers.first(),
            Some(o) => self
                .0
                .consumers
                .iter()
                .find(|c| c.delegated && c.orgnr.to_string() == o),
        }
    }

    /// A certificate KRR published (base64 DER), parsed or from the cache.
    fn krr_certificate(&self, b64: &str) -> Result<X509, pki::PkiError> {
        /// More distinct certificates than providers exist means something odd; start over.
        const MAX_CACHED: usize = 64;
        let mut certs = self.0.certs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = certs.get(b64) {
            return Ok(c.clone());
        }
        let cert = pki::cert_from_b64(b64)?;
        if certs.len() >= MAX_CACHED {
            certs.clear();
        }
        certs.insert(b64.to_owned(), cert.clone());
        Ok(cert)
    }

    fn formidler(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.0.deps.formidler_url.as_str().trim_end_matches('/')
        )
    }
}

/// An organization letters are sent for (avsender, Maskinporten `consumer`).
struct Consumer {
    orgnr: Organisasjonsnummer,
    /// Sent on its behalf (`supplier` = the signer), stored as `avsender_orgnr`; `false` for
    /// the signer's own organization (stored as NULL).
    delegated: bool,
    tokens: Arc<dyn TokenSource>,
    krr: krr_batch::KrrBatcher,
    /// For KRR's print certificate (asked with this consumer's token).
    krr_client: KrrClient,
    /// Known to have letters, so its receipts are polled (an organization that never sent
    /// through this service may have no token for it at all).
    has_letters: AtomicBool,
}

impl Consumer {
    /// Its `avsender_orgnr` column value.
    fn column(&self) -> Option<String> {
        self.delegated.then(|| self.orgnr.to_string())
    }
}

/// The development key: read from `<data_dir>/api-key`, created (random, 0600) when absent.
fn dev_api_key(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("api-key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if s.len() >= 16 {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let key = hex::encode(rand_bytes::<24>()?);
    let tmp = data_dir.join(format!("api-key.{}", uuid::Uuid::new_v4()));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(key.as_bytes())?;
        f.sync_all()?;
    }
    // Whoever links first wins; a concurrent starter reads the winner's key.
    let result = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the development API key of the avsender role");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e.into()),
    }
}

fn rand_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0u8; N];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(b)
}

/// The case-system API under `/api/v1`.
pub fn router(state: AppState) -> Router {
    let limit = state.0.cfg.max_request_bytes;
    Router::new()
        .route(
            "/api/v1/letters",
            post(api::post_letter).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/v1/letters/{id}", get(api::get_letter))
        .with_state(state)
}

/// Starts the send workers and the receipt poller; they stop when `shutdown` flips to
/// `true` (work in progress is finished first; work cut off by a crash is resumed from the
/// database).
pub fn spawn_workers(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let queues = std::mem::take(&mut *state.0.krr_queues.lock().unwrap_or_else(|p| p.into_inner()));
    for (q, krr) in queues {
        handles.push(tokio::spawn(krr_batch::run(
            q,
            krr,
            Duration::from_millis(state.0.cfg.krr_batch_wait_ms),
            shutdown.clone(),
        )));
    }
    handles.extend(send::spawn(state.clone(), shutdown.clone()));
    handles.push(poll::spawn(state, shutdown));
    handles
}
