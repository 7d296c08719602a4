//! End to end over real HTTP on loopback: the ID-porten stand-in and two apps using this
//! relying party, driven by a cookie-keeping HTTP client that fills in the real login form.
//! App A uses client_secret_basic; app B uses private_key_jwt and PAR.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use idporten::{ClientRegistration, Fixtures, TestPerson, synthetic_pid};
use oidc_rp::{Citizen, CitizenHigh, ClientAuth, MemoryStore, Rp, RpConfig};
use reqwest::Client;
use serde_json::Value;

struct World {
    _dir: tempfile::TempDir,
    idp: String,
    a: String,
    b: String,
    pid: String,
}

fn registration(id: &str, origin: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: id.into(),
        name: Some(id.into()),
        client_secret: Some(format!("{id}-secret")),
        jwks: None,
        token_endpoint_auth_method: None,
        redirect_uris: vec![format!("{origin}/auth/callback")],
        post_logout_redirect_uris: vec![format!("{origin}/")],
        frontchannel_logout_uri: Some(format!("{origin}/auth/frontchannel-logout")),
        scopes: vec!["openid".into(), "profile".into()],
        refresh_tokens: true,
        sector: None,
    }
}

async fn me(c: Citizen) -> String {
    format!("{} {} {}", c.pid, c.acr.as_str(), c.sid.unwrap_or_default())
}

async fn secure(CitizenHigh(c): CitizenHigh) -> String {
    format!("secure {}", c.acr.as_str())
}

async fn access_token(State(rp): State<Rp>, c: Citizen) -> Result<String, (StatusCode, String)> {
    rp.access_token(&c)
        .await
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.code().to_owned()))
}

async fn maybe(c: Option<Citizen>) -> String {
    c.map_or("anonymous".into(), |c| c.pid)
}

fn app(rp: Rp) -> Router {
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/at", get(access_token))
        .route("/maybe", get(maybe))
        .route("/me", get(me))
        .route("/secure", get(secure))
        .with_state(rp.clone())
        // Pages of a nested app (as innboks under `/postkasse`): they see their path without
        // the prefix, the browser must come back to the full one.
        .nest(
            "/postkasse/innboks",
            Router::new()
                .route("/brev/{id}", get(me))
                .route("/hoy", get(secure))
                .with_state(rp.clone()),
        )
        .nest("/auth", oidc_rp::router(rp))
}

async fn world() -> World {
    world_with(idporten::Config::default()).await
}

