//! The print provider (utskrift, DPI corner 4 for physical mail).
//!
//! - **Intake** `POST /dpi/inbound` (docs/CHAIN.md hop 3): the access point delivers letters
//!   with its Maskinporten token (`samspill:dpi.formidling`); the raw payload is stored durably
//!   before `202`; a message id seen before answers `200` for the same letter (stored once)
//!   and `409 duplicate_message_id` for another.
//! - **Validation** (worker, queue `utskrift.intake`): the corner-4 checks of
//!   [`dpi::letter::open_letter`] with the provider's own key, the embedded Maskinporten token's
//!   signature against Maskinporten's keys, only `utskrift` addressed to this provider, only PDF
//!   documents (unencrypted, A4 portrait within a tolerance, bounded nesting and pages).
//!   Anything wrong becomes a signed `feil` (KLIENT) for the sender; a letter whose examination
//!   keeps killing the process is refused after three tries.
//! - **Print spool**: each accepted letter becomes one PDF, `<spool>/<batch date>/<message id>.pdf`,
//!   an address page in front of the hoveddokument and vedlegg ([`pdf`]); a `mottakskvittering`
//!   is owed at once.
//! - **Daily batch** at a configured time of day (UTC): every spooled letter counts as printed
//!   and handed to the postal operator and gets a `leveringskvittering` ([`run_batch_now`]).
//! - **Returned mail** ([`register_return`], `samspill utskrift return ID`): recorded; with
//!   `MAKULERING_MED_MELDING` the sender gets a `returpostkvittering`.
//!
//! Receipts are owed in the same transaction as the state change that causes them and are
//! built, signed and handed to the access point's `POST /dpi/receipts` by a worker (queue
//! `utskrift.receipt`) with retries and backoff, so a crash loses none and repeats none; a
//! letter's receipts go in the order of dpi-spec §7.1 (mottak, levering, returpost).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod api;
mod batch;
pub mod cli;
mod intake;
pub mod pdf;
mod receipts;
mod repo;

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use clients::verify::MaskinportenVerifier;
use domain::{ActorId, Organisasjonsnummer};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};
use store::{BlobStore, Db, Jobs};
use web::auth::{HasTokenVerifier, TokenSource, TokenVerifier};

pub use batch::{BatchReport, run_batch_now, run_due_batches};
pub use repo::{INTAKE_QUEUE, PRINTED, RECEIPT_QUEUE, RECEIVED, REJECTED, SPOOLED};
pub use web::auth::SCOPE_FORMIDLING;

/// Configuration of the `utskrift` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Spool folder; relative paths are taken from the role's data folder.
    pub spool_dir: PathBuf,
    /// Time of day (UTC, `HH:MM`) the daily print batch runs.
    pub batch_time: String,
    /// Whether this process runs the daily batch (run it in one process of a deployment;
    /// running it in several is safe but pointless).
    pub run_batch: bool,
    /// Organization numbers allowed to deliver letters (access points). Empty = any
    /// organization whose token carries `samspill:dpi.formidling`.
    pub accept_from: Vec<Organisasjonsnummer>,
    /// Base URL of the access point; receipts go to `<formidler_url>/dpi/receipts`.
    /// Default: the `formidler` role next to this one.
    pub formidler_url: Option<url::Url>,
    /// Folder of the shared test PKI holding the provider's enterprise certificate;
    /// relative paths are taken from the role's data folder.
    pub pki_dir: PathBuf,
    /// Maskinporten issuer (with trailing slash). Default: the `maskinporten` role next to
    /// this one.
    pub maskinporten_issuer: Option<String>,
    /// This provider's Maskinporten client id.
    pub maskinporten_client_id: String,
    /// Largest accepted `dokumentpakke`, in bytes (DPI allows 30 MB).
    pub max_dokumentpakke_bytes: usize,
    /// Most pages of one letter (address page not counted).
    pub max_pages: usize,
    /// How far, in mm, a page may be from A4 portrait before the letter is refused (pages
    /// are cut, not scaled).
    pub a4_tolerance_mm: f32,
    /// Validation workers in this process.
    pub intake_workers: usize,
    /// Receipt delivery workers in this process.
    pub receipt_workers: usize,
    /// Seconds a receipt delivery may take before it counts as failed.
    pub receipt_timeout_secs: u64,
    /// Longest pause between two attempts of one job, in seconds.
    pub max_retry_delay_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            spool_dir: PathBuf::from("spool"),
            batch_time: "14:00".into(),
            run_batch: true,
            accept_from: vec![pki::demo::formidler()],
            formidler_url: None,
            pki_dir: PathBuf::from("../pki"),
            maskinporten_issuer: None,
            maskinporten_client_id: "samspill-utskrift".into(),
            max_dokumentpakke_bytes: 30 * 1024 * 1024,
            max_pages: 500,
            a4_tolerance_mm: 10.0,
            // Spooling waits on fsync as much as on the CPU: more workers than cores pay off.
            intake_workers: 4,
            receipt_workers: 4,
            receipt_timeout_secs: 30,
            max_retry_delay_secs: 60,
        }
    }
}

