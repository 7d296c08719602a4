//! `samspill dpi …`: open, verify and seal DPI letters from the command line.
//!
//! Exit status: 0 valid, 1 invalid, 2 usage or I/O error. `--json` prints one object.
//! The `L.toml` letter description read by `seal` is documented in `docs/letter-format.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use domain::{ActorId, ConversationId, MessageId};
use dpi::container::{
    self, Document, DocumentData, DocumentRole, Dokumentpakke, Extension, Limits, Manifest,
};
use dpi::letter::{LetterSpec, OpenedLetter, open_letter, open_letter_as, seal_letter};
use dpi::message::{
    AdresseInformasjon, Avsender, Body, Dato, Digital, Dokumentpakkefingeravtrykk, Epostvarsel,
    Header, MessageType, Personmottaker, Posttype, Process, Retur, Returposthaandtering, Sbd,
    Sikkerhetsnivaa, Smsvarsel, Timestamp, Utskrift, Utskriftstype, Varsler,
};
use dpi::trust::TrustAnchors;
use dpi::{Issue, trust};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, clap::Args)]
pub struct DpiArgs {
    #[command(subcommand)]
    cmd: DpiCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DpiCommand {
    /// Decrypt and validate a received letter (corner-4 validation).
    Open(OpenArgs),
    /// Verify an unencrypted ASiC-E dokumentpakke (zip).
    VerifyAsice(VerifyAsiceArgs),
    /// Build, sign and encrypt a letter described by an L.toml file.
    Seal(SealArgs),
}

#[derive(Debug, clap::Args)]
struct OpenArgs {
    /// The forretningsmelding: compact JWS.
    #[arg(long, value_name = "F.jwt")]
    forretningsmelding: PathBuf,
    /// The dokumentpakke: CMS (DER/BER).
    #[arg(long, value_name = "D.cms")]
    dokumentpakke: PathBuf,
    /// The recipient's private key (PEM or DER; PKCS#8 or PKCS#1).
    #[arg(long, value_name = "K.pem")]
    key: PathBuf,
    /// The recipient's certificate: when given, the CMS recipient identifier must name it.
    #[arg(long, value_name = "R.pem")]
    cert: Option<PathBuf>,
    /// Trust anchor certificates (PEM, may hold several; or DER). Repeatable.
    #[arg(long, value_name = "CA.pem")]
    trust: Vec<PathBuf>,
    /// Validation time (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the decrypted ASiC-E zip here.
    #[arg(long, value_name = "P.zip")]
    save_container: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VerifyAsiceArgs {
    /// The ASiC-E zip.
    #[arg(value_name = "P.zip")]
    zip: PathBuf,
    #[arg(long, value_name = "CA.pem")]
    trust: Vec<PathBuf>,
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SealArgs {
    /// Letter description (see docs/letter-format.md).
    #[arg(long, value_name = "L.toml")]
    letter: PathBuf,
    /// Signer certificate; may hold the chain after the leaf (PEM).
    #[arg(long, value_name = "C.pem")]
    signer_cert: PathBuf,
    #[arg(long, value_name = "K.pem")]
    signer_key: PathBuf,
    /// The mailbox or print provider's certificate (CMS recipient).
    #[arg(long, value_name = "R.pem")]
    recipient_cert: PathBuf,
    /// The Maskinporten access token to embed.
    #[arg(long, value_name = "T.jwt")]
    token: PathBuf,
    /// Output directory; gets forretningsmelding.jwt and dokumentpakke.cms.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Usage or I/O failure: exit 2.
struct Fatal(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.into())
    }
}

pub fn run(args: DpiArgs) -> ExitCode {
    let r = match args.cmd {
        DpiCommand::Open(a) => cmd_open(a),
        DpiCommand::VerifyAsice(a) => cmd_verify_asice(a),
        DpiCommand::Seal(a) => cmd_seal(a),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Fatal(e)) => {
            eprintln!("samspill dpi: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn read(p: &Path) -> Result<Vec<u8>, Fatal> {
    Ok(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
}

/// A private key in PEM (PKCS#8 or PKCS#1) or DER (PKCS#8 or PKCS#1).
fn load_key(p: &Path) -> Result<PKey<Private>, Fatal> {
    let b = read(p)?;
    let k = if b.windows(11).any(|w| w == b"-----BEGIN ") {
        PKey::private_key_from_pem(&b).ok()
    } else {
        PKey::private_key_from_pkcs8(&b).ok().or_else(|| {
            Rsa::private_key_from_der(&b)
                .ok()
                .and_then(|r| PKey::from_rsa(r).ok())
        })
    };
    k.ok_or_else(|| {
        Fatal(anyhow!(
            "{}: not a PKCS#8 or PKCS#1 private key",
            p.display()
        ))
    })
}

/// Certificates in PEM (one or more) or one DER certificate.
fn load_certs(p: &Path) -> Result<Vec<X509>, Fatal> {
    let b = read(p)?;
    let certs = if b.windows(11).any(|w| w == b"-----BEGIN ") {
        X509::stack_from_pem(&b).with_context(|| format!("{}: bad PEM certificate", p.display()))?
    } else {
        vec![X509::from_der(&b).with_context(|| format!("{}: bad DER certificate", p.display()))?]
    };
    if certs.is_empty() {
        return Err(Fatal(anyhow!("{}: no certificate", p.display())));
    }
    Ok(certs)
}

fn anchors(paths: &[PathBuf]) -> Result<TrustAnchors, Fatal> {
    let mut roots = Vec::new();
    for p in paths {
        roots.extend(load_certs(p)?);
    }
    Ok(TrustAnchors::new(roots))
}

fn parse_at(at: &Option<String>) -> Result<OffsetDateTime, Fatal> {
    match at {
        None => Ok(OffsetDateTime::now_utc()),
        Some(s) => Ok(OffsetDateTime::parse(s, &Rfc3339)
            .with_context(|| format!("--at {s:?} is not an RFC 3339 date-time"))?),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(b))
}

fn errors_json(errors: &[Issue]) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|e| json!({"code": e.code, "detail": e.detail}))
            .collect(),
    )
}

fn documents_json(pkg: &container::Dokumentpakke) -> Value {
    Value::Array(
        pkg.documents
            .iter()
            .map(|d| {
                json!({
                    "href": d.href,
                    "mime": d.mime,
                    "title": d.title,
                    "lang": d.lang,
                    "role": d.role,
                    "sha256": sha256_hex(&d.bytes),
                    "size": d.bytes.len(),
                    "extension": d.data.as_ref().map(|x| json!({
                        "href": x.href,
                        "mime": x.extension.mime(),
                        "value": serde_json::to_value(&x.extension).unwrap_or(Value::Null),
                    })),
                })
            })
            .collect(),
    )
}

fn opened_json(o: &OpenedLetter) -> Value {
    let mut v = json!({
        "valid": o.valid,
        "type": Value::Null,
        "message_id": Value::Null,
        "conversation_id": Value::Null,
        "avsender": Value::Null,
        "avsenderidentifikator": Value::Null,
        "mottaker": Value::Null,
        "sikkerhetsnivaa": Value::Null,
        "documents": o.package.as_ref().map(documents_json).unwrap_or(Value::Array(vec![])),
        "errors": errors_json(&o.errors),
    });
    if let Some(s) = &o.sbd {
        let av = s.body.avsender();
        v["type"] = json!(s.message_type().key());
        v["message_id"] = json!(s.message_id().to_string());
        v["conversation_id"] = json!(s.conversation_id().map(|c| c.to_string()));
        v["avsender"] = json!(av.virksomhetsidentifikator.value);
        v["avsenderidentifikator"] = json!(av.avsenderidentifikator);
        v["created"] = json!(s.created().to_string());
        v["sender"] = json!(s.header.sender.value);
        v["receiver"] = json!(s.header.receiver.value);
        let databehandler = o
            .token
            .as_ref()
            .and_then(|t| t.supplier.as_ref().map(|s| s.id.clone()))
            .or_else(|| Some(s.header.sender.value.clone()))
            .filter(|d| ActorId::parse(d).ok() != av.virksomhetsidentifikator.actor_id().ok());
        if let Some(d) = databehandler {
            v["databehandler"] = json!(d);
        }
        v["mottaker"] = match &s.body {
            Body::Digital(d) => json!(d.mottaker.postkasseadresse),
            Body::Flyttet(f) => json!(f.mottaker.postkasseadresse),
            Body::Utskrift(u) => serde_json::to_value(&u.mottaker).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        v["sikkerhetsnivaa"] = json!(s.body.sikkerhetsnivaa().map(|n| n.as_u8()));
    }
    if let Some(c) = &o.asic_signer {
        v["signer"] = json!(trust::subject_string(c));
    }
    if let Some(t) = o.signing_time {
        v["signing_time"] = json!(t.format(&Rfc3339).ok());
    }
    v
}

fn print_human(v: &Value) {
    let valid = v["valid"].as_bool().unwrap_or(false);
    println!("{}", if valid { "VALID" } else { "INVALID" });
    for k in [
        "type",
        "message_id",
        "conversation_id",
        "avsender",
        "databehandler",
        "avsenderidentifikator",
        "mottaker",
        "sikkerhetsnivaa",
        "signer",
        "signing_time",
    ] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            println!(
                "  {k}: {}",
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string())
            );
        }
    }
    if let Some(docs) = v["documents"].as_array() {
        for d in docs {
            println!(
                "  document {} ({}, {}, {} bytes){}",
                d["href"].as_str().unwrap_or(""),
                d["role"].as_str().unwrap_or(""),
                d["mime"].as_str().unwrap_or(""),
                d["size"],
                if d["extension"].is_null() {
                    ""
                } else {
                    " + extension"
                }
            );
        }
    }
    if let Some(errs) = v["errors"].as_array() {
        for e in errs {
            println!(
                "  error {}: {}",
                e["code"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            );
        }
    }
}

fn emit(v: &Value, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print_human(v);
    }
}

