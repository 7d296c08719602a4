//! The one typed configuration of the `samspill` binary: an optional TOML file, then
//! `SAMSPILL_…` environment overrides (`__` separates levels, e.g. `SAMSPILL_DATABASE__URL`),
//! validated before anything starts. `config.example.toml` documents every key.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder for everything the process keeps on disk in the embedded mode.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub identity: IdentityConfig,
    // The store's config types are deserialise-only (they hold secrets); `redacted_toml`
    // renders them by hand.
    #[serde(skip_serializing)]
    pub database: store::DatabaseConfig,
    #[serde(skip_serializing)]
    pub blobs: store::BlobConfig,
    pub national: NationalConfig,
    /// The organization each role acts as (`[identities.<role>]`); roles without an entry use
    /// the test PKI's demo organizations.
    pub identities: std::collections::BTreeMap<String, crate::identity::OrgIdentity>,
    pub idporten: idporten::Config,
    pub maskinporten: maskinporten::Config,
    pub krr: krr::Config,
    pub formidler: formidler::Config,
    pub postkasse: postkasse::Config,
    pub avsender: avsender::Config,
    pub utskrift: utskrift::Config,
    /// The citizens' web app of the mailbox provider (served by the `postkasse` role).
    pub innboks: innboks::Config,
}

/// Where the national infrastructure is, for the roles that use it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NationalConfig {
    /// Maskinporten issuer with trailing slash; default: this process's `maskinporten` role.
    /// Real test environment: `https://test.maskinporten.no/`.
    pub maskinporten_issuer: Option<String>,
    /// Maskinporten JWKS; default `<issuer>jwk`.
    pub maskinporten_jwks_uri: Option<String>,
    /// PEM files of the roots DPI certificates must chain to; empty = the test PKI's CA.
    pub trust_anchors: Vec<PathBuf>,
    /// KRR base URL for the sender; default: this process's `krr` role.
    /// Real test environment: `https://test.kontaktregisteret.no`.
    pub krr_url: Option<url::Url>,
    /// The access point senders send through and providers return receipts to; default:
    /// this process's `formidler` role.
    pub access_point_url: Option<url::Url>,
    /// Organization number of that access point (issuer of the `feil` it writes itself);
    /// default: the demo access point.
    pub access_point_orgnr: Option<domain::Organisasjonsnummer>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            identity: IdentityConfig::default(),
            database: store::DatabaseConfig::default(),
            blobs: store::BlobConfig::default(),
            national: NationalConfig::default(),
            identities: Default::default(),
            idporten: Default::default(),
            maskinporten: Default::default(),
            krr: Default::default(),
            formidler: Default::default(),
            postkasse: Default::default(),
            avsender: Default::default(),
            utskrift: Default::default(),
            innboks: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP listener binds to.
    pub listen: SocketAddr,
    /// Public base URL of this process (no trailing slash). Each role is reachable under
    /// `<public_url>/<role>`. Defaults to `http://<listen>`.
    pub public_url: Option<url::Url>,
    /// Seconds a request may take before it is answered with 408.
    pub request_timeout_secs: u64,
    /// Largest request body, in bytes, for routes that set no limit of their own.
    pub default_body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            request_timeout_secs: 30,
            default_body_limit: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: web::LogFormat,
    /// Filter directive, e.g. `info` or `info,sqlx=warn`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: web::LogFormat::Human,
            filter: "info,sqlx=warn".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Accept synthetic test identities (Tenor numbers, month + 80). On for development and
    /// tests; set to false in production.
    pub allow_synthetic: bool,
    /// `relaxed2032` (default; accepts numbers issued from 2032 and all older ones) or `classic`.
    pub control_digit_rule: domain::ControlDigitRule,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            allow_synthetic: true,
            control_digit_rule: domain::ControlDigitRule::default(),
        }
    }
}

impl Config {
    /// Reads the optional file, then the environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("SAMSPILL")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(config_env())),
        );
        let raw = builder.build().map_err(one_line)?;
        let cfg: Config = raw.try_deserialize().map_err(one_line)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.server.request_timeout_secs == 0 {
            bail!("server.request_timeout_secs: must be at least 1");
        }
        if self.server.default_body_limit == 0 {
            bail!("server.default_body_limit: must be at least 1");
        }
        if let Some(url) = &self.server.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            bail!(
                "server.public_url: scheme must be http or https, got {}",
                url.scheme()
            );
        }
        tracing_subscriber_filter_ok(&self.log.filter).context("log.filter")?;
        self.database.validate()?;
        self.blobs.validate()?;
        self.utskrift
            .batch_hm()
            .map_err(|e| anyhow::anyhow!("utskrift.{e}"))?;
        Ok(())
    }

    pub fn fnr_policy(&self) -> domain::FnrPolicy {
        domain::FnrPolicy {
            allow_synthetic: self.identity.allow_synthetic,
            rule: self.identity.control_digit_rule,
        }
    }

    pub fn public_url(&self) -> url::Url {
        self.server.public_url.clone().unwrap_or_else(|| {
            url::Url::parse(&format!("http://{}", self.server.listen))
                .unwrap_or_else(|_| unreachable_url())
        })
    }

    /// The effective configuration as TOML with every secret replaced by `[redacted]`.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut value = toml::Value::try_from(self).context("serialising config")?;
        if let toml::Value::Table(root) = &mut value {
            root.insert("database".into(), database_table(&self.database));
            root.insert("blobs".into(), blobs_table(&self.blobs));
        }
        redact(&mut value);
        Ok(toml::to_string_pretty(&value)?)
    }
}

