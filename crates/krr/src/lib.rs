//! KRR stand-in (role `krr`): Kontakt- og reservasjonsregisteret's lookup API.
//!
//! - `POST /rest/v2/personer` (also `/rest/v1/personer`): 1–1000 identifiers, Maskinporten
//!   token; answers in request order, fields filtered by the token's scopes, reservation
//!   always returned.
//! - `GET /rest/v2/printsertifikat`: the print provider's orgnr and certificate.
//! - `GET /rest/v1/person`: the logged-in citizen's own entry, with an ID-porten access token
//!   issued for this API (header `typ` `at+jwt`, `aud` = [`Config::idporten_audience`], by
//!   default `<public url>/rest/v1`, which the client asks ID-porten for as `resource`,
//!   RFC 8707); with `Accept: application/jose` the answer is a compact JWS (RS256, `x5c` of KRR's
//!   enterprise certificate, Digdir's orgnr) over the same JSON.
//!
//! Errors are problem+json with stable codes: `unsupported_media_type` (415),
//! `payload_too_large` (413), `invalid_request` (400, body not the documented JSON),
//! `invalid_batch_size` (400, 0 or more than 1000 ids), `invalid_personidentifikator`
//! (400, with the index), `missing_token`/`malformed_token`/`invalid_signature`/
//! `wrong_issuer`/`token_expired`/`not_an_access_token`/`wrong_audience`/... (401),
//! `insufficient_scope` (403).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod fixtures;

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use clients::{
    jwks::JwksCache,
    krr::{
        DigitalPost, Kontaktinformasjon, Person, PersonerRequest, PersonerResponse,
        PrintSertifikat, Reservasjon, Status, Varslingsstatus,
    },
    verify::{JwtVerifier, MaskinportenVerifier, MaskinportenVerifierConfig, scopes_of},
};
use domain::{FnrPolicy, Fodselsnummer, Organisasjonsnummer};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use web::Problem;

pub use fixtures::{DefaultPids, Fixtures, PersonRecord, Provider, default_pids, synthetic_pid};

/// Maskinporten scopes, including the supplier-delegation variants.
const KONTAKTINFO_SCOPES: &[&str] = &[
    "krr:global/kontaktinformasjon.read",
    "krr:global/kontaktinfo.read",
];
const DIGITALPOST_SCOPES: &[&str] = &["krr:global/digitalpost.read", "krr:global/postkasse.read"];
/// ID-porten scopes for the citizen's own lookup.
const USER_KONTAKTINFO: &str = "krr:user/kontaktinformasjon.read";
const USER_DIGITALPOST: &str = "krr:user/digitalpost.read";

/// Configuration of the `krr` role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Fixture file (persons, providers, print provider). Relative paths are taken from the
    /// role's data folder; default `krr-fixtures.toml`, created on first start.
    pub fixtures: PathBuf,
    /// Folder of the shared test PKI (provider certificates of the default fixture).
    /// Relative paths are taken from the role's data folder; default `../pki`.
    pub pki_dir: PathBuf,
    /// Maskinporten issuer (with trailing slash). Default: the `maskinporten` role next to
    /// this one (`…/krr` → `…/maskinporten/`). Real test: `https://test.maskinporten.no/`.
    pub maskinporten_issuer: Option<String>,
    /// Maskinporten JWKS; default `{issuer}jwk`.
    pub maskinporten_jwks_uri: Option<String>,
    /// Required `aud` of Maskinporten tokens; none = not checked.
    pub maskinporten_audience: Option<String>,
    /// ID-porten issuer (no trailing slash). Default: the `idporten` role next to this one.
    pub idporten_issuer: Option<String>,
    /// ID-porten JWKS; default `{issuer}/jwks.json`.
    pub idporten_jwks_uri: Option<String>,
    /// Required `aud` of citizens' ID-porten access tokens at `GET /rest/v1/person`: the
    /// `resource` (RFC 8707) their clients ask ID-porten for, so an ID token's or another
    /// API's token is refused. Default: the API's base URL, `<public url of the role>/rest/v1`.
    pub idporten_audience: Option<String>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Most identifiers per lookup (the real service: 1000).
    pub max_ids: usize,
    /// Contact information older than this many days is stale (§32: about 18 months).
    pub stale_after_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fixtures: PathBuf::from("krr-fixtures.toml"),
            pki_dir: PathBuf::from("../pki"),
            maskinporten_issuer: None,
            maskinporten_jwks_uri: None,
            maskinporten_audience: None,
            idporten_issuer: None,
            idporten_jwks_uri: None,
            idporten_audience: None,
            max_body_bytes: 256 * 1024,
            max_ids: 1000,
            stale_after_days: 548,
        }
    }
}

