//! The ID-porten stand-in over real HTTP on loopback: the happy paths and the documented
//! OAuth2/OIDC error for each kind of bad input.

mod common;

use common::*;
use idporten::Config;
use pki::jose::{VerifyingKey, decode_oidc, parse_jwks};
use serde_json::{Value, json};

const SUB: &str = "idporten-loa-substantial";
const HIGH: &str = "idporten-loa-high";

async fn jwks(s: &Srv) -> Vec<VerifyingKey> {
    let v: Value = reqwest::get(s.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    parse_jwks(&v).unwrap()
}

async fn oauth_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"].as_str().unwrap().to_owned(),
        v["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn discovery_is_under_the_public_url() {
    let s = start(Config::default()).await;
    let d: Value = reqwest::get(s.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], s.base.as_str());
    for (k, p) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("end_session_endpoint", "/logout"),
        ("jwks_uri", "/jwks.json"),
        ("pushed_authorization_request_endpoint", "/par"),
    ] {
        assert_eq!(d[k], s.url(p), "{k}");
    }
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["frontchannel_logout_session_supported"], json!(true));
    assert_eq!(jwks(&s).await.len(), 1);
}

#[tokio::test]
async fn code_flow_issues_contract_tokens_and_userinfo() {
    let s = start(Config::default()).await;
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let r = s.token_basic("rp-a", SECRET_A, &code, &v).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let keys = jwks(&s).await;
    let id_token = t["id_token"].as_str().unwrap();
    decode_oidc(id_token)
        .unwrap()
        .verify_with_jwks(&keys)
        .unwrap();
    let c = claims(id_token);
    assert_eq!(c["iss"], s.base.as_str());
    assert_eq!(c["aud"], "rp-a");
    assert_eq!(c["pid"], s.pid_a.as_str());
    assert_eq!(c["acr"], SUB);
    assert_eq!(c["amr"], json!(["TestID"]));
    assert_eq!(c["nonce"], "no-456");
    assert_eq!(c["locale"], "nb");
    assert_eq!(c["name"], "Kari Nordmann");
    assert!(c["sid"].as_str().unwrap().len() > 10);
    assert_ne!(c["sub"], c["pid"], "sub is pairwise, not the pid");
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    assert!(c["auth_time"].as_i64().is_some());

    let at = t["access_token"].as_str().unwrap();
    let ac = claims(at);
    assert_eq!(ac["client_id"], "rp-a");
    assert_eq!(ac["pid"], s.pid_a.as_str());
    assert_eq!(ac["scope"], "openid profile");
    assert_eq!(ac["acr"], SUB);

    let u: Value = reqwest::Client::new()
        .get(s.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["pid"], s.pid_a.as_str());
    assert_eq!(u["sub"], c["sub"]);

    // The id token is not an access token.
    let r = reqwest::Client::new()
        .get(s.url("/userinfo"))
        .bearer_auth(id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Single sign-on to another client in the same browser: same sid, other pairwise sub;
    // a client of the same sector sees the same sub.
    let (code_b, vb) = s.login(&s.http, "rp-b", &s.pid_a, SUB).await;
    let tb: Value = s
        .token_basic("rp-b", "secret-b", &code_b, &vb)
        .await
        .json()
        .await
        .unwrap();
    let cb = claims(tb["id_token"].as_str().unwrap());
    assert_eq!(cb["sid"], c["sid"]);
    assert_ne!(cb["sub"], c["sub"]);
    // Pairwise sub is stable: the next login to the same client gets the same one.
    let (code2, v2) = s.login(&browser(), "rp-a", &s.pid_a, SUB).await;
    let t2: Value = s
        .token_basic("rp-a", SECRET_A, &code2, &v2)
        .await
        .json()
        .await
        .unwrap();
    let c2 = claims(t2["id_token"].as_str().unwrap());
    assert_eq!(c2["sub"], c["sub"]);
    assert_ne!(c2["sid"], c["sid"], "another browser, another session");
    let (code_c, vc) = s.login(&s.http, "rp-c", &s.pid_a, SUB).await;
    let r = reqwest::Client::new()
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code_c),
            ("redirect_uri", &s.redirect_uri("rp-c")),
            ("code_verifier", &vc),
            ("client_id", "rp-c"),
            ("client_secret", "secret-c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "client_secret_post");
    let tc: Value = r.json().await.unwrap();
    assert_eq!(claims(tc["id_token"].as_str().unwrap())["sub"], c["sub"]);
}

#[tokio::test]
async fn step_up_prompt_login_and_prompt_none() {
    let s = start(Config::default()).await;
    s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let (_, ch) = pkce();

    // Session at substantial; high asks for a new login and offers only high.
    let mut p = s.params("rp-a", &ch);
    p.push(("acr_values".into(), HIGH.into()));
    let r = s.authorize(&s.http, &p).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("value=\"idporten-loa-high\""));
    assert!(!page.contains("value=\"idporten-loa-substantial\""));
    // Choosing a level below the request is refused.
    let r = s.submit_login(&s.http, &page, &s.pid_a, SUB).await;
    assert_eq!(r.status(), 400);
    let r = s.submit_login(&s.http, &page, &s.pid_a, HIGH).await;
    assert_eq!(r.status(), 303);

    // Legacy acr_values: Level4 is high, so the high session answers at once.
    let mut p = s.params("rp-a", &ch);
    p.push(("acr_values".into(), "Level4".into()));
    assert_eq!(s.authorize(&s.http, &p).await.status(), 303);

    // prompt=login always shows the form, even with a session.
    let mut p = s.params("rp-a", &ch);
    p.push(("prompt".into(), "login".into()));
    assert_eq!(s.authorize(&s.http, &p).await.status(), 200);

    // prompt=none without a session: login_required back to the client.
    let fresh = browser();
    let mut p = s.params("rp-a", &ch);
    p.push(("prompt".into(), "none".into()));
    let r = s.authorize(&fresh, &p).await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-123");
    // prompt=none with a session: a code at once.
    let r = s.authorize(&s.http, &p).await;
    assert!(query(&location(&r)).contains_key("code"));
}

