//! The client registry and delegation table, read from a TOML fixture file.

use std::{collections::HashMap, path::Path};

use domain::Organisasjonsnummer;
use openssl::pkey::{PKey, Public};
use serde::{Deserialize, Serialize};

/// Scopes samspill uses.
pub const SCOPE_DPI_SEND: &str = "digitalpostinnbygger:send";
pub const SCOPE_KRR_KONTAKTINFO: &str = "krr:global/kontaktinformasjon.read";
pub const SCOPE_KRR_DIGITALPOST: &str = "krr:global/digitalpost.read";

/// The fixture file: `[[clients]]` and `[[delegations]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub clients: Vec<ClientRegistration>,
    #[serde(default)]
    pub delegations: Vec<Delegation>,
}

/// One integration registered in Maskinporten.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    /// The `iss` of the client's grants.
    pub client_id: String,
    /// The organization that owns the integration; `consumer` of its own tokens.
    pub orgnr: Organisasjonsnummer,
    /// Human description (not used in decisions).
    #[serde(default)]
    pub description: String,
    /// Scopes the client may request for itself.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether grants signed with an enterprise certificate (`x5c`) of `orgnr` are accepted.
    #[serde(default = "yes")]
    pub allow_certificate: bool,
    /// Keys registered on the client, used with `kid` in the grant header.
    #[serde(default)]
    pub keys: Vec<ClientKey>,
}

fn yes() -> bool {
    true
}

/// A public key registered on a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    pub kid: String,
    /// SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// Unix time after which the key is refused (MP-121); none = no expiry.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// `consumer` has delegated `scopes` to `supplier` (Altinn's delegation, simplified).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    pub consumer: Organisasjonsnummer,
    pub supplier: Organisasjonsnummer,
    pub scopes: Vec<String>,
}

/// A registered key, parsed.
#[derive(Clone)]
pub(crate) struct Key {
    pub public: PKey<Public>,
    pub expires_at: Option<i64>,
}

/// A client with parsed keys.
#[derive(Clone)]
pub(crate) struct Client {
    pub reg: ClientRegistration,
    pub keys: HashMap<String, Key>,
}

/// Lookup structure built from [`Fixtures`].
#[derive(Clone, Default)]
pub(crate) struct Registry {
    pub clients: HashMap<String, Client>,
    pub delegations: Vec<Delegation>,
}

impl Registry {
    pub fn from_fixtures(fx: Fixtures) -> anyhow::Result<Self> {
        let mut clients = HashMap::new();
        for reg in fx.clients {
            let mut keys = HashMap::new();
            for k in &reg.keys {
                let public = PKey::public_key_from_pem(k.public_key_pem.as_bytes())
                    .map_err(|e| anyhow::anyhow!("client {}: key {}: {e}", reg.client_id, k.kid))?;
                keys.insert(
                    k.kid.clone(),
                    Key {
                        public,
                        expires_at: k.expires_at,
                    },
                );
            }
            if clients.contains_key(&reg.client_id) {
                anyhow::bail!("client {} is registered twice", reg.client_id);
            }
            clients.insert(reg.client_id.clone(), Client { reg, keys });
        }
        Ok(Registry {
            clients,
            delegations: fx.delegations,
        })
    }

    pub fn delegated(
        &self,
        consumer: &Organisasjonsnummer,
        supplier: &Organisasjonsnummer,
        scope: &str,
    ) -> bool {
        self.delegations.iter().any(|d| {
            &d.consumer == consumer
                && &d.supplier == supplier
                && d.scopes.iter().any(|s| s == scope)
        })
    }
}

pub use pki::demo::orgnr_near;

/// The clients of the default fixtures; orgnrs come from [`pki::demo`].
pub mod defaults {
    use domain::Organisasjonsnummer;

