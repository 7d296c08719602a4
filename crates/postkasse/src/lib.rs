//! The mailbox provider (postkasse, DPI corner 4). One role hosts one or more providers
//! (tenants, e.g. Digipost and e-Boks), each under `/<slug>/…` with its own organization
//! number, enterprise certificate and Maskinporten client.
//!
//! - Intake (`POST /<slug>/dpi/inbound`, docs/CHAIN.md hop 3): the access point's multipart
//!   letter is processed in the request — corner-4 validation (§3.6 a–e via
//!   [`dpi::letter::open_letter_as`], the CMS naming the tenant's certificate; the embedded
//!   Maskinporten token verified with the
//!   [`TokenVerifier`]), decryption, the documents stored — and the letter for the citizen
//!   behind `postkasseadresse` and a signed `leveringskvittering` or `feil` (KLIENT) with its
//!   delivery job are recorded in one transaction before `202`; a crash before the commit
//!   leaves nothing, and the access point delivers again. A message id seen before is
//!   answered `200` (the same letter) or `409` and never stored twice. A worker processes
//!   letters an earlier version received and left for processing.
//! - Receipts (worker): each receipt is POSTed to the access point's `/dpi/receipts` (hop 4)
//!   with the tenant's own Maskinporten token, retried with backoff until it is taken.
//! - [`service`]: the citizen's mailbox (list, read, documents, folders, opening receipts),
//!   shared by the JSON end-user API (`/<slug>/api/v1/…`, an ID-porten access token issued
//!   for that API: `aud` = the tenant's `api_audience`) and the
//!   citizen web app; and for the web app's notifier, the stored letters with their `varsler`
//!   and the `varslingfeiletkvittering` of a notification that failed for good.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod api;
mod intake;
mod process;
mod receipts;
mod repo;
pub mod service;

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::get, routing::post};
use clients::{
    jwks::JwksCache,
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{JwtVerifier, MaskinportenVerifier, MaskinportenVerifierConfig},
};
use domain::{ActorId, FnrPolicy, Organisasjonsnummer};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};
use store::{BlobStore, Db, Jobs};
use web::auth::{HasTokenVerifier, TokenSource, TokenVerifier};

pub use process::PROCESS_QUEUE;
pub use receipts::RECEIPT_QUEUE;
pub use service::{
    CitizenRef, DocumentBytes, DocumentInfo, Folder, LetterDetail, LetterPage, LetterQuery,
    LetterSummary, Loa, Mailbox, ServiceError, StoredLetter, upsert_citizen,
};
pub use web::auth::SCOPE_FORMIDLING;

