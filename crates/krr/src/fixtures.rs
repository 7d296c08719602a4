//! The register's content: persons, mailbox providers and the print provider, from a TOML
//! fixture file with a generated default that covers every case KRR can answer.

use std::path::Path;

use domain::{FnrPolicy, Fodselsnummer, Organisasjonsnummer};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

/// The fixture file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// The print provider answered by the print certificate lookup.
    pub print: Provider,
    /// Mailbox providers; a person's `sertifikat` is their provider's certificate.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Registered persons. Any valid identifier not listed here is `IKKE_REGISTRERT`.
    #[serde(default)]
    pub persons: Vec<PersonRecord>,
}

/// A mailbox or print provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub orgnr: Organisasjonsnummer,
    pub name: String,
    /// Base64 DER X.509 encryption certificate.
    pub certificate: String,
}

/// Whether the person is still in the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    Aktiv,
    Slettet,
}

/// One person in the register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRecord {
    /// Fødselsnummer or D-nummer (11 digits).
    pub pid: String,
    /// What this fixture row demonstrates (not returned).
    #[serde(default)]
    pub note: String,
    pub status: RecordStatus,
    /// Reserved against digital communication (eForvaltningsforskriften §15a).
    #[serde(default)]
    pub reservert: bool,
    /// RFC 3339 time the reservation was last changed.
    #[serde(default)]
    pub reservasjon_oppdatert: Option<String>,
    #[serde(default)]
    pub epostadresse: Option<String>,
    #[serde(default)]
    pub mobiltelefonnummer: Option<String>,
    /// RFC 3339 time the contact information was last updated or confirmed; older than the
    /// configured limit (18 months) makes it stale: `KAN_IKKE_VARSLES`, details withheld.
    #[serde(default)]
    pub kontaktinfo_oppdatert: Option<String>,
    #[serde(default)]
    pub spraak: Option<String>,
    #[serde(default)]
    pub postkasseadresse: Option<String>,
    /// Orgnr of the mailbox provider (must be in `providers` to get a certificate).
    #[serde(default)]
    pub postkasseleverandoer: Option<Organisasjonsnummer>,
}

/// Synthetic (Tenor-style, month + 80) fødselsnummer for a birth date; the same numbers
/// the ID-porten stand-in's default test persons use.
pub fn synthetic_pid(day: u8, month: u8, year: u8) -> Option<Fodselsnummer> {
    let m = month + 80;
    (0u16..1000).find_map(|ind| {
        let first = [
            day / 10,
            day % 10,
            m / 10,
            m % 10,
            year / 10,
            year % 10,
            (ind / 100) as u8,
            ((ind / 10) % 10) as u8,
            (ind % 10) as u8,
        ];
        Fodselsnummer::complete_classic(first, &FnrPolicy::PERMISSIVE)
    })
}

/// A classic (non-synthetic) number for a date, for setups that run the production policy.
fn classic_pid(day: u8, month: u8, year: u8) -> Option<Fodselsnummer> {
    (500u16..1000).find_map(|ind| {
        let first = [
            day / 10,
            day % 10,
            month / 10,
            month % 10,
            year / 10,
            year % 10,
            (ind / 100) as u8,
            ((ind / 10) % 10) as u8,
            (ind % 10) as u8,
        ];
        Fodselsnummer::complete_classic(first, &FnrPolicy::PRODUCTION)
    })
}

/// The identifiers of the default fixture, by case.
#[derive(Debug, Clone)]
pub struct DefaultPids {
    /// Kari Nordmann: mailbox at Digipost, fresh contact info.
    pub digipost: String,
    /// Ola Nordmann: mailbox at e-Boks.
    pub eboks: String,
    /// Aud Testesen: reserved.
    pub reserved: String,
    /// Per Unge: no mailbox, can be notified.
    pub no_mailbox: String,
    /// Sigrid Eldre: stale contact info (KAN_IKKE_VARSLES), mailbox withheld.
    pub stale: String,
    /// Deleted from the register.
    pub deleted: String,
    /// D-nummer (synthetic) with a mailbox at e-Boks.
    pub d_nummer: String,
    /// Non-synthetic number with a mailbox at Digipost.
    pub classic: String,
    /// Valid, but not in the register.
    pub not_registered: String,
}

fn pid(o: Option<Fodselsnummer>) -> String {
    o.map(|f| f.as_string()).unwrap_or_default()
}

