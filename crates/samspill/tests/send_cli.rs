//! `samspill send` against a running `samspill serve` with the sender's world (Maskinporten
//! and KRR stand-ins, the access point, the mailbox providers, the avsender role): submit a
//! TOML letter, wait for it to be sent, follow it to `delivered` with the provider's
//! verified receipt, waits that end at once (past the status, never reaching it, a misspelled
//! status) or time out, and the refusals. Runs on the backend named by
//! `SAMSPILL_TEST_BACKEND`.

mod common;

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
        .env_remove("SAMSPILL_AVSENDER_URL")
        .env_remove("SAMSPILL_AVSENDER_API_KEY")
        .env("SAMSPILL_LOG__FILTER", "warn");
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
        .args([
            "serve",
            "--roles",
            "maskinporten,krr,formidler,postkasse,avsender",
        ])
        .env("SAMSPILL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMSPILL_DATABASE__URL", db_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    samspill(dir).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn send_a_toml_letter_and_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = store::testing::fresh_db().await;
    let server = start(dir.path(), test_db.url()).await;
    let url = format!("{}/avsender", server.base);
    // The development key the role generated on first start.
    let key_file = dir.path().join("data/avsender/api-key");
    assert!(key_file.exists(), "no generated API key");
    let key_file = key_file.to_str().unwrap().to_owned();

    let pid = krr::default_pids().digipost;
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(dir.path().join("tilbud.pdf"), b"%PDF-1.4\n% samspill\n").unwrap();
    std::fs::write(
        dir.path().join("brev.toml"),
        format!(
            r#"
id = "{id}"
personidentifikator = "{pid}"
ikkesensitivtittel = "Tilbud om barnehageplass"
sikkerhetsnivaa = 3

[[documents]]
file = "tilbud.pdf"
mime = "application/pdf"
title = "Tilbud om barnehageplass"

[documents.lenke]
url = "https://minside.kommune.no/barnehage/svar"
beskrivelse = {{ text = "Svar på tilbudet innen fristen.", lang = "nb" }}
"#
        ),
    )
    .unwrap();

    let out = run(
        dir.path(),
        &[
            "send",
            "--letter",
            "brev.toml",
            "--url",
            &url,
            "--api-key-file",
            &key_file,
            "--wait",
            "30",
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("letter {id} accepted")),
        "{stdout}"
    );
    // Sent, or already delivered when the mailbox was quick.
    assert!(
        stdout.contains("  sent") || stdout.contains("  delivered"),
        "{stdout}"
    );

    // Again: the same letter, already known.
    let out = run(
        dir.path(),
        &[
            "send",
            "--letter",
            "brev.toml",
            "--url",
            &url,
            "--api-key-file",
            &key_file,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already known"));

    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &id,
            "--json",
            "--wait-for",
            "delivered",
            "--timeout",
            "60",
            "--url",
            &url,
            "--api-key-file",
            &key_file,
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Through the access point to the mailbox and back: delivered, with Digipost's receipt.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "delivered", "{v:#}");
    assert_eq!(v["channel"], "digital");
    assert_eq!(v["provider"], pki::demo::digipost().to_string());
    let receipt = &v["receipts"][0];
    assert_eq!(receipt["type"], "leveringskvittering");
    assert_eq!(receipt["verified"], true);
    assert_eq!(receipt["issuer"], pki::demo::digipost().to_string());
    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &id,
            "--url",
            &url,
            "--api-key-file",
            &key_file,
        ],
    );
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("leveringskvittering from 984661185 (applied)"),
        "{}",
        text(&out.stdout)
    );

    // Waiting for a status the letter is already past ends at once, successfully.
    let wait_for = |status: &str, timeout: &str| {
        run(
            dir.path(),
            &[
                "send",
                "status",
                &id,
                "--wait-for",
                status,
                "--timeout",
                timeout,
                "--url",
                &url,
                "--api-key-file",
                &key_file,
            ],
        )
    };
    let out = wait_for("sent", "0");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Not reached within the timeout (nobody opens it): 1, with one line saying so.
    let out = wait_for("opened", "0");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("still delivered"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A delivered letter will not fail any more: 1 without waiting out the timeout.
    let out = wait_for("failed", "60");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("will not become failed"));
    // A misspelled status is a usage error.
    let out = wait_for("deliverd", "0");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("deliverd"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Refusals: unknown letter (1), wrong key (1), no key at all (2), no server (2).
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &unknown,
            "--url",
            &url,
            "--api-key-file",
            &key_file,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not_found"));
    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &id,
            "--url",
            &url,
            "--api-key",
            "wrong-key-0123456789",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid_api_key"));
    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &id,
            "--url",
            &url,
            "--api-key-file",
            "/nonexistent/key",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    // A port kept for this test that nothing listens on.
    let nobody = common::reserve_port();
    let out = run(
        dir.path(),
        &[
            "send",
            "status",
            &id,
            "--url",
            &format!("http://127.0.0.1:{}/avsender", nobody.port),
            "--api-key-file",
            &key_file,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