/// Configuration of the `postkasse` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The mailbox providers hosted here. Default: the two demo providers (`digipost`, `eboks`).
    pub providers: Vec<ProviderConfig>,
    /// Where receipts go (hop 4). Default: the `formidler` role next to this one,
    /// `…/formidler/dpi/receipts`.
    pub formidler_receipts_url: Option<url::Url>,
    /// Organization numbers of access points allowed to deliver letters; empty = any token
    /// with the formidling scope. Default: the demo access point.
    pub access_points: Vec<Organisasjonsnummer>,
    /// Maskinporten issuer (with trailing slash), for our own tokens and for verifying
    /// incoming ones. Default: the `maskinporten` role next to this one.
    pub maskinporten_issuer: Option<String>,
    /// Maskinporten token endpoint; default `{issuer}token`.
    pub maskinporten_token_endpoint: Option<String>,
    /// Maskinporten JWKS; default `{issuer}jwk`.
    pub maskinporten_jwks_uri: Option<String>,
    /// Required `aud` of incoming Maskinporten tokens; none = not checked.
    pub maskinporten_audience: Option<String>,
    /// ID-porten issuer (no trailing slash) of citizens' access tokens. Default: the
    /// `idporten` role next to this one. The `aud` those tokens need is each provider's
    /// `api_audience`.
    pub idporten_issuer: Option<String>,
    /// ID-porten JWKS; default `{issuer}/jwks.json`.
    pub idporten_jwks_uri: Option<String>,
    /// Folder of the shared test PKI (tenant certificates, trust anchor). Relative paths are
    /// taken from the role's data folder; default `../pki`.
    pub pki_dir: PathBuf,
    /// PEM files with the roots senders' certificates must chain to; empty = the test PKI CA.
    pub trust_anchors: Vec<PathBuf>,
    /// Seed the citizens of each tenant from the KRR fixture persons on start.
    pub seed_citizens: bool,
    /// KRR fixture file to seed from (relative to the role's data folder); when it does not
    /// exist, the KRR stand-in's generated default is used.
    pub krr_fixtures: PathBuf,
    /// Largest accepted `dokumentpakke`, in bytes (DPI allows 30 MB).
    pub max_dokumentpakke_bytes: usize,
    /// Letters processed at once (validated, decrypted and stored, each in the request that
    /// delivers it); further deliveries wait their turn.
    pub process_workers: usize,
    /// Workers sending receipts.
    pub receipt_workers: usize,
    /// Seconds one receipt delivery attempt may take.
    pub receipt_timeout_secs: u64,
    /// Longest pause between two attempts of a receipt or a processing job, in seconds.
    pub max_retry_delay_secs: u64,
    /// A `virkningstidspunkt` further ahead than this many days is refused (`feil` KLIENT).
    pub max_virkning_ahead_days: i64,
    /// Refuse (feil KLIENT) letters whose HTML documents break the DPI HTML rules (§5.2).
    /// Off, such letters are stored, and the citizen's app shows them only sanitized, as it
    /// does every HTML document.
    pub refuse_invalid_html: bool,
    /// Letters that have lain in a citizen's bin this many days are deleted for good (the bin
    /// page says so); 0 keeps them until the citizen deletes them.
    pub bin_retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            providers: vec![
                ProviderConfig {
                    slug: "digipost".into(),
                    orgnr: pki::demo::digipost(),
                    name: pki::demo::DIGIPOST_NAME.into(),
                    maskinporten_client_id: "samspill-digipost".into(),
                    api_audience: None,
                },
                ProviderConfig {
                    slug: "eboks".into(),
                    orgnr: pki::demo::eboks(),
                    name: pki::demo::EBOKS_NAME.into(),
                    maskinporten_client_id: "samspill-eboks".into(),
                    api_audience: None,
                },
            ],
            formidler_receipts_url: None,
            access_points: vec![pki::demo::formidler()],
            maskinporten_issuer: None,
            maskinporten_token_endpoint: None,
            maskinporten_jwks_uri: None,
            maskinporten_audience: None,
            idporten_issuer: None,
            idporten_jwks_uri: None,
            pki_dir: PathBuf::from("../pki"),
            trust_anchors: Vec::new(),
            seed_citizens: true,
            krr_fixtures: PathBuf::from("../krr/krr-fixtures.toml"),
            max_dokumentpakke_bytes: 30 * 1024 * 1024,
            process_workers: 8,
            receipt_workers: 4,
            receipt_timeout_secs: 30,
            max_retry_delay_secs: 60,
            max_virkning_ahead_days: 366,
            refuse_invalid_html: true,
            bin_retention_days: 30,
        }
    }
}

/// One hosted mailbox provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Path segment of the tenant's routes (`[a-z0-9-]{1,32}`); the access point's registry
    /// points at `<public url>/<slug>`.
    pub slug: String,
    /// The provider's organization number (the SBD receiver of its letters).
    pub orgnr: Organisasjonsnummer,
    /// Display name (also the certificate's name when the test PKI issues it).
    pub name: String,
    /// The provider's Maskinporten client id (its own tokens for the receipt hop).
    pub maskinporten_client_id: String,
    /// The `aud` a citizen's ID-porten access token must have at this provider's end-user
    /// API: the resource indicator (RFC 8707 `resource`) its clients ask ID-porten for, so a
    /// token issued for any other API (or another provider's) is refused. Default: the API's
    /// base URL, `<public url of the role>/<slug>/api/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_audience: Option<String>,
}

/// A hosted provider with its keys: the enterprise certificate decrypts letters and signs
/// receipts; `tokens` obtains its Maskinporten tokens.
#[derive(Clone)]
pub struct Tenant {
    pub slug: String,
    pub orgnr: Organisasjonsnummer,
    pub name: String,
    pub cert: X509,
    pub key: PKey<Private>,
    pub tokens: Arc<dyn TokenSource>,
    /// The `aud` citizens' access tokens need at this tenant's end-user API
    /// ([`ProviderConfig::api_audience`], resolved).
    pub api_audience: String,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("slug", &self.slug)
            .field("orgnr", &self.orgnr)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    pub fn actor(&self) -> ActorId {
        self.orgnr.actor_id()
    }
}

