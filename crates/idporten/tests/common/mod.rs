//! Test harness: the stand-in on a real loopback listener, mounted under `/idporten`, with a
//! fixture of three clients (secret, secret in another sector, private_key_jwt).
#![allow(dead_code)]

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use idporten::{ClientRegistration, Config, Fixtures, TestPerson, synthetic_pid};
use pki::SigningKey;
use sha2::{Digest, Sha256};

pub struct Srv {
    pub _dir: tempfile::TempDir,
    /// Issuer, e.g. `http://127.0.0.1:1234/idporten`.
    pub base: String,
    pub origin: String,
    /// Browser-like: keeps cookies, does not follow redirects.
    pub http: reqwest::Client,
    /// A server-side client for /token and /par (made once: native-tls setup is costly).
    pub api: reqwest::Client,
    pub client_key: SigningKey,
    pub pid_a: String,
    pub pid_b: String,
}

pub const SECRET_A: &str = "secret-a";

pub fn client(id: &str, origin: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: id.into(),
        name: Some(format!("Tjeneste {id}")),
        client_secret: Some(format!("secret-{}", id.trim_start_matches("rp-"))),
        jwks: None,
        token_endpoint_auth_method: None,
        redirect_uris: vec![format!("{origin}/{id}/callback")],
        post_logout_redirect_uris: vec![format!("{origin}/{id}/")],
        frontchannel_logout_uri: Some(format!("{origin}/{id}/frontchannel-logout")),
        scopes: vec!["openid".into(), "profile".into()],
        refresh_tokens: id != "rp-b",
        sector: None,
    }
}

pub async fn start(cfg: Config) -> Srv {
    start_with(cfg, |_| {}).await
}

pub async fn start_with(cfg: Config, tweak: impl FnOnce(&mut Fixtures)) -> Srv {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let base = format!("{origin}/idporten");

    let client_key = SigningKey::generate().unwrap();
    let mut jwt_client = client("rp-jwt", &origin);
    jwt_client.client_secret = None;
    jwt_client.token_endpoint_auth_method = Some("private_key_jwt".into());
    jwt_client.jwks = Some(serde_json::json!({ "keys": [client_key.jwk()] }));
    let mut other_sector = client("rp-c", &origin);
    other_sector.sector = Some("rp-a".into());
    let pid_a = synthetic_pid(1, 1, 90).unwrap().as_string();
    let pid_b = synthetic_pid(2, 2, 80).unwrap().as_string();
    let mut fx = Fixtures {
        clients: vec![
            client("rp-a", &origin),
            client("rp-b", &origin),
            other_sector,
            jwt_client,
        ],
        persons: vec![
            TestPerson {
                pid: pid_a.clone(),
                name: "Kari Nordmann".into(),
            },
            TestPerson {
                pid: pid_b.clone(),
                name: "Ola Nordmann".into(),
            },
        ],
    };
    tweak(&mut fx);
    std::fs::write(dir.path().join("fx.toml"), toml::to_string(&fx).unwrap()).unwrap();
    let cfg = Config {
        fixtures: "fx.toml".into(),
        ..cfg
    };
    let env = web::RoleEnv {
        data_dir: dir.path().to_path_buf(),
        public_url: base.parse().unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let app = axum::Router::new().nest("/idporten", idporten::router(&cfg, &env).await.unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Srv {
        _dir: dir,
        base,
        origin,
        http: browser(),
        api: reqwest::Client::new(),
        client_key,
        pid_a,
        pid_b,
    }
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b
}

impl Srv {
    pub fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    pub fn redirect_uri(&self, client: &str) -> String {
        format!("{}/{client}/callback", self.origin)
    }

    /// Standard authorize parameters for `client` with PKCE challenge `ch`.
    pub fn params(&self, client: &str, ch: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", &self.redirect_uri(client)),
            ("scope", "openid profile"),
            ("state", "st-123"),
            ("nonce", "no-456"),
            ("code_challenge", ch),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub async fn authorize(
        &self,
        http: &reqwest::Client,
        params: &[(String, String)],
    ) -> reqwest::Response {
        http.get(self.url("/authorize"))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// Posts the login form found in `page` for `pid` at `acr`; returns the response.
    pub async fn submit_login(
        &self,
        http: &reqwest::Client,
        page: &str,
        pid: &str,
        acr: &str,
    ) -> reqwest::Response {
        let (action, rid) = parse_form(page);
        http.post(action)
            .form(&[
                ("rid", rid.as_str()),
                ("pid", pid),
                ("acr", acr),
                ("action", "login"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A full login for `client` in `http`'s browser; returns the `code` and the verifier.
    pub async fn login(
        &self,
        http: &reqwest::Client,
        client: &str,
        pid: &str,
        acr: &str,
    ) -> (String, String) {
        self.login_with(http, client, pid, acr, &[]).await
    }

    /// [`Srv::login`] with `extra` authorization request parameters (which may repeat).
    pub async fn login_with(
        &self,
        http: &reqwest::Client,
        client: &str,
        pid: &str,
        acr: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let (v, ch) = pkce();
        let mut p = self.params(client, &ch);
        p.push(("acr_values".into(), acr.into()));
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let r = self.authorize(http, &p).await;
        let loc = if r.status() == 200 {
            let page = r.text().await.unwrap();
            let r = self.submit_login(http, &page, pid, acr).await;
            assert_eq!(r.status(), 303, "login form accepted");
            location(&r)
        } else {
            assert_eq!(r.status(), 303, "single sign-on answers at once");
            location(&r)
        };
        let q = query(&loc);
        assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
        assert_eq!(q.get("iss"), Some(&self.base));
        (q["code"].clone(), v)
    }

    pub async fn token_basic(
        &self,
        client: &str,
        secret: &str,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.api
            .post(self.url("/token"))
            .basic_auth(client, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri(client)),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A client assertion for `rp-jwt` with the claims overridden by `patch`.
    pub fn assertion(&self, patch: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut c = serde_json::json!({
            "iss": "rp-jwt", "sub": "rp-jwt", "aud": self.base,
            "iat": now, "exp": now + 60, "jti": URL_SAFE_NO_PAD.encode(rand_bytes()),
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        self.client_key.sign_jwt(&c, Some("JWT")).unwrap()
    }
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The login form's action and hidden `rid`.
pub fn parse_form(page: &str) -> (String, String) {
    let attr = |marker: &str| {
        let i = page
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} not in page:\n{page}"))
            + marker.len();
        let end = page[i..].find('"').unwrap() + i;
        page[i..end].replace("&amp;", "&")
    };
    (
        attr("method=\"post\" action=\""),
        attr("name=\"rid\" value=\""),
    )
}

/// Decodes a JWT's header without checking it.
pub fn header(jwt: &str) -> serde_json::Value {
    let p = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

/// Decodes a JWT's payload without checking it (the tests check signatures separately).
pub fn claims(jwt: &str) -> serde_json::Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}
