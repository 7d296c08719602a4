//! A cluster of `samspill` processes on loopback, one per part of the chain, as separate
//! organizations would run them: national stand-ins, the access point, the mailbox provider,
//! the print provider and the sender — each with its own port, database and blob folder,
//! sharing only the test PKI and the stand-ins' fixtures (one `data_dir`).

#![allow(dead_code)] // each test binary uses a part of this

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_samspill");
pub const API_KEY: &str = "chain-test-key-0123456789";

pub use store::testing::{PortLease, reserve_port};

pub struct Proc {
    pub name: &'static str,
    pub roles: &'static str,
    pub lease: PortLease,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.lease.port)
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub procs: BTreeMap<&'static str, Proc>,
    pub dbs: BTreeMap<&'static str, store::testing::TestDb>,
    pub http: reqwest::Client,
}

/// (process name, roles)
pub const LAYOUT: &[(&str, &str)] = &[
    ("national", "idporten,maskinporten,krr"),
    ("formidler", "formidler"),
    ("postkasse", "postkasse"),
    ("utskrift", "utskrift"),
    ("avsender", "avsender"),
];

impl Cluster {
    /// Writes every process's configuration and starts them all, national first.
    pub async fn start(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut leases: BTreeMap<_, _> = LAYOUT
            .iter()
            .map(|(name, _)| (*name, reserve_port()))
            .collect();
        let ports: BTreeMap<_, _> = leases.iter().map(|(n, l)| (*n, l.port)).collect();
        let url = |name: &str| format!("http://127.0.0.1:{}", ports[name]);
        let mut dbs = BTreeMap::new();
        let mut procs = BTreeMap::new();
        for (name, roles) in LAYOUT {
            let db = store::testing::fresh_db().await;
            let config = dir.path().join(format!("{name}.toml"));
            let text = format!(
                r#"data_dir = "{data}"
[server]
listen = "127.0.0.1:{port}"
public_url = "{me}"
[log]
filter = "info,sqlx=warn"
[database]
url = "{db}"
{pool}
[blobs]
backend = "local"
path = "{blobs}"
[national]
maskinporten_issuer = "{nat}/maskinporten/"
krr_url = "{nat}/krr"
access_point_url = "{fmd}/formidler"
[formidler]
delivery_deadline_secs = 600
max_retry_delay_secs = 1
providers = [
  {{ orgnr = "{digipost}", endpoint = "{pk}/postkasse/digipost" }},
  {{ orgnr = "{eboks}", endpoint = "{pk}/postkasse/eboks" }},
  {{ orgnr = "{print}", endpoint = "{ut}/utskrift" }},
]
[postkasse]
idporten_issuer = "{nat}/idporten"
max_retry_delay_secs = 1
[avsender]
# Its own kanal, so that other sender systems of the same organization keep their receipts.
kanal = "avsender"
api_keys = [{{ name = "test", secret = "{key}" }}]
poll_interval_ms = 200
max_retry_delay_secs = 1
"#,
                data = dir.path().join("data").display(),
                port = ports[name],
                me = url(name),
                db = db.url(),
                // Five processes per cluster and tests in parallel share one PostgreSQL
                // server; SQLite runs on the product's default.
                pool = match db.backend() {
                    store::Backend::Postgres => "max_connections = 4",
                    store::Backend::Sqlite => "",
                },
                blobs = dir.path().join(format!("blobs-{name}")).display(),
                nat = url("national"),
                fmd = url("formidler"),
                pk = url("postkasse"),
                ut = url("utskrift"),
                digipost = pki::demo::digipost(),
                eboks = pki::demo::eboks(),
                print = pki::demo::print(),
                key = API_KEY,
            );
            let mut table: toml::Table = toml::from_str(&text).unwrap();
            merge(
                &mut table,
                toml::from_str(extra).expect("extra configuration"),
            );
            std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
            dbs.insert(*name, db);
            procs.insert(
                *name,
                Proc {
                    name,
                    roles,
                    lease: leases.remove(name).unwrap(),
                    config,
                    log: dir.path().join(format!("{name}.log")),
                    child: None,
                },
            );
        }
        let mut cluster = Cluster {
            dir,
            procs,
            dbs,
            http: reqwest::Client::new(),
        };
        // The national stand-ins create the shared PKI and fixtures the others read.
        cluster.spawn("national").await;
        for (name, _) in LAYOUT.iter().skip(1) {
            cluster.spawn(name).await;
        }
        cluster
    }