/// The certificate and key of a tenant from the shared test PKI: the very call the KRR
/// stand-in makes for the certificate it publishes (`issue_enterprise(orgnr, name)`, stored by
/// orgnr), so letters sealed to the KRR certificate decrypt here.
pub fn tenant_certificate(
    pki: &pki::TestPki,
    orgnr: &Organisasjonsnummer,
    name: &str,
) -> anyhow::Result<(X509, PKey<Private>)> {
    let issued = pki.issue_enterprise(orgnr, name)?;
    Ok((issued.cert().clone(), issued.key().clone()))
}

/// What the composition root hands the provider.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub blobs: BlobStore,
    /// Verifies Maskinporten tokens: the access point's bearer tokens and the tokens
    /// embedded in letters.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Verifies citizens' ID-porten tokens: signature, issuer and times. The end-user API
    /// also requires an access token (`typ` `at+jwt`) for its tenant's `api_audience`.
    pub citizen_verifier: JwtVerifier,
    pub tenants: Vec<Tenant>,
    /// Roots that senders' certificates must chain to.
    pub anchors: dpi::trust::TrustAnchors,
    /// The access point's `POST /dpi/receipts`.
    pub formidler_receipts_url: url::Url,
    /// Which fødselsnummer kinds citizens' tokens may carry.
    pub fnr_policy: FnrPolicy,
}

/// URL of a sibling role: `http://h/x/postkasse` → `http://h/x/<role>`.
fn sibling(public_url: &url::Url, role: &str) -> String {
    let mut u = public_url.clone();
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty().pop().push(role);
    }
    u.as_str().trim_end_matches('/').to_owned()
}

