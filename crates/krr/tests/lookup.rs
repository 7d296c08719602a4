//! The KRR stand-in with the Maskinporten stand-in, over real HTTP on loopback, used through
//! the `clients` crate and raw HTTP.

use std::sync::Arc;

use clients::{
    krr::{KrrClient, KrrConfig, Person, Reservasjon, Route, Status, Varslingsstatus},
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
};
use maskinporten::defaults;
use serde_json::{Value, json};

const KONTAKT: &str = "krr:global/kontaktinformasjon.read";
const DIGITAL: &str = "krr:global/digitalpost.read";

struct Stand {
    base: String,
    pki: pki::TestPki,
    idporten_key: pki::SigningKey,
    idporten_issuer: String,
    /// The `aud` citizens' tokens need at `/rest/v1/person` by default.
    citizen_api: String,
    mp: MaskinportenClient,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Stand {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut krr::Config)) -> Stand {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let env = |role: &str| {
        let data_dir = dir.path().join(role);
        std::fs::create_dir_all(&data_dir).unwrap();
        web::RoleEnv {
            data_dir,
            public_url: url::Url::parse(&format!("{base}/{role}")).unwrap(),
            fnr_policy: domain::FnrPolicy::PERMISSIVE,
        }
    };
    // One PKI for every test run (load-or-init under cargo's per-target scratch folder):
    // RSA key generation dominates start-up otherwise.
    let pki_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("krr-lookup-pki");
    let mp_cfg = maskinporten::Config {
        pki_dir: pki_dir.clone(),
        ..Default::default()
    };
    let mut krr_cfg = krr::Config {
        pki_dir: pki_dir.clone(),
        ..Default::default()
    };
    tweak(&mut krr_cfg);
    let mp_router = maskinporten::router(&mp_cfg, &env("maskinporten"))
        .await
        .unwrap();
    let krr_router = krr::router(&krr_cfg, &env("krr")).await.unwrap();
    let pki = pki::TestPki::load_or_init(&pki_dir).unwrap();
    // An ID-porten issuer of our own: a JWKS route and a key we sign citizen tokens with.
    let idporten_key = pki.signing_key("test-idporten").unwrap();
    let jwks = pki::jose::Jwks {
        keys: vec![idporten_key.jwk()],
    };
    let app = axum::Router::new()
        .nest("/maskinporten", mp_router)
        .nest("/krr", krr_router)
        .route(
            "/idporten/jwks.json",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cert = pki
        .issue_enterprise(&defaults::kommune(), "Samspill kommune")
        .unwrap();
    let mp = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: format!("{base}/maskinporten/"),
            token_endpoint: None,
            client_id: defaults::KOMMUNE_CLIENT.into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&cert),
        reqwest::Client::new(),
    );
    Stand {
        idporten_issuer: format!("{base}/idporten"),
        citizen_api: format!("{base}/krr/rest/v1"),
        base: format!("{base}/krr"),
        pki,
        idporten_key,
        mp,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Stand {
    async fn token(&self, scopes: &str) -> String {
        self.mp.token_for(scopes, None).await.unwrap().access_token
    }
    async fn raw(
        &self,
        token: Option<&str>,
        ct: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/rest/v2/personer", self.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn lookup(&self, scopes: &str, ids: &[&str]) -> Vec<Person> {
        let t = self.token(scopes).await;
        let (status, body) = self
            .raw(
                Some(&t),
                "application/json",
                json!({"personidentifikatorer": ids}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["personer"].clone()).unwrap()
    }
    /// `GET /rest/v1/person` with `token`: status, content type and body.
    async fn person(&self, token: String) -> (u16, String, Value) {
        let r = self
            .http
            .get(format!("{}/rest/v1/person", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        (r.status().as_u16(), ct, r.json().await.unwrap())
    }
    fn krr_client(&self) -> KrrClient {
        KrrClient::new(
            KrrConfig::new(self.base.clone()),
            Arc::new(self.mp.clone()),
            reqwest::Client::new(),
        )
    }
}

#[tokio::test]
async fn returned_fields_follow_the_token_scopes() {
    let s = start().await;
    let p = krr::default_pids();
    let ids = [p.digipost.as_str()];

    let only_contact = &s.lookup(KONTAKT, &ids).await[0];
    assert_eq!(only_contact.reservasjon, Reservasjon::Nei);
    assert!(
        only_contact
            .kontaktinformasjon
            .as_ref()
            .unwrap()
            .epostadresse
            .is_some()
    );
    assert_eq!(
        only_contact.varslingsstatus,
        Some(Varslingsstatus::KanVarsles)
    );
    assert_eq!(only_contact.spraak.as_deref(), Some("nb"));
    assert!(only_contact.digital_post.is_none());
    assert!(only_contact.sertifikat.is_none());

    let only_digital = &s.lookup(DIGITAL, &ids).await[0];
    assert_eq!(only_digital.reservasjon, Reservasjon::Nei);
    assert!(only_digital.kontaktinformasjon.is_none());
    assert!(only_digital.varslingsstatus.is_none());
    assert_eq!(
        only_digital
            .digital_post
            .as_ref()
            .unwrap()
            .postkasseleverandoeradresse,
        "984661185"
    );
    let cert = pki::cert_from_b64(only_digital.sertifikat.as_ref().unwrap()).unwrap();
    assert_eq!(pki::orgnr_of(&cert).unwrap().to_string(), "984661185");

    let both = &s.lookup(&format!("{KONTAKT} {DIGITAL}"), &ids).await[0];
    assert!(both.kontaktinformasjon.is_some() && both.digital_post.is_some());
    assert_eq!(both.route(), Route::DigitalMailbox);

    // A Maskinporten token without any KRR scope: 403.
    let t = s.token("digitalpostinnbygger:send").await;
    let (status, body) = s
        .raw(
            Some(&t),
            "application/json",
            json!({"personidentifikatorer": ids}).to_string(),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "insufficient_scope");
}

#[tokio::test]
async fn every_fixture_case_answers_in_request_order() {
    let s = start().await;
    let p = krr::default_pids();
    let ids = [
        p.not_registered.as_str(),
        p.classic.as_str(),
        p.d_nummer.as_str(),
        p.deleted.as_str(),
        p.stale.as_str(),
        p.no_mailbox.as_str(),
        p.reserved.as_str(),
        p.eboks.as_str(),
        p.digipost.as_str(),
    ];
    let r = s.lookup(&format!("{KONTAKT} {DIGITAL}"), &ids).await;
    let got: Vec<&str> = r.iter().map(|x| x.personidentifikator.as_str()).collect();
    assert_eq!(got, ids);
    let [
        not_reg,
        classic,
        dnr,
        deleted,
        stale,
        no_mb,
        reserved,
        eboks,
        digipost,
    ] = &r[..]
    else {
        panic!()
    };

    assert_eq!(not_reg.status, Status::IkkeRegistrert);
    assert_eq!(
        not_reg.varslingsstatus,
        Some(Varslingsstatus::KanIkkeVarsles)
    );
    assert!(not_reg.kontaktinformasjon.is_none() && not_reg.digital_post.is_none());
    assert_eq!(not_reg.route(), Route::Print);

    assert_eq!(deleted.status, Status::Slettet);
    assert!(
        deleted.kontaktinformasjon.is_none()
            && deleted.digital_post.is_none()
            && deleted.sertifikat.is_none()
    );
    assert_eq!(deleted.route(), Route::Print);

    assert_eq!(reserved.reservasjon, Reservasjon::Ja);
    assert!(reserved.reservasjonstidspunkt.is_some());
    assert_eq!(
        reserved.varslingsstatus,
        Some(Varslingsstatus::KanIkkeVarsles)
    );
    assert!(reserved.digital_post.is_none());
    assert_eq!(reserved.route(), Route::Print);

    assert_eq!(stale.status, Status::Aktiv);
    assert_eq!(stale.varslingsstatus, Some(Varslingsstatus::KanIkkeVarsles));
    assert!(
        stale.kontaktinformasjon.is_none()
            && stale.digital_post.is_none()
            && stale.sertifikat.is_none()
    );

    assert_eq!(no_mb.varslingsstatus, Some(Varslingsstatus::KanVarsles));
    assert!(no_mb.digital_post.is_none());
    assert_eq!(no_mb.route(), Route::NotifyOnly);
    assert_eq!(no_mb.spraak.as_deref(), Some("nn"));

    assert_eq!(
        eboks
            .digital_post
            .as_ref()
            .unwrap()
            .postkasseleverandoeradresse,
        "996460320"
    );
    assert_eq!(
        dnr.digital_post
            .as_ref()
            .unwrap()
            .postkasseleverandoeradresse,
        "996460320"
    );
    let dfnr =
        domain::Fodselsnummer::parse(&dnr.personidentifikator, &domain::FnrPolicy::PERMISSIVE)
            .unwrap();
    assert_eq!(dfnr.kind(), domain::FnrKind::DNummer);
    assert_eq!(digipost.route(), Route::DigitalMailbox);
    assert_eq!(classic.route(), Route::DigitalMailbox);
    assert!(
        !domain::Fodselsnummer::parse(&classic.personidentifikator, &domain::FnrPolicy::PRODUCTION)
            .unwrap()
            .is_synthetic()
    );
    // Provider certificates chain to the test CA.
    s.pki
        .verify_x5c(&[digipost.sertifikat.clone().unwrap()])
        .unwrap();
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn many_ids(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    'outer: for year in 0..100u8 {
        for month in 1..=12u8 {
            for day in 1..=28u8 {
                if out.len() == n {
                    break 'outer;
                }
                out.push(krr::synthetic_pid(day, month, year).unwrap().as_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn client_batches_large_lookups_in_order() {
    let s = start().await;
    let p = krr::default_pids();
    let mut ids = many_ids(2500);
    ids[1700] = p.digipost.clone();
    let client = s.krr_client();
    let persons = client.lookup(&ids).await.unwrap();
    assert_eq!(persons.len(), 2500);
    assert_eq!(client.request_count(), 3, "2500 ids = 1000 + 1000 + 500");
    assert_eq!(s.mp.fetch_count(), 1, "one cached token for all batches");
    for (asked, got) in ids.iter().zip(&persons) {
        assert_eq!(asked, &got.personidentifikator);
    }
    assert_eq!(persons[1700].route(), Route::DigitalMailbox);
    assert_eq!(persons[0].status, Status::IkkeRegistrert);

    // Print certificate lookup through the client.
    let print = client.print_certificate().await.unwrap();
    assert_eq!(
        print.postkasseleverandoer_adresse,
        pki::demo::print().to_string()
    );
    let leaf = s.pki.verify_x5c(&[print.x509_sertifikat]).unwrap();
    assert_eq!(pki::orgnr_of(&leaf), Some(pki::demo::print()));
}

#[tokio::test]
async fn citizen_reads_own_entry_with_idporten_token() {
    let s = start().await;
    let p = krr::default_pids();
    let now = now_secs();
    let token = |claims: Value| s.idporten_key.sign_jwt(&claims, Some("at+jwt")).unwrap();
    let get = |t: String| async {
        let (status, _, body) = s.person(t).await;
        (status, body)
    };
    let good = json!({"iss": s.idporten_issuer, "aud": s.citizen_api, "pid": p.eboks,
                      "scope": "openid krr:user/kontaktinformasjon.read",
                      "iat": now, "exp": now + 120, "acr": "idporten-loa-substantial"});
    let (status, body) = get(token(good.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["personidentifikator"], p.eboks);
    assert!(body["kontaktinformasjon"]["epostadresse"].is_string());
    assert!(body.get("digital_post").is_none());

    let mut digital = good.clone();
    digital["scope"] = json!("openid krr:user/digitalpost.read");
    let (status, body) = get(token(digital)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["digital_post"]["postkasseleverandoeradresse"],
        "996460320"
    );
    assert!(body.get("kontaktinformasjon").is_none());

    // Signed answer on request: JWS with KRR's (Digdir's) certificate in x5c.
    let r = s
        .http
        .get(format!("{}/rest/v1/person", s.base))
        .header("accept", "application/jose")
        .bearer_auth(token(good.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/jose");
    let jws = pki::jose::decode(&r.text().await.unwrap()).unwrap();
    let x5c: Vec<String> = serde_json::from_value(jws.header["x5c"].clone()).unwrap();
    let leaf = s.pki.verify_x5c(&x5c).unwrap();
    assert_eq!(pki::orgnr_of(&leaf).unwrap().to_string(), "991825827");
    assert!(jws.verify(&leaf.public_key().unwrap()).unwrap());
    assert_eq!(jws.claims["personidentifikator"], json!(p.eboks));

    let mut c = good.clone();
    c["scope"] = json!("openid profile");
    assert_eq!(get(token(c)).await.0, 403);
    let mut c = good.clone();
    c["iss"] = json!("https://test.idporten.no");
    assert_eq!(get(token(c)).await.1["code"], "wrong_issuer");
    let mut c = good.clone();
    c["exp"] = json!(now - 60);
    assert_eq!(get(token(c)).await.1["code"], "token_expired");
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("pid");
    assert_eq!(get(token(c)).await.1["code"], "missing_claim");
    // A Maskinporten token is not an ID-porten token.
    let mp = s.token(KONTAKT).await;
    assert_eq!(get(mp).await.0, 401);
}

/// Signed by ID-porten is not enough: only an access token (`typ` `at+jwt`) issued for this
/// API (`aud` = `<public url>/rest/v1` unless configured) reads the citizen's entry.
#[tokio::test]
async fn citizen_entry_needs_an_access_token_for_this_api() {
    let s = start().await;
    let p = krr::default_pids();
    let now = now_secs();
    let get = |t: String| s.person(t);
    let refused = |res: (u16, String, Value), code: &str| {
        assert_eq!(res.0, 401, "{res:?}");
        assert_eq!(res.1, "application/problem+json", "{res:?}");
        assert_eq!(res.2["code"], code, "{res:?}");
    };
    let good = json!({"iss": s.idporten_issuer, "aud": s.citizen_api, "pid": p.eboks,
                      "scope": "openid krr:user/kontaktinformasjon.read",
                      "iat": now, "exp": now + 120, "acr": "idporten-loa-substantial"});
    let sign = |claims: &Value, typ: Option<&str>| s.idporten_key.sign_jwt(claims, typ).unwrap();

    let (status, _, body) = get(sign(&good, Some("at+jwt"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["personidentifikator"], p.eboks);
    // The media-type form of the header (RFC 9068 §4) and `aud` as an array holding ours.
    assert_eq!(get(sign(&good, Some("application/at+jwt"))).await.0, 200);
    let mut several = good.clone();
    several["aud"] = json!(["https://other.example/api", s.citizen_api]);
    assert_eq!(get(sign(&several, Some("at+jwt"))).await.0, 200);

    // An ID token (typ JWT, or none), even with our audience and KRR scope.
    refused(get(sign(&good, Some("JWT"))).await, "not_an_access_token");
    refused(get(sign(&good, None)).await, "not_an_access_token");
    // Access tokens for another API, for ID-porten itself (no `resource` asked), for the
    // role's bare URL, or with no `aud` at all.
    for aud in [
        json!("https://postkasse.example/postkasse/digipost/api/v1"),
        json!(s.idporten_issuer),
        json!(s.base),
        json!(["https://other.example/api"]),
        Value::Null,
    ] {
        let mut c = good.clone();
        if aud.is_null() {
            c.as_object_mut().unwrap().remove("aud");
        } else {
            c["aud"] = aud;
        }
        refused(get(sign(&c, Some("at+jwt"))).await, "wrong_audience");
    }
}

#[tokio::test]
async fn configured_idporten_audience_replaces_the_default() {
    let aud = "https://krr.example.no/citizen";
    let s = start_with(|c| c.idporten_audience = Some(aud.into())).await;
    let now = now_secs();
    let token_typ = |aud: &str, typ: Option<&str>| {
        let claims = json!({"iss": s.idporten_issuer, "aud": aud, "pid": krr::default_pids().eboks,
                            "scope": "krr:user/kontaktinformasjon.read", "iat": now, "exp": now + 120});
        s.idporten_key.sign_jwt(&claims, typ).unwrap()
    };
    let token = |aud: &str| token_typ(aud, Some("at+jwt"));
    let get = |t: String| async {
        let (status, _, body) = s.person(t).await;
        (status, body)
    };
    assert_eq!(get(token(aud)).await.0, 200);
    let (status, body) = get(token(&s.citizen_api)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "wrong_audience");
    // A configured audience still takes only access tokens.
    let (status, body) = get(token_typ(aud, Some("JWT"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "not_an_access_token");
}

#[tokio::test]
async fn hostile_input_gets_problem_json_never_500() {
    let s = start().await;
    let t = s.token(KONTAKT).await;
    let ok_body = json!({"personidentifikatorer": [krr::default_pids().digipost]}).to_string();
    let check = |res: (u16, Value), status: u16, code: &str| {
        assert_eq!(res.0, status, "{res:?}");
        assert_eq!(res.1["code"], code, "{res:?}");
        assert!(
            !res.1.to_string().contains("<script>"),
            "echoed markup: {res:?}"
        );
    };
    check(
        s.raw(None, "application/json", ok_body.clone()).await,
        401,
        "missing_token",
    );
    check(
        s.raw(Some("garbage"), "application/json", ok_body.clone())
            .await,
        401,
        "malformed_token",
    );
    // A token signed by a stranger under no known kid.
    let stranger = pki::SigningKey::generate().unwrap();
    let forged = stranger
        .sign_jwt(&json!({"iss": format!("{}/", s.base.replace("/krr", "/maskinporten")), "exp": 9_999_999_999i64, "scope": KONTAKT,
                          "consumer": {"authority": "iso6523-actorid-upis", "ID": "0192:984661185"}}), None)
        .unwrap();
    check(
        s.raw(Some(&forged), "application/json", ok_body.clone())
            .await,
        401,
        "unknown_kid",
    );
    // Expired and future tokens signed with Maskinporten's own key.
    let mp_key = s.pki.signing_key("maskinporten").unwrap();
    let now = now_secs();
    let mp_claims = |iat: i64, exp: i64| {
        json!({"iss": format!("{}/", s.base.replace("/krr", "/maskinporten")), "iat": iat, "exp": exp, "scope": KONTAKT,
               "consumer": {"authority": "iso6523-actorid-upis", "ID": format!("0192:{}", defaults::kommune())}})
    };
    let expired = mp_key
        .sign_jwt(&mp_claims(now - 600, now - 300), None)
        .unwrap();
    check(
        s.raw(Some(&expired), "application/json", ok_body.clone())
            .await,
        401,
        "token_expired",
    );
    let future = mp_key
        .sign_jwt(&mp_claims(now + 600, now + 700), None)
        .unwrap();
    check(
        s.raw(Some(&future), "application/json", ok_body.clone())
            .await,
        401,
        "token_not_yet_valid",
    );
    let fresh = mp_key.sign_jwt(&mp_claims(now, now + 60), None).unwrap();
    assert_eq!(
        s.raw(Some(&fresh), "application/json", ok_body.clone())
            .await
            .0,
        200
    );
    check(
        s.raw(Some(&t), "text/plain", ok_body.clone()).await,
        415,
        "unsupported_media_type",
    );
    check(
        s.raw(
            Some(&t),
            "application/x-www-form-urlencoded",
            "personidentifikatorer=1",
        )
        .await,
        415,
        "unsupported_media_type",
    );
    check(
        s.raw(Some(&t), "application/json", "x".repeat(300_000))
            .await,
        413,
        "payload_too_large",
    );
    check(
        s.raw(Some(&t), "application/json", "{not json").await,
        400,
        "invalid_request",
    );
    check(
        s.raw(
            Some(&t),
            "application/json",
            r#"{"personidentifikatorer": [], "x": 1}"#,
        )
        .await,
        400,
        "invalid_request",
    );
    check(
        s.raw(
            Some(&t),
            "application/json",
            r#"{"personidentifikatorer": "12345678901"}"#,
        )
        .await,
        400,
        "invalid_request",
    );
    check(
        s.raw(
            Some(&t),
            "application/json",
            r#"{"personidentifikatorer": []}"#,
        )
        .await,
        400,
        "invalid_batch_size",
    );
    let too_many = json!({"personidentifikatorer": many_ids(1001)}).to_string();
    check(
        s.raw(Some(&t), "application/json", too_many).await,
        400,
        "invalid_batch_size",
    );
    for bad in [
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "12345678901",
        "1234567890'",
        "../../etc/passwd",
        "",
    ] {
        let body =
            json!({"personidentifikatorer": [krr::default_pids().digipost, bad]}).to_string();
        let res = s.raw(Some(&t), "application/json", body).await;
        assert_eq!(res.1["index"], 1, "{res:?}");
        check(res, 400, "invalid_personidentifikator");
    }
    // Print certificate and own-person endpoints without tokens.
    let r = s
        .http
        .get(format!("{}/rest/v2/printsertifikat", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(format!("{}/rest/v1/person", s.base))
        .bearer_auth("a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}
