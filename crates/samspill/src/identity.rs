//! Who a role is towards the national infrastructure: its Maskinporten client and the
//! enterprise certificate it signs DPI messages with. Configured PEM files in production; the
//! local test PKI (`<data_dir>/pki`) issues them in development.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use domain::{ActorId, Organisasjonsnummer};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// `[identities.<role>]`: the organization a role acts as.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrgIdentity {
    /// Maskinporten client id; default: the stand-in's client for this role.
    pub client_id: Option<String>,
    /// PEM private key of the enterprise certificate; unset = issued by the test PKI.
    pub key: Option<PathBuf>,
    /// PEM certificate chain, leaf first; unset = issued by the test PKI.
    pub certificate: Option<PathBuf>,
}

/// A loaded identity.
#[derive(Clone)]
pub struct Loaded {
    pub orgnr: Organisasjonsnummer,
    pub client_id: String,
    pub cert: X509,
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

impl Loaded {
    pub fn actor(&self) -> ActorId {
        self.orgnr.actor_id()
    }

    pub fn grant_key(&self) -> anyhow::Result<clients::maskinporten::GrantKey> {
        let x5c = std::iter::once(&self.cert)
            .chain(self.chain.iter())
            .map(|c| c.to_der().map(|d| openssl::base64::encode_block(&d)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(clients::maskinporten::GrantKey::Certificate {
            key: self.key.clone(),
            x5c,
        })
    }
}

pub fn test_pki(cfg: &Config) -> anyhow::Result<pki::TestPki> {
    let dir = cfg.data_dir.join("pki");
    pki::TestPki::load_or_init(&dir).with_context(|| format!("test PKI in {}", dir.display()))
}

/// Loads the identity configured for `role`, or issues the demo organization's from the test
/// PKI when none is configured.
pub fn load(
    cfg: &Config,
    role: &str,
    demo_orgnr: Organisasjonsnummer,
    demo_name: &str,
    default_client: &str,
) -> anyhow::Result<Loaded> {
    let configured = cfg.identities.get(role).cloned().unwrap_or_default();
    let client_id = configured
        .client_id
        .clone()
        .unwrap_or_else(|| default_client.to_owned());
    match (&configured.key, &configured.certificate) {
        (Some(key), Some(chain)) => {
            let key_pem = std::fs::read(key)
                .with_context(|| format!("identities.{role}.key: {}", key.display()))?;
            let chain_pem = std::fs::read(chain)
                .with_context(|| format!("identities.{role}.certificate: {}", chain.display()))?;
            let key = PKey::private_key_from_pem(&key_pem)
                .with_context(|| format!("identities.{role}.key: not a PEM private key"))?;
            let mut certs = X509::stack_from_pem(&chain_pem)
                .with_context(|| format!("identities.{role}.certificate: not PEM"))?;
            if certs.is_empty() {
                anyhow::bail!("identities.{role}.certificate: no certificate in the file");
            }
            let cert = certs.remove(0);
            let orgnr = dpi::trust::org_number(&cert).with_context(|| {
                format!("identities.{role}.certificate: no organization number in the subject")
            })?;
            Ok(Loaded {
                orgnr,
                client_id,
                cert,
                chain: certs,
                key,
            })
        }
        (None, None) => {
            let pki = test_pki(cfg)?;
            let issued = pki.issue_enterprise(&demo_orgnr, demo_name)?;
            let chain = issued
                .chain
                .iter()
                .map(|p| X509::from_pem(p.as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Loaded {
                orgnr: demo_orgnr,
                client_id,
                cert: issued.cert().clone(),
                chain,
                key: issued.key().clone(),
            })
        }
        _ => anyhow::bail!("identities.{role}: set both key and certificate, or neither"),
    }
}

/// Trust anchors for DPI certificates: the configured PEM files, or the test PKI's CA.
pub fn trust_anchors(cfg: &Config) -> anyhow::Result<dpi::trust::TrustAnchors> {
    let mut anchors = dpi::trust::TrustAnchors::none();
    if cfg.national.trust_anchors.is_empty() {
        let pki = test_pki(cfg)?;
        anchors.add_pem_or_der(pki.ca_cert_pem().as_bytes())?;
    }
    for path in &cfg.national.trust_anchors {
        let bytes = std::fs::read(path)
            .with_context(|| format!("national.trust_anchors: {}", path.display()))?;
        anchors
            .add_pem_or_der(&bytes)
            .with_context(|| format!("national.trust_anchors: {}", path.display()))?;
    }
    Ok(anchors)
}

/// Maskinporten's issuer (with trailing slash): configured, or the sibling stand-in role.
pub fn maskinporten_issuer(cfg: &Config, public_url: &url::Url) -> String {
    cfg.national.maskinporten_issuer.clone().unwrap_or_else(|| {
        format!(
            "{}/maskinporten/",
            public_url.as_str().trim_end_matches('/')
        )
    })
}

/// The access point's verifier of incoming Maskinporten tokens (`aud` checked when
/// `formidler.maskinporten_audience` is set).
pub fn verifier(cfg: &Config, public_url: &url::Url) -> Arc<dyn web::auth::TokenVerifier> {
    let vc = clients::verify::MaskinportenVerifierConfig {
        issuer: maskinporten_issuer(cfg, public_url),
        jwks_uri: cfg.national.maskinporten_jwks_uri.clone(),
        audience: cfg.formidler.maskinporten_audience.clone(),
    };
    clients::verify::MaskinportenVerifier::new(&vc, reqwest::Client::new()).into_dyn()
}

pub fn token_source(
    cfg: &Config,
    public_url: &url::Url,
    identity: &Loaded,
) -> anyhow::Result<Arc<dyn web::auth::TokenSource>> {
    Ok(Arc::new(maskinporten_client(cfg, public_url, identity)?))
}

/// The identity's Maskinporten client (also for delegated tokens, `on_behalf_of`).
pub fn maskinporten_client(
    cfg: &Config,
    public_url: &url::Url,
    identity: &Loaded,
) -> anyhow::Result<clients::maskinporten::MaskinportenClient> {
    let mc = clients::maskinporten::MaskinportenConfig {
        issuer: maskinporten_issuer(cfg, public_url),
        token_endpoint: None,
        client_id: identity.client_id.clone(),
        refresh_margin_secs: 20,
        grant_lifetime_secs: 60,
    };
    Ok(clients::maskinporten::MaskinportenClient::new(
        mc,
        identity.grant_key()?,
        reqwest::Client::new(),
    ))
}
