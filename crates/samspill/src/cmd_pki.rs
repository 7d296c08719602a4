//! `samspill pki …`: the local test PKI for development and tests.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PkiArgs {}

pub fn run(_args: PkiArgs) -> ExitCode {
    eprintln!("samspill pki: not implemented yet");
    ExitCode::from(2)
}
