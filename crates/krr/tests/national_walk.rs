//! All three stand-ins on one loopback listener with their generated default fixtures, as
//! `samspill serve --roles idporten,maskinporten,krr` runs them: a citizen logs in through
//! ID-porten and reads their own KRR entry with an access token asked for KRR (RFC 8707
//! `resource`), which an ID token or an access token for another API cannot; an organization
//! gets a Maskinporten token and looks the same citizen up.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use clients::maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn attr(page: &str, marker: &str) -> String {
    let i = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in {page}"))
        + marker.len();
    let end = page[i..].find('"').unwrap() + i;
    page[i..end].replace("&amp;", "&")
}

#[tokio::test]
async fn citizen_and_organization_read_krr_through_the_stand_ins() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let env = |role: &str| {
        let data_dir = dir.path().join(role);
        std::fs::create_dir_all(&data_dir).unwrap();
        web::RoleEnv {
            data_dir,
            public_url: url::Url::parse(&format!("{origin}/{role}")).unwrap(),
            fnr_policy: domain::FnrPolicy::PERMISSIVE,
        }
    };
    let app = axum::Router::new()
        .nest(
            "/idporten",
            idporten::router(&Default::default(), &env("idporten"))
                .await
                .unwrap(),
        )
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
    let kari = krr::default_pids().digipost;

    // Citizen: authorization code flow with PKCE at the default Min side client.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let mut v = [0u8; 32];
    openssl::rand::rand_bytes(&mut v).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(v);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect_uri = format!("{origin}/minside/auth/callback");
    // The KRR role's default audience for citizens' tokens, and another API this client uses.
    let krr_api = format!("{origin}/krr/rest/v1");
    let other_api = format!("{origin}/postkasse/digipost/api/v1");
    let r = browser
        .get(format!("{origin}/idporten/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "samspill-minside"),
            ("redirect_uri", &redirect_uri),
            ("scope", "openid krr:user/kontaktinformasjon.read"),
            ("state", "s1"),
            ("nonce", "n1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("acr_values", "idporten-loa-substantial"),
            ("resource", &krr_api),
            ("resource", &other_api),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let action = attr(&page, "method=\"post\" action=\"");
    let rid = attr(&page, "name=\"rid\" value=\"");
    let r = browser
        .post(action)
        .form(&[
            ("rid", rid.as_str()),
            ("pid", kari.as_str()),
            ("acr", "idporten-loa-substantial"),
            ("action", "login"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let api = reqwest::Client::new();
    let tok: Value = api
        .post(format!("{origin}/idporten/token"))
        .basic_auth(
            "samspill-minside",
            Some("samspill-minside-secret-change-me"),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("resource", krr_api.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = tok["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tok}"));
    let me: Value = api
        .get(format!("{origin}/krr/rest/v1/person"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["personidentifikator"], kari, "{me}");
    assert_eq!(me["reservasjon"], "NEI");
    assert!(me["kontaktinformasjon"]["epostadresse"].is_string(), "{me}");
    assert!(
        me.get("digital_post").is_none(),
        "scope krr:user/digitalpost.read was not granted"
    );
    // Neither the ID token nor the same grant's access token for the other API reads it.
    let refused = |token: String, code: &'static str| {
        let api = api.clone();
        let url = format!("{origin}/krr/rest/v1/person");
        async move {
            let r = api.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 401);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], code, "{body}");
        }
    };
    refused(
        tok["id_token"].as_str().unwrap().into(),
        "not_an_access_token",
    )
    .await;
    let other: Value = api
        .post(format!("{origin}/idporten/token"))
        .basic_auth(
            "samspill-minside",
            Some("samspill-minside-secret-change-me"),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tok["refresh_token"].as_str().unwrap()),
            ("resource", other_api.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_at = other["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{other}"));
    refused(other_at.into(), "wrong_audience").await;

    // Organization: Maskinporten token with the default kommune client, then a lookup.
    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    let cert = pki
        .issue_enterprise(&pki::demo::kommune(), pki::demo::KOMMUNE_NAME)
        .unwrap();
    let mp = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: format!("{origin}/maskinporten/"),
            token_endpoint: None,
            client_id: maskinporten::defaults::KOMMUNE_CLIENT.into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&cert),
        api.clone(),
    );
    let krr = clients::krr::KrrClient::new(
        clients::krr::KrrConfig::new(format!("{origin}/krr")),
        std::sync::Arc::new(mp),
        api,
    );
    let found = krr.lookup(std::slice::from_ref(&kari)).await.unwrap();
    assert_eq!(
        found[0]
            .digital_post
            .as_ref()
            .unwrap()
            .postkasseleverandoeradresse,
        "984661185"
    );
    assert_eq!(found[0].route(), clients::krr::Route::DigitalMailbox);
}