impl Config {
    /// The batch time as (hour, minute).
    pub fn batch_hm(&self) -> Result<(u8, u8), String> {
        let bad = || format!("batch_time {:?}: expected HH:MM", self.batch_time);
        let (h, m) = self.batch_time.trim().split_once(':').ok_or_else(bad)?;
        let h: u8 = h.parse().map_err(|_| bad())?;
        let m: u8 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok((h, m))
    }
}

/// The provider's enterprise certificate and key: the CMS recipient of letters and the signer
/// of receipts.
#[derive(Clone)]
pub struct Identity {
    pub orgnr: ActorId,
    pub cert: X509,
    pub key: PKey<Private>,
}

/// What the composition root hands the print provider.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub blobs: BlobStore,
    /// Verifies the access point's bearer tokens and the Maskinporten tokens embedded in
    /// letters.
    pub maskinporten: MaskinportenVerifier,
    /// Obtains the provider's own tokens for the receipt hop.
    pub tokens: Arc<dyn TokenSource>,
    pub identity: Identity,
    /// Roots that senders' certificates must chain to.
    pub anchors: dpi::trust::TrustAnchors,
    /// Resolved spool folder.
    pub spool_dir: PathBuf,
    /// Resolved `<formidler>/dpi/receipts`.
    pub receipts_url: url::Url,
}

/// URL of a sibling role: `http://h/x/utskrift` → `http://h/x/<role>`.
fn sibling(public_url: &url::Url, role: &str) -> url::Url {
    let mut u = public_url.clone();
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty().pop().push(role);
    }
    u
}

