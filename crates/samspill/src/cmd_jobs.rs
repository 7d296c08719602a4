//! `samspill jobs …`: the operator's view of the durable job queue of the configured database
//! (every role's work: sending, delivery, processing, receipts, notifications). Jobs that used
//! up their attempts stay `dead` until an operator looks at them and queues them again.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use domain::JobId;
use store::{Job, Jobs};
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Jobs per queue and state (the default).
    Counts,
    /// Dead jobs with their last error, the last to die first.
    Dead {
        /// Only this queue (e.g. `formidler.deliver`).
        #[arg(long)]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Queue dead jobs again, with a fresh budget of attempts.
    Retry {
        /// Ids of dead jobs (from `samspill jobs dead`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Runs the command, printing its result on stdout.
pub async fn run(args: JobsArgs, db: store::Db) -> anyhow::Result<()> {
    let jobs = Jobs::new(db);
    match args.command.unwrap_or(JobsCommand::Counts) {
        JobsCommand::Counts => {
            let counts = jobs.counts().await.context("counting jobs")?;
            println!(
                "{:<28} {:>8} {:>8} {:>10} {:>6}",
                "queue", "queued", "running", "done", "dead"
            );
            for (queue, c) in counts {
                println!(
                    "{queue:<28} {:>8} {:>8} {:>10} {:>6}",
                    c.queued, c.running, c.done, c.dead
                );
            }
        }
        JobsCommand::Dead { queue, limit } => {
            for job in jobs
                .dead(queue.as_deref(), limit)
                .await
                .context("listing dead jobs")?
            {
                println!("{}", dead_line(&job));
            }
        }
        JobsCommand::Retry { ids } => {
            // Every id is checked before any job moves, so a typo changes nothing.
            let ids = ids
                .iter()
                .map(|s| JobId::parse(s).map_err(|e| anyhow::anyhow!("{s:?} is not a job id: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let now = OffsetDateTime::now_utc();
            let mut not_dead = Vec::new();
            for id in ids {
                if jobs
                    .requeue_dead(id, now)
                    .await
                    .context("queueing a job again")?
                {
                    println!("{id} queued again");
                } else {
                    not_dead.push(id.to_string());
                }
            }
            if !not_dead.is_empty() {
                bail!("not dead (or no such job): {}", not_dead.join(", "));
            }
        }
    }
    Ok(())
}

/// One dead job on one line: id, queue, when it died, attempts, the last error.
fn dead_line(job: &Job) -> String {
    let at = job
        .updated_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let error = job
        .last_error
        .as_deref()
        .unwrap_or("")
        .replace(['\n', '\r'], " ");
    format!(
        "{}  {}  {}  attempts {}  {}",
        job.id, job.queue, at, job.attempts, error
    )
}
