//! The JSON letter of the case-system API (`docs/letter-json.md`), its stored form, and the
//! step from a stored letter plus a KRR answer to a [`dpi::letter::LetterSpec`].

use domain::{ActorId, ConversationId, FnrPolicy, Fodselsnummer, MessageId};
use dpi::container::{
    self, Arrangement, Bevis, Document, DocumentData, DocumentRole, Dokumentpakke, Extension,
    Lenke, Manifest,
};
use dpi::message::{
    AdresseInformasjon, Avsender, Body, Dato, Digital, Dokumentpakkefingeravtrykk, Epostvarsel,
    Header, MessageType, Personmottaker, Posttype, Process, Retur, Returposthaandtering, Sbd,
    Sikkerhetsnivaa, Smsvarsel, Timestamp, Utskrift, Utskriftstype, Varsler,
};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/letters` body (JSON), or the `letter` part of a multipart request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LetterRequest {
    /// The caller's letter id (UUID): the idempotency key.
    pub id: String,
    /// The citizen's fødselsnummer or D-nummer.
    pub personidentifikator: String,
    /// Title shown even to a citizen logged in below `sikkerhetsnivaa` (1..255).
    pub ikkesensitivtittel: String,
    /// ID-porten level needed to open the letter: 3 or 4.
    #[serde(default = "default_level")]
    pub sikkerhetsnivaa: u8,
    /// ISO 639-1 language of the letter.
    #[serde(default = "default_lang")]
    pub spraak: String,
    /// The organization number of the avsender (behandlingsansvarlig) when the service sends
    /// on its behalf (`[avsender] on_behalf_of`); default: the service's own organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avsender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avsenderidentifikator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fakturareferanse: Option<String>,
    /// `YYYY-MM-DD`: delivered before, visible from this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virkningsdato: Option<String>,
    /// Ask for an `aapningskvittering`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aapningskvittering: Option<bool>,
    /// Notifications; the addresses come from KRR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varsler: Option<VarslerRequest>,
    /// The hoveddokument first, then the vedlegg.
    pub documents: Vec<DocumentRequest>,
    /// Print fallback: used when the citizen is reserved or has no active mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utskrift: Option<UtskriftRequest>,
}

fn default_level() -> u8 {
    4
}
fn default_lang() -> String {
    "no".into()
}
fn default_repetisjoner() -> Vec<u8> {
    vec![0, 7]
}
fn default_utskriftstype() -> Utskriftstype {
    Utskriftstype::SortHvit
}
fn default_returposthaandtering() -> Returposthaandtering {
    Returposthaandtering::DirekteRetur
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarslerRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epost: Option<VarselRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<VarselRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarselRequest {
    /// Notification text (e-mail 1..500, SMS 1..160 characters; no personal data).
    pub tekst: String,
    /// Days after virkningsdato to notify again (default `[0, 7]`).
    #[serde(default = "default_repetisjoner")]
    pub repetisjoner: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    /// File name inside the dokumentpakke (4..100 characters, unique).
    pub filename: String,
    pub mime: String,
    /// Document title (may be sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default = "default_lang")]
    pub lang: String,
    /// The content, standard base64 (JSON requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// Name of the multipart part holding the content (multipart requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lenke: Option<Lenke>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bevis: Option<Bevis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrangement: Option<Arrangement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtskriftRequest {
    /// The citizen's postal address.
    pub mottaker: AdresseInformasjon,
    /// Where returned mail goes.
    pub retur: AdresseInformasjon,
    #[serde(default = "default_returposthaandtering")]
    pub returposthaandtering: Returposthaandtering,
    #[serde(default = "default_utskriftstype")]
    pub utskriftstype: Utskriftstype,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posttype: Option<Posttype>,
}

/// A document as stored: its content is a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDocument {
    pub filename: String,
    pub mime: String,
    pub title: Option<String>,
    pub lang: String,
    pub sha256: String,
    pub size: u64,
    pub lenke: Option<Lenke>,
    pub bevis: Option<Bevis>,
    pub arrangement: Option<Arrangement>,
}

/// A validated letter as stored. Its canonical JSON's SHA-256 is the idempotency fingerprint:
/// the same id with a different fingerprint is a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLetter {
    pub id: String,
    pub personidentifikator: String,
    pub ikkesensitivtittel: String,
    pub sikkerhetsnivaa: u8,
    pub spraak: String,
    /// The avsender's orgnr when sent on its behalf; `None` = the service's own organization
    /// (left out of the JSON, so letters stored before this field keep their fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avsender: Option<String>,
    pub avsenderidentifikator: Option<String>,
    pub fakturareferanse: Option<String>,
    pub virkningsdato: Option<String>,
    pub aapningskvittering: Option<bool>,
    pub varsler: Option<VarslerRequest>,
    pub documents: Vec<StoredDocument>,
    pub utskrift: Option<UtskriftRequest>,
}

impl StoredLetter {
    pub fn fingerprint(&self) -> String {
        hex::encode(openssl::sha::sha256(
            &serde_json::to_vec(self).unwrap_or_default(),
        ))
    }
}

/// A refusal of a submitted letter: stable code and a detail naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub detail: String,
}

fn invalid(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Invalid {
    Invalid {
        code,
        field: field.into(),
        detail: detail.into(),
    }
}

/// Most documents in one letter (one hoveddokument and DPI's 200 vedlegg).
pub const MAX_DOCUMENTS: usize = 201;

/// Checks everything that can be checked before KRR and sealing: identifiers, lengths,
/// enumerations, addresses (by building and parsing the business messages the letter can
/// become) and the documents' shape. `contents[i]` is the content of document `i`.
pub fn validate(
    req: &LetterRequest,
    contents: &[bytes::Bytes],
    policy: &FnrPolicy,
    default_avsenderidentifikator: Option<&str>,
) -> Result<StoredLetter, Invalid> {
    let id = uuid::Uuid::parse_str(&req.id)
        .map_err(|_| invalid("invalid_letter_id", "id", "must be a UUID"))?
        .hyphenated()
        .to_string();
    let fnr = Fodselsnummer::parse(req.personidentifikator.trim(), policy).map_err(|e| {
        invalid(
            "invalid_personidentifikator",
            "personidentifikator",
            e.to_string(),
        )
    })?;
    if req.documents.is_empty() {
        return Err(invalid(
            "no_documents",
            "documents",
            "a letter needs at least one document",
        ));
    }
    if req.documents.len() > MAX_DOCUMENTS {
        return Err(invalid(
            "too_many_documents",
            "documents",
            format!("at most {MAX_DOCUMENTS} documents"),
        ));
    }
    if contents.len() != req.documents.len() {
        return Err(invalid(
            "missing_content",
            "documents",
            "every document needs its content",
        ));
    }
    let mut documents = Vec::with_capacity(req.documents.len());
    let mut names = std::collections::HashSet::new();
    for (i, (d, content)) in req.documents.iter().zip(contents).enumerate() {
        let field = format!("documents[{i}]");
        let n = d.filename.chars().count();
        if !(4..=100).contains(&n) || d.filename.contains(['/', '\\']) {
            return Err(invalid(
                "invalid_document",
                format!("{field}.filename"),
                "4..100 characters, no path separators",
            ));
        }
        if !names.insert(d.filename.clone()) {
            return Err(invalid(
                "invalid_document",
                format!("{field}.filename"),
                "file names must be unique",
            ));
        }
        if !container::ALLOWED_DOCUMENT_MIME.contains(&d.mime.as_str()) {
            return Err(invalid(
                "invalid_document",
                format!("{field}.mime"),
                format!("{:?} is not an allowed DPI document type", d.mime),
            ));
        }
        if let Some(t) = &d.title
            && !(1..=255).contains(&t.chars().count())
        {
            return Err(invalid(
                "invalid_document",
                format!("{field}.title"),
                "1..255 characters",
            ));
        }
        if d.lang.len() != 2 || !d.lang.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid(
                "invalid_document",
                format!("{field}.lang"),
                "two letters (ISO 639-1)",
            ));
        }
        if content.is_empty() {
            return Err(invalid(
                "invalid_document",
                field.clone(),
                "the document is empty",
            ));
        }
        let extensions = usize::from(d.lenke.is_some())
            + usize::from(d.bevis.is_some())
            + usize::from(d.arrangement.is_some());
        if extensions > 1 {
            return Err(invalid(
                "invalid_document",
                field,
                "at most one of lenke, bevis and arrangement",
            ));
        }
        let ext = match (&d.lenke, &d.bevis, &d.arrangement) {
            (Some(x), _, _) => Some(Extension::Lenke(x.clone())),
            (_, Some(x), _) => Some(Extension::Bevis(x.clone())),
            (_, _, Some(x)) => Some(Extension::Arrangement(x.clone())),
            _ => None,
        };
        if let Some(Err(e)) = ext.as_ref().map(Extension::validate) {
            return Err(invalid(
                "invalid_document",
                format!("{field}.{}", ext_name(ext.as_ref())),
                e.to_string(),
            ));
        }
        documents.push(StoredDocument {
            filename: d.filename.clone(),
            mime: d.mime.clone(),
            title: d.title.clone(),
            lang: d.lang.to_ascii_lowercase(),
            sha256: hex::encode(openssl::sha::sha256(content)),
            size: content.len() as u64,
            lenke: d.lenke.clone(),
            bevis: d.bevis.clone(),
            arrangement: d.arrangement.clone(),
        });
    }
    let stored = StoredLetter {
        id,
        personidentifikator: fnr.as_string(),
        ikkesensitivtittel: req.ikkesensitivtittel.clone(),
        sikkerhetsnivaa: req.sikkerhetsnivaa,
        spraak: req.spraak.clone(),
        // Resolved against the configuration by the caller (`api`).
        avsender: None,
        avsenderidentifikator: req
            .avsenderidentifikator
            .clone()
            .or_else(|| default_avsenderidentifikator.map(str::to_owned)),
        fakturareferanse: req.fakturareferanse.clone(),
        virkningsdato: req.virkningsdato.clone(),
        aapningskvittering: req.aapningskvittering,
        varsler: req
            .varsler
            .clone()
            .filter(|v| v.epost.is_some() || v.sms.is_some()),
        documents,
        utskrift: req.utskrift.clone(),
    };
    // Build both business messages the letter can become (with stand-in values for what KRR
    // and sealing fill in later) and run them through the schema rules now, so that a bad
    // field is a 400 to the case system rather than a failed letter later.
    let probe =
        ActorId::parse("0192:974760673").map_err(|e| invalid("internal", "", e.to_string()))?;
    let route = Route {
        receiver: probe,
        recipient_cert: None,
        kind: RouteKind::Digital {
            postkasseadresse: "probe#0000".into(),
            epost: Some("probe@example.no".into()),
            mobil: Some("+4799999999".into()),
        },
    };
    check_sbd(&stored, &probe, &route, "")?;
    if stored.utskrift.is_some() {
        let route = Route {
            receiver: probe,
            recipient_cert: None,
            kind: RouteKind::Print,
        };
        check_sbd(&stored, &probe, &route, "utskrift")?;
    }
    Ok(stored)
}

fn check_sbd(
    l: &StoredLetter,
    sender: &ActorId,
    route: &Route,
    field: &str,
) -> Result<(), Invalid> {
    let sbd = build_sbd(
        l,
        sender,
        sender,
        route,
        MessageId::new(),
        ConversationId::new(),
        Timestamp::now(),
    )
    .map_err(|e| invalid(e.code, field, e.detail))?;
    let mut json = sbd.to_value();
    // The fingerprint and token are filled in at sealing; give them plausible values.
    if let Some(body) = json
        .get_mut("standardBusinessDocument")
        .and_then(|v| v.as_object_mut())
        .and_then(|o| {
            o.values_mut()
                .find(|v| v.get("maskinportentoken").is_some())
        })
        .and_then(|v| v.as_object_mut())
    {
        body.insert("maskinportentoken".into(), "probe".into());
        body.insert(
            "dokumentpakkefingeravtrykk".into(),
            serde_json::to_value(Dokumentpakkefingeravtrykk::of(b"probe")).unwrap_or_default(),
        );
    }
    let bytes = serde_json::to_vec(&json).unwrap_or_default();
    let parsed = Sbd::parse(&bytes).map_err(|e| {
        invalid(
            "invalid_letter",
            if field.is_empty() {
                e.path.clone()
            } else {
                format!("{field}: {}", e.path)
            },
            e.detail.clone(),
        )
    })?;
    if let Some(first) = parsed.dpi_issues().first() {
        return Err(invalid(
            "invalid_letter",
            first.path.clone(),
            first.detail.clone(),
        ));
    }
    Ok(())
}

fn ext_name(e: Option<&Extension>) -> &'static str {
    match e {
        Some(Extension::Lenke(_)) => "lenke",
        Some(Extension::Bevis(_)) => "bevis",
        Some(Extension::Arrangement(_)) => "arrangement",
        _ => "extension",
    }
}

/// Where a letter goes, decided from KRR.
#[derive(Debug, Clone)]
pub struct Route {
    /// The mailbox or print provider (SBDH receiver).
    pub receiver: ActorId,
    /// The provider's encryption certificate (CMS recipient).
    pub recipient_cert: Option<openssl::x509::X509>,
    pub kind: RouteKind,
}

#[derive(Debug, Clone)]
pub enum RouteKind {
    Digital {
        postkasseadresse: String,
        /// The citizen's e-mail address and mobile number from KRR, for ordered notifications.
        epost: Option<String>,
        mobil: Option<String>,
    },
    Print,
}

impl RouteKind {
    pub fn channel(&self) -> &'static str {
        match self {
            RouteKind::Digital { .. } => "digital",
            RouteKind::Print => "print",
        }
    }
}

/// A field problem while building the business message.
#[derive(Debug, Clone)]
pub struct BuildError {
    pub code: &'static str,
    pub detail: String,
}

/// The SBD for `l` along `route` from `avsender` (behandlingsansvarlig, the token's
/// `consumer`), sent by `sender` (SBDH sender, whose certificate signs: the databehandler, or
/// the avsender itself). The fingerprint and token stay empty; `seal_letter` fills them in.
pub fn build_sbd(
    l: &StoredLetter,
    avsender_org: &ActorId,
    sender: &ActorId,
    route: &Route,
    message_id: MessageId,
    conversation_id: ConversationId,
    created: Timestamp,
) -> Result<Sbd, BuildError> {
    let mut avsender = Avsender::new(avsender_org);
    avsender.avsenderidentifikator = l.avsenderidentifikator.clone();
    avsender.faktura_referanse = l.fakturareferanse.clone();
    let placeholder = Dokumentpakkefingeravtrykk {
        digest_method: dpi::message::SHA256_URI.into(),
        digest_value: String::new(),
    };
    let (t, process, body) = match &route.kind {
        RouteKind::Digital {
            postkasseadresse,
            epost,
            mobil,
        } => {
            let varsler = l.varsler.as_ref().and_then(|v| {
                let e = v
                    .epost
                    .as_ref()
                    .zip(epost.as_ref())
                    .map(|(r, adr)| Epostvarsel {
                        epostadresse: adr.clone(),
                        varslingstekst: r.tekst.clone(),
                        repetisjoner: r.repetisjoner.clone(),
                    });
                let s = v.sms.as_ref().zip(mobil.as_ref()).map(|(r, nr)| Smsvarsel {
                    mobiltelefonnummer: nr.clone(),
                    varslingstekst: r.tekst.clone(),
                    repetisjoner: r.repetisjoner.clone(),
                });
                (e.is_some() || s.is_some()).then(|| Varsler {
                    epostvarsel: e,
                    smsvarsel: s,
                    extra: Default::default(),
                })
            });
            let body = Body::Digital(Digital {
                avsender,
                mottaker: Personmottaker {
                    postkasseadresse: postkasseadresse.clone(),
                },
                dokumentpakkefingeravtrykk: placeholder,
                maskinportentoken: String::new(),
                sikkerhetsnivaa: Sikkerhetsnivaa::from_u8(l.sikkerhetsnivaa).ok_or(BuildError {
                    code: "invalid_letter",
                    detail: "sikkerhetsnivaa must be 3 or 4".into(),
                })?,
                virkningsdato: match &l.virkningsdato {
                    Some(s) => Some(Dato::parse(s).ok_or(BuildError {
                        code: "invalid_letter",
                        detail: format!("virkningsdato {s:?} is not YYYY-MM-DD"),
                    })?),
                    None => None,
                },
                virkningstidspunkt: None,
                aapningskvittering: l.aapningskvittering,
                ikkesensitivtittel: l.ikkesensitivtittel.clone(),
                spraak: l.spraak.clone(),
                varsler,
            });
            (MessageType::Digital, Process::Digital, body)
        }
        RouteKind::Print => {
            let u = l.utskrift.as_ref().ok_or(BuildError {
                code: "no_print_address",
                detail: "the letter has no print address".into(),
            })?;
            let body = Body::Utskrift(Utskrift {
                avsender,
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
            (MessageType::Utskrift, Process::Utskrift, body)
        }
    };
    let header = Header::new(
        t,
        sender,
        &route.receiver,
        message_id,
        conversation_id,
        process,
        created,
        None,
    );
    Ok(Sbd { header, body })
}

/// The dokumentpakke for `l` with the document contents in order; the manifest names
/// `avsender` (the behandlingsansvarlig, as the business message does).
pub fn build_package(
    l: &StoredLetter,
    avsender: &ActorId,
    route: &Route,
    contents: Vec<Vec<u8>>,
) -> Dokumentpakke {
    let documents = l
        .documents
        .iter()
        .zip(contents)
        .enumerate()
        .map(|(i, (d, bytes))| {
            let ext = match (&d.lenke, &d.bevis, &d.arrangement) {
                (Some(x), _, _) => Some(("lenke", Extension::Lenke(x.clone()))),
                (_, Some(x), _) => Some(("bevis", Extension::Bevis(x.clone()))),
                (_, _, Some(x)) => Some(("arrangement", Extension::Arrangement(x.clone()))),
                _ => None,
            };
            Document {
                href: d.filename.clone(),
                mime: d.mime.clone(),
                title: d.title.clone(),
                lang: d.title.as_ref().map(|_| d.lang.clone()),
                role: if i == 0 {
                    DocumentRole::Hoveddokument
                } else {
                    DocumentRole::Vedlegg
                },
                bytes,
                data: ext.map(|(name, extension)| DocumentData {
                    href: format!("{name}-{}.xml", i + 1),
                    extension,
                }),
            }
        })
        .collect();
    Dokumentpakke {
        manifest: Manifest {
            mottaker: match &route.kind {
                RouteKind::Digital {
                    postkasseadresse, ..
                } => Some(container::Mottaker {
                    personidentifikator: Some(l.personidentifikator.clone()),
                    postkasseadresse: postkasseadresse.clone(),
                }),
                RouteKind::Print => None,
            },
            avsender: container::Avsender {
                organisasjon: avsender.to_string(),
                avsenderidentifikator: l.avsenderidentifikator.clone(),
                faktura_referanse: l.fakturareferanse.clone(),
            },
            lenke: None,
        },
        documents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LetterRequest {
        serde_json::from_value(serde_json::json!({
            "id": "6f1d4a47-08a4-4c6e-9a0c-1f0b0b7b2a11",
            "personidentifikator": "04817197073",
            "ikkesensitivtittel": "Tilbud om barnehageplass",
            "documents": [{"filename": "tilbud.pdf", "mime": "application/pdf", "title": "Tilbud", "content_base64": "JVBERi0="}],
        }))
        .unwrap()
    }

    fn content() -> Vec<bytes::Bytes> {
        vec![bytes::Bytes::from_static(b"%PDF-")]
    }

    #[test]
    fn a_minimal_letter_validates_and_has_a_stable_fingerprint() {
        let a = validate(&request(), &content(), &FnrPolicy::PERMISSIVE, None).unwrap();
        let b = validate(&request(), &content(), &FnrPolicy::PERMISSIVE, None).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.sikkerhetsnivaa, 4);
        let mut other = request();
        other.ikkesensitivtittel = "Noe annet".into();
        let c = validate(&other, &content(), &FnrPolicy::PERMISSIVE, None).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        let d = validate(
            &request(),
            &[bytes::Bytes::from_static(b"%PDF-1")],
            &FnrPolicy::PERMISSIVE,
            None,
        )
        .unwrap();
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn bad_fields_are_refused_with_their_code() {
        let p = FnrPolicy::PERMISSIVE;
        let mut r = request();
        r.personidentifikator = "04817197074".into();
        assert_eq!(
            validate(&r, &content(), &p, None).unwrap_err().code,
            "invalid_personidentifikator"
        );
        let mut r = request();
        r.id = "not-a-uuid".into();
        assert_eq!(
            validate(&r, &content(), &p, None).unwrap_err().code,
            "invalid_letter_id"
        );
        let mut r = request();
        r.sikkerhetsnivaa = 2;
        assert_eq!(
            validate(&r, &content(), &p, None).unwrap_err().code,
            "invalid_letter"
        );
        let mut r = request();
        r.ikkesensitivtittel = String::new();
        assert_eq!(
            validate(&r, &content(), &p, None).unwrap_err().code,
            "invalid_letter"
        );
        let mut r = request();
        r.documents[0].mime = "application/x-msdownload".into();
        assert_eq!(
            validate(&r, &content(), &p, None).unwrap_err().code,
            "invalid_document"
        );
        let mut r = request();
        r.utskrift = Some(UtskriftRequest {
            mottaker: AdresseInformasjon {
                navn: Some("Aud".into()),
                adresselinje1: Some("Gate 1".into()),
                postnummer: Some("12345".into()),
                poststed: Some("Oslo".into()),
                ..Default::default()
            },
            retur: AdresseInformasjon::default(),
            returposthaandtering: Returposthaandtering::DirekteRetur,
            utskriftstype: Utskriftstype::SortHvit,
            posttype: None,
        });
        let e = validate(&r, &content(), &p, None).unwrap_err();
        assert_eq!(e.code, "invalid_letter");
        assert!(e.field.starts_with("utskrift"), "{e}");
        assert!(validate(&request(), &content(), &FnrPolicy::PRODUCTION, None).is_err());
    }
}
