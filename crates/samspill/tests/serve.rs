//! The `samspill` binary as an operator meets it: start, readiness, configuration errors,
//! secrets in `samspill config`, and SIGTERM. Runs on the backend named by
//! `SAMSPILL_TEST_BACKEND` (a fresh database per test).

mod common;

use futures::StreamExt;
use std::{
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_samspill");

fn samspill(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SAMSPILL_CONFIG")
        .env("SAMSPILL_LOG__FILTER", "info");
    cmd
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &std::path::Path, db_url: &str) -> Server {
    let lease = common::reserve_port();
    let port = lease.port;
    let child = samspill(dir)
        .args(["serve", "--roles", "all"])
        .env("SAMSPILL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMSPILL_DATABASE__URL", db_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serves_ready_on_the_configured_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = store::testing::fresh_db().await;
    let mut server = start(dir.path(), test_db.url()).await;
    let client = reqwest::Client::new();

    let r = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "readyz on {}", test_db.url());

    // The migrations ran against the database we named.
    let db = test_db.db();
    db.ping().await.unwrap();

    sigterm(&server.child);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let mut log = String::new();
    use std::io::Read;
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("samspill listening"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn embedded_default_creates_its_sqlite_file_under_data() {
    if store::testing::test_backend() != store::Backend::Sqlite {
        println!("SKIPPED: embedded default is SQLite; this run is on another backend");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease = common::reserve_port();
    let port = lease.port;
    let mut child = samspill(dir.path())
        .arg("serve")
        .env("SAMSPILL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            break r.status();
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert!(dir.path().join("data/samspill.sqlite").exists());
}

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = samspill(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn bad_configuration_exits_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("SAMSPILL_SERVER__LISTEN", "nowhere", "server.listen"),
        (
            "SAMSPILL_SERVER__REQUEST_TIMEOUT_SECS",
            "0",
            "server.request_timeout_secs",
        ),
        ("SAMSPILL_DATABASE__URL", "mysql://db/x", "database.url"),
        ("SAMSPILL_SERVER__BOGUS", "1", "bogus"),
        (
            "SAMSPILL_IDENTITY__ALLOW_SYNTHETIC",
            "perhaps",
            "identity.allow_synthetic",
        ),
        ("SAMSPILL_BLOBS__BACKEND", "s3", "blobs.s3.bucket"),
    ];
    for (key, value, named) in cases {
        let out = run(dir.path(), &["serve"], &[(key, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}={value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{key}={value}: {stderr}"
        );
        assert!(
            stderr.contains(named),
            "{key}={value} should name {named}: {stderr}"
        );
    }
    // Nothing was started, so nothing was written.
    assert!(!dir.path().join("data").exists());

    let missing = run(dir.path(), &["--config", "nope.toml", "config"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));

    let unknown_role = run(dir.path(), &["serve", "--roles", "kaffe"], &[]);
    assert_eq!(unknown_role.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown_role.stderr).contains("unknown role \"kaffe\""));
}

#[test]
fn config_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("samspill.toml"),
        "[server]\nlisten = \"127.0.0.1:9999\"\n[database]\nurl = \"postgres://app:hunter2@db:5432/s\"\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["--config", "samspill.toml", "config"],
        &[
            ("SAMSPILL_BLOBS__S3__SECRET_ACCESS_KEY", "very-secret-key"),
            ("SAMSPILL_DATABASE__PASSWORD", "other-secret"),
            ("SAMSPILL_LOG__FORMAT", "json"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["hunter2", "very-secret-key", "other-secret"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("format = \"json\""), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    // The output is itself valid TOML.
    let parsed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(parsed["server"]["listen"].as_str(), Some("127.0.0.1:9999"));
}

#[test]
fn the_example_configuration_is_complete_and_valid() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--config", example.to_str().unwrap(), "config"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every key the binary knows appears in the example (the example documents them all).
    let effective: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let example: toml::Table = toml::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => keys(&path, inner, out),
                _ => out.push(path),
            }
        }
    }
    let (mut want, mut have) = (Vec::new(), Vec::new());
    keys("", &effective, &mut want);
    keys("", &example, &mut have);
    let missing: Vec<_> = want.iter().filter(|k| !have.contains(k)).collect();
    assert!(missing.is_empty(), "config.example.toml lacks {missing:?}");
}

#[test]
fn migrate_applies_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(dir.path(), &["migrate"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    assert!(dir.path().join("data/samspill.sqlite").exists());
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = store::testing::fresh_db().await;
    let lease = common::reserve_port();
    let port = lease.port;
    let mut child = samspill(dir.path())
        .args(["serve", "--roles", "maskinporten"])
        .env("SAMSPILL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMSPILL_DATABASE__URL", test_db.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A token request whose body trickles in over ~1.5 s; SIGTERM arrives in the middle.
    let chunks = futures::stream::iter(0..15).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(if i == 0 {
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=".to_owned()
        } else {
            "x".repeat(10)
        })
    });
    let request = client
        .post(format!("{base}/maskinporten/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted …
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "the listener should be closed after SIGTERM"
    );
    // … but the request in flight gets its whole answer (an OAuth error: the grant is junk).
    let response = in_flight
        .await
        .unwrap()
        .expect("a response, not a reset connection");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// `samspill jobs`: counts per queue and state, the dead jobs with their last error, and
/// `retry`, which queues a dead job again and refuses (exit 1, one line) an id that is not a
/// dead job, moving nothing when any id is malformed.
#[tokio::test]
async fn jobs_shows_dead_work_and_queues_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = store::testing::fresh_db().await;
    let jobs = store::Jobs::new(test_db.db().clone());
    let dead = jobs
        .enqueue_job(
            store::NewJob::new("formidler.deliver", &"x")
                .unwrap()
                .max_attempts(1),
        )
        .await
        .unwrap()
        .id;
    let now = time::OffsetDateTime::now_utc() + Duration::from_secs(1);
    let job = jobs
        .claim("formidler.deliver", "w", Duration::from_secs(60), now)
        .await
        .unwrap()
        .unwrap();
    jobs.fail(&job, "provider answered 400\nsecond line", now)
        .await
        .unwrap();
    let queued = jobs
        .enqueue_job(store::NewJob::new("postkasse.receipt", &"y").unwrap())
        .await
        .unwrap()
        .id;
    let run = |args: &[&str]| {
        let out = samspill(dir.path())
            .args(args)
            .env("SAMSPILL_DATABASE__URL", test_db.url())
            .env("SAMSPILL_LOG__FILTER", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, counts, _) = run(&["jobs"]);
    assert_eq!(code, Some(0));
    let row = |queue: &str| -> Vec<String> {
        counts
            .lines()
            .find(|l| l.starts_with(queue))
            .unwrap_or_else(|| panic!("{queue} in {counts}"))
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("formidler.deliver"), ["0", "0", "0", "1"]);
    assert_eq!(row("postkasse.receipt"), ["1", "0", "0", "0"]);

    let (code, listed, _) = run(&["jobs", "dead"]);
    assert_eq!(code, Some(0));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.starts_with(&format!("{dead}  formidler.deliver  ")),
        "{listed}"
    );
    assert!(
        listed.contains("attempts 1  provider answered 400 second line"),
        "{listed}"
    );
    let (_, other_queue, _) = run(&["jobs", "dead", "--queue", "postkasse.receipt"]);
    assert_eq!(other_queue, "");

    let (code, _, err) = run(&["jobs", "retry", &dead.to_string(), "no-such-id"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("\"no-such-id\" is not a job id"), "{err}");
    assert_eq!(
        jobs.get(dead).await.unwrap().unwrap().state,
        store::JobState::Dead,
        "nothing moved"
    );
    let (code, _, err) = run(&["jobs", "retry", &queued.to_string()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("not dead (or no such job): {queued}")),
        "{err}"
    );
    let (code, out, _) = run(&["jobs", "retry", &dead.to_string()]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), format!("{dead} queued again").as_str())
    );
    assert_eq!(
        jobs.get(dead).await.unwrap().unwrap().state,
        store::JobState::Queued
    );
}
