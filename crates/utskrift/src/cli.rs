//! `samspill utskrift …`: operator commands of the print provider that need only the
//! database (receipts they cause are sent by a running `utskrift` role).

use time::OffsetDateTime;

/// `samspill utskrift`.
#[derive(Debug, clap::Args)]
pub struct UtskriftArgs {
    #[command(subcommand)]
    pub command: UtskriftCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum UtskriftCommand {
    /// Register a returned letter; sends a returpostkvittering when the letter asked for
    /// shredding with notice (MAKULERING_MED_MELDING).
    Return {
        /// The letter's DPI message id.
        message_id: String,
    },
    /// Run the print batch now for every spooled letter (leveringskvittering for each).
    Batch,
    /// Show a letter's state and receipts as JSON.
    Status {
        /// The letter's DPI message id.
        message_id: String,
    },
}

/// Runs the command against `db`; returns the line to print.
pub async fn run(args: UtskriftArgs, db: store::Db) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc();
    match args.command {
        UtskriftCommand::Return { message_id } => {
            let outcome = crate::register_return(&db, &message_id, now).await?;
            Ok(match outcome {
                crate::ReturnOutcome::Notified => format!(
                    "{message_id}: returned and shredded; returpostkvittering queued for the sender"
                ),
                crate::ReturnOutcome::Recorded => {
                    format!("{message_id}: returned (DIREKTE_RETUR); recorded, no receipt")
                }
                crate::ReturnOutcome::AlreadyRegistered => {
                    format!("{message_id}: the return was registered before")
                }
            })
        }
        UtskriftCommand::Batch => {
            let r = crate::run_batch_now(&db, now).await?;
            Ok(match r.batch_id {
                Some(id) => format!("batch {id}: {} letters printed", r.letters),
                None => "nothing to print".to_owned(),
            })
        }
        UtskriftCommand::Status { message_id } => {
            match crate::letter_status(&db, message_id.trim()).await? {
                Some(s) => Ok(serde_json::to_string_pretty(&s)?),
                None => anyhow::bail!("no letter with message id {message_id}"),
            }
        }
    }
}
