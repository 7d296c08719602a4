//! `samspill dpi …`: open, verify and seal DPI letters from the command line.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DpiArgs {}

pub fn run(_args: DpiArgs) -> ExitCode {
    eprintln!("samspill dpi: not implemented yet");
    ExitCode::from(2)
}