    /// "Samspill kommune": sends letters and runs Min side.
    pub fn kommune() -> Organisasjonsnummer {
        pki::demo::kommune()
    }
    /// "Samspill databehandler": sends on behalf of the kommune (delegation).
    pub fn databehandler() -> Organisasjonsnummer {
        pki::demo::databehandler()
    }
    pub const KOMMUNE_CLIENT: &str = "samspill-kommune";
    pub const DATABEHANDLER_CLIENT: &str = "samspill-databehandler";
    pub const FORMIDLER_CLIENT: &str = "samspill-formidler";
    pub const DIGIPOST_CLIENT: &str = "samspill-digipost";
    pub const EBOKS_CLIENT: &str = "samspill-eboks";
    pub const PRINT_CLIENT: &str = "samspill-utskrift";
    /// Name of the pki signing key registered (by `kid`) on the kommune client.
    pub const KOMMUNE_KEY: &str = "maskinporten-client-samspill-kommune";
}

/// Scope of the hops between the access point and the mailbox/print providers (docs/CHAIN.md).
pub const SCOPE_FORMIDLING: &str = web::auth::SCOPE_FORMIDLING;

/// Fixtures generated on first start: a kommune client (certificate or registered key) and a
/// databehandler with a delegation from the kommune.
pub fn default_fixtures(pki: &pki::TestPki) -> anyhow::Result<Fixtures> {
    let key = pki.signing_key(defaults::KOMMUNE_KEY)?;
    let all = vec![
        SCOPE_DPI_SEND.to_owned(),
        SCOPE_KRR_KONTAKTINFO.to_owned(),
        SCOPE_KRR_DIGITALPOST.to_owned(),
    ];
    Ok(Fixtures {
        clients: vec![
            ClientRegistration {
                client_id: defaults::KOMMUNE_CLIENT.into(),
                orgnr: defaults::kommune(),
                description: "Samspill kommune: avsender og Min side".into(),
                scopes: all.clone(),
                allow_certificate: true,
                keys: vec![ClientKey {
                    kid: key.kid.clone(),
                    public_key_pem: key.public_pem(),
                    expires_at: None,
                }],
            },
            ClientRegistration {
                client_id: defaults::DATABEHANDLER_CLIENT.into(),
                orgnr: defaults::databehandler(),
                description: "Samspill databehandler: sender på vegne av kommunen".into(),
                scopes: vec![],
                allow_certificate: true,
                keys: vec![],
            },
            cert_client(
                defaults::FORMIDLER_CLIENT,
                pki::demo::formidler(),
                "Samspill formidler: aksesspunkt (C2/C3)",
            ),
            cert_client(
                defaults::DIGIPOST_CLIENT,
                pki::demo::digipost(),
                "Postkasseleverandør A",
            ),
            cert_client(
                defaults::EBOKS_CLIENT,
                pki::demo::eboks(),
                "Postkasseleverandør B",
            ),
            cert_client(
                defaults::PRINT_CLIENT,
                pki::demo::print(),
                "Utskriftsleverandør",
            ),
        ],
        delegations: vec![Delegation {
            consumer: defaults::kommune(),
            supplier: defaults::databehandler(),
            scopes: all,
        }],
    })
}

fn cert_client(id: &str, orgnr: Organisasjonsnummer, description: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: id.into(),
        orgnr,
        description: description.into(),
        scopes: vec![SCOPE_FORMIDLING.to_owned()],
        allow_certificate: true,
        keys: vec![],
    }
}

/// Read the fixture file, writing the default first if it does not exist.
pub fn load_or_create(path: &Path, pki: &pki::TestPki) -> anyhow::Result<Fixtures> {
    if !path.exists() {
        let fx = default_fixtures(pki)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = format!(
            "# Maskinporten stand-in: registered clients and Altinn-style delegations.\n\
             # Generated on first start; edit freely.\n\n{}",
            toml::to_string_pretty(&fx)?
        );
        // create_new: a concurrent starter that lost the race reads the winner's file.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => std::io::Write::write_all(&mut f, text.as_bytes())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    let text = std::fs::read_to_string(path)?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
