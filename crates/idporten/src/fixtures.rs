//! Registered clients and test persons, read from a TOML file that is written with working
//! defaults on first start.

use std::{collections::HashMap, path::Path};

use domain::{FnrPolicy, Fodselsnummer};
use serde::{Deserialize, Serialize};

use pki::jose::{VerifyingKey, parse_jwks};

/// The fixture file: `[[clients]]` and `[[persons]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub clients: Vec<ClientRegistration>,
    #[serde(default)]
    pub persons: Vec<TestPerson>,
}

/// One OIDC client as registered in ID-porten's self-service (Samarbeidsportalen).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: String,
    /// Shown on the login page ("You are logging in to …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Enables `client_secret_basic` and `client_secret_post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A JWK set (`{ keys = [ … ] }`) of the client's public keys; enables `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// When set, only this method is accepted at `/token` and `/par`:
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Exact redirect URIs; no wildcards, no prefix matching.
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Loaded in an iframe as `…?iss=<issuer>&sid=<sid>` when the session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    /// Scopes the client may ask for (`openid` is always allowed).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Issue one-time refresh tokens to this client (a per-client setting at ID-porten).
    #[serde(default)]
    pub refresh_tokens: bool,
    /// Sector identifier for the pairwise `sub`; clients of one sector see the same `sub`.
    /// Defaults to the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
}

/// A synthetic citizen the tester can log in as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPerson {
    /// Fødselsnummer or D-nummer, normally a synthetic Tenor number (month + 80).
    pub pid: String,
    pub name: String,
}

/// A validated client, ready for request handling.
#[derive(Debug)]
pub struct Client {
    pub reg: ClientRegistration,
    pub keys: Vec<VerifyingKey>,
}

impl Client {
    pub fn display_name(&self) -> &str {
        self.reg.name.as_deref().unwrap_or(&self.reg.client_id)
    }

    pub fn sector(&self) -> &str {
        self.reg.sector.as_deref().unwrap_or(&self.reg.client_id)
    }

    pub fn allows_method(&self, method: &str) -> bool {
        if let Some(m) = &self.reg.token_endpoint_auth_method {
            return m == method;
        }
        match method {
            "client_secret_basic" | "client_secret_post" => self.reg.client_secret.is_some(),
            "private_key_jwt" => !self.keys.is_empty(),
            _ => false,
        }
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        scope == "openid" || self.reg.scopes.iter().any(|s| s == scope)
    }
}

/// Validated fixtures.
#[derive(Debug)]
pub struct Registry {
    pub clients: HashMap<String, Client>,
    pub persons: Vec<(Fodselsnummer, String)>,
}

impl Registry {
    pub fn person_name(&self, pid: &str) -> Option<&str> {
        self.persons
            .iter()
            .find(|(p, _)| p.as_string() == pid)
            .map(|(_, n)| n.as_str())
    }
}