/// URL of a sibling role: `http://h/x/krr` → `http://h/x/<role>`.
fn sibling(public_url: &url::Url, role: &str) -> String {
    let mut u = public_url.clone();
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty().pop().push(role);
    }
    u.as_str().trim_end_matches('/').to_owned()
}

/// Base URL of the citizen API (`GET /rest/v1/person`), the default `aud` of its tokens:
/// `http://h/x/krr` → `http://h/x/krr/rest/v1`.
fn citizen_api_base(public_url: &url::Url) -> String {
    format!("{}/rest/v1", public_url.as_str().trim_end_matches('/'))
}

struct AppState {
    cfg: Config,
    fx: Fixtures,
    persons: HashMap<String, PersonRecord>,
    certs: HashMap<Organisasjonsnummer, String>,
    policy: FnrPolicy,
    maskinporten: MaskinportenVerifier,
    idporten: JwtVerifier,
    /// Signs `application/jose` answers.
    signer: pki::Issued,
}

/// Builds the router. Mount it anywhere; sibling-role defaults come from `env.public_url`.
pub async fn router(cfg: &Config, env: &web::RoleEnv) -> anyhow::Result<Router> {
    let pki = pki::TestPki::load_or_init(env.data_dir.join(&cfg.pki_dir))?;
    let fx = fixtures::load_or_create(&env.data_dir.join(&cfg.fixtures), &pki)?;
    let mut persons = HashMap::new();
    for p in &fx.persons {
        Fodselsnummer::parse(&p.pid, &FnrPolicy::PERMISSIVE)
            .map_err(|e| anyhow::anyhow!("fixture person {}: {e}", p.pid))?;
        persons.insert(p.pid.clone(), p.clone());
    }
    let certs = fx
        .providers
        .iter()
        .map(|p| (p.orgnr, p.certificate.clone()))
        .collect();
    let http = reqwest::Client::new();
    let mp_issuer = cfg
        .maskinporten_issuer
        .clone()
        .unwrap_or_else(|| format!("{}/", sibling(&env.public_url, "maskinporten")));
    let maskinporten = MaskinportenVerifier::new(
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
    // Signed by ID-porten is not enough: an ID token, or an access token issued for another
    // API, in the hands of that client or API must not read the citizen's entry here.
    let idp_audience = cfg
        .idporten_audience
        .clone()
        .unwrap_or_else(|| citizen_api_base(&env.public_url));
    let idporten = JwtVerifier::new(
        idp_issuer,
        JwksCache::new(idp_jwks, http),
        Some(idp_audience),
    )
    .access_tokens_only();
    let signer = pki.issue_enterprise(&pki::demo::digdir(), pki::demo::DIGDIR_NAME)?;
    let state = AppState {
        signer,
        cfg: cfg.clone(),
        fx,
        persons,
        certs,
        policy: env.fnr_policy,
        maskinporten,
        idporten,
    };
    Ok(Router::new()
        .route("/rest/v2/personer", post(personer))
        .route("/rest/v1/personer", post(personer))
        .route("/rest/v2/printsertifikat", get(print_certificate))
        .route("/rest/v1/person", get(own_person))
        .with_state(Arc::new(state)))
}

/// What the caller may see.
#[derive(Debug, Clone, Copy)]
struct Access {
    kontaktinfo: bool,
    digitalpost: bool,
}

impl AppState {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn is_stale(&self, r: &PersonRecord, now: OffsetDateTime) -> bool {
        match r
            .kontaktinfo_oppdatert
            .as_deref()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        {
            Some(t) => now - t > time::Duration::days(self.cfg.stale_after_days),
            None => true,
        }
    }

    /// The answer for one identifier, filtered by `access`.
    fn person(&self, pid: &str, access: Access, now: OffsetDateTime) -> Person {
        let Some(r) = self.persons.get(pid) else {
            return Person {
                personidentifikator: pid.to_owned(),
                reservasjon: Reservasjon::Nei,
                reservasjonstidspunkt: None,
                reservasjon_oppdatert: None,
                status: Status::IkkeRegistrert,
                varslingsstatus: access
                    .kontaktinfo
                    .then_some(Varslingsstatus::KanIkkeVarsles),
                kontaktinformasjon: None,
                digital_post: None,
                sertifikat: None,
                spraak: None,
                spraak_oppdatert: None,
            };
        };
        let active = r.status == fixtures::RecordStatus::Aktiv;
        let stale = self.is_stale(r, now);
        let usable = active && !stale;
        let kan_varsles = usable && !r.reservert;
        let mut p = Person {
            personidentifikator: pid.to_owned(),
            reservasjon: if r.reservert {
                Reservasjon::Ja
            } else {
                Reservasjon::Nei
            },
            reservasjonstidspunkt: if r.reservert {
                r.reservasjon_oppdatert.clone()
            } else {
                None
            },
            reservasjon_oppdatert: r.reservasjon_oppdatert.clone(),
            status: if active {
                Status::Aktiv
            } else {
                Status::Slettet
            },
            varslingsstatus: None,
            kontaktinformasjon: None,
            digital_post: None,
            sertifikat: None,
            spraak: None,
            spraak_oppdatert: None,
        };
        if access.kontaktinfo {
            p.varslingsstatus = Some(if kan_varsles {
                Varslingsstatus::KanVarsles
            } else {
                Varslingsstatus::KanIkkeVarsles
            });
            if usable {
                p.kontaktinformasjon = Some(Kontaktinformasjon {
                    epostadresse: r.epostadresse.clone(),
                    epostadresse_oppdatert: r
                        .epostadresse
                        .as_ref()
                        .and(r.kontaktinfo_oppdatert.clone()),
                    epostadresse_sist_verifisert: r
                        .epostadresse
                        .as_ref()
                        .and(r.kontaktinfo_oppdatert.clone()),
                    mobiltelefonnummer: r.mobiltelefonnummer.clone(),
                    mobiltelefonnummer_oppdatert: r
                        .mobiltelefonnummer
                        .as_ref()
                        .and(r.kontaktinfo_oppdatert.clone()),
                    mobiltelefonnummer_sist_verifisert: r
                        .mobiltelefonnummer
                        .as_ref()
                        .and(r.kontaktinfo_oppdatert.clone()),
                });
                p.spraak = r.spraak.clone();
                p.spraak_oppdatert = r.spraak.as_ref().and(r.kontaktinfo_oppdatert.clone());
            }
        }
        if access.digitalpost
            && usable
            && !r.reservert
            && let (Some(addr), Some(provider)) = (&r.postkasseadresse, &r.postkasseleverandoer)
        {
            p.digital_post = Some(DigitalPost {
                postkasseadresse: addr.clone(),
                postkasseleverandoeradresse: provider.to_string(),
            });
            p.sertifikat = self.certs.get(provider).cloned();
        }
        p
    }
}

async fn maskinporten_access(st: &AppState, parts: &Parts) -> Result<Access, Problem> {
    let token = web::auth::bearer_token(parts)?;
    let principal = st.maskinporten.principal(&token).await.map_err(|e| {
        tracing::info!(code = e.code(), "KRR: Maskinporten token refused");
        e.to_problem()
    })?;
    let has = |list: &[&str]| principal.scopes.iter().any(|s| list.contains(&s.as_str()));
    let access = Access {
        kontaktinfo: has(KONTAKTINFO_SCOPES),
        digitalpost: has(DIGITALPOST_SCOPES),
    };
    if !access.kontaktinfo && !access.digitalpost {
        return Err(Problem::forbidden(
            "insufficient_scope",
            "the token carries no KRR scope",
        ));
    }
    tracing::info!(consumer = %principal.consumer, "KRR lookup");
    Ok(access)
}

async fn personer(State(st): State<Arc<AppState>>, parts: Parts, body: Body) -> Response {
    match personer_inner(&st, &parts, body).await {
        Ok(r) => Json(r).into_response(),
        Err(p) => p.into_response(),
    }
}

async fn personer_inner(
    st: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<PersonerResponse, Problem> {
    let access = maskinporten_access(st, parts).await?;
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, st.cfg.max_body_bytes)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
            )
            .with_detail(format!("at most {} bytes", st.cfg.max_body_bytes))
        })?;
    let req: PersonerRequest = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "invalid_request",
            format!("expected {{\"personidentifikatorer\": [..]}}: {e}"),
        )
    })?;
    let n = req.personidentifikatorer.len();
    if n == 0 || n > st.cfg.max_ids {
        return Err(Problem::bad_request(
            "invalid_batch_size",
            format!(
                "1 to {} personidentifikatorer per request, got {n}",
                st.cfg.max_ids
            ),
        ));
    }
    for (i, id) in req.personidentifikatorer.iter().enumerate() {
        if let Err(e) = Fodselsnummer::parse(id, &st.policy) {
            return Err(Problem::bad_request(
                "invalid_personidentifikator",
                // The code, not the message: messages may echo the input.
                format!(
                    "personidentifikatorer[{i}] is not a valid fødselsnummer or D-nummer ({})",
                    e.code()
                ),
            )
            .with_extension("index", i));
        }
    }
    let now = st.now();
    Ok(PersonerResponse {
        personer: req
            .personidentifikatorer
            .iter()
            .map(|id| st.person(id.trim(), access, now))
            .collect(),
    })
}