async fn world_with(idp_cfg: idporten::Config) -> World {
    let dir = tempfile::tempdir().unwrap();
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (li, la, lb) = (
        bind().await.unwrap(),
        bind().await.unwrap(),
        bind().await.unwrap(),
    );
    let o = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
    let (idp_origin, a, b) = (o(&li), o(&la), o(&lb));
    let idp = format!("{idp_origin}/idporten");

    // App B authenticates with a key pair instead of a secret.
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let key_file = dir.path().join("b.pem");
    std::fs::write(&key_file, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut reg_b = registration("app-b", &b);
    reg_b.client_secret = None;
    reg_b.jwks =
        Some(serde_json::json!({"keys": [jose::Jwk::from_rsa(&key, Some("b-1".into())).unwrap()]}));

    let pid = synthetic_pid(17, 5, 94).unwrap().as_string();
    let fx = Fixtures {
        clients: vec![registration("app-a", &a), reg_b],
        persons: vec![TestPerson {
            pid: pid.clone(),
            name: "Kari Nordmann".into(),
        }],
    };
    let idp_dir = dir.path().join("idp");
    std::fs::create_dir_all(&idp_dir).unwrap();
    std::fs::write(
        idp_dir.join("idporten-fixtures.toml"),
        toml::to_string(&fx).unwrap(),
    )
    .unwrap();
    let env = web::RoleEnv {
        data_dir: idp_dir,
        public_url: idp.parse().unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let idp_router = idporten::router(&idp_cfg, &env).await.unwrap();
    tokio::spawn(async move {
        axum::serve(li, Router::new().nest("/idporten", idp_router))
            .await
            .unwrap()
    });

    let cfg = |id: &str, origin: &str, auth: ClientAuth, cookie: &str| RpConfig {
        issuer: idp.clone(),
        client_id: id.into(),
        client_auth: auth,
        redirect_uri: format!("{origin}/auth/callback"),
        post_logout_redirect_uri: Some(format!("{origin}/")),
        base_path: "/auth".into(),
        default_return_to: "/".into(),
        // Apps share the host 127.0.0.1 in this test, and cookies ignore ports.
        cookie_name: cookie.into(),
        cookie_secure: false,
        cookie_path: "/".into(),
        ..RpConfig::default()
    };
    let rp_a = Rp::new(
        cfg(
            "app-a",
            &a,
            ClientAuth::ClientSecretBasic {
                secret: "app-a-secret".into(),
            },
            "a_session",
        ),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    let mut cfg_b = cfg(
        "app-b",
        &b,
        ClientAuth::PrivateKeyJwt {
            key_file,
            kid: Some("b-1".into()),
        },
        "b_session",
    );
    cfg_b.use_par = true;
    cfg_b.ui_locales = Some("nn".into());
    let rp_b = Rp::new(cfg_b, Arc::new(MemoryStore::new())).unwrap();
    tokio::spawn(async move { axum::serve(la, app(rp_a)).await.unwrap() });
    tokio::spawn(async move { axum::serve(lb, app(rp_b)).await.unwrap() });
    World {
        _dir: dir,
        idp,
        a,
        b,
        pid,
    }
}

fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Follows redirects like a browser; returns the final URL and its response.
async fn walk(http: &Client, mut url: String) -> (String, reqwest::Response) {
    for _ in 0..20 {
        let r = http
            .get(&url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        if r.status().is_redirection() {
            let loc = r.headers()["location"].to_str().unwrap().to_owned();
            url = url::Url::parse(&url)
                .unwrap()
                .join(&loc)
                .unwrap()
                .to_string();
            continue;
        }
        return (url, r);
    }
    panic!("redirect loop");
}

/// Logs out like the app's logout button: a same-origin form POST, then the redirects.
async fn log_out(http: &Client, url: String) -> (String, reqwest::Response) {
    let r = http
        .post(&url)
        .header("accept", "text/html")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "logout");
    let loc = r.headers()["location"].to_str().unwrap();
    let next = url::Url::parse(&url)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string();
    walk(http, next).await
}

fn attr(page: &str, marker: &str) -> String {
    let i = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in\n{page}"))
        + marker.len();
    let end = page[i..].find('"').unwrap() + i;
    page[i..end].replace("&amp;", "&")
}

/// Fills in the stand-in's login form and follows the answer back into the app.
async fn log_in(http: &Client, page: &str, pid: &str, acr: &str) -> (String, reqwest::Response) {
    let callback = submit_login(http, page, pid, acr).await;
    walk(http, callback).await
}

/// Submits the stand-in's login form on `page`; returns where it sends the browser (the
/// app's callback), not followed.
async fn submit_login(http: &Client, page: &str, pid: &str, acr: &str) -> String {
    let action = attr(page, "method=\"post\" action=\"");
    let rid = attr(page, "name=\"rid\" value=\"");
    let r = http
        .post(&action)
        .form(&[
            ("rid", rid.as_str()),
            ("pid", pid),
            ("acr", acr),
            ("action", "login"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login form accepted");
    r.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_step_up_sso_logout_and_frontchannel() {
    let w = world().await;
    let http = browser();

    // 1. Not logged in: app A sends the browser to ID-porten; log in at substantial.
    let (url, r) = walk(&http, format!("{}/me", w.a)).await;
    assert!(url.starts_with(&format!("{}/authorize", w.idp)), "{url}");
    let page = r.text().await.unwrap();
    assert!(page.contains("app-a"));
    let (url, r) = log_in(&http, &page, &w.pid, "idporten-loa-substantial").await;
    assert_eq!(url, format!("{}/me", w.a), "back where we started");
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with(&format!("{} idporten-loa-substantial ", w.pid)),
        "{body}"
    );
    let sid = body.rsplit(' ').next().unwrap().to_owned();
    assert!(!sid.is_empty());

    // 2. A page that needs high: step-up at ID-porten, then back to that page.
    let (url, r) = walk(&http, format!("{}/secure", w.a)).await;
    assert!(url.contains("acr_values=idporten-loa-high"), "{url}");
    let page = r.text().await.unwrap();
    assert!(!page.contains("value=\"idporten-loa-substantial\""));
    let (url, r) = log_in(&http, &page, &w.pid, "idporten-loa-high").await;
    assert_eq!(url, format!("{}/secure", w.a));
    assert_eq!(r.text().await.unwrap(), "secure idporten-loa-high");
    let (_, r) = walk(&http, format!("{}/me", w.a)).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("{} idporten-loa-high {sid}", w.pid),
        "same ID-porten session"
    );

    // 3. App B (private_key_jwt + PAR): single sign-on, no form, same sid.
    let (url, r) = walk(&http, format!("{}/me", w.b)).await;
    assert_eq!(url, format!("{}/me", w.b));
    assert_eq!(
        r.text().await.unwrap(),
        format!("{} idporten-loa-high {sid}", w.pid)
    );

    // API callers get 401 problem+json instead of a redirect.
    let r = Client::new()
        .get(format!("{}/me", w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "login_required");

    // 4. Logout in app A: to ID-porten's end-session page, which frames every client's
    //    front-channel logout URL; the browser loads them, as it would the iframes.
    // A link or a form from another site does not log the citizen out.
    let r = http
        .get(format!("{}/auth/logout", w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "logout by GET");
    let r = http
        .post(format!("{}/auth/logout", w.a))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site logout");
    let (_, r) = walk(&http, format!("{}/me", w.a)).await;
    assert_eq!(r.status(), 200, "still logged in");
    let (url, r) = log_out(&http, format!("{}/auth/logout", w.a)).await;
    assert!(url.starts_with(&format!("{}/logout", w.idp)), "{url}");
    let page = r.text().await.unwrap();
    let frames: Vec<String> = page
        .match_indices("<iframe src=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        })
        .collect();
    assert_eq!(frames.len(), 2, "{page}");
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with(&format!("{}/auth/frontchannel-logout?", w.b)))
    );
    for f in &frames {
        let r = http.get(f).send().await.unwrap();
        assert_eq!(r.status(), 200, "{f}");
    }
    let back = attr(&page, "<a href=\"");
    let (_, r) = walk(&http, back).await;
    assert_eq!(r.text().await.unwrap(), "home");

    // 5. Both apps' sessions are gone, and so is the single sign-on session.
    for app in [&w.a, &w.b] {
        let (url, r) = walk(&http, format!("{app}/me")).await;
        assert!(
            url.starts_with(&format!("{}/authorize", w.idp)),
            "{app}: {url}"
        );
        assert!(
            r.text().await.unwrap().contains("name=\"rid\""),
            "login form again"
        );
    }
}

#[tokio::test]
async fn a_nested_app_sends_the_citizen_back_to_the_full_original_path_and_query() {
    let w = world().await;
    let http = browser();
    let here = "/postkasse/innboks/brev/42?mappe=arkiv&sok=skatt%20%C3%A5r";

    // The login redirect carries the path as the browser sent it, prefix and query included.
    let r = http
        .get(format!("{}{here}", w.a))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let login = url::Url::parse(&w.a).unwrap().join(&loc).unwrap();
    assert_eq!(login.path(), "/auth/login");
    let return_to: Vec<String> = login
        .query_pairs()
        .filter(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(return_to, vec![here.to_owned()], "{loc}");

    // After logging in the browser lands on that very URL.
    let (url, r) = walk(&http, format!("{}{here}", w.a)).await;
    assert!(url.starts_with(&format!("{}/authorize", w.idp)), "{url}");
    let page = r.text().await.unwrap();
    let (url, r) = log_in(&http, &page, &w.pid, "idporten-loa-substantial").await;
    assert_eq!(url, format!("{}{here}", w.a), "back where we started");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with(&w.pid));

    // Step-up from a nested page comes back to it too.
    let hoy = "/postkasse/innboks/hoy?x=1";
    let (url, r) = walk(&http, format!("{}{hoy}", w.a)).await;
    assert!(url.contains("acr_values=idporten-loa-high"), "{url}");
    let page = r.text().await.unwrap();
    let (url, r) = log_in(&http, &page, &w.pid, "idporten-loa-high").await;
    assert_eq!(url, format!("{}{hoy}", w.a));
    assert_eq!(r.text().await.unwrap(), "secure idporten-loa-high");
}

#[tokio::test]
async fn frontchannel_needs_the_right_issuer_and_ends_only_that_sid() {
    let w = world().await;
    let (alice, bob) = (browser(), browser());
    for http in [&alice, &bob] {
        let (_, r) = walk(http, format!("{}/me", w.b)).await;
        let page = r.text().await.unwrap();
        assert!(
            page.contains("lang=\"nn\""),
            "ui_locales passed through PAR"
        );
        log_in(http, &page, &w.pid, "idporten-loa-substantial").await;
    }
    let sid_of = |http: Client| {
        let url = format!("{}/me", w.b);
        async move {
            let (_, r) = walk(&http, url).await;
            r.text()
                .await
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        }
    };
    let alice_sid = sid_of(alice.clone()).await;
    let bob_sid = sid_of(bob.clone()).await;
    assert_ne!(alice_sid, bob_sid);

    let fc = format!("{}/auth/frontchannel-logout", w.b);
    let r = Client::new()
        .get(&fc)
        .query(&[("iss", "https://evil.example"), ("sid", alice_sid.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = Client::new()
        .get(&fc)
        .query(&[("iss", w.idp.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sid_of(alice.clone()).await, alice_sid, "still logged in");

    // The IdP's call carries no cookies of the citizen; the sid alone ends the session.
    let r = Client::new()
        .get(&fc)
        .query(&[("iss", w.idp.as_str()), ("sid", alice_sid.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Alice's app session is gone (her ID-porten session is not: only the IdP ends that).
    let r = alice
        .get(format!("{}/me", w.b))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login?return_to=%2Fme");
    assert_eq!(sid_of(bob).await, bob_sid, "bob is untouched");
}

#[tokio::test]
async fn callback_refuses_forged_state_cancel_and_open_redirects() {
    let w = world().await;
    let http = browser();
    // A callback the browser never started.
    let r = http
        .get(format!("{}/auth/callback?code=x&state=forged", w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{}/auth/callback?code=x", w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Cancel at ID-porten: access_denied comes back and is shown, not a session.
    let (_, r) = walk(&http, format!("{}/me", w.a)).await;
    let page = r.text().await.unwrap();
    let action = attr(&page, "method=\"post\" action=\"");
    let rid = attr(&page, "name=\"rid\" value=\"");
    let r = http
        .post(&action)
        .form(&[("rid", rid.as_str()), ("action", "cancel")])
        .send()
        .await
        .unwrap();
    let (_, r) = walk(&http, r.headers()["location"].to_str().unwrap().to_owned()).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("access_denied"));

    // return_to pointing elsewhere is replaced by the default.
    let (_, r) = walk(
        &http,
        format!("{}/auth/login?return_to=//evil.example/x", w.a),
    )
    .await;
    let page = r.text().await.unwrap();
    let (url, r) = log_in(&http, &page, &w.pid, "idporten-loa-substantial").await;
    assert_eq!(url, format!("{}/", w.a));
    assert_eq!(r.text().await.unwrap(), "home");
    // Replaying the finished callback does nothing.
    let r = http
        .get(format!("{}/auth/callback?code=x&state=again", w.a))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// Starts a login at `/me` in `citizen` and logs in at the stand-in; returns the callback URL
/// the stand-in sends the browser to (not followed).
async fn callback_url(w: &World, citizen: &Client) -> String {
    let (_, r) = walk(citizen, format!("{}/me", w.a)).await;
    let page = r.text().await.unwrap();
    let callback = submit_login(citizen, &page, &w.pid, "idporten-loa-substantial").await;
    assert!(callback.contains("/auth/callback?"), "{callback}");
    callback
}

/// Login CSRF: another browser (without the state cookie) that gets hold of a citizen's
/// callback URL is refused, and does not use up the citizen's own login on the way.
#[tokio::test]
async fn a_callback_from_another_browser_is_refused_and_spends_nothing() {
    let w = world().await;
    let citizen = browser();
    let callback = callback_url(&w, &citizen).await;

    let (_, r) = walk(&browser(), callback.clone()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_state"));

    let (url, r) = walk(&citizen, callback).await;
    assert_eq!(url, format!("{}/me", w.a));
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with(&w.pid));
}

/// The login in progress travels sealed in a state cookie of its own, bound to its `state`:
/// logins started in two tabs of one browser both complete, each callback once, and the
/// cookie shows nothing of the login (the nonce is in the authorization URL).
#[tokio::test]
async fn logins_started_in_two_tabs_each_complete_once() {
    let w = world().await;
    let citizen = browser();
    let start = |to: &'static str| {
        let citizen = citizen.clone();
        let a = w.a.clone();
        async move {
            let r = citizen
                .get(format!("{a}/auth/login?return_to={to}"))
                .send()
                .await
                .unwrap();
            let authorize = r.headers()["location"].to_str().unwrap().to_owned();
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
            (authorize, cookie)
        }
    };
    let (first, cookie) = start("/me").await;
    let query = |u: &str, key: &str| {
        url::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let nonce = query(&first, "nonce");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains(&nonce), "{cookie}");
    let (second, second_cookie) = start("/me?tab=2").await;
    let name = |c: &str| c.split('=').next().unwrap().to_owned();
    assert_ne!(name(&cookie), name(&second_cookie), "one cookie per login");

    // The first login, done at ID-porten, comes back to a browser that also holds the second.
    let (_, r) = walk(&citizen, first).await;
    let page = r.text().await.unwrap();
    let callback = submit_login(&citizen, &page, &w.pid, "idporten-loa-substantial").await;
    let (url, r) = walk(&citizen, callback.clone()).await;
    assert_eq!(url, format!("{}/me", w.a));
    assert!(r.text().await.unwrap().starts_with(&w.pid));
    // Its callback does not work twice: its cookie is gone (and ID-porten took the code).
    let (_, r) = walk(&citizen, callback).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_state"));
    // The second completes too (ID-porten knows the citizen by now and answers at once).
    let (url, r) = walk(&citizen, second).await;
    assert_eq!(url, format!("{}/me?tab=2", w.a));
    assert!(r.text().await.unwrap().starts_with(&w.pid));
}

/// Runs the stand-in on `listener` until the returned sender fires.
async fn serve_idp(
    listener: tokio::net::TcpListener,
    data_dir: std::path::PathBuf,
    idp: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let env = web::RoleEnv {
        data_dir,
        public_url: idp.parse().unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let r = idporten::router(&idporten::Config::default(), &env)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        axum::serve(listener, Router::new().nest("/idporten", r))
            .with_graceful_shutdown(async {
                rx.await.ok();
            })
            .await
            .unwrap()
    });
    (tx, h)
}

#[tokio::test]
async fn new_signing_key_is_fetched_from_jwks_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let bind = |a: &str| tokio::net::TcpListener::bind(a.to_owned());
    let (li, la, lb) = (
        bind("127.0.0.1:0").await.unwrap(),
        bind("127.0.0.1:0").await.unwrap(),
        bind("127.0.0.1:0").await.unwrap(),
    );
    let idp_addr = li.local_addr().unwrap();
    let idp = format!("http://{idp_addr}/idporten");
    let (a, b) = (
        format!("http://{}", la.local_addr().unwrap()),
        format!("http://{}", lb.local_addr().unwrap()),
    );
    let pid = synthetic_pid(9, 9, 99).unwrap().as_string();
    let fx = Fixtures {
        clients: vec![registration("app-a", &a), registration("app-b", &b)],
        persons: vec![TestPerson {
            pid: pid.clone(),
            name: "Per".into(),
        }],
    };
    std::fs::write(
        dir.path().join("idporten-fixtures.toml"),
        toml::to_string(&fx).unwrap(),
    )
    .unwrap();
    let rp = |id: &str, origin: &str, refresh: u64| {
        Rp::new(
            RpConfig {
                issuer: idp.clone(),
                client_id: id.into(),
                client_auth: ClientAuth::ClientSecretBasic {
                    secret: format!("{id}-secret").into(),
                },
                redirect_uri: format!("{origin}/auth/callback"),
                post_logout_redirect_uri: None,
                base_path: "/auth".into(),
                default_return_to: "/".into(),
                cookie_name: format!("{}_session", id.replace('-', "_")),
                cookie_secure: false,
                cookie_path: "/".into(),
                jwks_refresh_min_secs: refresh,
                ..RpConfig::default()
            },
            Arc::new(MemoryStore::new()),
        )
        .unwrap()
    };
    // A refetches the JWKS on an unknown kid; B may refetch only once an hour.
    let (rp_a, rp_b) = (rp("app-a", &a, 0), rp("app-b", &b, 3600));
    tokio::spawn(async move { axum::serve(la, app(rp_a)).await.unwrap() });
    tokio::spawn(async move { axum::serve(lb, app(rp_b)).await.unwrap() });

    let (stop, h) = serve_idp(li, dir.path().to_path_buf(), &idp).await;
    let http = browser();
    let (_, r) = walk(&http, format!("{a}/me")).await;
    let (_, r) = log_in(
        &http,
        &r.text().await.unwrap(),
        &pid,
        "idporten-loa-substantial",
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, r) = walk(&http, format!("{b}/me")).await;
    assert_eq!(r.status(), 200, "both apps have cached the first key");

    // Rotate: the old key becomes the previous one, a new key signs from now on.
    stop.send(()).unwrap();
    h.await.unwrap();
    std::fs::rename(
        dir.path().join(idporten::KEY_FILE),
        dir.path().join(idporten::PREVIOUS_KEY_FILE),
    )
    .unwrap();
    let li = tokio::net::TcpListener::bind(idp_addr).await.unwrap();
    let (_stop, _h) = serve_idp(li, dir.path().to_path_buf(), &idp).await;
    let jwks: Value = reqwest::get(format!("{idp}/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "new and previous key published"
    );

    let http = browser();
    let (_, r) = walk(&http, format!("{a}/me")).await;
    let (url, r) = log_in(
        &http,
        &r.text().await.unwrap(),
        &pid,
        "idporten-loa-substantial",
    )
    .await;
    assert_eq!(url, format!("{a}/me"));
    assert_eq!(r.status(), 200, "A fetched the new key");
    let (_, r) = walk(&http, format!("{b}/me")).await;
    assert_eq!(r.status(), 400, "B is not allowed to refetch yet");
    assert!(r.text().await.unwrap().contains("invalid_id_token"));
}

#[tokio::test]
async fn bad_input_to_rp_routes_is_refused_safely() {
    let w = world().await;
    let http = browser();
    let evil = "<script>alert(1)</script>\"' OR 1=1;--";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    // Unknown acr and hostile return_to fall back to the defaults.
    let r = http
        .get(format!(
            "{}/auth/login?acr={}&return_to={}",
            w.a,
            enc(evil),
            enc(evil)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with(&w.idp) && loc.contains("acr_values=idporten-loa-substantial"),
        "{loc}"
    );
    assert!(!loc.contains('<'));

    let idp = enc(&w.idp);
    let cases = [
        (
            format!("/auth/callback?state={}&code={}", enc(evil), enc(evil)),
            400,
        ),
        (format!("/auth/callback?error={}", enc(evil)), 400),
        ("/auth/callback?%zz".to_owned(), 400),
        (
            format!(
                "/auth/frontchannel-logout?iss={}&sid={}",
                enc(evil),
                enc(evil)
            ),
            400,
        ),
        (
            format!("/auth/frontchannel-logout?iss={idp}&sid={}", enc(evil)),
            200,
        ),
        (
            format!(
                "/auth/frontchannel-logout?iss={idp}&sid={}",
                "x".repeat(300)
            ),
            400,
        ),
    ];
    for (path, want) in cases {
        let r = http.get(format!("{}{path}", w.a)).send().await.unwrap();
        assert_eq!(r.status(), want, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("<script>alert"), "{path}: {body}");
    }
    // A forged session cookie is no session.
    for path in ["/me", "/secure"] {
        let r = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path}", w.a))
            .header("cookie", format!("a_session={}", enc(evil)))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
    }
    let r = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/auth/logout", w.a))
        .header("cookie", "a_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/", w.a)
    );
}

#[tokio::test]
async fn access_tokens_are_refreshed_until_idporten_logout() {
    // Access tokens that are already stale when issued: every call refreshes.
    let w = world_with(idporten::Config {
        token_ttl_secs: 0,
        ..Default::default()
    })
    .await;
    let http = browser();
    let (_, r) = walk(&http, format!("{}/me", w.a)).await;
    log_in(
        &http,
        &r.text().await.unwrap(),
        &w.pid,
        "idporten-loa-substantial",
    )
    .await;
    let (_, r) = walk(&http, format!("{}/me", w.b)).await;
    assert_eq!(r.status(), 200, "B by single sign-on");

    let claims = |jwt: &str| -> Value {
        use base64::Engine;
        let p = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    let (_, r) = walk(&http, format!("{}/at", w.a)).await;
    let t1 = r.text().await.unwrap();
    let (_, r) = walk(&http, format!("{}/at", w.a)).await;
    let t2 = r.text().await.unwrap();
    assert_ne!(claims(&t1)["jti"], claims(&t2)["jti"], "refreshed");
    assert_eq!(claims(&t2)["pid"], w.pid.as_str());
    assert_eq!(claims(&t2)["client_id"], "app-a");

    // Option<Citizen> for pages that work with or without login.
    let (_, r) = walk(&http, format!("{}/maybe", w.a)).await;
    assert_eq!(r.text().await.unwrap(), w.pid);
    let (_, r) = walk(&browser(), format!("{}/maybe", w.a)).await;
    assert_eq!(r.text().await.unwrap(), "anonymous");

    // Log out at ID-porten through A without loading the iframes: B's own session survives,
    // but ID-porten revoked its refresh token, so B learns that the citizen must log in.
    let (url, _) = log_out(&http, format!("{}/auth/logout", w.a)).await;
    assert!(url.starts_with(&format!("{}/logout", w.idp)));
    let (_, r) = walk(&http, format!("{}/me", w.b)).await;
    assert_eq!(r.status(), 200, "B's local session is still there");
    let (_, r) = walk(&http, format!("{}/at", w.b)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "login_required");
}
