//! `samspill`: the one binary. Its roles select which service routers run in this process;
//! the other subcommands migrate, inspect configuration and work with DPI letters and the
//! test PKI.

mod cmd_dpi;
mod cmd_jobs;
mod cmd_pki;
mod cmd_send;
mod cmd_utskrift;
mod config;
mod identity;
mod roles;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "samspill",
    version,
    about = "Digital post to citizens (DPI) and Min side, in one binary"
)]
struct Cli {
    /// TOML configuration file (optional; `SAMSPILL_…` environment variables override it).
    #[arg(long, short = 'c', global = true, env = "SAMSPILL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server with the given roles.
    Serve {
        /// Comma-separated roles, or `all`. Known roles: see `samspill roles`.
        #[arg(long, default_value = "all", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets redacted.
    Config,
    /// List the roles this binary can run.
    Roles,
    /// Print the version.
    Version,
    /// Open, verify and seal DPI letters.
    Dpi(cmd_dpi::DpiArgs),
    /// The local test PKI for development and tests.
    Pki(cmd_pki::PkiArgs),
    /// Send a letter through a running avsender role, and follow its status.
    Send(cmd_send::SendArgs),
    /// Print provider operations (returned mail, the print batch).
    Utskrift(cmd_utskrift::UtskriftArgs),
    /// The job queue: counts per queue, dead jobs, and queueing dead jobs again.
    Jobs(cmd_jobs::JobsArgs),
}

// Allocation was 16% of an inbox page's CPU samples with glibc malloc (arena locks,
// consolidation) and 10% with mimalloc (perf, four concurrent clients).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("samspill {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Roles => {
            for role in roles::ALL {
                println!("{:<14} {}", role.name, role.about);
            }
            ExitCode::SUCCESS
        }
        Command::Dpi(args) => cmd_dpi::run(args),
        Command::Pki(args) => cmd_pki::run(args),
        Command::Send(args) => cmd_send::run(args),
        Command::Utskrift(args) => with_db(&cli.config, |db| cmd_utskrift::run(args, db)),
        Command::Jobs(args) => with_db(&cli.config, |db| cmd_jobs::run(args, db)),
        Command::Config => report(load(&cli.config).and_then(|cfg| {
            print!("{}", cfg.redacted_toml()?);
            Ok(())
        })),
        Command::Migrate => {
            report(load(&cli.config).and_then(|cfg| runtime()?.block_on(migrate(cfg))))
        }
        Command::Serve { roles } => {
            report(load(&cli.config).and_then(|cfg| runtime()?.block_on(serve(cfg, roles))))
        }
    }
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.as_deref()).context("invalid configuration")
}

/// An operator command on the configured (and migrated) database.
fn with_db<F, Fut>(config: &Option<PathBuf>, command: F) -> ExitCode
where
    F: FnOnce(store::Db) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    report(load(config).and_then(|cfg| {
        runtime()?.block_on(async {
            let db = store::Db::connect(&cfg.database)
                .await
                .context("database")?;
            db.migrate().await.context("migrating")?;
            command(db).await
        })
    }))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// One line on stderr and exit code 1 on failure.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("samspill: {}", chain.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn migrate(cfg: Config) -> anyhow::Result<()> {
    web::init_tracing(cfg.log.format, &cfg.log.filter);
    let db = store::Db::connect(&cfg.database)
        .await
        .context("database")?;
    db.migrate().await.context("migrating")?;
    println!("migrations applied ({})", db.backend().name());
    Ok(())
}

async fn serve(cfg: Config, requested: Vec<String>) -> anyhow::Result<()> {
    let selected = roles::select(&requested)?;
    web::init_tracing(cfg.log.format, &cfg.log.filter);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", cfg.data_dir.display()))?;

    let db = store::Db::connect(&cfg.database)
        .await
        .context("database")?;
    if cfg.database.auto_migrate {
        db.migrate().await.context("migrating")?;
    }

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", cfg.server.listen))?;
    let blobs = store::BlobStore::from_config(&cfg.blobs).context("blobs")?;
    let (stop_workers, shutdown) = tokio::sync::watch::channel(false);
    let ctx = roles::Context {
        config: cfg.clone(),
        db: db.clone(),
        blobs,
        public_url: cfg.public_url(),
        shutdown,
        tasks: Default::default(),
    };
    let mut routers = Vec::new();
    for role in &selected {
        let router = (role.build)(&ctx)
            .await
            .with_context(|| format!("starting role {}", role.name))?;
        routers.push((role.name.to_owned(), router));
    }

    let ready_db = db.clone();
    let options = web::AppOptions {
        request_timeout: Duration::from_secs(cfg.server.request_timeout_secs),
        default_body_limit: cfg.server.default_body_limit,
        readiness: vec![(
            "database".into(),
            Arc::new(move || {
                let db = ready_db.clone();
                Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
            }),
        )],
    };
    let app = web::app(routers, options);
    let names: Vec<&str> = selected.iter().map(|r| r.name).collect();
    tracing::info!(
        listen = %cfg.server.listen,
        roles = ?names,
        database = db.backend().name(),
        "samspill listening"
    );
    web::serve(listener, app, web::shutdown_signal()).await?;
    // Let background workers finish the job in hand; anything cut off is taken over after
    // its lease by the next start.
    let _ = stop_workers.send(true);
    let tasks = std::mem::take(&mut *ctx.tasks.lock().unwrap_or_else(|p| p.into_inner()));
    let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(tasks)).await;
    tracing::info!("stopped");
    Ok(())
}