fn cmd_open(a: OpenArgs) -> Result<bool, Fatal> {
    let jwt_bytes = read(&a.forretningsmelding)?;
    let jwt = String::from_utf8_lossy(&jwt_bytes);
    let cms = read(&a.dokumentpakke)?;
    let key = load_key(&a.key)?;
    let anchors = anchors(&a.trust)?;
    let at = parse_at(&a.at)?;
    let opened = match &a.cert {
        None => open_letter(jwt.trim(), &cms, &key, &anchors, at, &Limits::default()),
        Some(p) => {
            let cert = load_certs(p)?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("{}: no certificate", p.display()))?;
            open_letter_as(
                jwt.trim(),
                &cms,
                &key,
                &cert,
                &anchors,
                at,
                &Limits::default(),
            )
        }
    };
    if let (Some(p), Some(zip)) = (&a.save_container, &opened.zip) {
        std::fs::write(p, zip).with_context(|| format!("writing {}", p.display()))?;
    }
    let v = opened_json(&opened);
    emit(&v, a.json);
    Ok(opened.valid)
}

fn cmd_verify_asice(a: VerifyAsiceArgs) -> Result<bool, Fatal> {
    let zip = read(&a.zip)?;
    let anchors = anchors(&a.trust)?;
    let at = parse_at(&a.at)?;
    let mut errors = Vec::new();
    let mut v = json!({"valid": false, "documents": [], "errors": []});
    match container::read_asice(&zip, &Limits::default()) {
        Err(e) => errors.push(Issue::new(e.code(), e.to_string())),
        Ok(asic) => {
            let m = &asic.package.manifest;
            v["type"] = json!("dokumentpakke");
            v["avsender"] = json!(m.avsender.organisasjon);
            v["avsenderidentifikator"] = json!(m.avsender.avsenderidentifikator);
            v["mottaker"] = json!(m.mottaker.as_ref().map(|p| p.postkasseadresse.clone()));
            v["documents"] = documents_json(&asic.package);
            v["signer"] = json!(trust::subject_string(&asic.signer_cert));
            v["signing_time"] = json!(asic.signing_time.format(&Rfc3339).ok());
            let mut chain = vec![asic.signer_cert.clone()];
            chain.extend(asic.signer_chain.iter().cloned());
            if let Err(e) = anchors.verify(&chain, at) {
                errors.push(Issue::new(e.code(), e.to_string()));
            }
            let manifest_org = ActorId::parse(&m.avsender.organisasjon)
                .ok()
                .map(|a| a.orgnr());
            if trust::org_number(&asic.signer_cert).is_none() {
                errors.push(Issue::new(
                    "asic_signer_no_orgnr",
                    "the signing certificate carries no organisation number",
                ));
            } else if manifest_org.is_none() {
                errors.push(Issue::new(
                    "manifest_avsender_invalid",
                    "manifest avsender is not an organisation number",
                ));
            }
        }
    }
    let valid = errors.is_empty();
    v["valid"] = json!(valid);
    v["errors"] = errors_json(&errors);
    emit(&v, a.json);
    Ok(valid)
}

