//! The token client and the verifier against the real Maskinporten stand-in over HTTP.

use std::{sync::Arc, time::Duration};

use clients::{
    jwks::JwksCache,
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{JwtVerifier, MaskinportenVerifier, MaskinportenVerifierConfig},
};
use maskinporten::defaults;
use serde_json::json;
use web::auth::{HasTokenVerifier, Org, TokenSource, TokenVerifier};

struct Stand {
    issuer: String,
    pki: pki::TestPki,
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn serve(
    dir: &std::path::Path,
    listener: tokio::net::TcpListener,
    key: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let addr = listener.local_addr().unwrap();
    let data_dir = dir.join("maskinporten");
    std::fs::create_dir_all(&data_dir).unwrap();
    let env = web::RoleEnv {
        data_dir,
        public_url: url::Url::parse(&format!("http://{addr}/maskinporten")).unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let cfg = maskinporten::Config {
        signing_key: key.into(),
        pki_dir: shared_pki_dir(),
        ..Default::default()
    };
    let app = axum::Router::new().nest(
        "/maskinporten",
        maskinporten::router(&cfg, &env).await.unwrap(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap()
    });
    (tx, task)
}

/// One PKI for all runs (load-or-init): RSA key generation dominates start-up otherwise.
fn shared_pki_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients-mp-pki")
}

async fn start() -> Stand {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, task) = serve(dir.path(), listener, "maskinporten").await;
    let pki = pki::TestPki::load_or_init(shared_pki_dir()).unwrap();
    Stand {
        issuer: format!("http://{addr}/maskinporten/"),
        pki,
        dir,
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

impl Stand {
    fn client(&self, client_id: &str, key: GrantKey) -> MaskinportenClient {
        MaskinportenClient::new(
            MaskinportenConfig {
                issuer: self.issuer.clone(),
                token_endpoint: None,
                client_id: client_id.into(),
                refresh_margin_secs: 20,
                grant_lifetime_secs: 60,
            },
            key,
            reqwest::Client::new(),
        )
    }
    fn kommune(&self) -> MaskinportenClient {
        let cert = self
            .pki
            .issue_enterprise(&defaults::kommune(), "Samspill kommune")
            .unwrap();
        self.client(defaults::KOMMUNE_CLIENT, GrantKey::from_issued(&cert))
    }
    fn verifier(&self) -> MaskinportenVerifier {
        let mut jwks = JwksCache::new(format!("{}jwk", self.issuer), reqwest::Client::new());
        jwks.min_refetch_interval = Duration::ZERO;
        MaskinportenVerifier::from_jwt_verifier(JwtVerifier::new(self.issuer.clone(), jwks, None))
    }
    /// Restart the stand-in on the same address with another token-signing key.
    async fn restart_with_key(&mut self, key: &str) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let (tx, task) = serve(self.dir.path(), listener, key).await;
        self.stop = Some(tx);
        self.task = Some(task);
    }
}

#[tokio::test]
async fn token_client_caches_per_scope_set_and_verifier_maps_consumer() {
    let s = start().await;
    let c = s.kommune();
    let t1 = c
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    let t2 = c
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    assert_eq!(t1.access_token, t2.access_token);
    assert_eq!(c.fetch_count(), 1);
    // Same set in another order: same cache entry.
    let a = c
        .token("krr:global/digitalpost.read krr:global/kontaktinformasjon.read")
        .await
        .unwrap();
    let b = c
        .token("krr:global/kontaktinformasjon.read krr:global/digitalpost.read")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(c.fetch_count(), 2);

    let v = s.verifier();
    let p = v.principal(&t1.access_token).await.unwrap();
    assert_eq!(p.consumer.orgnr(), defaults::kommune());
    assert!(p.supplier.is_none());
    assert!(p.has_scope("digitalpostinnbygger:send"));
    assert!(p.require_scope("krr:global/digitalpost.read").is_err());
    assert_eq!(p.client_id.as_deref(), Some(defaults::KOMMUNE_CLIENT));

    // Registered key instead of certificate.
    let k = s.pki.signing_key(defaults::KOMMUNE_KEY).unwrap();
    let kc = s.client(defaults::KOMMUNE_CLIENT, GrantKey::from_signing_key(&k));
    let t = kc
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    assert_eq!(
        v.principal(&t.access_token).await.unwrap().consumer.orgnr(),
        defaults::kommune()
    );
}

#[tokio::test]
async fn delegated_token_has_supplier_and_refusals_surface() {
    let s = start().await;
    let cert = s
        .pki
        .issue_enterprise(&defaults::databehandler(), "DB")
        .unwrap();
    let c = s.client(defaults::DATABEHANDLER_CLIENT, GrantKey::from_issued(&cert));
    let t = c
        .token_for("digitalpostinnbygger:send", Some(&defaults::kommune()))
        .await
        .unwrap();
    let p = s.verifier().principal(&t.access_token).await.unwrap();
    // Services authorize on consumer (the kommune), not on the client (the databehandler).
    assert_eq!(p.consumer.orgnr(), defaults::kommune());
    assert_eq!(p.supplier.unwrap().orgnr(), defaults::databehandler());

    // Without delegation the databehandler has no scope of its own.
    let err = c
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap_err();
    match err {
        clients::ClientError::Refused { status, error, .. } => {
            assert_eq!(status, 400);
            assert_eq!(error, "invalid_scope");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn verifier_refuses_forged_expired_future_and_foreign_tokens() {
    let s = start().await;
    let v = s.verifier();
    let mp_key = s.pki.signing_key("maskinporten").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |iat: i64, exp: i64, iss: &str| {
        json!({"iss": iss, "iat": iat, "exp": exp, "scope": "digitalpostinnbygger:send",
               "consumer": {"authority": "iso6523-actorid-upis", "ID": format!("0192:{}", defaults::kommune())}})
    };
    let good = mp_key
        .sign_jwt(&claims(now, now + 60, &s.issuer), None)
        .unwrap();
    assert!(v.principal(&good).await.is_ok());
    let code =
        |r: Result<web::auth::OrgPrincipal, clients::verify::VerifyError>| r.unwrap_err().code();
    let expired = mp_key
        .sign_jwt(&claims(now - 300, now - 100, &s.issuer), None)
        .unwrap();
    assert_eq!(code(v.principal(&expired).await), "token_expired");
    let future = mp_key
        .sign_jwt(&claims(now + 300, now + 400, &s.issuer), None)
        .unwrap();
    assert_eq!(code(v.principal(&future).await), "token_not_yet_valid");
    let foreign_iss = mp_key
        .sign_jwt(&claims(now, now + 60, "https://evil.example/"), None)
        .unwrap();
    assert_eq!(code(v.principal(&foreign_iss).await), "wrong_issuer");
    let stranger = pki::SigningKey::generate().unwrap();
    let unknown = stranger
        .sign_jwt(&claims(now, now + 60, &s.issuer), None)
        .unwrap();
    assert_eq!(code(v.principal(&unknown).await), "unknown_kid");
    // A stranger's signature under Maskinporten's kid.
    let mut h = serde_json::Map::new();
    h.insert("kid".into(), json!(mp_key.kid));
    let forged = pki::jose::sign(
        h,
        &claims(now, now + 60, &s.issuer),
        pki::jose::Alg::RS256,
        stranger.key(),
    )
    .unwrap();
    assert_eq!(code(v.principal(&forged).await), "invalid_signature");
    let no_consumer = mp_key
        .sign_jwt(&json!({"iss": s.issuer, "exp": now + 60}), None)
        .unwrap();
    assert_eq!(code(v.principal(&no_consumer).await), "missing_claim");
    for junk in ["", "abc", "a.b.c", "<script>.x.y"] {
        assert_eq!(code(v.principal(junk).await), "malformed_token");
    }
    // An audience-restricted verifier refuses an `unspecified` token.
    let strict = MaskinportenVerifier::new(
        &MaskinportenVerifierConfig {
            issuer: s.issuer.clone(),
            jwks_uri: None,
            audience: Some("https://formidler.example/".into()),
        },
        reqwest::Client::new(),
    );
    let t = s
        .kommune()
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    assert_eq!(
        code(strict.principal(&t.access_token).await),
        "wrong_audience"
    );
}

#[tokio::test]
async fn verifier_follows_key_rotation() {
    let mut s = start().await;
    let v = s.verifier();
    let old = s
        .kommune()
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    v.principal(&old.access_token).await.unwrap();
    s.restart_with_key("maskinporten-rotated").await;
    let new = s
        .kommune()
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    assert_ne!(
        pki::jose::decode(&old.access_token).unwrap().kid(),
        pki::jose::decode(&new.access_token).unwrap().kid()
    );
    // Unknown kid: the verifier refetches the JWKS and accepts the new key...
    v.principal(&new.access_token).await.unwrap();
    // ...and the retired key is gone with the refetch.
    assert_eq!(
        v.principal(&old.access_token).await.unwrap_err().code(),
        "unknown_kid"
    );
}

#[derive(Clone)]
struct AppState(Arc<dyn TokenVerifier>);
impl HasTokenVerifier for AppState {
    fn token_verifier(&self) -> Arc<dyn TokenVerifier> {
        self.0.clone()
    }
}

async fn whoami(Org(p): Org) -> Result<String, web::Problem> {
    p.require_scope("digitalpostinnbygger:send")?;
    Ok(p.consumer.to_string())
}

#[tokio::test]
async fn org_extractor_authorizes_on_consumer() {
    let s = start().await;
    let app = axum::Router::new()
        .route("/whoami", axum::routing::get(whoami))
        .with_state(AppState(s.verifier().into_dyn()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/whoami");
    let t = s
        .kommune()
        .token_for("digitalpostinnbygger:send", None)
        .await
        .unwrap();
    let r = http
        .get(&url)
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("0192:{}", defaults::kommune())
    );
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .get(&url)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_token");
    let t = s
        .kommune()
        .token_for("krr:global/digitalpost.read", None)
        .await
        .unwrap();
    let r = http
        .get(&url)
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
