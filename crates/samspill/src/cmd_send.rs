//! `samspill send`: hand a letter to a running `avsender` role and follow it, over the same
//! HTTP API case systems use (`docs/letter-json.md`).
//!
//! - `samspill send --letter L.toml [--wait SECS]` (or a `.json` letter) submits it;
//! - `samspill send status ID [--wait-for STATUS --timeout SECS]` shows status, history and
//!   receipts.
//!
//! Exit status: 0 done, 1 refused by the service or the letter failed, 2 usage, I/O or
//! connection error. `--json` prints the service's JSON view of the letter.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, anyhow};
use avsender::client::{AvsenderClient, ClientError, letter_from_toml};
use serde_json::Value;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SendArgs {
    #[command(subcommand)]
    cmd: Option<SendCommand>,
    /// The letter: TOML (documents as files next to it) or JSON, see docs/letter-json.md.
    #[arg(long, value_name = "L.toml")]
    letter: Option<PathBuf>,
    /// Wait up to SECS for the letter to leave `created` (sent, or failed).
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Print the service's JSON view of the letter.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, clap::Args)]
struct Connection {
    /// Base URL of the avsender role.
    #[arg(
        long,
        global = true,
        env = "SAMSPILL_AVSENDER_URL",
        default_value = "http://127.0.0.1:8080/avsender"
    )]
    url: String,
    /// The case-system API key (default: the development key in ./data/avsender/api-key).
    #[arg(
        long,
        global = true,
        env = "SAMSPILL_AVSENDER_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Read the API key from this file.
    #[arg(long, global = true, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum SendCommand {
    /// Show a letter's status, history and receipts.
    Status {
        /// The letter id (UUID).
        id: String,
        /// Wait until the letter has this status (e.g. delivered).
        #[arg(long, value_name = "STATUS")]
        wait_for: Option<String>,
        /// How long `--wait-for` waits, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// A refusal (exit 1) or a usage/connection failure (exit 2).
enum Failure {
    Refused(String),
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

fn client_failure(e: ClientError) -> Failure {
    match e {
        ClientError::Problem { .. } => Failure::Refused(e.to_string()),
        other => Failure::Fatal(anyhow!(other)),
    }
}

pub fn run(args: SendArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::Fatal)
        .and_then(|rt| rt.block_on(run_async(args)));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Failure::Refused(m)) => {
            eprintln!("samspill send: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Fatal(e)) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("samspill send: {}", chain.join(": ").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn api_key(c: &Connection) -> anyhow::Result<String> {
    if let Some(k) = &c.api_key {
        return Ok(k.trim().to_owned());
    }
    let file = c
        .api_key_file
        .clone()
        .unwrap_or_else(|| PathBuf::from("./data/avsender/api-key"));
    let key = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no API key: give --api-key, SAMSPILL_AVSENDER_API_KEY or --api-key-file ({} not readable)",
            file.display()
        )
    })?;
    Ok(key.trim().to_owned())
}

async fn run_async(args: SendArgs) -> Result<bool, Failure> {
    let client = AvsenderClient::new(args.conn.url.clone(), api_key(&args.conn)?);
    match (args.cmd, args.letter) {
        (
            Some(SendCommand::Status {
                id,
                wait_for,
                timeout,
            }),
            _,
        ) => {
            let v = match wait_for {
                None => client.status(&id).await.map_err(client_failure)?,
                Some(want) => wait(&client, &id, timeout, |s| s == want || s == "failed").await?,
            };
            emit(&v, args.json);
            Ok(v["status"] != "failed")
        }
        (None, Some(path)) => {
            let letter = if path.extension().is_some_and(|e| e == "json") {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not a JSON letter", path.display()))?
            } else {
                letter_from_toml(&path).map_err(|e| Failure::Fatal(anyhow!(e)))?
            };
            let submitted = client.submit(&letter).await.map_err(client_failure)?;
            let mut v = submitted.letter;
            if let Some(secs) = args.wait {
                v = wait(&client, &letter.id, secs, |s| s != "created").await?;
            }
            if args.json {
                emit(&v, true);
            } else {
                println!(
                    "letter {} {} ({})",
                    letter.id,
                    if submitted.created {
                        "accepted"
                    } else {
                        "already known"
                    },
                    v["status"].as_str().unwrap_or("?")
                );
                if args.wait.is_some() {
                    emit(&v, false);
                }
            }
            Ok(v["status"] != "failed")
        }
        (None, None) => Err(Failure::Fatal(anyhow!(
            "give --letter L.toml to send, or `status ID`"
        ))),
    }
}

async fn wait(
    client: &AvsenderClient,
    id: &str,
    secs: u64,
    done: impl Fn(&str) -> bool,
) -> Result<Value, Failure> {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = client.status(id).await.map_err(client_failure)?;
        if done(v["status"].as_str().unwrap_or_default()) || tokio::time::Instant::now() >= until {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn emit(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    println!("{}  {}", s("id"), s("status"));
    println!("  channel: {}  provider: {}", s("channel"), s("provider"));
    println!(
        "  message: {}  conversation: {}",
        s("message_id"),
        s("conversation_id")
    );
    if let Some(e) = v["error"].as_object() {
        println!(
            "  error: {} {}",
            e.get("code").and_then(Value::as_str).unwrap_or(""),
            e.get("detail").and_then(Value::as_str).unwrap_or("")
        );
    }
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "  {}  {}{}",
            h["at"].as_str().unwrap_or(""),
            h["status"].as_str().unwrap_or(""),
            h["detail"]
                .as_str()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    for r in v["receipts"].as_array().into_iter().flatten() {
        println!(
            "  receipt {} {} from {} ({}{})",
            r["id"].as_str().unwrap_or(""),
            r["type"].as_str().unwrap_or("?"),
            r["issuer"].as_str().unwrap_or("?"),
            r["outcome"].as_str().unwrap_or(""),
            r["reason"]
                .as_str()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
}
