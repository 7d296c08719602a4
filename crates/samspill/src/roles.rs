//! The roles this binary can run, each a service crate's router. The composition root: the
//! only place that knows every service.

use std::{future::Future, pin::Pin};

use anyhow::{Context as _, bail};
use tokio::{sync::watch, task::JoinHandle};

use crate::{config::Config, identity};

/// What a role gets to build its router.
pub struct Context {
    pub config: Config,
    pub db: store::Db,
    /// The shared blob store; each role takes its own namespace (`scoped(<role>)`).
    pub blobs: store::BlobStore,
    pub public_url: url::Url,
    /// Flips to `true` when the server stops; background workers watch it.
    pub shutdown: watch::Receiver<bool>,
    /// Background tasks the roles started, awaited on shutdown.
    pub tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Context {
    /// The environment of one role: its own data folder and public URL.
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

    /// The public base URL of a sibling role (`<public_url>/<role>`).
    pub fn role_url(&self, role: &str) -> anyhow::Result<url::Url> {
        let base = self.public_url.as_str().trim_end_matches('/');
        url::Url::parse(&format!("{base}/{role}")).context("public URL")
    }

    fn keep(&self, handles: Vec<JoinHandle<()>>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.extend(handles);
        }
    }
}

type BuildFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<axum::Router>> + Send + 'a>>;

pub struct Role {
    pub name: &'static str,
    pub about: &'static str,
    pub build: for<'a> fn(&'a Context) -> BuildFuture<'a>,
}

/// Every role, in start order.
pub const ALL: &[Role] = &[
    Role {
        name: "idporten",
        about: "ID-porten stand-in: citizen login (OpenID Connect)",
        build: |ctx| Box::pin(idporten_role(ctx)),
    },
    Role {
        name: "maskinporten",
        about: "Maskinporten stand-in: organization tokens (JWT bearer grant)",
        build: |ctx| Box::pin(maskinporten_role(ctx)),
    },
    Role {
        name: "krr",
        about: "KRR stand-in: contact and reservation register",
        build: |ctx| Box::pin(krr_role(ctx)),
    },
    Role {
        name: "formidler",
        about: "DPI access point (corners 2/3): sender API, routing, delivery, receipts",
        build: |ctx| Box::pin(formidler_role(ctx)),
    },
    Role {
        name: "postkasse",
        about: "Mailbox provider (corner 4): intake, letters per citizen, receipts, end-user API",
        build: |ctx| Box::pin(postkasse_role(ctx)),
    },
    Role {
        name: "utskrift",
        about: "Print provider (corner 4): intake, print spool with address pages, receipts",
        build: |ctx| Box::pin(utskrift_role(ctx)),
    },
    Role {
        name: "avsender",
        about: "Sender (corner 1): case-system API, KRR routing, sealing, sending, receipts",
        build: |ctx| Box::pin(avsender_role(ctx)),
    },
];

async fn postkasse_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    let env = ctx.role_env("postkasse")?;
    let mut cfg = ctx.config.postkasse.clone();
    if cfg.maskinporten_issuer.is_none() {
        cfg.maskinporten_issuer = ctx.config.national.maskinporten_issuer.clone();
    }
    if cfg.formidler_receipts_url.is_none() {
        cfg.formidler_receipts_url = Some(url::Url::parse(&format!(
            "{}/dpi/receipts",
            access_point_url(ctx)?.as_str().trim_end_matches('/')
        ))?);
    }
    let state =
        postkasse::build(&cfg, &env, ctx.db.clone(), ctx.blobs.scoped("postkasse")?).await?;
    ctx.keep(postkasse::spawn_workers(
        state.clone(),
        ctx.shutdown.clone(),
    ));
    // The citizens' web app of the same provider, on its service layer.
    let app = innboks::AppState::new(
        ctx.config.innboks.clone(),
        &env,
        innboks::Deps {
            postkasse: state.clone(),
            sessions: innboks::session_store(&ctx.config.innboks, &env, ctx.db.clone())?,
            sms: None,
        },
    )?;
    ctx.keep(innboks::spawn_workers(app.clone(), ctx.shutdown.clone()));
    Ok(postkasse::router(state).merge(innboks::router(app)))
}

async fn utskrift_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    let env = ctx.role_env("utskrift")?;
    let mut cfg = ctx.config.utskrift.clone();
    if cfg.maskinporten_issuer.is_none() {
        cfg.maskinporten_issuer = ctx.config.national.maskinporten_issuer.clone();
    }
    if cfg.formidler_url.is_none() {
        cfg.formidler_url = Some(access_point_url(ctx)?);
    }
    let mut deps =
        utskrift::Deps::from_env(&cfg, &env, ctx.db.clone(), ctx.blobs.scoped("utskrift")?)?;
    if !ctx.config.national.trust_anchors.is_empty() {
        deps.anchors = identity::trust_anchors(&ctx.config)?;
    }
    let state = utskrift::AppState::new(cfg, deps)?;
    ctx.keep(utskrift::spawn_workers(state.clone(), ctx.shutdown.clone()));
    Ok(utskrift::router(state))
}