async fn print_certificate(State(st): State<Arc<AppState>>, parts: Parts) -> Response {
    match maskinporten_access(&st, &parts).await {
        Ok(_) => Json(PrintSertifikat {
            postkasseleverandoer_adresse: st.fx.print.orgnr.to_string(),
            x509_sertifikat: st.fx.print.certificate.clone(),
        })
        .into_response(),
        Err(p) => p.into_response(),
    }
}

/// The citizen's own entry, with an ID-porten access token for this API carrying `pid` and
/// `krr:user/…`.
async fn own_person(State(st): State<Arc<AppState>>, parts: Parts) -> Response {
    let inner = async {
        let token = web::auth::bearer_token(&parts)?;
        let claims = st.idporten.verify(&token).await.map_err(|e| {
            tracing::info!(code = e.code(), "KRR: ID-porten token refused");
            e.to_problem()
        })?;
        let scopes = scopes_of(&claims);
        let access = Access {
            kontaktinfo: scopes.iter().any(|s| s == USER_KONTAKTINFO),
            digitalpost: scopes.iter().any(|s| s == USER_DIGITALPOST),
        };
        if !access.kontaktinfo && !access.digitalpost {
            return Err(Problem::forbidden(
                "insufficient_scope",
                format!("the token needs {USER_KONTAKTINFO} or {USER_DIGITALPOST}"),
            ));
        }
        let pid = claims
            .get("pid")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| Problem::unauthorized("missing_claim", "the token has no pid"))?;
        let fnr = Fodselsnummer::parse(pid, &st.policy)
            .map_err(|e| Problem::unauthorized("invalid_pid", e.to_string()))?;
        Ok::<_, Problem>(st.person(&fnr.as_string(), access, st.now()))
    };
    let wants_jose = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/jose"));
    match inner.await {
        Ok(p) if wants_jose => match sign_person(&st.signer, &p) {
            Ok(jws) => ([(header::CONTENT_TYPE, "application/jose")], jws).into_response(),
            Err(e) => Problem::internal(e).into_response(),
        },
        Ok(p) => Json(p).into_response(),
        Err(p) => p.into_response(),
    }
}