/// Loads the fixture file, writing the defaults for `origin` first when it does not exist.
pub fn load_or_create(path: &Path, origin: &str, policy: &FnrPolicy) -> anyhow::Result<Registry> {
    if !path.exists() {
        let text = format!(
            "# ID-porten stand-in: registered clients and test persons. Edit freely; read on start.\n\
             # Test persons use synthetic (Tenor-style, month + 80) numbers.\n\n{}",
            toml::to_string_pretty(&default_fixtures(origin))?
        );
        std::fs::write(path, text)?;
    }
    let text = std::fs::read_to_string(path)?;
    let fx: Fixtures =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    validate(fx, policy).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn validate(fx: Fixtures, policy: &FnrPolicy) -> Result<Registry, String> {
    let mut clients = HashMap::new();
    for reg in fx.clients {
        if reg.client_id.is_empty() {
            return Err("a client has an empty client_id".into());
        }
        for u in reg
            .redirect_uris
            .iter()
            .chain(&reg.post_logout_redirect_uris)
            .chain(&reg.frontchannel_logout_uri)
        {
            url::Url::parse(u)
                .map_err(|e| format!("client {}: bad URI {u:?}: {e}", reg.client_id))?;
        }
        let keys = match &reg.jwks {
            Some(j) => parse_jwks(j).map_err(|e| format!("client {}: {e}", reg.client_id))?,
            None => Vec::new(),
        };
        if let Some(m) = &reg.token_endpoint_auth_method
            && !matches!(
                m.as_str(),
                "client_secret_basic" | "client_secret_post" | "private_key_jwt"
            )
        {
            return Err(format!(
                "client {}: unknown auth method {m:?}",
                reg.client_id
            ));
        }
        let id = reg.client_id.clone();
        if clients.insert(id.clone(), Client { reg, keys }).is_some() {
            return Err(format!("client {id} is registered twice"));
        }
    }
    let mut persons = Vec::new();
    for p in fx.persons {
        let f = Fodselsnummer::parse(&p.pid, policy)
            .map_err(|e| format!("person {:?}: {e}", p.name))?;
        persons.push((f, p.name));
    }
    Ok(Registry { clients, persons })
}

/// A synthetic Tenor-style number for a birth date, with the month shifted by 80.
pub fn synthetic_pid(day: u8, month: u8, year: u8) -> Option<Fodselsnummer> {
    let m = month + 80;
    (0u16..1000).find_map(|ind| {
        let first = [
            day / 10,
            day % 10,
            m / 10,
            m % 10,
            year / 10,
            year % 10,
            (ind / 100) as u8,
            ((ind / 10) % 10) as u8,
            (ind % 10) as u8,
        ];
        Fodselsnummer::complete_classic(first, &FnrPolicy::PERMISSIVE)
    })
}

fn default_fixtures(origin: &str) -> Fixtures {
    let client = |id: &str, name: &str, app: &str| ClientRegistration {
        client_id: id.to_owned(),
        name: Some(name.to_owned()),
        client_secret: Some(format!("{id}-secret-change-me")),
        jwks: None,
        token_endpoint_auth_method: None,
        redirect_uris: vec![format!("{origin}/{app}/auth/callback")],
        post_logout_redirect_uris: vec![format!("{origin}/{app}/")],
        frontchannel_logout_uri: Some(format!("{origin}/{app}/auth/frontchannel-logout")),
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "krr:user/kontaktinformasjon.read".into(),
        ],
        refresh_tokens: true,
        sector: None,
    };
    let persons = [
        (1, 1, 90, "Kari Nordmann"),
        (15, 6, 85, "Ola Nordmann"),
        (29, 2, 72, "Aud Testesen"),
        (3, 11, 4, "Per Unge"),
        (24, 12, 48, "Sigrid Eldre"),
    ]
    .into_iter()
    .filter_map(|(d, m, y, name)| {
        synthetic_pid(d, m, y).map(|f| TestPerson {
            pid: f.as_string(),
            name: name.to_owned(),
        })
    })
    .collect();
    Fixtures {
        clients: vec![
            client("samspill-postkasse", "Digital postkasse", "postkasse"),
            client("samspill-minside", "Min side", "minside"),
        ],
        persons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_persons_are_synthetic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fx.toml");
        let r = load_or_create(&p, "http://127.0.0.1:8080", &FnrPolicy::PERMISSIVE).unwrap();
        assert_eq!(r.persons.len(), 5);
        assert!(r.persons.iter().all(|(f, _)| f.is_synthetic()));
        assert!(r.clients.contains_key("samspill-postkasse"));
        // Second start reads the file written by the first.
        let r2 = load_or_create(&p, "http://other", &FnrPolicy::PERMISSIVE).unwrap();
        assert_eq!(
            r2.clients["samspill-minside"].reg.redirect_uris,
            vec!["http://127.0.0.1:8080/minside/auth/callback".to_owned()]
        );
    }

    #[test]
    fn unknown_fields_and_bad_pids_are_refused() {
        let bad: Result<Fixtures, _> =
            toml::from_str("[[clients]]\nclient_id='a'\nredirect_uris=[]\nfoo=1\n");
        assert!(bad.is_err());
        let fx: Fixtures = toml::from_str("[[persons]]\npid='12345678901'\nname='x'\n").unwrap();
        assert!(validate(fx, &FnrPolicy::PERMISSIVE).is_err());
    }
}
