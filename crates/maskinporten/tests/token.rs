//! The Maskinporten stand-in over real HTTP on loopback: accepted grants, replays and every
//! rule of the contract table broken once, plus hostile input.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use maskinporten::{Config, JWT_BEARER, defaults};
use serde_json::{Map, Value, json};

struct Stand {
    base: String,
    issuer: String,
    pki: pki::TestPki,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start() -> Stand {
    // One PKI for all runs (load-or-init): RSA key generation dominates start-up otherwise.
    let cfg = Config {
        pki_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("maskinporten-token-pki"),
        ..Config::default()
    };
    start_with(cfg, tempfile::tempdir().unwrap()).await
}

async fn start_with(cfg: Config, dir: tempfile::TempDir) -> Stand {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let public = format!("http://{addr}/maskinporten");
    let data_dir = dir.path().join("maskinporten");
    std::fs::create_dir_all(&data_dir).unwrap();
    let env = web::RoleEnv {
        data_dir,
        public_url: url::Url::parse(&public).unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let pki_dir = env.data_dir.join(&cfg.pki_dir);
    let router = maskinporten::router(&cfg, &env).await.unwrap();
    let app = axum::Router::new().nest("/maskinporten", router);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let pki = pki::TestPki::load_or_init(pki_dir).unwrap();
    Stand {
        issuer: format!("{public}/"),
        base: public,
        pki,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

enum Auth<'a> {
    Cert(&'a pki::Issued),
    Kid(&'a pki::SigningKey),
}

fn sign(auth: &Auth, claims: &Value) -> String {
    let mut h = Map::new();
    match auth {
        Auth::Cert(i) => {
            h.insert("x5c".into(), json!(i.x5c()));
            pki::jose::sign(h, claims, pki::jose::Alg::RS256, i.key()).unwrap()
        }
        Auth::Kid(k) => {
            h.insert("kid".into(), json!(k.kid));
            pki::jose::sign(h, claims, pki::jose::Alg::RS256, k.key()).unwrap()
        }
    }
}

impl Stand {
    fn kommune_cert(&self) -> pki::Issued {
        self.pki
            .issue_enterprise(&defaults::kommune(), "Samspill kommune")
            .unwrap()
    }
    fn kommune_key(&self) -> pki::SigningKey {
        self.pki.signing_key(defaults::KOMMUNE_KEY).unwrap()
    }
    fn claims(&self, client: &str, scope: &str) -> Value {
        let t = now();
        json!({
            "aud": self.issuer, "iss": client, "iat": t, "exp": t + 100,
            "jti": uuid::Uuid::new_v4().to_string(), "scope": scope,
        })
    }
    async fn post_form(&self, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn grant(&self, assertion: &str) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", assertion)
            .finish();
        self.post_form(body).await
    }
    async fn jwks(&self) -> pki::jose::Jwks {
        let meta: Value = self
            .http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                self.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.http
            .get(meta["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    /// Verify an access token against the published JWKS and return its claims.
    async fn verified(&self, token: &str) -> Map<String, Value> {
        let d = pki::jose::decode(token).unwrap();
        let jwks = self.jwks().await;
        let jwk = jwks.find(d.kid().unwrap()).unwrap();
        assert!(d.verify(&jwk.to_public_key().unwrap()).unwrap());
        d.claims
    }
}

fn assert_refused(res: &(u16, Value), error: &str, needle: &str) {
    assert_eq!(res.0, 400, "{res:?}");
    assert_eq!(res.1["error"], error, "{res:?}");
    let desc = res.1["error_description"].as_str().unwrap();
    assert!(desc.contains(needle), "{needle:?} not in {desc:?}");
}

#[tokio::test]
async fn metadata_and_jwks_derive_from_public_url() {
    let s = start().await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], s.issuer);
    assert!(s.issuer.ends_with("/maskinporten/"));
    assert_eq!(meta["token_endpoint"], format!("{}token", s.issuer));
    assert_eq!(meta["grant_types_supported"][0], JWT_BEARER);
    let jwks = s.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    assert!(jwks.keys[0].to_public_key().is_ok());
}

#[tokio::test]
async fn certificate_grant_accepted_then_replay_refused() {
    let s = start().await;
    let cert = s.kommune_cert();
    let claims = s.claims(
        defaults::KOMMUNE_CLIENT,
        "digitalpostinnbygger:send krr:global/digitalpost.read",
    );
    let grant = sign(&Auth::Cert(&cert), &claims);
    let (status, body) = s.grant(&grant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"],
        "digitalpostinnbygger:send krr:global/digitalpost.read"
    );
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let at = s.verified(body["access_token"].as_str().unwrap()).await;
    assert_eq!(at["iss"], s.issuer);
    assert_eq!(at["client_id"], defaults::KOMMUNE_CLIENT);
    assert_eq!(at["client_amr"], "virksomhetssertifikat");
    assert_eq!(at["aud"], "unspecified");
    assert_eq!(
        at["consumer"],
        json!({"authority": "iso6523-actorid-upis", "ID": format!("0192:{}", defaults::kommune())})
    );
    assert!(at.get("supplier").is_none());

    // The same grant again: refused.
    let replay = s.grant(&grant).await;
    assert_refused(&replay, "invalid_grant", "already been used");

    // A fresh grant reusing the jti: refused too.
    let mut again = claims.clone();
    again["iat"] = json!(now() - 1);
    let replay2 = s.grant(&sign(&Auth::Cert(&cert), &again)).await;
    assert_refused(&replay2, "invalid_grant", "already been used");

    // A grant without jti can still not be used twice.
    let mut no_jti = s.claims(defaults::KOMMUNE_CLIENT, "digitalpostinnbygger:send");
    no_jti.as_object_mut().unwrap().remove("jti");
    let g = sign(&Auth::Cert(&cert), &no_jti);
    assert_eq!(s.grant(&g).await.0, 200);
    assert_refused(&s.grant(&g).await, "invalid_grant", "already been used");
}

#[tokio::test]
async fn registered_key_and_delegation_grants() {
    let s = start().await;
    let key = s.kommune_key();
    let (status, body) = s
        .grant(&sign(
            &Auth::Kid(&key),
            &s.claims(
                defaults::KOMMUNE_CLIENT,
                "krr:global/kontaktinformasjon.read",
            ),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let at = s.verified(body["access_token"].as_str().unwrap()).await;
    assert_eq!(at["client_amr"], "private_key_jwt");

    // The databehandler sends on behalf of the kommune.
    let cert = s
        .pki
        .issue_enterprise(&defaults::databehandler(), "Samspill databehandler")
        .unwrap();
    let mut c = s.claims(defaults::DATABEHANDLER_CLIENT, "digitalpostinnbygger:send");
    c["consumer_org"] = json!(defaults::kommune().to_string());
    c["resource"] = json!(["https://formidler.example/messages"]);
    let (status, body) = s.grant(&sign(&Auth::Cert(&cert), &c)).await;
    assert_eq!(status, 200, "{body}");
    let at = s.verified(body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        at["consumer"]["ID"],
        format!("0192:{}", defaults::kommune())
    );
    assert_eq!(
        at["supplier"]["ID"],
        format!("0192:{}", defaults::databehandler())
    );
    assert_eq!(at["delegation_source"], "https://tt02.altinn.no/");
    assert_eq!(at["aud"], "https://formidler.example/messages");
}

#[tokio::test]
async fn every_rule_broken_once_is_refused() {
    let s = start().await;
    let cert = s.kommune_cert();
    let key = s.kommune_key();
    let c = || s.claims(defaults::KOMMUNE_CLIENT, "digitalpostinnbygger:send");
    let t = now();
    type Case = (&'static str, Value, &'static str, &'static str);
    let mut cases: Vec<Case> = Vec::new();
    let mut with = |name, f: &dyn Fn(&mut Value), error, needle| {
        let mut v = c();
        f(&mut v);
        cases.push((name, v, error, needle));
    };
    let token_endpoint = format!("{}token", s.issuer);
    let no_slash = s.issuer.trim_end_matches('/').to_owned();
    let issuer = s.issuer.clone();
    with(
        "aud = token endpoint",
        &|v| v["aud"] = json!(token_endpoint),
        "invalid_grant",
        "MP-110",
    );
    with(
        "aud without trailing slash",
        &|v| v["aud"] = json!(no_slash),
        "invalid_grant",
        "MP-110",
    );
    with(
        "aud with two values",
        &|v| v["aud"] = json!([issuer, "https://x.example/"]),
        "invalid_grant",
        "MP-110",
    );
    with(
        "aud missing",
        &|v| {
            v.as_object_mut().unwrap().remove("aud");
        },
        "invalid_grant",
        "MP-110",
    );
    with(
        "lifetime 121 s",
        &|v| {
            v["iat"] = json!(t);
            v["exp"] = json!(t + 121);
        },
        "invalid_grant",
        "exp",
    );
    with(
        "exp before iat",
        &|v| {
            v["iat"] = json!(t);
            v["exp"] = json!(t - 1);
        },
        "invalid_grant",
        "exp",
    );
    with(
        "iat 30 s old",
        &|v| {
            v["iat"] = json!(t - 30);
            v["exp"] = json!(t + 60);
        },
        "invalid_grant",
        "iat",
    );
    with(
        "iat 30 s ahead",
        &|v| {
            v["iat"] = json!(t + 30);
            v["exp"] = json!(t + 60);
        },
        "invalid_grant",
        "iat",
    );
    with(
        "expired",
        &|v| {
            v["iat"] = json!(t - 8);
            v["exp"] = json!(t - 2);
        },
        "invalid_grant",
        "expired",
    );
    with(
        "iat as string",
        &|v| v["iat"] = json!(t.to_string()),
        "invalid_grant",
        "iat",
    );
    with(
        "unknown claim",
        &|v| v["sub"] = json!("x"),
        "invalid_grant",
        "Unknown claim",
    );
    with(
        "scope not registered",
        &|v| v["scope"] = json!("digitalpostinnbygger:send nav:secret.read"),
        "invalid_scope",
        "not registered",
    );
    with(
        "scope missing",
        &|v| {
            v.as_object_mut().unwrap().remove("scope");
        },
        "invalid_scope",
        "scope",
    );
    with(
        "scope empty",
        &|v| v["scope"] = json!("  "),
        "invalid_scope",
        "scope",
    );
    with(
        "consumer_org not delegated",
        &|v| v["consumer_org"] = json!(maskinporten::orgnr_near(95_000_000).to_string()),
        "invalid_scope",
        "delegated",
    );
    with(
        "consumer_org malformed",
        &|v| v["consumer_org"] = json!("12345"),
        "invalid_grant",
        "consumer_org",
    );
    with(
        "pid invalid",
        &|v| v["pid"] = json!("12345678901"),
        "invalid_grant",
        "pid",
    );
    with(
        "authorization_details",
        &|v| v["authorization_details"] = json!([{"type": "urn:altinn:systemuser"}]),
        "invalid_authorization_details",
        "not supported",
    );
    with(
        "unknown client",
        &|v| v["iss"] = json!("no-such-client"),
        "invalid_client",
        "Unknown client",
    );
    with(
        "resource not a URL",
        &|v| v["resource"] = json!(["<script>"]),
        "invalid_target",
        "resource",
    );
    for (name, claims, error, needle) in &cases {
        for auth in [Auth::Cert(&cert), Auth::Kid(&key)] {
            let res = s.grant(&sign(&auth, claims)).await;
            assert_eq!(res.0, 400, "{name}: {res:?}");
            assert_eq!(res.1["error"], *error, "{name}: {res:?}");
            let d = res.1["error_description"].as_str().unwrap();
            assert!(d.contains(needle), "{name}: {needle:?} not in {d:?}");
        }
    }

    // Header rules.
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = pki::TestPki::load_or_init(foreign_dir.path()).unwrap();
    let forged = foreign
        .issue_enterprise(&defaults::kommune(), "Fake kommune")
        .unwrap();
    assert_refused(
        &s.grant(&sign(&Auth::Cert(&forged), &c())).await,
        "invalid_grant",
        "MP-120",
    );
    let other_org = s
        .pki
        .issue_enterprise(&defaults::databehandler(), "DB")
        .unwrap();
    assert_refused(
        &s.grant(&sign(&Auth::Cert(&other_org), &c())).await,
        "invalid_grant",
        "MP-120",
    );
    let unknown_key = pki::SigningKey::generate().unwrap();
    assert_refused(
        &s.grant(&sign(&Auth::Kid(&unknown_key), &c())).await,
        "invalid_grant",
        "kid",
    );
    // Registered kid, but signed by another key.
    let mut h = Map::new();
    h.insert("kid".into(), json!(key.kid));
    let wrong = pki::jose::sign(h, &c(), pki::jose::Alg::RS256, unknown_key.key()).unwrap();
    assert_refused(&s.grant(&wrong).await, "invalid_grant", "signature");
    // Both kid and x5c.
    let mut h = Map::new();
    h.insert("kid".into(), json!(key.kid));
    h.insert("x5c".into(), json!(cert.x5c()));
    let both = pki::jose::sign(h, &c(), pki::jose::Alg::RS256, key.key()).unwrap();
    assert_refused(&s.grant(&both).await, "invalid_grant", "either kid or x5c");
    // RS512 is allowed.
    let mut h = Map::new();
    h.insert("kid".into(), json!(key.kid));
    let rs512 = pki::jose::sign(h, &c(), pki::jose::Alg::RS512, key.key()).unwrap();
    assert_eq!(s.grant(&rs512).await.0, 200);
    // alg none and HS256 with the public key as secret (classic confusion attack).
    for alg in ["none", "HS256"] {
        let hdr = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": key.kid}).to_string());
        let pay = URL_SAFE_NO_PAD.encode(c().to_string());
        let tok = format!("{hdr}.{pay}.{}", URL_SAFE_NO_PAD.encode(b"sig"));
        assert_refused(&s.grant(&tok).await, "invalid_grant", "MP-100");
    }
}

#[tokio::test]
async fn hostile_input_gets_oauth_errors_never_500() {
    let s = start().await;
    // Wrong content types.
    for ct in [
        "application/json",
        "text/html",
        "multipart/form-data; boundary=x",
        "",
    ] {
        let mut req = s
            .http
            .post(format!("{}/token", s.base))
            .body("{\"grant_type\":\"x\"}");
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{ct}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{ct}");
    }
    // Oversized body.
    let big = format!(
        "grant_type={}&assertion={}",
        JWT_BEARER,
        "a".repeat(200_000)
    );
    let res = s.post_form(big).await;
    assert_eq!(res.0, 413);
    assert_eq!(res.1["error"], "invalid_request");
    // Missing and wrong parameters.
    assert_eq!(
        s.post_form(String::new()).await.1["error"],
        "invalid_request"
    );
    assert_eq!(
        s.post_form("grant_type=client_credentials".into()).await.1["error"],
        "unsupported_grant_type"
    );
    assert_eq!(
        s.post_form(format!("grant_type={JWT_BEARER}")).await.1["error"],
        "invalid_request"
    );
    assert_eq!(
        s.post_form(format!(
            "grant_type={JWT_BEARER}&grant_type={JWT_BEARER}&assertion=a"
        ))
        .await
        .1["error"],
        "invalid_request"
    );
    // Malformed JWTs and injection strings.
    let inj = "' OR 1=1; DROP TABLE clients;-- <script>alert(1)</script>";
    let inj_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": inj}).to_string()),
        URL_SAFE_NO_PAD.encode(json!({"iss": inj, "aud": inj, "scope": inj}).to_string()),
        URL_SAFE_NO_PAD.encode(b"x")
    );
    for bad in [
        "",
        "abc",
        "a.b.c",
        "....",
        "eyJhbGciOiJSUzI1NiJ9..",
        inj,
        "%00%ff",
        &"x".repeat(40_000),
        &inj_token,
    ] {
        let res = s.grant(bad).await;
        assert!(res.0 == 400, "{bad:.40}: {res:?}");
        let e = res.1["error"].as_str().unwrap();
        assert!(
            ["invalid_grant", "invalid_request", "invalid_client"].contains(&e),
            "{e}"
        );
        assert!(
            !res.1.to_string().contains("<script>"),
            "echoed markup: {res:?}"
        );
    }
    // Injection in the scope of a correctly signed grant.
    let cert = s.kommune_cert();
    let claims = s.claims(defaults::KOMMUNE_CLIENT, inj);
    assert_refused(
        &s.grant(&sign(&Auth::Cert(&cert), &claims)).await,
        "invalid_scope",
        "Malformed scope",
    );
    // Wrong method.
    let r = s
        .http
        .get(format!("{}/token", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn configured_trust_anchor_admits_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let other = pki::TestPki::load_or_init(dir.path().join("other-ca")).unwrap();
    let cert = other
        .issue_enterprise(&defaults::kommune(), "Kommune med annen CA")
        .unwrap();
    let cfg = Config {
        trust_anchors: vec!["../other-ca/ca.crt".into()],
        ..Config::default()
    };
    let s = start_with(cfg, dir).await;
    let claims = s.claims(defaults::KOMMUNE_CLIENT, "digitalpostinnbygger:send");
    let (status, body) = s.grant(&sign(&Auth::Cert(&cert), &claims)).await;
    assert_eq!(status, 200, "{body}");
    // A third CA is still refused.
    let third_dir = tempfile::tempdir().unwrap();
    let third = pki::TestPki::load_or_init(third_dir.path()).unwrap();
    let c3 = third.issue_enterprise(&defaults::kommune(), "X").unwrap();
    let claims = s.claims(defaults::KOMMUNE_CLIENT, "digitalpostinnbygger:send");
    assert_refused(
        &s.grant(&sign(&Auth::Cert(&c3), &claims)).await,
        "invalid_grant",
        "MP-120",
    );
}