pub fn default_pids() -> DefaultPids {
    DefaultPids {
        digipost: pid(synthetic_pid(1, 1, 90)),
        eboks: pid(synthetic_pid(15, 6, 85)),
        reserved: pid(synthetic_pid(29, 2, 72)),
        no_mailbox: pid(synthetic_pid(3, 11, 4)),
        stale: pid(synthetic_pid(24, 12, 48)),
        deleted: pid(synthetic_pid(10, 10, 50)),
        d_nummer: pid(synthetic_pid(41, 5, 80)),
        classic: pid(classic_pid(17, 5, 14)),
        not_registered: pid(synthetic_pid(5, 5, 55)),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The generated default: every case, with provider certificates from the test PKI.
pub fn default_fixtures(pki: &pki::TestPki) -> anyhow::Result<Fixtures> {
    use pki::demo;
    let provider = |orgnr: Organisasjonsnummer, name: &str| -> anyhow::Result<Provider> {
        Ok(Provider {
            orgnr,
            name: name.into(),
            certificate: pki.issue_enterprise(&orgnr, name)?.cert_b64(),
        })
    };
    let now = OffsetDateTime::now_utc();
    let recent = rfc3339(now - Duration::days(30));
    let old = rfc3339(now - Duration::days(3 * 365));
    let p = default_pids();
    let person = |pid: &str, note: &str| PersonRecord {
        pid: pid.into(),
        note: note.into(),
        status: RecordStatus::Aktiv,
        reservert: false,
        reservasjon_oppdatert: Some(old.clone()),
        epostadresse: Some(format!("{pid}-test@samspill.invalid")),
        mobiltelefonnummer: Some(format!("+47 9{}", pid.get(4..11).unwrap_or("0000000"))),
        kontaktinfo_oppdatert: Some(recent.clone()),
        spraak: Some("nb".into()),
        postkasseadresse: None,
        postkasseleverandoer: None,
    };
    let mailbox = |mut r: PersonRecord, provider: Organisasjonsnummer, name: &str| {
        r.postkasseadresse = Some(format!("{name}#{}", r.pid.get(6..).unwrap_or("X")));
        r.postkasseleverandoer = Some(provider);
        r
    };
    let persons = vec![
        mailbox(
            person(&p.digipost, "Kari Nordmann: digital postkasse hos Digipost"),
            demo::digipost(),
            "kari.nordmann",
        ),
        mailbox(
            person(&p.eboks, "Ola Nordmann: digital postkasse hos e-Boks"),
            demo::eboks(),
            "ola.nordmann",
        ),
        PersonRecord {
            reservert: true,
            reservasjon_oppdatert: Some(recent.clone()),
            ..person(
                &p.reserved,
                "Aud Testesen: reservert mot digital kommunikasjon",
            )
        },
        PersonRecord {
            spraak: Some("nn".into()),
            ..person(&p.no_mailbox, "Per Unge: ingen postkasse, kan varslast")
        },
        PersonRecord {
            kontaktinfo_oppdatert: Some(old.clone()),
            ..mailbox(
                person(&p.stale, "Sigrid Eldre: utdatert kontaktinformasjon"),
                demo::digipost(),
                "sigrid.eldre",
            )
        },
        PersonRecord {
            status: RecordStatus::Slettet,
            ..person(&p.deleted, "Slettet fra registeret")
        },
        PersonRecord {
            spraak: Some("en".into()),
            ..mailbox(
                person(&p.d_nummer, "D-nummer med postkasse hos e-Boks"),
                demo::eboks(),
                "d.nummer",
            )
        },
        mailbox(
            person(
                &p.classic,
                "Ikke-syntetisk nummer (produksjonsregler) hos Digipost",
            ),
            demo::digipost(),
            "klassisk",
        ),
    ];
    Ok(Fixtures {
        print: provider(demo::print(), demo::PRINT_NAME)?,
        providers: vec![
            provider(demo::digipost(), demo::DIGIPOST_NAME)?,
            provider(demo::eboks(), demo::EBOKS_NAME)?,
        ],
        persons,
    })
}

/// Read the fixture file, writing the default first if it does not exist.
pub fn load_or_create(path: &Path, pki: &pki::TestPki) -> anyhow::Result<Fixtures> {
    if !path.exists() {
        let fx = default_fixtures(pki)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let p = default_pids();
        let text = format!(
            "# KRR stand-in: persons, mailbox providers and the print provider.\n\
             # Generated on first start; edit freely. Any valid identifier that is not listed\n\
             # (e.g. {}) is answered as IKKE_REGISTRERT.\n\n{}",
            p.not_registered,
            toml::to_string_pretty(&fx)?
        );
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => std::io::Write::write_all(&mut f, text.as_bytes())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    let text = std::fs::read_to_string(path)?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