/// The person as a compact JWS with KRR's certificate chain in `x5c`.
fn sign_person(signer: &pki::Issued, p: &Person) -> Result<String, pki::jose::JoseError> {
    let mut header = serde_json::Map::new();
    header.insert("x5c".into(), serde_json::json!(signer.x5c()));
    header.insert("typ".into(), "JOSE".into());
    let payload = serde_json::to_value(p).map_err(|_| pki::jose::JoseError::Json)?;
    pki::jose::sign(header, &payload, pki::jose::Alg::RS256, signer.key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_roles_share_the_prefix() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            sibling(&u("http://127.0.0.1:8080/krr"), "maskinporten"),
            "http://127.0.0.1:8080/maskinporten"
        );
        assert_eq!(
            sibling(&u("https://x.example/a/b/krr/"), "idporten"),
            "https://x.example/a/b/idporten"
        );
        assert_eq!(sibling(&u("http://h/"), "idporten"), "http://h/idporten");
    }

    #[test]
    fn citizen_api_base_is_under_the_public_url() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            citizen_api_base(&u("http://127.0.0.1:8080/krr")),
            "http://127.0.0.1:8080/krr/rest/v1"
        );
        assert_eq!(
            citizen_api_base(&u("https://x.example/a/krr/")),
            "https://x.example/a/krr/rest/v1"
        );
    }
}