fn valid_slug(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Deps {
    /// Builds the dependencies from configuration: tenant certificates from the test PKI,
    /// one Maskinporten client per tenant, the Maskinporten and ID-porten verifiers.
    pub fn load(
        cfg: &Config,
        env: &web::RoleEnv,
        db: Db,
        blobs: BlobStore,
    ) -> anyhow::Result<Deps> {
        let pki = pki::TestPki::load_or_init(env.data_dir.join(&cfg.pki_dir))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mp_issuer = cfg
            .maskinporten_issuer
            .clone()
            .unwrap_or_else(|| format!("{}/", sibling(&env.public_url, "maskinporten")));
        let mut tenants = Vec::new();
        for p in &cfg.providers {
            let issued = pki.issue_enterprise(&p.orgnr, &p.name)?;
            let client = MaskinportenClient::new(
                MaskinportenConfig {
                    issuer: mp_issuer.clone(),
                    token_endpoint: cfg.maskinporten_token_endpoint.clone(),
                    client_id: p.maskinporten_client_id.clone(),
                    refresh_margin_secs: 20,
                    grant_lifetime_secs: 60,
                },
                GrantKey::from_issued(&issued),
                http.clone(),
            );
            let api_audience = p.api_audience.clone().unwrap_or_else(|| {
                format!(
                    "{}/{}/api/v1",
                    env.public_url.as_str().trim_end_matches('/'),
                    p.slug
                )
            });
            tenants.push(Tenant {
                slug: p.slug.clone(),
                orgnr: p.orgnr,
                name: p.name.clone(),
                cert: issued.cert().clone(),
                key: issued.key().clone(),
                tokens: Arc::new(client),
                api_audience,
            });
        }
        let verifier = MaskinportenVerifier::new(
            &MaskinportenVerifierConfig {
                issuer: mp_issuer,
                jwks_uri: cfg.maskinporten_jwks_uri.clone(),
                audience: cfg.maskinporten_audience.clone(),
            },
            http.clone(),
        );
        let idp_issuer = cfg
            .idporten_issuer
            .clone()
            .unwrap_or_else(|| sibling(&env.public_url, "idporten"));
        let idp_jwks = cfg
            .idporten_jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/jwks.json", idp_issuer.trim_end_matches('/')));
        // The audience differs per tenant; `api::Citizen` checks it.
        let citizen_verifier =
            JwtVerifier::new(idp_issuer, JwksCache::new(idp_jwks, http), None).access_tokens_only();
        let mut anchors = dpi::trust::TrustAnchors::none();
        if cfg.trust_anchors.is_empty() {
            anchors = dpi::trust::TrustAnchors::new(vec![pki.ca_cert().clone()]);
        } else {
            for f in &cfg.trust_anchors {
                let path = env.data_dir.join(f);
                let bytes = std::fs::read(&path)
                    .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?;
                anchors
                    .add_pem_or_der(&bytes)
                    .map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", path.display()))?;
            }
        }
        let formidler_receipts_url = match &cfg.formidler_receipts_url {
            Some(u) => u.clone(),
            None => url::Url::parse(&format!(
                "{}/dpi/receipts",
                sibling(&env.public_url, "formidler")
            ))?,
        };
        Ok(Deps {
            db,
            blobs,
            verifier: Arc::new(verifier),
            citizen_verifier,
            tenants,
            anchors,
            formidler_receipts_url,
            fnr_policy: env.fnr_policy,
        })
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    cfg: Config,
    deps: Deps,
    jobs: Jobs,
    http: reqwest::Client,
    /// Built once: it holds the citizen-id cache every request shares.
    mailbox: Mailbox,
    /// `process_workers` permits: the letters being processed at once.
    processing: tokio::sync::Semaphore,
}

impl AppState {
    pub fn new(cfg: Config, deps: Deps) -> anyhow::Result<Self> {
        for (i, t) in deps.tenants.iter().enumerate() {
            if !valid_slug(&t.slug) {
                anyhow::bail!("provider slug {:?} must be 1–32 of a-z, 0-9 and -", t.slug);
            }
            if deps
                .tenants
                .iter()
                .skip(i + 1)
                .any(|o| o.slug == t.slug || o.orgnr == t.orgnr)
            {
                anyhow::bail!("provider {} ({}) is configured twice", t.slug, t.orgnr);
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.receipt_timeout_secs.max(1)))
            .build()?;
        let jobs = Jobs::new(deps.db.clone()).with_policy(store::RetryPolicy {
            max_attempts: 100_000,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(cfg.max_retry_delay_secs.max(1)),
            jitter: 0.2,
        });
        let mailbox = Mailbox::new(
            deps.db.clone(),
            deps.blobs.clone(),
            jobs.clone(),
            deps.tenants.clone(),
        )
        .with_bin_retention(cfg.bin_retention_days);
        let processing = tokio::sync::Semaphore::new(cfg.process_workers.max(1));
        Ok(Self(Arc::new(Inner {
            cfg,
            deps,
            jobs,
            http,
            mailbox,
            processing,
        })))
    }

    /// The mailbox service of this provider (all tenants). Borrowed: a clone per request
    /// (its pools and caches) showed in the inbox page's profile.
    pub fn mailbox(&self) -> &Mailbox {
        &self.0.mailbox
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.0.deps.tenants
    }

    pub fn tenant_by_slug(&self, slug: &str) -> Option<&Tenant> {
        self.0.deps.tenants.iter().find(|t| t.slug == slug)
    }

    pub fn db(&self) -> &Db {
        &self.0.deps.db
    }

    /// The receipts issued for a letter (by its message id) at a tenant, oldest first:
    /// `(kind, signed JWS, sent to the access point)`. For operators and tests.
    pub async fn receipts(
        &self,
        tenant: &Organisasjonsnummer,
        message_id: &str,
    ) -> store::StoreResult<Vec<(String, String, bool)>> {
        repo::receipts_of(&self.0.deps.db, &tenant.to_string(), message_id).await
    }

    /// Where a received message is: `(state, reason)` with state `received` (left by an
    /// earlier version, waiting for processing), `stored` or `rejected`. For operators and
    /// tests.
    pub async fn inbound_status(
        &self,
        tenant: &Organisasjonsnummer,
        message_id: &str,
    ) -> store::StoreResult<Option<(String, Option<String>)>> {
        repo::inbound_status(&self.0.deps.db, &tenant.to_string(), message_id).await
    }

    /// How many letters a tenant has stored (all citizens), for operators and tests.
    pub async fn letter_count(&self, tenant: &Organisasjonsnummer) -> store::StoreResult<i64> {
        repo::letter_count(&self.0.deps.db, &tenant.to_string()).await
    }

    /// Seeds each tenant's citizens from KRR fixture persons: everyone registered with a
    /// postkasseadresse at that tenant becomes its citizen. Returns how many were upserted.
    pub async fn seed_citizens(&self, fixtures: &krr::Fixtures) -> anyhow::Result<usize> {
        let mut n = 0;
        for p in &fixtures.persons {
            let (Some(addr), Some(provider)) = (&p.postkasseadresse, &p.postkasseleverandoer)
            else {
                continue;
            };
            let Some(tenant) = self.0.deps.tenants.iter().find(|t| &t.orgnr == provider) else {
                continue;
            };
            let fnr = domain::Fodselsnummer::parse(&p.pid, &FnrPolicy::PERMISSIVE)
                .map_err(|e| anyhow::anyhow!("KRR fixture person: {e}"))?;
            // Fixture notes read "Name: what the row demonstrates".
            let name = p.note.split_once(':').map(|(n, _)| n.trim());
            upsert_citizen(&self.0.deps.db, &tenant.orgnr, addr, &fnr, name).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Builds the whole role from configuration: dependencies, state and (when configured) the
/// citizens seeded from the KRR fixtures. The caller mounts [`router`] and runs
/// [`spawn_workers`].
pub async fn build(
    cfg: &Config,
    env: &web::RoleEnv,
    db: Db,
    blobs: BlobStore,
) -> anyhow::Result<AppState> {
    let deps = Deps::load(cfg, env, db, blobs)?;
    let state = AppState::new(cfg.clone(), deps)?;
    if cfg.seed_citizens {
        let path = env.data_dir.join(&cfg.krr_fixtures);
        let fixtures = if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            toml::from_str::<krr::Fixtures>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        } else {
            let pki = pki::TestPki::load_or_init(env.data_dir.join(&cfg.pki_dir))?;
            krr::fixtures::default_fixtures(&pki)?
        };
        let n = state.seed_citizens(&fixtures).await?;
        tracing::info!(citizens = n, "postkasse citizens seeded from KRR fixtures");
    }
    Ok(state)
}

/// Router state of one tenant.
#[derive(Clone)]
pub(crate) struct TenantState {
    pub app: AppState,
    pub tenant: Arc<Tenant>,
}

impl HasTokenVerifier for TenantState {
    fn token_verifier(&self) -> Arc<dyn TokenVerifier> {
        self.app.0.deps.verifier.clone()
    }
}

/// The provider's routes: per tenant, `/<slug>/dpi/inbound` (hop 3) and the end-user API
/// under `/<slug>/api/v1`.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.0.cfg.max_dokumentpakke_bytes + 512 * 1024;
    let mut root = Router::new();
    for t in state.0.deps.tenants.iter() {
        let ts = TenantState {
            app: state.clone(),
            tenant: Arc::new(t.clone()),
        };
        let r = Router::new()
            .route(
                "/dpi/inbound",
                post(intake::inbound).layer(DefaultBodyLimit::max(upload_limit)),
            )
            .route("/api/v1/letters", get(api::list))
            .route("/api/v1/letters/{id}", get(api::get_letter))
            .route("/api/v1/letters/{id}/documents/{n}", get(api::document))
            .route("/api/v1/letters/{id}/opened", post(api::opened))
            .route("/api/v1/letters/{id}/unread", post(api::unread))
            .route("/api/v1/letters/{id}/folder", post(api::move_folder))
            .route(
                "/api/v1/letters/{id}/opening-receipt",
                post(api::accept_opening_receipt),
            )
            .with_state(ts);
        root = root.nest(&format!("/{}", t.slug), r);
    }
    root
}

/// Starts the processing and receipt workers; they stop when `shutdown` flips to `true` (a
/// job in progress is finished first; one cut off by a crash is taken over after its lease).
pub fn spawn_workers(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = process::spawn(state.clone(), shutdown.clone());
    handles.extend(receipts::spawn(state, shutdown));
    handles
}
