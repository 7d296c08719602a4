//! Randomly mangled but correctly signed grants: the token endpoint answers 200 or an OAuth2
//! error, never a 5xx, and only grants that satisfy every rule get a token.

use std::sync::OnceLock;

use maskinporten::{Config, JWT_BEARER, defaults};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

struct Shared {
    rt: tokio::runtime::Runtime,
    base: String,
    issuer: String,
    key: pki::SigningKey,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(2)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (base, key) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let public = format!("http://{}/mp", listener.local_addr().unwrap());
            let data_dir = dir.path().join("maskinporten");
            std::fs::create_dir_all(&data_dir).unwrap();
            let env = web::RoleEnv {
                data_dir,
                public_url: url::Url::parse(&public).unwrap(),
                fnr_policy: domain::FnrPolicy::PERMISSIVE,
            };
            let app = axum::Router::new().nest(
                "/mp",
                maskinporten::router(&Config::default(), &env)
                    .await
                    .unwrap(),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
            (public, pki.signing_key(defaults::KOMMUNE_KEY).unwrap())
        });
        Shared {
            rt,
            issuer: format!("{base}/"),
            base,
            key,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        proptest::collection::vec(".{0,10}", 0..3).prop_map(|v| json!(v)),
        Just(json!({"a": {"b": [1, 2]}})),
    ]
}

fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aud".to_owned()),
        Just("iss".to_owned()),
        Just("iat".to_owned()),
        Just("exp".to_owned()),
        Just("jti".to_owned()),
        Just("scope".to_owned()),
        Just("resource".to_owned()),
        Just("pid".to_owned()),
        Just("consumer_org".to_owned()),
        "[a-z_]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mangled_grants_never_cause_server_errors(
        changes in proptest::collection::vec((claim_name(), value()), 1..4),
        drop in proptest::option::of(claim_name()),
    ) {
        let s = shared();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let mut c: Map<String, Value> = json!({
            "aud": s.issuer, "iss": defaults::KOMMUNE_CLIENT, "iat": now, "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(), "scope": "digitalpostinnbygger:send",
        }).as_object().unwrap().clone();
        for (k, v) in changes {
            c.insert(k, v);
        }
        if let Some(k) = drop {
            c.remove(&k);
        }
        let grant = s.key.sign_jwt(&Value::Object(c.clone()), None).unwrap();
        let (status, body) = s.rt.block_on(async {
            let r = s.http.post(format!("{}/token", s.base))
                .form(&[("grant_type", JWT_BEARER), ("assertion", grant.as_str())])
                .send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        });
        prop_assert!(status == 200 || status == 400, "{status} {body}");
        if status == 200 {
            // Only grants that kept every rule.
            prop_assert_eq!(c.get("aud"), Some(&json!(s.issuer)));
            prop_assert_eq!(c.get("iss"), Some(&json!(defaults::KOMMUNE_CLIENT)));
            let iat = c.get("iat").and_then(Value::as_i64).unwrap();
            let exp = c.get("exp").and_then(Value::as_i64).unwrap();
            prop_assert!((now - iat).abs() <= 10 && exp > iat && exp - iat <= 120);
        } else {
            prop_assert!(body["error"].is_string() && body["error_description"].is_string());
        }
    }
}
