//! The roles this binary can run, each a service crate's router. The composition root: the
//! only place that knows every service.

use std::{future::Future, pin::Pin};

use anyhow::bail;

use crate::config::Config;

/// What a role gets to build its router.
pub struct Context {
    pub config: Config,
    #[allow(dead_code)] // used by the database-backed roles as they arrive
    pub db: store::Db,
    pub public_url: url::Url,
}

impl Context {
    /// The environment of one role: its own data folder and public URL.
    #[allow(dead_code)]
    pub fn role_env(&self, role: &str) -> anyhow::Result<web::RoleEnv> {
        let data_dir = self.config.data_dir.join(role);
        std::fs::create_dir_all(&data_dir)?;
        let mut public_url = self.public_url.clone();
        public_url.set_path(&format!(
            "{}/{role}",
            self.public_url.path().trim_end_matches('/')
        ));
        Ok(web::RoleEnv {
            data_dir,
            public_url,
            fnr_policy: self.config.fnr_policy(),
        })
    }
}

type BuildFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<axum::Router>> + Send + 'a>>;

pub struct Role {
    pub name: &'static str,
    pub about: &'static str,
    pub build: for<'a> fn(&'a Context) -> BuildFuture<'a>,
}

/// Every role, in start order.
pub const ALL: &[Role] = &[];

/// Resolves `--roles` (names or `all`) to roles; an unknown name is an error naming it.
pub fn select(requested: &[String]) -> anyhow::Result<Vec<&'static Role>> {
    let mut out: Vec<&'static Role> = Vec::new();
    for name in requested.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if name == "all" {
            for role in ALL {
                if !out.iter().any(|r| r.name == role.name) {
                    out.push(role);
                }
            }
            continue;
        }
        match ALL.iter().find(|r| r.name == name) {
            Some(role) if !out.iter().any(|r| r.name == role.name) => out.push(role),
            Some(_) => {}
            None => {
                let known: Vec<&str> = ALL.iter().map(|r| r.name).collect();
                bail!(
                    "--roles: unknown role {name:?} (known: all, {})",
                    known.join(", ")
                );
            }
        }
    }
    Ok(out)
}
