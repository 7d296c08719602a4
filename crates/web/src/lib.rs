//! HTTP plumbing shared by every samspill service: problem+json errors, the per-role
//! environment, health/readiness/metrics endpoints, request ids, tracing, limits and
//! graceful shutdown.

pub mod auth;
pub mod letter_parts;
mod problem;

pub use problem::{ApiResult, Problem};

use std::path::PathBuf;

/// What the binary hands every role when it builds that role's router.
#[derive(Debug, Clone)]
pub struct RoleEnv {
    /// Folder for this role's persistent files (keys, fixtures, spools), created by the caller.
    pub data_dir: PathBuf,
    /// Public base URL under which this role's router is reachable, without trailing slash,
    /// e.g. `http://127.0.0.1:8080/idporten`. Issuers and endpoint URLs derive from it.
    pub public_url: url::Url,
    /// Whether synthetic test identities are accepted.
    pub fnr_policy: domain::FnrPolicy,
}

mod server;

pub use server::{
    AppOptions, LogFormat, ReadinessCheck, app, init_tracing, metrics_handle, serve,
    shutdown_signal,
};
