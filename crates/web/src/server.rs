//! Composition of role routers into one application, the operational endpoints, the
//! middleware every request passes, and graceful shutdown.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::Problem;

/// A readiness probe: resolves to `Err(reason)` when a dependency (the database) is not usable.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Settings for the application shell around the role routers.
#[derive(Clone)]
pub struct AppOptions {
    /// Longest time a request may take before it is answered with 408.
    pub request_timeout: Duration,
    /// Body-size limit for routes that set none of their own.
    pub default_body_limit: usize,
    /// Checks run by `/readyz`.
    pub readiness: Vec<(String, ReadinessCheck)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            default_body_limit: 1024 * 1024,
            readiness: Vec::new(),
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole application: every role's router nested under `/<role>`, plus `/healthz`,
/// `/readyz` and `/metrics` at the root, wrapped in request ids, tracing, metrics, timeouts and
/// panic catching.
pub fn app(roles: Vec<(String, Router)>, options: AppOptions) -> Router {
    let mut router = Router::new();
    for (name, role) in roles {
        router = router.nest(&format!("/{name}"), role);
    }
    let readiness = Arc::new(options.readiness);
    router
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics_endpoint))
        .fallback(|| async { Problem::not_found() })
        .layer(axum::extract::DefaultBodyLimit::max(options.default_body_limit))
        .layer(middleware::from_fn(problem_for_bare_405))
        .layer(middleware::from_fn(record_metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal("handler panicked").into_response()
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// axum answers a known path with the wrong method by an empty 405 (`fallback` does not
/// cover it, and `method_not_allowed_fallback` only covers the routes of the router it is set
/// on): give every role the problem+json every other error has, keeping the `Allow` header.
async fn problem_for_bare_405(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let mut problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
    .into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

async fn readyz(State(checks): State<Arc<Vec<(String, ReadinessCheck)>>>) -> Response {
    let mut failures = serde_json::Map::new();
    for (name, check) in checks.iter() {
        if let Err(reason) = check().await {
            failures.insert(name.clone(), serde_json::Value::String(reason));
        }
    }
    if failures.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "A dependency is not available",
        )
        .with_extension("checks", failures)
        .into_response()
    }
}

/// The process-wide Prometheus recorder (a global, since the `metrics` facade is one).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then our handle stays empty,
        // which `/metrics` shows rather than hiding.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

async fn metrics_endpoint() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
        .into_response()
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let _ = metrics_handle();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Installs the global tracing subscriber. `filter` is an `EnvFilter` directive
/// (`RUST_LOG` wins when set).
pub fn init_tracing(format: LogFormat, filter: &str) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    use std::io::IsTerminal;
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
