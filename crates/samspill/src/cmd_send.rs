//! `samspill send`: hand a letter to a running `avsender` role and follow it, over the same
//! HTTP API case systems use (`docs/letter-json.md`).
//!
//! - `samspill send --letter L.toml [--wait SECS]` (or a `.json` letter) submits it;
//! - `samspill send status ID [--wait-for STATUS --timeout SECS]` shows status, history and
//!   receipts.
//!
//! Exit status: 0 done, 1 refused by the service, the letter failed, or it did not reach the
//! status waited for, 2 usage, I/O or connection error. `--json` prints the service's JSON
//! view of the letter.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, anyhow};
use avsender::{
    client::{AvsenderClient, ClientError, letter_from_toml},
    status::{Status, leads_to},
};
use serde_json::Value;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SendArgs {
    #[command(subcommand)]
    cmd: Option<SendCommand>,
    /// The letter: TOML (documents as files next to it) or JSON, see docs/letter-json.md.
    #[arg(long, value_name = "L.toml")]
    letter: Option<PathBuf>,
    /// Wait up to SECS for the letter to leave `created` (sent or further; exit 1 when it
    /// failed or is still `created`).
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
        /// Wait until the letter has this status or one after it (e.g. delivered; exit 1
        /// when it is not reached within the timeout or can no longer be).
        #[arg(long, value_name = "STATUS")]
        wait_for: Option<String>,
        /// How long `--wait-for` waits, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// Where a letter stands relative to the status waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// At that status or past it.
    Reached,
    /// Not yet, and it still can get there.
    Pending,
    /// Not there, and it never will be (it failed, or took another branch).
    Never,
}

/// "At or past": the letter is at `want` or at a status the state machine leads to from
/// `want` (`delivered` is past `sent` and `received_by_print`, `opened` past `delivered`).
/// `failed` is past nothing but itself: a letter can fail before it was sent.
fn progress(current: Status, want: Status) -> Progress {
    if current == want || (current != Status::Failed && leads_to(want, current)) {
        Progress::Reached
    } else if leads_to(current, want) {
        Progress::Pending
    } else {
        Progress::Never
    }
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

/// `--wait-for` as a status, or a usage error naming the valid ones.
fn parse_status(s: &str) -> anyhow::Result<Status> {
    Status::parse(s.trim()).ok_or_else(|| {
        let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        anyhow!(
            "--wait-for {s:?} is not a letter status (one of {})",
            all.join(", ")
        )
    })
}

async fn run_async(args: SendArgs) -> Result<bool, Failure> {
    // A misspelled status is a usage error before anything is asked of the service.
    let want = match &args.cmd {
        Some(SendCommand::Status {
            wait_for: Some(w), ..
        }) => Some(parse_status(w)?),
        _ => None,
    };
    let client = AvsenderClient::new(args.conn.url.clone(), api_key(&args.conn)?);
    match (args.cmd, args.letter) {
        (Some(SendCommand::Status { id, timeout, .. }), _) => {
            let Some(want) = want else {
                let v = client.status(&id).await.map_err(client_failure)?;
                emit(&v, args.json);
                return Ok(v["status"] != "failed");
            };
            let (v, p) = wait(&client, &id, timeout, want).await?;
            emit(&v, args.json);
            Ok(verdict(&id, &v, want, p, timeout))
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
            let mut waited = None;
            if let Some(secs) = args.wait {
                let (now, p) = wait(&client, &letter.id, secs, Status::Sent).await?;
                v = now;
                waited = Some((p, secs));
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
            Ok(match waited {
                Some((p, secs)) => verdict(&letter.id, &v, Status::Sent, p, secs),
                None => v["status"] != "failed",
            })
        }
        (None, None) => Err(Failure::Fatal(anyhow!(
            "give --letter L.toml to send, or `status ID`"
        ))),
    }
}

/// The letter's view once it is at or past `want`, can no longer get there, or `secs` have
/// passed, with where it stands.
async fn wait(
    client: &AvsenderClient,
    id: &str,
    secs: u64,
    want: Status,
) -> Result<(Value, Progress), Failure> {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = client.status(id).await.map_err(client_failure)?;
        // A status this build does not know yet is waited on like one short of `want`.
        let p = Status::parse(v["status"].as_str().unwrap_or_default())
            .map_or(Progress::Pending, |s| progress(s, want));
        if p != Progress::Pending || tokio::time::Instant::now() >= until {
            return Ok((v, p));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Success when the wait reached `want`; otherwise one line on stderr says why not.
fn verdict(id: &str, v: &Value, want: Status, p: Progress, secs: u64) -> bool {
    let status = v["status"].as_str().unwrap_or("?");
    match p {
        Progress::Reached => true,
        Progress::Never => {
            eprintln!("samspill send: letter {id} is {status} and will not become {want}");
            false
        }
        Progress::Pending => {
            eprintln!("samspill send: letter {id} is still {status} after {secs} s, not {want}");
            false
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_at_or_past_the_status_waited_for_has_reached_it() {
        use Status as S;
        for (current, want) in [
            (S::Sent, S::Sent),
            (S::Delivered, S::Sent),
            (S::ReceivedByPrint, S::Sent),
            (S::Opened, S::Delivered),
            (S::NotificationFailed, S::Delivered),
            (S::Returned, S::Delivered),
            (S::Opened, S::Created),
            // Past the print stage, whichever way it went.
            (S::Delivered, S::ReceivedByPrint),
            (S::Failed, S::Failed),
        ] {
            assert_eq!(
                progress(current, want),
                Progress::Reached,
                "{current} for {want}"
            );
        }
        for (current, want) in [
            (S::Created, S::Sent),
            (S::Sent, S::Delivered),
            (S::ReceivedByPrint, S::Delivered),
            (S::Delivered, S::Opened),
            (S::Created, S::Failed),
            (S::Sent, S::Failed),
        ] {
            assert_eq!(
                progress(current, want),
                Progress::Pending,
                "{current} for {want}"
            );
        }
        for (current, want) in [
            (S::Failed, S::Sent),
            (S::Failed, S::Created),
            (S::Returned, S::Opened),
            (S::Opened, S::Returned),
            (S::Delivered, S::Failed),
        ] {
            assert_eq!(
                progress(current, want),
                Progress::Never,
                "{current} for {want}"
            );
        }
    }

    #[test]
    fn a_misspelled_status_is_a_usage_error_naming_the_valid_ones() {
        assert_eq!(parse_status("delivered").unwrap(), Status::Delivered);
        let e = parse_status("deliverd").unwrap_err().to_string();
        assert!(e.contains("\"deliverd\"") && e.contains("delivered"), "{e}");
        assert!(!e.contains('\n'));
    }
}
