//! An independent client (Python: PyJWT + requests) obtains a Maskinporten token from the
//! stand-in and calls KRR. Runs `$SAMSPILL_PYTHON` (else `python3`); prints SKIPPED when the
//! modules are missing (CI installs them with `scripts/setup-test-env`).

use std::process::Command;

use maskinporten::defaults;

#[tokio::test]
async fn python_client_gets_token_and_calls_krr() {
    let python = std::env::var("SAMSPILL_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import jwt, requests, cryptography"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        println!(
            "SKIPPED: {python} lacks PyJWT/requests/cryptography (run scripts/setup-test-env)"
        );
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let env = |role: &str| {
        let data_dir = dir.path().join(role);
        std::fs::create_dir_all(&data_dir).unwrap();
        web::RoleEnv {
            data_dir,
            public_url: url::Url::parse(&format!("{base}/{role}")).unwrap(),
            fnr_policy: domain::FnrPolicy::PERMISSIVE,
        }
    };
    let app = axum::Router::new()
        .nest(
            "/maskinporten",
            maskinporten::router(&Default::default(), &env("maskinporten"))
                .await
                .unwrap(),
        )
        .nest(
            "/krr",
            krr::router(&Default::default(), &env("krr")).await.unwrap(),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    let cert = pki
        .issue_enterprise(&defaults::kommune(), "Samspill kommune")
        .unwrap();
    let key = dir.path().join("kommune.key.pem");
    let chain = dir.path().join("kommune.chain.pem");
    std::fs::write(&key, &cert.key_pem).unwrap();
    std::fs::write(&chain, format!("{}{}", cert.cert_pem, cert.chain.join(""))).unwrap();
    let pids = krr::default_pids();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/maskinporten_krr.py");

    let out = tokio::task::spawn_blocking({
        let base = base.clone();
        move || {
            Command::new(&python)
                .arg(script)
                .args(["--issuer", &format!("{base}/maskinporten/")])
                .args(["--client-id", defaults::KOMMUNE_CLIENT])
                .args(["--orgnr", &defaults::kommune().to_string()])
                .args(["--key", key.to_str().unwrap()])
                .args(["--chain", chain.to_str().unwrap()])
                .args(["--krr", &format!("{base}/krr")])
                .args(["--pid-mailbox", &pids.digipost])
                .args(["--pid-reserved", &pids.reserved])
                .args(["--provider", &pki::demo::digipost().to_string()])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}
