//! `samspill utskrift …`: the print provider's operator commands (register a returned
//! letter, run the print batch now, show a letter). They need only the database; receipts
//! they cause are sent by a running `utskrift` role.

pub use utskrift::cli::UtskriftArgs;

/// Runs the command and prints its one-line (or JSON) result.
pub async fn run(args: UtskriftArgs, db: store::Db) -> anyhow::Result<()> {
    let line = utskrift::cli::run(args, db).await?;
    println!("{line}");
    Ok(())
}
