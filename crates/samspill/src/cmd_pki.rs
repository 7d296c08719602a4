//! `samspill pki …`: the local test PKI for development and tests.
//!
//! - `samspill pki init [--dir D]`: create (or reuse) the CA and the certificates of every
//!   demo organization and the token-signing keys; prints what is there.
//! - `samspill pki issue --orgnr N --name NAME [--dir D]`: an enterprise certificate for any
//!   organization.
//! - `samspill pki export --orgnr N --key K --chain C [--dir D]`: write an organization's
//!   private key and certificate chain (leaf first) as PEM files, the shape
//!   `[identities.<role>]` and real virksomhetssertifikat exports use.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use domain::Organisasjonsnummer;

#[derive(Debug, clap::Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PkiCommand {
    /// Create or reuse the CA, the demo organizations' certificates and the signing keys.
    Init {
        /// PKI folder (the `pki` folder inside the data folder).
        #[arg(long, default_value = "data/pki", env = "SAMSPILL_PKI_DIR")]
        dir: PathBuf,
    },
    /// Issue (or show) the enterprise certificate of an organization.
    Issue {
        #[arg(long, default_value = "data/pki", env = "SAMSPILL_PKI_DIR")]
        dir: PathBuf,
        /// Organization number (9 digits, mod-11).
        #[arg(long)]
        orgnr: String,
        /// Organization name (O and CN of the certificate) when it is issued the first time.
        #[arg(long, default_value = "Virksomhet")]
        name: String,
    },
    /// Write an organization's key and certificate chain as PEM files.
    Export {
        #[arg(long, default_value = "data/pki", env = "SAMSPILL_PKI_DIR")]
        dir: PathBuf,
        #[arg(long)]
        orgnr: String,
        #[arg(long, default_value = "Virksomhet")]
        name: String,
        /// Where to write the PKCS#8 private key.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the certificate chain, leaf first.
        #[arg(long)]
        chain: PathBuf,
    },
}

pub fn run(args: PkiArgs) -> ExitCode {
    let result = match args.command {
        PkiCommand::Init { dir } => init(&dir).map(|lines| {
            for l in lines {
                println!("{l}");
            }
        }),
        PkiCommand::Issue { dir, orgnr, name } => {
            issue(&dir, &orgnr, &name).map(|l| println!("{l}"))
        }
        PkiCommand::Export {
            dir,
            orgnr,
            name,
            key,
            chain,
        } => export(&dir, &orgnr, &name, &key, &chain),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("samspill pki: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &Path) -> anyhow::Result<pki::TestPki> {
    pki::TestPki::load_or_init(dir).with_context(|| format!("test PKI in {}", dir.display()))
}

fn parse_orgnr(s: &str) -> anyhow::Result<Organisasjonsnummer> {
    Organisasjonsnummer::parse(s).map_err(|e| anyhow::anyhow!("--orgnr {s:?}: {e}"))
}

fn describe(issued: &pki::Issued, name: &str) -> String {
    format!(
        "{:<10} {:<28} {}",
        issued.orgnr().map(|o| o.to_string()).unwrap_or_default(),
        name,
        issued.cert().not_after()
    )
}

/// Everything the development setup needs, created once.
fn init(dir: &Path) -> anyhow::Result<Vec<String>> {
    use pki::demo;
    let pki = open(dir)?;
    let mut lines = vec![
        format!("test PKI in {}", pki.dir().display()),
        format!("CA certificate: {}", pki.dir().join("ca.crt").display()),
        String::new(),
        format!("{:<10} {:<28} valid until", "orgnr", "organization"),
    ];
    for (orgnr, name) in [
        (demo::kommune(), demo::KOMMUNE_NAME),
        (demo::databehandler(), demo::DATABEHANDLER_NAME),
        (demo::formidler(), demo::FORMIDLER_NAME),
        (demo::digipost(), demo::DIGIPOST_NAME),
        (demo::eboks(), demo::EBOKS_NAME),
        (demo::print(), demo::PRINT_NAME),
    ] {
        let issued = pki.issue_enterprise(&orgnr, name)?;
        lines.push(describe(&issued, name));
    }
    lines.push(String::new());
    for key in ["maskinporten", maskinporten::defaults::KOMMUNE_KEY] {
        let k = pki.signing_key(key)?;
        lines.push(format!("signing key {key:<40} kid {}", k.kid));
    }
    Ok(lines)
}

fn issue(dir: &Path, orgnr: &str, name: &str) -> anyhow::Result<String> {
    let pki = open(dir)?;
    let issued = pki.issue_enterprise(&parse_orgnr(orgnr)?, name)?;
    Ok(describe(&issued, name))
}

fn export(dir: &Path, orgnr: &str, name: &str, key: &Path, chain: &Path) -> anyhow::Result<()> {
    let pki = open(dir)?;
    let issued = pki.issue_enterprise(&parse_orgnr(orgnr)?, name)?;
    std::fs::write(key, &issued.key_pem).with_context(|| format!("writing {}", key.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))?;
    }
    let pem = format!("{}{}", issued.cert_pem, issued.chain.concat());
    std::fs::write(chain, pem).with_context(|| format!("writing {}", chain.display()))?;
    println!("key: {}\nchain: {}", key.display(), chain.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_export_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let first = init(&pki_dir).unwrap();
        let ca = std::fs::read_to_string(pki_dir.join("ca.crt")).unwrap();
        let second = init(&pki_dir).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read_to_string(pki_dir.join("ca.crt")).unwrap(), ca);
        assert!(first.iter().any(|l| l.starts_with("984661185")));

        let key = dir.path().join("k.pem");
        let chain = dir.path().join("c.pem");
        export(&pki_dir, "984661185", "x", &key, &chain).unwrap();
        let certs = openssl::x509::X509::stack_from_pem(&std::fs::read(&chain).unwrap()).unwrap();
        assert_eq!(certs.len(), 2);
        let k = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&key).unwrap()).unwrap();
        assert!(certs[0].public_key().unwrap().public_eq(&k));
        assert!(issue(&pki_dir, "123", "x").is_err());
    }
}