fn database_table(d: &store::DatabaseConfig) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("url".into(), d.redacted_url().into());
    if d.password.is_some() {
        t.insert("password".into(), "[redacted]".into());
    }
    t.insert(
        "max_connections".into(),
        i64::from(d.max_connections()).into(),
    );
    t.insert(
        "min_connections".into(),
        i64::from(d.min_connections).into(),
    );
    t.insert(
        "acquire_timeout_ms".into(),
        clamp(d.acquire_timeout_ms).into(),
    );
    t.insert("busy_timeout_ms".into(), clamp(d.busy_timeout_ms).into());
    t.insert("auto_migrate".into(), d.auto_migrate.into());
    t.insert(
        "keep_done_jobs_hours".into(),
        clamp(d.keep_done_jobs_hours).into(),
    );
    toml::Value::Table(t)
}

fn blobs_table(b: &store::BlobConfig) -> toml::Value {
    let backend = match b.backend {
        store::BlobBackendKind::Local => "local",
        store::BlobBackendKind::S3 => "s3",
        store::BlobBackendKind::Memory => "memory",
    };
    let mut s3 = toml::Table::new();
    if let Some(e) = &b.s3.endpoint {
        s3.insert("endpoint".into(), e.clone().into());
    }
    s3.insert("bucket".into(), b.s3.bucket.clone().into());
    s3.insert("region".into(), b.s3.region.clone().into());
    if let Some(k) = &b.s3.access_key_id {
        s3.insert("access_key_id".into(), k.clone().into());
    }
    if b.s3.secret_access_key.is_some() {
        s3.insert("secret_access_key".into(), "[redacted]".into());
    }
    s3.insert("allow_http".into(), b.s3.allow_http.into());
    let mut t = toml::Table::new();
    t.insert("backend".into(), backend.into());
    t.insert("path".into(), b.path.display().to_string().into());
    t.insert("s3".into(), toml::Value::Table(s3));
    toml::Value::Table(t)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Configuration variables are `SAMSPILL_DATA_DIR` and `SAMSPILL_<SECTION>__<KEY>`; other
/// `SAMSPILL_…` variables (the config file path, CLI defaults such as `SAMSPILL_AVSENDER_URL`,
/// the test harness's settings) are not configuration keys.
fn config_env() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("SAMSPILL_")
                .is_some_and(|rest| rest == "DATA_DIR" || rest.contains("__"))
        })
        .collect()
}

fn unreachable_url() -> url::Url {
    // `http://` + a SocketAddr is always a valid URL; this keeps the code free of `expect`.
    url::Url::parse("http://127.0.0.1").unwrap_or_else(|_| std::process::abort())
}

fn tracing_subscriber_filter_ok(filter: &str) -> anyhow::Result<()> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The `config` crate writes multi-line messages in places; the CLI promises one line.
fn one_line(e: config::ConfigError) -> anyhow::Error {
    anyhow::anyhow!(e.to_string().replace('\n', " "))
}

const SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "secret_access_key",
    "client_secret",
    "token",
];

fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                if SECRET_KEYS.iter().any(|s| key.ends_with(s)) {
                    *v = toml::Value::String("[redacted]".into());
                } else if key == "url" {
                    if let toml::Value::String(s) = v {
                        *s = redact_url_password(s);
                    }
                } else {
                    redact(v);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn redact_url_password(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://app:hunter2@db:5432/samspill"),
            "postgres://app:redacted@db:5432/samspill"
        );
        assert_eq!(
            redact_url_password("sqlite://./data/x.sqlite"),
            "sqlite://./data/x.sqlite"
        );
    }

    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let mut v: toml::Value = toml::from_str(
            "[a]\nclient_secret = \"s3cr3t\"\nname = \"x\"\n[a.b]\nsecret_access_key = \"k\"\n",
        )
        .unwrap();
        redact(&mut v);
        let s = toml::to_string(&v).unwrap();
        assert!(!s.contains("s3cr3t") && !s.contains("\"k\""), "{s}");
        assert!(s.contains("name = \"x\""));
    }
}