fn access_point_url(ctx: &Context) -> anyhow::Result<url::Url> {
    match &ctx.config.national.access_point_url {
        Some(u) => Ok(u.clone()),
        None => ctx.role_url("formidler"),
    }
}

async fn avsender_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    let env = ctx.role_env("avsender")?;
    let me = identity::load(
        &ctx.config,
        "avsender",
        pki::demo::kommune(),
        pki::demo::KOMMUNE_NAME,
        maskinporten::fixtures::defaults::KOMMUNE_CLIENT,
    )?;
    let mp = identity::maskinporten_client(&ctx.config, &ctx.public_url, &me)?;
    let tokens: std::sync::Arc<dyn web::auth::TokenSource> = std::sync::Arc::new(mp.clone());
    // One token source per organization sent for: consumer = it, supplier = this one.
    let delegated = ctx
        .config
        .avsender
        .on_behalf_of
        .iter()
        .map(|o| {
            let t: std::sync::Arc<dyn web::auth::TokenSource> =
                std::sync::Arc::new(mp.on_behalf_of(*o));
            (*o, t)
        })
        .collect();
    let krr_url = match &ctx.config.national.krr_url {
        Some(u) => u.to_string(),
        None => ctx.role_url("krr")?.to_string(),
    };
    let krr = clients::krr::KrrClient::new(
        clients::krr::KrrConfig::new(krr_url.trim_end_matches('/')),
        tokens.clone(),
        reqwest::Client::new(),
    );
    let deps = avsender::Deps {
        db: ctx.db.clone(),
        blobs: ctx.blobs.scoped("avsender")?,
        tokens,
        krr,
        delegated,
        signer: avsender::Signer {
            orgnr: me.actor(),
            chain: std::iter::once(me.cert.clone())
                .chain(me.chain.iter().cloned())
                .collect(),
            key: me.key.clone(),
        },
        anchors: identity::trust_anchors(&ctx.config)?,
        formidler_url: access_point_url(ctx)?,
        formidler_orgnr: Some(
            ctx.config
                .national
                .access_point_orgnr
                .unwrap_or_else(pki::demo::formidler),
        ),
        data_dir: env.data_dir.clone(),
        fnr_policy: ctx.config.fnr_policy(),
    };
    let state = avsender::AppState::new(ctx.config.avsender.clone(), deps)?;
    ctx.keep(avsender::spawn_workers(state.clone(), ctx.shutdown.clone()));
    Ok(avsender::router(state))
}

async fn idporten_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    idporten::router(&ctx.config.idporten, &ctx.role_env("idporten")?).await
}

async fn maskinporten_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    maskinporten::router(&ctx.config.maskinporten, &ctx.role_env("maskinporten")?).await
}

async fn krr_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    krr::router(&ctx.config.krr, &ctx.role_env("krr")?).await
}

async fn formidler_role(ctx: &Context) -> anyhow::Result<axum::Router> {
    let env = ctx.role_env("formidler")?;
    let me = identity::load(
        &ctx.config,
        "formidler",
        pki::demo::formidler(),
        pki::demo::FORMIDLER_NAME,
        maskinporten::fixtures::defaults::FORMIDLER_CLIENT,
    )?;
    let mut cfg = ctx.config.formidler.clone();
    if cfg.providers.is_empty() {
        // The demo's providers, served by this binary's own postkasse and utskrift roles.
        cfg.providers = vec![
            formidler::ProviderRoute {
                orgnr: pki::demo::digipost(),
                endpoint: ctx.role_url("postkasse/digipost")?,
            },
            formidler::ProviderRoute {
                orgnr: pki::demo::eboks(),
                endpoint: ctx.role_url("postkasse/eboks")?,
            },
            formidler::ProviderRoute {
                orgnr: pki::demo::print(),
                endpoint: ctx.role_url("utskrift")?,
            },
        ];
    }
    let deps = formidler::Deps {
        db: ctx.db.clone(),
        blobs: ctx.blobs.scoped("formidler")?,
        verifier: identity::verifier(&ctx.config, &ctx.public_url),
        tokens: identity::token_source(&ctx.config, &ctx.public_url, &me)?,
        signer: formidler::Signer {
            orgnr: me.actor(),
            cert: me.cert.clone(),
            key: me.key.clone(),
        },
        anchors: identity::trust_anchors(&ctx.config)?,
        public_url: env.public_url.clone(),
    };
    let state = formidler::AppState::new(cfg, deps)?;
    ctx.keep(formidler::spawn_workers(
        state.clone(),
        ctx.shutdown.clone(),
    ));
    Ok(formidler::router(state))
}

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