// ---------------------------------------------------------------------------------------------
// seal and the L.toml format (docs/letter-format.md)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LetterToml {
    /// "digital" or "utskrift".
    #[serde(rename = "type")]
    kind: String,
    /// Behandlingsansvarlig, `0192:<orgnr>` or a bare orgnr.
    avsender: String,
    avsenderidentifikator: Option<String>,
    fakturareferanse: Option<String>,
    /// SBDH sender (databehandler); default: the avsender.
    databehandler: Option<String>,
    /// Mailbox or print provider organisation (SBDH receiver).
    mottaker_leverandor: String,
    message_id: Option<String>,
    conversation_id: Option<String>,
    /// SBDH creationDateAndTime; default now.
    created: Option<String>,
    expected_response: Option<String>,
    /// XAdES SigningTime; default = created.
    signing_time: Option<String>,
    digital: Option<DigitalToml>,
    utskrift: Option<UtskriftToml>,
    #[serde(default)]
    documents: Vec<DocumentToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigitalToml {
    postkasseadresse: String,
    /// Manifest only (optional).
    personidentifikator: Option<String>,
    #[serde(default = "default_level")]
    sikkerhetsnivaa: u8,
    ikkesensitivtittel: String,
    #[serde(default = "default_lang")]
    spraak: String,
    virkningsdato: Option<String>,
    virkningstidspunkt: Option<String>,
    aapningskvittering: Option<bool>,
    epostvarsel: Option<EpostToml>,
    smsvarsel: Option<SmsToml>,
}