    pub async fn spawn(&mut self, name: &str) {
        let p = self.procs.get_mut(name).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .unwrap();
        let child = Command::new(BIN)
            .args([
                "--config",
                p.config.to_str().unwrap(),
                "serve",
                "--roles",
                p.roles,
            ])
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        p.child = Some(child);
        let base = p.base();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{base}/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.procs[name].child_status() {
                panic!(
                    "{name} exited during start ({status}):\n{}",
                    self.log_tail(name)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not become ready:\n{}",
                self.log_tail(name)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops `name`, deep-merges `extra` (TOML) into its configuration and starts it again.
    pub async fn reconfigure(&mut self, name: &str, extra: &str) {
        self.kill(name);
        let path = self.procs[name].config.clone();
        let mut table: toml::Table =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        merge(
            &mut table,
            toml::from_str(extra).expect("extra configuration"),
        );
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        self.spawn(name).await;
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.procs.get_mut(name).unwrap().child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, name: &str, path: &str) -> String {
        format!("{}{path}", self.procs[name].base())
    }

    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(&self.procs[name].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db(&self, name: &str) -> &store::Db {
        self.dbs[name].db()
    }

    /// Submits a letter to the sender's case-system API; returns the HTTP status.
    pub async fn submit(&self, letter: &serde_json::Value) -> u16 {
        self.http
            .post(self.url("avsender", "/avsender/api/v1/letters"))
            .header("x-api-key", API_KEY)
            .json(letter)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn letter(&self, id: &str) -> serde_json::Value {
        let r = self
            .http
            .get(self.url("avsender", &format!("/avsender/api/v1/letters/{id}")))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET letter {id}");
        r.json().await.unwrap()
    }

    /// Waits until the letter's status is one of `want`, or panics with its history.
    pub async fn wait_status(
        &self,
        id: &str,
        want: &[&str],
        within: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let l = self.letter(id).await;
            if want.contains(&l["status"].as_str().unwrap_or_default()) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "letter {id} never reached {want:?}: {l:#}\n--- formidler\n{}\n--- postkasse\n{}",
                self.log_tail("formidler"),
                self.log_tail("postkasse")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Deep-merges `over` into `base` (tables merge, other values are replaced).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Proc {
    /// CPU seconds (user + system) the process has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(") ")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(ticks / 100.0)
    }

    fn child_status(&self) -> Option<std::process::ExitStatus> {
        // try_wait needs &mut; a clone of the id is enough to ask /proc.
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        match stat {
            Some(s) if s.contains(") Z ") => Some(std::process::ExitStatus::default()),
            Some(_) => None,
            None => Some(std::process::ExitStatus::default()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A digital letter as a case system would submit it.
pub fn digital_letter(pid: &str, title: &str, with_lenke: bool) -> serde_json::Value {
    use base64::Engine;
    let id = uuid::Uuid::new_v4().to_string();
    let content = base64::engine::general_purpose::STANDARD
        .encode(format!("{title}: brevet til {pid}.").as_bytes());
    let mut doc = serde_json::json!({
        "filename": "brev.txt",
        "mime": "text/plain",
        "title": title,
        "content_base64": content,
    });
    if with_lenke {
        doc["lenke"] = serde_json::json!({
            "url": "https://minside.example.no/barnehage/svar",
            "beskrivelse": { "text": "Svar på tilbudet om barnehageplass", "lang": "NO" },
            "knapp_tekst": { "text": "Svar", "lang": "NO" },
        });
    }
    serde_json::json!({
        "id": id,
        "personidentifikator": pid,
        "ikkesensitivtittel": title,
        "sikkerhetsnivaa": 3,
        "spraak": "NO",
        "documents": [doc],
    })
}

/// Persons of the KRR stand-in's default fixtures, by their `note`.
pub fn krr_person(data_dir: &Path, note_contains: &str) -> String {
    let text = std::fs::read_to_string(data_dir.join("krr/krr-fixtures.toml")).unwrap();
    let fx: toml::Table = toml::from_str(&text).unwrap();
    fx["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["note"]
                .as_str()
                .is_some_and(|n| n.contains(note_contains))
        })
        .and_then(|p| p["pid"].as_str())
        .unwrap_or_else(|| panic!("no KRR person with note containing {note_contains:?}"))
        .to_owned()
}
