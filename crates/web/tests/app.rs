//! The application shell over real HTTP on loopback.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, routing::get, routing::post};
use web::{AppOptions, Problem, ReadinessCheck};

async fn spawn(
    app: Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        web::serve(listener, app, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (base, tx, handle)
}

fn demo_role() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hei" }))
        .route(
            "/fail",
            get(|| async { Problem::bad_request("invalid_thing", "the thing was wrong") }),
        )
        .route(
            "/echo",
            post(|body: String| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "done"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                "unreachable"
            }),
        )
}

#[tokio::test]
async fn roles_are_nested_and_errors_are_problem_json() {
    let app = web::app(vec![("demo".into(), demo_role())], AppOptions::default());
    let (base, _tx, _h) = spawn(app).await;
    let c = reqwest::Client::new();

    let r = c.get(format!("{base}/demo/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID request id: {id}");
    assert_eq!(r.text().await.unwrap(), "hei");

    // A caller's own request id is kept.
    let r = c
        .get(format!("{base}/demo/hello"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");

    let r = c.get(format!("{base}/demo/fail")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_thing");
    assert_eq!(body["status"], 400);
    assert_eq!(body["detail"], "the thing was wrong");

    let r = c.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    // A known path with the wrong method: problem+json too, with the methods it takes.
    let r = c.delete(format!("{base}/demo/echo")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");

    let r = c.get(format!("{base}/demo/panic")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "internal_error");
}

#[tokio::test]
async fn limits_and_timeouts() {
    let options = AppOptions {
        request_timeout: Duration::from_millis(200),
        default_body_limit: 1000,
        ..AppOptions::default()
    };
    let app = web::app(vec![("demo".into(), demo_role())], options);
    let (base, _tx, _h) = spawn(app).await;
    let c = reqwest::Client::new();

    let r = c
        .post(format!("{base}/demo/echo"))
        .body("x".repeat(999))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "999");
    let r = c
        .post(format!("{base}/demo/echo"))
        .body("x".repeat(1001))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let r = c.get(format!("{base}/demo/slow")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn readiness_reflects_checks_and_metrics_count_requests() {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let check: ReadinessCheck = Arc::new(move || {
        let ok = flag.load(Ordering::SeqCst);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err("database unreachable".into())
            }
        })
    });
    let options = AppOptions {
        readiness: vec![("database".into(), check)],
        ..AppOptions::default()
    };
    let app = web::app(vec![("demo".into(), demo_role())], options);
    let (base, _tx, _h) = spawn(app).await;
    let c = reqwest::Client::new();

    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    healthy.store(false, Ordering::SeqCst);
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "database unreachable");
    // Health is about the process, not its dependencies.
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    for _ in 0..3 {
        c.get(format!("{base}/demo/hello")).send().await.unwrap();
    }
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("http_requests_total") && l.contains("route=\"/demo/hello\""))
        .unwrap_or_else(|| panic!("no counter for /demo/hello in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let app = web::app(vec![("demo".into(), demo_role())], AppOptions::default());
    let (base, tx, handle) = spawn(app).await;
    let c = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}/demo/slow");
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    tx.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), "done");
    handle.await.unwrap();
    // After shutdown nothing listens any more.
    assert!(c.get(format!("{base}/healthz")).send().await.is_err());
}
