//! KRR (Kontakt- og reservasjonsregisteret): the data model of the lookup API and a client
//! that batches lookups 1000 persons per request.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use web::auth::TokenSource;

use crate::ClientError;

pub const SCOPE_KONTAKTINFO: &str = "krr:global/kontaktinformasjon.read";
pub const SCOPE_DIGITALPOST: &str = "krr:global/digitalpost.read";
/// Most persons KRR answers for in one request.
pub const MAX_BATCH: usize = 1000;

/// `POST /rest/v2/personer` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonerRequest {
    pub personidentifikatorer: Vec<String>,
}

/// `POST /rest/v2/personer` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersonerResponse {
    pub personer: Vec<Person>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Reservasjon {
    Ja,
    Nei,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Aktiv,
    Slettet,
    IkkeRegistrert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Varslingsstatus {
    KanVarsles,
    KanIkkeVarsles,
}

/// One person as KRR returns it; which members are present depends on the token's scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub personidentifikator: String,
    pub reservasjon: Reservasjon,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservasjonstidspunkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservasjon_oppdatert: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varslingsstatus: Option<Varslingsstatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kontaktinformasjon: Option<Kontaktinformasjon>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digital_post: Option<DigitalPost>,
    /// Base64 DER X.509 certificate to encrypt DPI letters for this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sertifikat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spraak: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spraak_oppdatert: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kontaktinformasjon {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epostadresse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epostadresse_oppdatert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epostadresse_sist_verifisert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobiltelefonnummer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobiltelefonnummer_oppdatert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobiltelefonnummer_sist_verifisert: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigitalPost {
    pub postkasseadresse: String,
    /// Orgnr of the mailbox provider.
    pub postkasseleverandoeradresse: String,
}

/// The print provider's certificate (`HentPrintSertifikat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintSertifikat {
    #[serde(rename = "postkasseleverandoerAdresse")]
    pub postkasseleverandoer_adresse: String,
    #[serde(rename = "X509Sertifikat")]
    pub x509_sertifikat: String,
}

impl Person {
    /// How a letter to this person should go (the routing of the contract, in order).
    pub fn route(&self) -> Route {
        if self.status != Status::Aktiv || self.reservasjon == Reservasjon::Ja {
            return Route::Print;
        }
        match (&self.digital_post, &self.sertifikat) {
            (Some(_), Some(_)) => Route::DigitalMailbox,
            _ if self.varslingsstatus == Some(Varslingsstatus::KanVarsles) => Route::NotifyOnly,
            _ => Route::Print,
        }
    }
}

/// Channel chosen from a KRR answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// DPI to the person's digital mailbox.
    DigitalMailbox,
    /// Publish (e.g. on Min side) and notify by e-mail/SMS.
    NotifyOnly,
    /// Paper.
    Print,
}

/// Settings for the KRR client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KrrConfig {
    /// Base URL, e.g. `https://test.kontaktregisteret.no` or the stand-in's public URL.
    pub base_url: String,
    /// Scopes to ask Maskinporten for (space-separated).
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// Persons per request, at most 1000.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Requests in flight at once for large lookups.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_scopes() -> String {
    format!("{SCOPE_KONTAKTINFO} {SCOPE_DIGITALPOST}")
}
fn default_batch() -> usize {
    MAX_BATCH
}
fn default_concurrency() -> usize {
    4
}

impl KrrConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            scopes: default_scopes(),
            batch_size: MAX_BATCH,
            concurrency: default_concurrency(),
        }
    }
}

/// The KRR client. Cheap to clone.
#[derive(Clone)]
pub struct KrrClient {
    cfg: Arc<KrrConfig>,
    tokens: Arc<dyn TokenSource>,
    http: reqwest::Client,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for KrrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KrrClient")
            .field("base_url", &self.cfg.base_url)
            .finish_non_exhaustive()
    }
}

impl KrrClient {
    pub fn new(cfg: KrrConfig, tokens: Arc<dyn TokenSource>, http: reqwest::Client) -> Self {
        Self {
            cfg: Arc::new(cfg),
            tokens,
            http,
            requests: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The same KRR, asked with other tokens (e.g. those of an organization this one acts
    /// for); shares the configuration, the HTTP client and the request counter.
    pub fn with_tokens(&self, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            cfg: self.cfg.clone(),
            tokens,
            http: self.http.clone(),
            requests: self.requests.clone(),
        }
    }

    /// How many HTTP requests the client has sent to KRR.
    pub fn request_count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    /// Look up any number of persons; answers come back in the order asked.
    pub async fn lookup(&self, ids: &[String]) -> Result<Vec<Person>, ClientError> {
        self.lookup_with_scopes(ids, &self.cfg.scopes).await
    }

    /// Like [`KrrClient::lookup`] with a token for other scopes.
    pub async fn lookup_with_scopes(
        &self,
        ids: &[String],
        scopes: &str,
    ) -> Result<Vec<Person>, ClientError> {
        use futures::{StreamExt, TryStreamExt};
        let batch = self.cfg.batch_size.clamp(1, MAX_BATCH);
        let batches: Vec<Vec<String>> = ids.chunks(batch).map(<[String]>::to_vec).collect();
        let results: Vec<Vec<Person>> = futures::stream::iter(batches)
            .map(|b| self.lookup_batch(b, scopes))
            .buffered(self.cfg.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    async fn lookup_batch(
        &self,
        ids: Vec<String>,
        scopes: &str,
    ) -> Result<Vec<Person>, ClientError> {
        let n = ids.len();
        let token = self
            .tokens
            .token(scopes)
            .await
            .map_err(|e| ClientError::Config(format!("no token: {e}")))?;
        let res = self
            .http
            .post(self.url("/rest/v2/personer"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .json(&PersonerRequest {
                personidentifikatorer: ids,
            })
            .send()
            .await?;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body: PersonerResponse = check(res, "krr").await?.json().await?;
        if body.personer.len() != n {
            return Err(ClientError::BadResponse("krr"));
        }
        Ok(body.personer)
    }

    /// The print provider's certificate and orgnr.
    pub async fn print_certificate(&self) -> Result<PrintSertifikat, ClientError> {
        let token = self
            .tokens
            .token(SCOPE_DIGITALPOST)
            .await
            .map_err(|e| ClientError::Config(format!("no token: {e}")))?;
        let res = self
            .http
            .get(self.url("/rest/v2/printsertifikat"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        Ok(check(res, "krr").await?.json().await?)
    }
}

async fn check(
    res: reqwest::Response,
    service: &'static str,
) -> Result<reqwest::Response, ClientError> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status().as_u16();
    let v: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    Err(ClientError::Refused {
        service,
        status,
        error: v
            .get("code")
            .and_then(serde_json::Value::as_str)
            .or(v.get("error").and_then(serde_json::Value::as_str))
            .unwrap_or("unknown")
            .to_owned(),
        description: v
            .get("detail")
            .and_then(serde_json::Value::as_str)
            .or(v
                .get("error_description")
                .and_then(serde_json::Value::as_str))
            .unwrap_or("")
            .to_owned(),
    })
}