#[tokio::test]
async fn authorize_errors() {
    let s = start(Config::default()).await;
    let (_, ch) = pkce();
    let fresh = browser();

    // Unknown client and unregistered redirect_uri: an error page, never a redirect.
    for (k, v, err) in [
        ("client_id", "nobody", "invalid_client"),
        ("redirect_uri", "https://evil.example/cb", "invalid_request"),
        ("redirect_uri", "", "invalid_request"),
    ] {
        let mut p = s.params("rp-a", &ch);
        p.retain(|(n, _)| n != k);
        p.push((k.into(), v.into()));
        let r = s.authorize(&fresh, &p).await;
        assert_eq!(r.status(), 400, "{k}={v}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains(err));
    }
    // Prefix of a registered URI is not the registered URI.
    let mut p = s.params("rp-a", &ch);
    p.retain(|(n, _)| n != "redirect_uri");
    p.push((
        "redirect_uri".into(),
        format!("{}/extra", s.redirect_uri("rp-a")),
    ));
    assert_eq!(s.authorize(&fresh, &p).await.status(), 400);

    // Errors the client can be told about come back as ?error=…&state=….
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("code_challenge_method", None, "invalid_request"),
        ("code_challenge", Some("too-short"), "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
        ("response_type", None, "invalid_request"),
        ("scope", Some("profile"), "invalid_scope"),
        ("scope", Some("openid altinn:secret"), "invalid_scope"),
        ("acr_values", Some("eidas-loa-high"), "invalid_request"),
        ("prompt", Some("select_account"), "invalid_request"),
        ("response_mode", Some("fragment"), "invalid_request"),
    ];
    for (k, v, err) in cases {
        let mut p = s.params("rp-a", &ch);
        p.retain(|(n, _)| n != k);
        if let Some(v) = v {
            p.push((k.into(), v.into()));
        }
        let r = s.authorize(&fresh, &p).await;
        assert_eq!(r.status(), 303, "{k}={v:?}");
        let q = query(&location(&r));
        assert_eq!(q["error"], err, "{k}={v:?}");
        assert_eq!(q["state"], "st-123");
        assert!(location(&r).starts_with(&s.redirect_uri("rp-a")));
    }
    // Repeated parameters are refused.
    let mut p = s.params("rp-a", &ch);
    p.push(("scope".into(), "openid".into()));
    assert_eq!(s.authorize(&fresh, &p).await.status(), 400);
    // A request_uri that /par never issued.
    let r = fresh
        .get(s.url("/authorize"))
        .query(&[("client_id", "rp-a"), ("request_uri", "urn:idporten:nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn token_errors() {
    let s = start(Config::default()).await;
    let http = reqwest::Client::new();

    // Wrong verifier, then the (burned) code again.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let (other, _) = pkce();
    let (st, e, _) = oauth_error(s.token_basic("rp-a", SECRET_A, &code, &other).await).await;
    assert_eq!((st, e.as_str()), (400, "invalid_grant"));
    let (_, e, d) = oauth_error(s.token_basic("rp-a", SECRET_A, &code, &v).await).await;
    assert_eq!(e, "invalid_grant");
    assert!(d.contains("already used"), "{d}");

    // Code reuse after success.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    assert_eq!(
        s.token_basic("rp-a", SECRET_A, &code, &v).await.status(),
        200
    );
    let (_, e, _) = oauth_error(s.token_basic("rp-a", SECRET_A, &code, &v).await).await;
    assert_eq!(e, "invalid_grant");

    // Another client cannot redeem the code.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let r = http
        .post(s.url("/token"))
        .basic_auth("rp-b", Some("secret-b"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &s.redirect_uri("rp-a")),
            ("code_verifier", &v),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_grant");

    // Client authentication failures: 401 invalid_client, with a Basic challenge.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let r = s.token_basic("rp-a", "wrong", &code, &v).await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(oauth_error(r).await.0, 401);
    let r = s.token_basic("nobody", "x", &code, &v).await;
    assert_eq!(oauth_error(r).await.1, "invalid_client");
    let r = http
        .post(s.url("/token"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(r).await,
        (
            401,
            "invalid_client".into(),
            "client authentication is required".into()
        )
    );
    // The secret client may not use private_key_jwt and vice versa.
    let r = http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "rp-jwt"),
            ("client_secret", "secret-jwt"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_client");
    // Two methods at once.
    let r = http
        .post(s.url("/token"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "rp-a"),
            ("client_secret", SECRET_A),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");

    // Request shape.
    let form = |extra: &[(&str, &str)]| {
        let mut f: Vec<(String, String)> = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &s.redirect_uri("rp-a")),
            ("code_verifier", v.as_str()),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        for (k, val) in extra {
            f.retain(|(n, _)| n != k);
            if !val.is_empty() {
                f.push((k.to_string(), val.to_string()));
            }
        }
        f
    };
    for (extra, want) in [
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (vec![("grant_type", "")], "invalid_request"),
        (vec![("code_verifier", "")], "invalid_request"),
        (vec![("code_verifier", "short")], "invalid_request"),
        (vec![("code", "")], "invalid_request"),
        (vec![("code", "forged-code")], "invalid_grant"),
        (
            vec![("redirect_uri", "https://evil.example/cb")],
            "invalid_grant",
        ),
    ] {
        let r = http
            .post(s.url("/token"))
            .basic_auth("rp-a", Some(SECRET_A))
            .form(&form(&extra))
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(r).await.1, want, "{extra:?}");
    }
    // Wrong content type, oversized body.
    let r = http
        .post(s.url("/token"))
        .basic_auth("rp-a", Some(SECRET_A))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");
    let big = format!(
        "grant_type=authorization_code&code={}",
        "a".repeat(200 * 1024)
    );
    let r = http
        .post(s.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    let (st, e, _) = oauth_error(r).await;
    assert_eq!((st, e.as_str()), (413, "invalid_request"));
}

#[tokio::test]
async fn expired_code_is_refused() {
    let s = start(Config {
        code_ttl_secs: 0,
        ..Config::default()
    })
    .await;
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let (_, e, d) = oauth_error(s.token_basic("rp-a", SECRET_A, &code, &v).await).await;
    assert_eq!(e, "invalid_grant");
    assert!(d.contains("expired"), "{d}");
}

#[tokio::test]
async fn private_key_jwt() {
    let s = start(Config::default()).await;
    let http = reqwest::Client::new();
    let redeem = |assertion: String, code: String, v: String| {
        let http = http.clone();
        let url = s.url("/token");
        let redirect = s.redirect_uri("rp-jwt");
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &v),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let (code, v) = s.login(&s.http, "rp-jwt", &s.pid_a, SUB).await;
    let good = s.assertion(json!({}));
    let r = redeem(good.clone(), code, v).await;
    assert_eq!(r.status(), 200);

    // The same assertion again (replayed jti).
    let (code, v) = s.login(&s.http, "rp-jwt", &s.pid_a, SUB).await;
    let (st, e, d) = oauth_error(redeem(good, code.clone(), v.clone()).await).await;
    assert_eq!((st, e.as_str()), (401, "invalid_client"));
    assert!(d.contains("jti"), "{d}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let other_key = pki::SigningKey::generate().unwrap();
    let b64 = pki::jose::b64;
    let bad: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            s.assertion(json!({"aud": "https://test.idporten.no"})),
        ),
        (
            "expired",
            s.assertion(json!({"iat": now - 300, "exp": now - 200})),
        ),
        ("too long", s.assertion(json!({"exp": now + 3600}))),
        (
            "future iat",
            s.assertion(json!({"iat": now + 600, "exp": now + 650})),
        ),
        ("no jti", s.assertion(json!({"jti": null}))),
        ("sub differs", s.assertion(json!({"sub": "rp-a"}))),
        (
            "unknown iss",
            s.assertion(json!({"iss": "nobody", "sub": "nobody"})),
        ),
        (
            "other key",
            other_key
                .sign_jwt(
                    &json!({"iss":"rp-jwt","sub":"rp-jwt","aud":s.base,"exp":now+60,"jti":"x1"}),
                    Some("JWT"),
                )
                .unwrap(),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(br#"{"iss":"rp-jwt","sub":"rp-jwt"}"#)
            ),
        ),
        ("not a jwt", "not-a-jwt".into()),
        ("garbage b64", "!!!.???.***".into()),
        (
            "json array",
            format!("{}.{}.AA", b64(br#"{"alg":"RS256"}"#), b64(b"[1,2]")),
        ),
    ];
    for (what, a) in bad {
        let (st, e, _) = oauth_error(redeem(a, code.clone(), v.clone()).await).await;
        assert_eq!((st, e.as_str()), (401, "invalid_client"), "{what}");
    }
    // Wrong assertion type.
    let r = http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_assertion_type", "urn:x"),
            ("client_assertion", "a.b.c"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");
    // The code was never redeemed by the failures above (they fail before the code is looked at).
    let r = redeem(s.assertion(json!({})), code, v).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn pushed_authorization_request() {
    let s = start(Config::default()).await;
    let http = reqwest::Client::new();
    let (v, ch) = pkce();
    let mut p = s.params("rp-a", &ch);
    p.push(("acr_values".into(), HIGH.into()));
    let r = http
        .post(s.url("/par"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let j: Value = r.json().await.unwrap();
    let uri = j["request_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("urn:idporten:"));
    assert!(j["expires_in"].as_u64().unwrap() > 0);

    let go = |uri: String| {
        s.http
            .get(s.url("/authorize"))
            .query(&[("client_id", "rp-a"), ("request_uri", uri.as_str())])
            .send()
    };
    let r = go(uri.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        !page.contains("value=\"idporten-loa-substantial\""),
        "the pushed acr is used"
    );
    let r = s.submit_login(&s.http, &page, &s.pid_b, HIGH).await;
    let code = query(&location(&r))["code"].clone();
    let t: Value = s
        .token_basic("rp-a", SECRET_A, &code, &v)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims(t["id_token"].as_str().unwrap())["acr"], HIGH);
    // request_uri is single use.
    assert_eq!(go(uri).await.unwrap().status(), 400);

    // Errors are JSON here: unauthenticated, bad PKCE, foreign redirect_uri.
    let r = http.post(s.url("/par")).form(&p).send().await.unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_client");
    let mut bad = s.params("rp-a", &ch);
    bad.retain(|(k, _)| k != "code_challenge_method");
    let r = http
        .post(s.url("/par"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(r).await,
        (
            400,
            "invalid_request".into(),
            "code_challenge_method must be S256".into()
        )
    );
    let mut bad = s.params("rp-a", &ch);
    bad.retain(|(k, _)| k != "redirect_uri");
    bad.push(("redirect_uri".into(), "https://evil.example/".into()));
    let r = http
        .post(s.url("/par"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");
    // client_id in the body must be the authenticated one.
    let r = http
        .post(s.url("/par"))
        .basic_auth("rp-b", Some("secret-b"))
        .form(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");
}

#[tokio::test]
async fn logout_renders_frontchannel_iframes_and_redirects() {
    let s = start(Config::default()).await;
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let t: Value = s
        .token_basic("rp-a", SECRET_A, &code, &v)
        .await
        .json()
        .await
        .unwrap();
    s.login(&s.http, "rp-b", &s.pid_a, SUB).await;
    let id_token = t["id_token"].as_str().unwrap();
    let sid = claims(id_token)["sid"].as_str().unwrap().to_owned();

    // Unregistered post_logout_redirect_uri: refused, session untouched.
    let r = s
        .http
        .get(s.url("/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A forged hint.
    let r = s
        .http
        .get(s.url("/logout"))
        .query(&[("id_token_hint", "a.b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let back = format!("{}/rp-a/", s.origin);
    let r = s
        .http
        .get(s.url("/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", &back),
            ("state", "bye"),
            ("ui_locales", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<html lang=\"en\">"));
    for c in ["rp-a", "rp-b"] {
        let src = format!(
            "{}/{c}/frontchannel-logout?iss={}&amp;sid={sid}",
            s.origin,
            url::form_urlencoded::byte_serialize(s.base.as_bytes()).collect::<String>()
        );
        assert!(page.contains(&src), "iframe for {c} in\n{page}");
    }
    assert!(page.contains(&format!("url={back}?state=bye")));
    // The session is gone: the next authorize shows the form again.
    let (_, ch) = pkce();
    assert_eq!(
        s.authorize(&s.http, &s.params("rp-a", &ch)).await.status(),
        200
    );
}

#[tokio::test]
async fn login_page_is_localised_and_accessible() {
    let s = start(Config::default()).await;
    let (_, ch) = pkce();
    for (loc, lang, word) in [
        ("nn", "nn", "Vel testperson"),
        ("en nb", "en", "Choose a test person"),
        ("se", "nb", "Velg testperson"),
    ] {
        let mut p = s.params("rp-a", &ch);
        p.push(("ui_locales".into(), loc.into()));
        let r = s.authorize(&browser(), &p).await;
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{loc}");
        assert!(page.contains(word), "{loc}");
        assert!(page.contains("<label for=\"pid\">"));
        assert!(page.contains("<legend>"));
        assert!(!page.contains("<script"));
    }
    // Error pages that cannot go back to the client speak the user's language too.
    let mut p = s.params("nobody", &ch);
    p.push(("ui_locales".into(), "en".into()));
    let page = s.authorize(&browser(), &p).await.text().await.unwrap();
    assert!(page.contains("<html lang=\"en\">") && page.contains("Something went wrong"));
    // The tester may type another synthetic number; an invalid one is refused with a message.
    let r = s.authorize(&s.http, &s.params("rp-a", &ch)).await;
    let page = r.text().await.unwrap();
    let (action, rid) = parse_form(&page);
    let r = s
        .http
        .post(&action)
        .form(&[
            ("rid", rid.as_str()),
            ("pid_other", "12345678901"),
            ("acr", SUB),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("role=\"alert\""));
    let other = idporten::synthetic_pid(24, 12, 48).unwrap().as_string();
    let r = s
        .http
        .post(&action)
        .form(&[
            ("rid", rid.as_str()),
            ("pid_other", other.as_str()),
            ("acr", SUB),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Cancel sends access_denied back.
    let r = s.authorize(&browser(), &s.params("rp-a", &ch)).await;
    let (action, rid) = parse_form(&r.text().await.unwrap());
    let r = s
        .http
        .post(&action)
        .form(&[("rid", rid.as_str()), ("action", "cancel")])
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "access_denied");
    // A used or invented rid.
    let r = s
        .http
        .post(&action)
        .form(&[
            ("rid", rid.as_str()),
            ("pid", s.pid_a.as_str()),
            ("acr", SUB),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn injection_strings_are_echoed_safely() {
    let s = start(Config::default()).await;
    let (_, ch) = pkce();
    let evil =
        "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>' OR 1=1; DROP TABLE users;--";
    // Into the redirect: URL-encoded, never raw.
    let mut p = s.params("rp-a", &ch);
    p.retain(|(k, _)| k != "state" && k != "response_type");
    p.push(("state".into(), evil.into()));
    p.push(("response_type".into(), evil.into()));
    let r = s.authorize(&browser(), &p).await;
    let loc = location(&r);
    assert!(!loc.contains('<') && !loc.contains('"') && !loc.contains(' '));
    assert_eq!(query(&loc)["state"], evil);
    // Into error pages and the login page: escaped.
    for (k, v) in [("client_id", evil), ("ui_locales", evil)] {
        let mut p = s.params("rp-a", &ch);
        p.retain(|(n, _)| n != k);
        p.push((k.into(), v.into()));
        let r = s.authorize(&browser(), &p).await;
        assert!(r.status().as_u16() < 500);
        let page = r.text().await.unwrap();
        assert!(!page.contains("<script>alert"), "{k}");
        assert!(!page.contains("<img"), "{k}");
    }
    // Into the login form fields.
    let r = s.authorize(&s.http, &s.params("rp-a", &ch)).await;
    let (action, rid) = parse_form(&r.text().await.unwrap());
    let r = s
        .http
        .post(&action)
        .form(&[("rid", rid.as_str()), ("pid", evil), ("acr", evil)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("<script>alert"));
    let r = s
        .http
        .post(&action)
        .form(&[("rid", evil)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Into token and logout.
    let r = reqwest::Client::new()
        .post(s.url("/token"))
        .basic_auth(evil, Some(evil))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", evil),
            ("code_verifier", evil),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_client");
    let r = s
        .http
        .get(s.url("/logout"))
        .query(&[("id_token_hint", evil), ("state", evil)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("<script>alert"));
}

/// Odd requests to every endpoint: the answer is always a 4xx, never a 5xx.
#[tokio::test]
async fn bad_input_never_gives_a_server_error() {
    let s = start(Config::default()).await;
    let http = reqwest::Client::new();
    let bodies: [(&str, &[u8]); 6] = [
        ("application/x-www-form-urlencoded", b"%%%%&&&==="),
        ("application/x-www-form-urlencoded", b"\xff\xfe\x00"),
        ("application/x-www-form-urlencoded", b""),
        ("application/json", b"{\"a\":1}"),
        ("text/plain", b"hello"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ];
    for path in ["/token", "/par", "/login", "/logout", "/userinfo"] {
        for (ct, b) in bodies {
            let r = http
                .post(s.url(path))
                .header("content-type", ct)
                .body(b.to_vec())
                .send()
                .await
                .unwrap();
            // /logout without parameters is a valid "log me out" request.
            let ok = if path == "/logout" {
                r.status().as_u16() < 500
            } else {
                r.status().is_client_error()
            };
            assert!(ok, "{path} {ct}: {}", r.status());
        }
    }
    for q in [
        "%zz",
        "client_id=%00",
        "a=1&a=1",
        "request_uri=urn:idporten:x&client_id=rp-a",
        "&&&",
    ] {
        for path in ["/authorize", "/logout"] {
            let r = http
                .get(format!("{}?{q}", s.url(path)))
                .send()
                .await
                .unwrap();
            assert!(r.status().as_u16() < 500, "{path}?{q}: {}", r.status());
        }
    }
    for auth in [
        "Bearer",
        "Bearer a.b.c",
        "Basic !!!",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ] {
        let r = http
            .get(s.url("/userinfo"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{auth}");
    }
}

#[tokio::test]
async fn authorize_by_post_and_form_post_response_mode() {
    let s = start(Config::default()).await;
    let (v, ch) = pkce();
    let mut p = s.params("rp-a", &ch);
    p.push(("response_mode".into(), "form_post".into()));
    // OIDC Core 3.1.2.1: the authorization request may be a form POST.
    let r = s
        .http
        .post(s.url("/authorize"))
        .form(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let r = s.submit_login(&s.http, &page, &s.pid_a, SUB).await;
    assert_eq!(
        r.status(),
        200,
        "form_post answers with a page, not a redirect"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(&format!("action=\"{}\"", s.redirect_uri("rp-a"))));
    assert!(page.contains("name=\"state\" value=\"st-123\""));
    let code = {
        let m = "name=\"code\" value=\"";
        let i = page.find(m).unwrap() + m.len();
        page[i..i + page[i..].find('"').unwrap()].to_owned()
    };
    assert_eq!(
        s.token_basic("rp-a", SECRET_A, &code, &v).await.status(),
        200
    );
    // A POSTed authorization request with the wrong content type is refused on a page.
    let r = s
        .http
        .post(s.url("/authorize"))
        .body("x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn one_time_refresh_tokens() {
    let s = start(Config::default()).await;
    let refresh =
        |client: &'static str, secret: &'static str, token: String, scope: Option<&'static str>| {
            let mut f = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token),
            ];
            if let Some(sc) = scope {
                f.push(("scope", sc.to_owned()));
            }
            s.api
                .post(s.url("/token"))
                .basic_auth(client, Some(secret))
                .form(&f)
                .send()
        };
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let t: Value = s
        .token_basic("rp-a", SECRET_A, &code, &v)
        .await
        .json()
        .await
        .unwrap();
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    assert!(t["refresh_token_expires_in"].as_u64().unwrap() > 0);

    let r = refresh("rp-a", SECRET_A, r1.clone(), None).await.unwrap();
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "a new refresh token every time");
    assert_eq!(
        claims(t2["access_token"].as_str().unwrap())["pid"],
        s.pid_a.as_str()
    );
    assert!(t2.get("id_token").is_none());

    // Narrowing the scope is allowed, widening is not.
    let r = refresh("rp-a", SECRET_A, r2.clone(), Some("openid altinn:x"))
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_scope");
    // (That attempt used r2 up; get a fresh chain for the rest.)
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let t: Value = s
        .token_basic("rp-a", SECRET_A, &code, &v)
        .await
        .json()
        .await
        .unwrap();
    let c1 = t["refresh_token"].as_str().unwrap().to_owned();
    let t: Value = refresh("rp-a", SECRET_A, c1.clone(), Some("openid"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["scope"], "openid");
    let c2 = t["refresh_token"].as_str().unwrap().to_owned();

    // Another client cannot use it; replaying c1 revokes the chain, c2 included.
    let r = refresh("rp-c", "secret-c", c2.clone(), None).await.unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_grant");
    let r = refresh("rp-a", SECRET_A, c1, None).await.unwrap();
    let (_, e, d) = oauth_error(r).await;
    assert_eq!(e, "invalid_grant");
    assert!(d.contains("revoked"), "{d}");
    let r = refresh("rp-a", SECRET_A, c2, None).await.unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_grant");

    // A client without refresh tokens, and an unknown token.
    let r = refresh("rp-b", "secret-b", "x".into(), None).await.unwrap();
    assert_eq!(oauth_error(r).await.1, "unauthorized_client");
    let r = refresh("rp-a", SECRET_A, "forged".into(), None)
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_grant");
    let r = s
        .api
        .post(s.url("/token"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_request");

    // Logout ends the refresh tokens of the session.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let t: Value = s
        .token_basic("rp-a", SECRET_A, &code, &v)
        .await
        .json()
        .await
        .unwrap();
    let hint = t["id_token"].as_str().unwrap();
    s.http
        .get(s.url("/logout"))
        .query(&[("id_token_hint", hint)])
        .send()
        .await
        .unwrap();
    let r = refresh(
        "rp-a",
        SECRET_A,
        t["refresh_token"].as_str().unwrap().to_owned(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_grant");
}

/// RFC 8707: the access token is for the API the client named with `resource`; the ID token
/// stays the client's. Only asked-for resources can be narrowed to, at `/token` and on refresh.
#[tokio::test]
async fn resource_indicators_restrict_the_access_token_audience() {
    const API: &str = "https://api.example/postkasse/v1";
    const OTHER: &str = "https://other.example/api";
    let s = start(Config::default()).await;
    let token = |code: String, v: String, resources: &'static [&'static str]| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", s.redirect_uri("rp-a")),
            ("code_verifier", v),
        ];
        f.extend(resources.iter().map(|r| ("resource", (*r).to_owned())));
        s.api
            .post(s.url("/token"))
            .basic_auth("rp-a", Some(SECRET_A))
            .form(&f)
            .send()
    };

    // Without a resource: the issuer, as before.
    let (code, v) = s.login(&s.http, "rp-a", &s.pid_a, SUB).await;
    let t: Value = token(code, v, &[]).await.unwrap().json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(claims(at)["aud"], s.base.as_str());

    // One resource at /authorize: the access token's aud, the ID token's stays the client.
    let (code, v) = s
        .login_with(&s.http, "rp-a", &s.pid_a, SUB, &[("resource", API)])
        .await;
    let t: Value = token(code, v, &[]).await.unwrap().json().await.unwrap();
    let at = t["access_token"].as_str().unwrap();
    decode_oidc(at)
        .unwrap()
        .verify_with_jwks(&jwks(&s).await)
        .unwrap();
    assert_eq!(header(at)["typ"], "at+jwt");
    assert_eq!(claims(at)["aud"], API);
    assert_eq!(claims(at)["client_id"], "rp-a");
    let id_token = t["id_token"].as_str().unwrap();
    assert_eq!(claims(id_token)["aud"], "rp-a");
    assert_ne!(header(id_token)["typ"], "at+jwt");

    // Two at /authorize: both, or one of them when /token narrows; never another.
    let both = [("resource", API), ("resource", OTHER)];
    let (code, v) = s.login_with(&s.http, "rp-a", &s.pid_a, SUB, &both).await;
    let t: Value = token(code, v, &[]).await.unwrap().json().await.unwrap();
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["aud"],
        json!([API, OTHER])
    );
    let (code, v) = s.login_with(&s.http, "rp-a", &s.pid_a, SUB, &both).await;
    let t: Value = token(code, v, &[OTHER])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims(t["access_token"].as_str().unwrap())["aud"], OTHER);
    let (code, v) = s
        .login_with(&s.http, "rp-a", &s.pid_a, SUB, &[("resource", API)])
        .await;
    let r = token(code, v, &[OTHER]).await.unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_target");

    // A refresh keeps the grant's resource and cannot swap it for another.
    let (code, v) = s
        .login_with(&s.http, "rp-a", &s.pid_a, SUB, &[("resource", API)])
        .await;
    let t: Value = token(code, v, &[]).await.unwrap().json().await.unwrap();
    let refresh = |rt: String, resource: Option<&'static str>| {
        let mut f = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt),
        ];
        f.extend(resource.map(|r| ("resource", r.to_owned())));
        s.api
            .post(s.url("/token"))
            .basic_auth("rp-a", Some(SECRET_A))
            .form(&f)
            .send()
    };
    let t: Value = refresh(t["refresh_token"].as_str().unwrap().to_owned(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims(t["access_token"].as_str().unwrap())["aud"], API);
    let r = refresh(t["refresh_token"].as_str().unwrap().to_owned(), Some(OTHER))
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await.1, "invalid_target");

    // Pushed with the request, as the real service takes it.
    let (v, ch) = pkce();
    let mut p = s.params("rp-a", &ch);
    p.push(("resource".into(), API.into()));
    let r = s
        .api
        .post(s.url("/par"))
        .basic_auth("rp-a", Some(SECRET_A))
        .form(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[("client_id", "rp-a"), ("request_uri", uri.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "single sign-on");
    let code = query(&location(&r))["code"].clone();
    let t: Value = token(code, v, &[]).await.unwrap().json().await.unwrap();
    assert_eq!(claims(t["access_token"].as_str().unwrap())["aud"], API);

    // Not an absolute URI, or with a fragment: invalid_target, back to the client or as JSON.
    for bad in ["/postkasse/v1", "https://api.example/v1#x"] {
        let mut p = s.params("rp-a", &ch);
        p.push(("resource".into(), bad.into()));
        let r = s.authorize(&s.http, &p).await;
        assert_eq!(r.status(), 303, "{bad}");
        let q = query(&location(&r));
        assert_eq!(q["error"], "invalid_target", "{bad}");
        assert_eq!(q["state"], "st-123");
        let r = s
            .api
            .post(s.url("/par"))
            .basic_auth("rp-a", Some(SECRET_A))
            .form(&p)
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(r).await.1, "invalid_target", "{bad}");
    }
}