impl Deps {
    /// The development wiring: the provider's certificate from the shared test PKI (the one
    /// KRR's print-certificate lookup publishes), its Maskinporten client
    /// (`maskinporten_client_id`, signed with that certificate), the verifier of Maskinporten's
    /// tokens, the PKI's CA as trust anchor, and sibling-role URLs from `env.public_url`.
    pub fn from_env(
        cfg: &Config,
        env: &web::RoleEnv,
        db: Db,
        blobs: BlobStore,
    ) -> anyhow::Result<Deps> {
        let pki = pki::TestPki::load_or_init(env.data_dir.join(&cfg.pki_dir))?;
        let issued = pki.issue_enterprise(&pki::demo::print(), pki::demo::PRINT_NAME)?;
        let issuer = cfg.maskinporten_issuer.clone().unwrap_or_else(|| {
            format!(
                "{}/",
                sibling(&env.public_url, "maskinporten")
                    .as_str()
                    .trim_end_matches('/')
            )
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let maskinporten = MaskinportenVerifier::new(
            &clients::verify::MaskinportenVerifierConfig {
                issuer: issuer.clone(),
                jwks_uri: None,
                audience: None,
            },
            http.clone(),
        );
        let tokens = clients::maskinporten::MaskinportenClient::new(
            clients::maskinporten::MaskinportenConfig {
                issuer,
                token_endpoint: None,
                client_id: cfg.maskinporten_client_id.clone(),
                refresh_margin_secs: 20,
                grant_lifetime_secs: 60,
            },
            clients::maskinporten::GrantKey::from_issued(&issued),
            http,
        );
        let formidler = cfg
            .formidler_url
            .clone()
            .unwrap_or_else(|| sibling(&env.public_url, "formidler"));
        Ok(Deps {
            db,
            blobs,
            maskinporten,
            tokens: Arc::new(tokens),
            identity: Identity {
                orgnr: ActorId::from(pki::demo::print()),
                cert: issued.cert().clone(),
                key: issued.key().clone(),
            },
            anchors: dpi::trust::TrustAnchors::new(vec![pki.ca_cert().clone()]),
            spool_dir: env.data_dir.join(&cfg.spool_dir),
            receipts_url: receipts_url(&formidler)?,
        })
    }
}

/// Prefix of the payload blobs this role stores. Blobs are content-addressed, and the access
/// point deletes its copy of the very same CMS bytes once delivered: with the prefix the two
/// never share a blob, even when the composition root hands both roles one store.
pub const INBOX_BLOB_PREFIX: &[u8] = b"samspill-utskrift-inbox\n";

fn inbox_blob(cms: &[u8]) -> bytes::Bytes {
    let mut v = Vec::with_capacity(INBOX_BLOB_PREFIX.len() + cms.len());
    v.extend_from_slice(INBOX_BLOB_PREFIX);
    v.extend_from_slice(cms);
    v.into()
}

/// `<base>/dpi/receipts`.
pub fn receipts_url(formidler: &url::Url) -> anyhow::Result<url::Url> {
    Ok(url::Url::parse(&format!(
        "{}/dpi/receipts",
        formidler.as_str().trim_end_matches('/')
    ))?)
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    cfg: Config,
    batch_hm: (u8, u8),
    deps: Deps,
    jobs: Jobs,
    http: reqwest::Client,
}

impl HasTokenVerifier for AppState {
    fn token_verifier(&self) -> Arc<dyn TokenVerifier> {
        Arc::new(self.0.deps.maskinporten.clone())
    }
}

impl AppState {
    pub fn new(cfg: Config, deps: Deps) -> anyhow::Result<Self> {
        let batch_hm = cfg.batch_hm().map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.receipt_timeout_secs.max(1)))
            .build()?;
        let jobs = Jobs::new(deps.db.clone()).with_policy(store::RetryPolicy {
            max_attempts: repo::MAX_ATTEMPTS,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(cfg.max_retry_delay_secs.max(1)),
            ..store::RetryPolicy::default()
        });
        std::fs::create_dir_all(&deps.spool_dir)?;
        Ok(Self(Arc::new(Inner {
            cfg,
            batch_hm,
            deps,
            jobs,
            http,
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.deps.db
    }

    pub fn config(&self) -> &Config {
        &self.0.cfg
    }

    /// The spool folder.
    pub fn spool_dir(&self) -> &std::path::Path {
        &self.0.deps.spool_dir
    }
}

/// The print provider's routes: the DPI intake under `/dpi`.
pub fn router(state: AppState) -> Router {
    let limit = state.0.cfg.max_dokumentpakke_bytes + 512 * 1024;
    Router::new()
        .route(
            "/dpi/inbound",
            post(api::inbound).layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state)
}

/// Starts the validation and receipt workers and (with `run_batch`) the daily batch; they
/// stop when `shutdown` becomes `true`.
pub fn spawn_workers(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = intake::spawn(state.clone(), shutdown.clone());
    handles.extend(receipts::spawn(state.clone(), shutdown.clone()));
    if state.0.cfg.run_batch {
        handles.push(batch::spawn(state, shutdown));
    }
    handles
}

/// What a returned letter led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnOutcome {
    /// `MAKULERING_MED_MELDING`: shredded, a `returpostkvittering` is on its way.
    Notified,
    /// `DIREKTE_RETUR`: the letter goes back to the return address; nothing is sent.
    Recorded,
    /// The return had been registered before.
    AlreadyRegistered,
}

#[derive(Debug, thiserror::Error)]
pub enum ReturnError {
    #[error("no letter with message id {0}")]
    UnknownLetter(String),
    #[error("letter {id} is {status}: only printed letters can come back")]
    NotPrinted { id: String, status: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl ReturnError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownLetter(_) => "unknown_letter",
            Self::NotPrinted { .. } => "letter_not_printed",
            Self::Store(e) => e.code(),
        }
    }
}

/// Registers a returned letter. Needs only the database: the receipt is owed through the job
/// queue and sent by a running `utskrift` role's worker.
pub async fn register_return(
    db: &Db,
    message_id: &str,
    now: time::OffsetDateTime,
) -> Result<ReturnOutcome, ReturnError> {
    let id = domain::MessageId::parse(message_id.trim())
        .map_err(|_| ReturnError::UnknownLetter(message_id.to_owned()))?
        .to_string();
    let letter = repo::get_letter(db, &id)
        .await?
        .ok_or_else(|| ReturnError::UnknownLetter(id.clone()))?;
    if letter.status != repo::PRINTED {
        return Err(ReturnError::NotPrinted {
            id,
            status: letter.status,
        });
    }
    if letter.returned_at.is_some() {
        return Ok(ReturnOutcome::AlreadyRegistered);
    }
    let shred = letter.returposthaandtering.as_deref() == Some("MAKULERING_MED_MELDING");
    let receipt_id = domain::MessageId::new().to_string();
    let receipt = repo::NewReceipt {
        id: &receipt_id,
        kind: receipts::RETURPOST,
        detaljer: None,
        tidspunkt: now,
    };
    let jobs = Jobs::new(db.clone());
    let moved = repo::mark_returned(db, &jobs, &id, shred.then_some(&receipt), now).await?;
    Ok(match (moved, shred) {
        (false, _) => ReturnOutcome::AlreadyRegistered,
        (true, true) => ReturnOutcome::Notified,
        (true, false) => ReturnOutcome::Recorded,
    })
}

/// A letter as the print provider sees it (for the CLI and tests).
#[derive(Debug, Clone, Serialize)]
pub struct LetterStatus {
    pub message_id: String,
    pub status: String,
    pub detail: Option<String>,
    pub spool_path: Option<String>,
    pub pages: Option<i64>,
    pub batch_date: Option<String>,
    pub batch_id: Option<String>,
    /// Epoch ms the batch printed it.
    pub printed_at: Option<i64>,
    pub returned: bool,
    pub returposthaandtering: Option<String>,
    /// (kind, delivery status) of every receipt owed for it.
    pub receipts: Vec<(String, String)>,
}

/// The state of one letter, or `None` if it never arrived.
pub async fn letter_status(db: &Db, message_id: &str) -> store::StoreResult<Option<LetterStatus>> {
    let Some(l) = repo::get_letter(db, message_id).await? else {
        return Ok(None);
    };
    let receipts = repo::receipts_of(db, message_id).await?;
    Ok(Some(LetterStatus {
        message_id: l.message_id,
        status: l.status,
        detail: l.detail,
        spool_path: l.spool_path,
        pages: l.pages,
        batch_date: l.batch_date,
        batch_id: l.batch_id,
        printed_at: l.printed_at,
        returned: l.returned_at.is_some(),
        returposthaandtering: l.returposthaandtering,
        receipts,
    }))
}