fn default_level() -> u8 {
    4
}
fn default_lang() -> String {
    "no".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EpostToml {
    epostadresse: String,
    tekst: String,
    repetisjoner: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsToml {
    mobiltelefonnummer: String,
    tekst: String,
    repetisjoner: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UtskriftToml {
    utskriftstype: Utskriftstype,
    posttype: Option<Posttype>,
    returposthaandtering: Returposthaandtering,
    mottaker: AdresseInformasjon,
    retur: AdresseInformasjon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentToml {
    /// Path of the content, relative to the L.toml.
    file: PathBuf,
    /// Name in the container; default: the file name.
    href: Option<String>,
    mime: String,
    title: Option<String>,
    #[serde(default = "default_lang")]
    lang: String,
    lenke: Option<container::Lenke>,
    bevis: Option<container::Bevis>,
    arrangement: Option<container::Arrangement>,
}

fn actor(s: &str, what: &str) -> Result<ActorId, Fatal> {
    Ok(ActorId::parse(s).map_err(|e| anyhow!("{what} {s:?}: {e}"))?)
}

fn ts(s: &Option<String>, what: &str) -> Result<Option<Timestamp>, Fatal> {
    match s {
        None => Ok(None),
        Some(s) => Ok(Some(
            Timestamp::parse(s).ok_or_else(|| anyhow!("{what} {s:?} is not RFC 3339"))?,
        )),
    }
}

/// Read an L.toml (and the document files it names) into a [`LetterSpec`].
fn letter_spec_from_toml(path: &Path) -> Result<LetterSpec, Fatal> {
    let text = String::from_utf8(read(path)?).context("L.toml is not UTF-8")?;
    let l: LetterToml = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let avsender_id = actor(&l.avsender, "avsender")?;
    let sender = match &l.databehandler {
        Some(d) => actor(d, "databehandler")?,
        None => avsender_id,
    };
    let receiver = actor(&l.mottaker_leverandor, "mottaker_leverandor")?;
    let message_id = match &l.message_id {
        Some(m) => MessageId::parse(m).map_err(|e| anyhow!("message_id: {e}"))?,
        None => MessageId::new(),
    };
    let conversation_id = match &l.conversation_id {
        Some(c) => ConversationId::parse(c).map_err(|e| anyhow!("conversation_id: {e}"))?,
        None => ConversationId::new(),
    };
    let created = ts(&l.created, "created")?.unwrap_or_else(|| {
        // Whole milliseconds, as Digdir's examples.
        let now = OffsetDateTime::now_utc();
        Timestamp(
            now.replace_nanosecond(now.millisecond() as u32 * 1_000_000)
                .unwrap_or(now),
        )
    });
    let signing_time = ts(&l.signing_time, "signing_time")?.unwrap_or(created).0;
    let mut avsender = Avsender::new(&avsender_id);
    avsender.avsenderidentifikator = l.avsenderidentifikator.clone();
    avsender.faktura_referanse = l.fakturareferanse.clone();
    let placeholder = Dokumentpakkefingeravtrykk {
        digest_method: dpi::message::SHA256_URI.into(),
        digest_value: String::new(),
    };
    let (t, process, body, manifest_mottaker) = match (l.kind.as_str(), &l.digital, &l.utskrift) {
        ("digital", Some(d), None) => {
            let varsler = if d.epostvarsel.is_some() || d.smsvarsel.is_some() {
                Some(Varsler {
                    epostvarsel: d.epostvarsel.as_ref().map(|e| Epostvarsel {
                        epostadresse: e.epostadresse.clone(),
                        varslingstekst: e.tekst.clone(),
                        repetisjoner: e.repetisjoner.clone(),
                    }),
                    smsvarsel: d.smsvarsel.as_ref().map(|s| Smsvarsel {
                        mobiltelefonnummer: s.mobiltelefonnummer.clone(),
                        varslingstekst: s.tekst.clone(),
                        repetisjoner: s.repetisjoner.clone(),
                    }),
                    extra: Default::default(),
                })
            } else {
                None
            };
            let body = Body::Digital(Digital {
                avsender: avsender.clone(),
                mottaker: Personmottaker {
                    postkasseadresse: d.postkasseadresse.clone(),
                },
                dokumentpakkefingeravtrykk: placeholder,
                maskinportentoken: String::new(),
                sikkerhetsnivaa: Sikkerhetsnivaa::from_u8(d.sikkerhetsnivaa)
                    .ok_or_else(|| anyhow!("sikkerhetsnivaa must be 3 or 4"))?,
                virkningsdato: match &d.virkningsdato {
                    Some(s) => Some(Dato::parse(s).ok_or_else(|| anyhow!("virkningsdato {s:?}"))?),
                    None => None,
                },
                virkningstidspunkt: ts(&d.virkningstidspunkt, "virkningstidspunkt")?,
                aapningskvittering: d.aapningskvittering,
                ikkesensitivtittel: d.ikkesensitivtittel.clone(),
                spraak: d.spraak.clone(),
                varsler,
            });
            (
                MessageType::Digital,
                Process::Digital,
                body,
                Some((d.postkasseadresse.clone(), d.personidentifikator.clone())),
            )
        }
        ("utskrift", None, Some(u)) => {
            let body = Body::Utskrift(Utskrift {
                avsender: avsender.clone(),
                mottaker: u.mottaker.clone(),
                dokumentpakkefingeravtrykk: placeholder,
                maskinportentoken: String::new(),
                utskriftstype: u.utskriftstype,
                retur: Retur {
                    mottaker: u.retur.clone(),
                    returposthaandtering: u.returposthaandtering,
                },
                posttype: u.posttype,
            });
            (MessageType::Utskrift, Process::Utskrift, body, None)
        }
        (k, _, _) => bail_fatal(format!(
            "type = {k:?} needs exactly the matching [digital] or [utskrift] table"
        ))?,
    };
    let header = Header::new(
        t,
        &sender,
        &receiver,
        message_id,
        conversation_id,
        process,
        created,
        l.expected_response.clone(),
    );
    let mut documents = Vec::new();
    for (i, d) in l.documents.iter().enumerate() {
        let bytes = read(&base.join(&d.file))?;
        let href = match &d.href {
            Some(h) => h.clone(),
            None => d
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| anyhow!("document {} has no file name", i + 1))?,
        };
        let extension = match (&d.lenke, &d.bevis, &d.arrangement) {
            (None, None, None) => None,
            (Some(x), None, None) => Some(("lenke", Extension::Lenke(x.clone()))),
            (None, Some(x), None) => Some(("bevis", Extension::Bevis(x.clone()))),
            (None, None, Some(x)) => Some(("arrangement", Extension::Arrangement(x.clone()))),
            _ => bail_fatal(format!("document {href}: at most one extension"))?,
        };
        let data = extension.map(|(name, extension)| DocumentData {
            // One extension file per document; numbered so several documents can carry one.
            href: if i == 0 {
                format!("{name}.xml")
            } else {
                format!("{name}-{}.xml", i + 1)
            },
            extension,
        });
        documents.push(Document {
            href,
            mime: d.mime.clone(),
            title: d.title.clone(),
            lang: d.title.as_ref().map(|_| d.lang.clone()),
            role: if i == 0 {
                DocumentRole::Hoveddokument
            } else {
                DocumentRole::Vedlegg
            },
            bytes,
            data,
        });
    }
    if documents.is_empty() {
        bail_fatal("a letter needs at least one [[documents]] entry".into())?;
    }
    let package = Dokumentpakke {
        manifest: Manifest {
            mottaker: manifest_mottaker.map(|(postkasseadresse, personidentifikator)| {
                container::Mottaker {
                    personidentifikator,
                    postkasseadresse,
                }
            }),
            avsender: container::Avsender {
                organisasjon: avsender_id.to_string(),
                avsenderidentifikator: avsender.avsenderidentifikator.clone(),
                faktura_referanse: avsender.faktura_referanse.clone(),
            },
            lenke: None,
        },
        documents,
    };
    Ok(LetterSpec {
        sbd: Sbd { header, body },
        package,
        signing_time,
    })
}

fn bail_fatal<T>(m: String) -> Result<T, Fatal> {
    Err(Fatal(anyhow!(m)))
}

fn cmd_seal(a: SealArgs) -> Result<bool, Fatal> {
    let spec = letter_spec_from_toml(&a.letter)?;
    let chain = load_certs(&a.signer_cert)?;
    let key = load_key(&a.signer_key)?;
    let recipient = load_certs(&a.recipient_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no recipient certificate"))?;
    let token = String::from_utf8(read(&a.token)?).context("token is not UTF-8")?;
    let (sealed, sbd) = match seal_letter(&spec, &chain, &key, &recipient, token.trim()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("samspill dpi seal: {} ({})", e, e.code());
            return Ok(false);
        }
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("forretningsmelding.jwt"), &sealed.jwt)?;
    std::fs::write(a.out.join("dokumentpakke.cms"), &sealed.cms)?;
    println!(
        "sealed {} {} -> {}",
        sbd.message_type(),
        sbd.message_id(),
        a.out.display()
    );
    Ok(true)
}
