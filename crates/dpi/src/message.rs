//! Business messages (forretningsmeldinger) inside the JSON Standard Business Document (§3.1, §4,
//! §7): typed values, parsed with every cardinality, limit, enum, pattern and format of Digdir's
//! JSON schemas enforced (`additionalProperties: false` becomes `deny_unknown_fields`).
//!
//! Two levels of checking:
//! * [`Sbd::parse`] accepts exactly what the published JSON schemas accept (so Digdir's own samples
//!   with placeholder organisation numbers or hex digests parse);
//! * [`Sbd::dpi_issues`] adds the stricter rules of the DPI profile (§8: body key equals `type`,
//!   exact standard/process strings, valid organisation numbers, SHA-256 fingerprint, …), which a
//!   receiving corner 4 applies.

use std::collections::BTreeMap;
use std::fmt;

use domain::{ActorId, ConversationId, MessageId};
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The authority every organisation identifier carries.
pub const ISO6523: &str = "iso6523-actorid-upis";
/// The only fingerprint digest method the DPI profile uses.
pub const SHA256_URI: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// The scope type of the conversation id scope.
pub const CONVERSATION_ID: &str = "ConversationId";

/// A schema or profile violation in a business message. `code` is stable and snake_case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {path}: {detail}")]
pub struct MessageError {
    pub code: &'static str,
    pub path: String,
    pub detail: String,
}

impl MessageError {
    pub fn new(code: &'static str, path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            path: path.into(),
            detail: detail.into(),
        }
    }

    fn from_serde(path: &str, e: &serde_json::Error) -> Self {
        let msg = e.to_string();
        let code = if msg.contains("unknown field") {
            "sbd_unknown_member"
        } else if msg.contains("missing field") {
            "sbd_missing_member"
        } else if msg.contains("unknown variant") {
            "sbd_enum"
        } else if msg.contains("invalid length") || msg.contains("trailing") {
            "sbd_cardinality"
        } else if msg.contains("invalid type") || msg.contains("invalid value") {
            "sbd_type"
        } else if e.is_syntax() || e.is_eof() {
            "sbd_json_malformed"
        } else {
            "sbd_format"
        };
        Self::new(code, path, msg)
    }
}

type Res<T> = Result<T, MessageError>;

// ---------------------------------------------------------------------------------------------
// Message types and identifiers

/// The nine DPI document types; the value is the body key and `documentIdentification.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Digital,
    Utskrift,
    Flyttet,
    Leveringskvittering,
    Aapningskvittering,
    Mottakskvittering,
    Varslingfeiletkvittering,
    Returpostkvittering,
    Feil,
}

impl MessageType {
    pub const ALL: [MessageType; 9] = [
        Self::Digital,
        Self::Utskrift,
        Self::Flyttet,
        Self::Leveringskvittering,
        Self::Aapningskvittering,
        Self::Mottakskvittering,
        Self::Varslingfeiletkvittering,
        Self::Returpostkvittering,
        Self::Feil,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::Digital => "digital",
            Self::Utskrift => "utskrift",
            Self::Flyttet => "flyttet",
            Self::Leveringskvittering => "leveringskvittering",
            Self::Aapningskvittering => "aapningskvittering",
            Self::Mottakskvittering => "mottakskvittering",
            Self::Varslingfeiletkvittering => "varslingfeiletkvittering",
            Self::Returpostkvittering => "returpostkvittering",
            Self::Feil => "feil",
        }
    }

    pub fn from_key(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == s)
    }

    /// Peppol document type id (`documentIdentification.standard`), identifiers page form (§2, §10.6).
    pub fn standard(self) -> String {
        format!(
            "urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost##urn:fdc:digdir.no:2020:innbyggerpost:schema:{}::1.0",
            self.key()
        )
    }

    pub fn is_receipt(self) -> bool {
        !matches!(self, Self::Digital | Self::Utskrift | Self::Flyttet)
    }

    /// Processes in which this document may occur (§2 "Process ↔ allowed documents").
    pub fn allowed_in(self, process: Process) -> bool {
        use MessageType::*;
        match process {
            Process::Digital => matches!(
                self,
                Digital
                    | Feil
                    | Leveringskvittering
                    | Aapningskvittering
                    | Varslingfeiletkvittering
            ),
            Process::Utskrift => matches!(
                self,
                Utskrift | Feil | Leveringskvittering | Mottakskvittering | Returpostkvittering
            ),
            Process::Flyttet => matches!(self, Flyttet | Feil | Leveringskvittering),
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The three Peppol processes (`businessScope.scope[].identifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Process {
    Digital,
    Utskrift,
    Flyttet,
}

impl Process {
    pub fn uri(self) -> &'static str {
        match self {
            Self::Digital => {
                "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:digital:ver1.0"
            }
            Self::Utskrift => {
                "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:utskrift:ver1.0"
            }
            Self::Flyttet => {
                "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:flyttet:ver1.0"
            }
        }
    }

    pub fn from_uri(s: &str) -> Option<Self> {
        [Self::Digital, Self::Utskrift, Self::Flyttet]
            .into_iter()
            .find(|p| p.uri() == s)
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar wrappers with schema formats

/// An RFC 3339 `date-time` (JSON schema `format: date-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    pub fn parse(s: &str) -> Option<Self> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(Self)
    }
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s)
            .ok_or_else(|| de::Error::custom(format!("not an RFC 3339 date-time: {s:?}")))
    }
}

/// A calendar `date` (JSON schema `format: date`, `YYYY-MM-DD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dato(pub time::Date);

const DATE_FMT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl Dato {
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 10 {
            return None;
        }
        time::Date::parse(s, DATE_FMT).ok().map(Self)
    }
}

impl fmt::Display for Dato {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(DATE_FMT) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl Serialize for Dato {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dato {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dato::parse(&s).ok_or_else(|| de::Error::custom(format!("not a date (YYYY-MM-DD): {s:?}")))
    }
}

/// Security level needed to open the letter (`sikkerhetsnivaa`, integer enum {3, 4}).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sikkerhetsnivaa {
    Nivaa3,
    Nivaa4,
}

impl Sikkerhetsnivaa {
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Nivaa3 => 3,
            Self::Nivaa4 => 4,
        }
    }
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            3 => Some(Self::Nivaa3),
            4 => Some(Self::Nivaa4),
            _ => None,
        }
    }
}

impl Serialize for Sikkerhetsnivaa {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for Sikkerhetsnivaa {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .and_then(Self::from_u8)
            .ok_or_else(|| de::Error::custom(format!("unknown variant `{n}`, expected 3 or 4")))
    }
}

// ---------------------------------------------------------------------------------------------
// SBDH

/// `{authority, value}` in the SBDH (schema: two free strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    pub authority: String,
    pub value: String,
}

impl Identifier {
    pub fn org(actor: &ActorId) -> Self {
        Self {
            authority: ISO6523.into(),
            value: actor.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor {
    identifier: Identifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DocumentIdentification {
    pub standard: String,
    pub type_version: String,
    #[serde(deserialize_with = "de_message_id")]
    pub instance_identifier: MessageId,
    /// Kept as received; [`Sbd::dpi_issues`] checks it equals the body key.
    #[serde(rename = "type")]
    pub doc_type: String,
    pub creation_date_and_time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScopeInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_response_date_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scope {
    #[serde(rename = "type")]
    pub scope_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_conversation_id"
    )]
    pub instance_identifier: Option<ConversationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_information: Option<Vec<ScopeInformation>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessScope {
    pub scope: Vec<Scope>,
}

/// The `standardBusinessDocumentHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub header_version: String,
    /// Technical sender (databehandler; for receipts the provider). Exactly one on the wire.
    pub sender: Identifier,
    pub receiver: Identifier,
    pub document_identification: DocumentIdentification,
    pub business_scope: BusinessScope,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HeaderWire {
    header_version: String,
    sender: [Actor; 1],
    receiver: [Actor; 1],
    document_identification: DocumentIdentification,
    business_scope: BusinessScope,
}

impl Serialize for Header {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HeaderWire {
            header_version: self.header_version.clone(),
            sender: [Actor {
                identifier: self.sender.clone(),
            }],
            receiver: [Actor {
                identifier: self.receiver.clone(),
            }],
            document_identification: self.document_identification.clone(),
            business_scope: self.business_scope.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HeaderWire::deserialize(d)?;
        let [sender] = w.sender;
        let [receiver] = w.receiver;
        Ok(Self {
            header_version: w.header_version,
            sender: sender.identifier,
            receiver: receiver.identifier,
            document_identification: w.document_identification,
            business_scope: w.business_scope,
        })
    }
}

impl Header {
    /// A header as the DPI profile wants it: version 1.0, one ConversationId scope.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t: MessageType,
        sender: &ActorId,
        receiver: &ActorId,
        message_id: MessageId,
        conversation_id: ConversationId,
        process: Process,
        created: Timestamp,
        expected_response: Option<String>,
    ) -> Self {
        Self {
            header_version: "1.0".into(),
            sender: Identifier::org(sender),
            receiver: Identifier::org(receiver),
            document_identification: DocumentIdentification {
                standard: t.standard(),
                type_version: "1.0".into(),
                instance_identifier: message_id,
                doc_type: t.key().into(),
                creation_date_and_time: created,
            },
            business_scope: BusinessScope {
                scope: vec![Scope {
                    scope_type: CONVERSATION_ID.into(),
                    instance_identifier: Some(conversation_id),
                    identifier: Some(process.uri().into()),
                    scope_information: expected_response.map(|e| {
                        vec![ScopeInformation {
                            expected_response_date_time: Some(e),
                        }]
                    }),
                }],
            },
        }
    }

    fn conversation_scope(&self) -> Option<&Scope> {
        self.business_scope
            .scope
            .iter()
            .find(|s| s.scope_type == CONVERSATION_ID)
    }
}

// ---------------------------------------------------------------------------------------------
// Body parts shared by several messages

/// `virksomhetsidentifikator`: authority enum + value pattern `[0-9]{4}:\w{1,35}` (unanchored, as in
/// the schema). Use [`Virksomhetsidentifikator::actor_id`] for a checked organisation number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Virksomhetsidentifikator {
    pub authority: String,
    pub value: String,
}

impl Virksomhetsidentifikator {
    pub fn new(actor: &ActorId) -> Self {
        Self {
            authority: ISO6523.into(),
            value: actor.to_string(),
        }
    }
    pub fn actor_id(&self) -> Result<ActorId, domain::IdError> {
        ActorId::parse(&self.value)
    }
    fn validate(&self, path: &str) -> Res<()> {
        if self.authority != ISO6523 {
            return Err(MessageError::new(
                "sbd_enum",
                format!("{path}/authority"),
                format!("authority must be {ISO6523}"),
            ));
        }
        if !matches_actor_pattern(&self.value) {
            return Err(MessageError::new(
                "sbd_pattern",
                format!("{path}/value"),
                "value does not match [0-9]{4}:\\w{1,35}",
            ));
        }
        Ok(())
    }
}

/// JSON-schema (ECMA, unanchored) match of `[0-9]{4}:\w{1,35}`.
fn matches_actor_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(6).any(|w| {
        w.iter().take(4).all(u8::is_ascii_digit)
            && w.get(4) == Some(&b':')
            && w.get(5)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Avsender {
    pub virksomhetsidentifikator: Virksomhetsidentifikator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avsenderidentifikator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faktura_referanse: Option<String>,
}

impl Avsender {
    pub fn new(actor: &ActorId) -> Self {
        Self {
            virksomhetsidentifikator: Virksomhetsidentifikator::new(actor),
            avsenderidentifikator: None,
            faktura_referanse: None,
        }
    }
    fn validate(&self, path: &str) -> Res<()> {
        self.virksomhetsidentifikator
            .validate(&format!("{path}/virksomhetsidentifikator"))?;
        max_len(
            self.avsenderidentifikator.as_deref(),
            100,
            &format!("{path}/avsenderidentifikator"),
        )?;
        max_len(
            self.faktura_referanse.as_deref(),
            40,
            &format!("{path}/fakturaReferanse"),
        )
    }
}

/// `virksomhetmottaker` (receipts). The schema does not forbid extra members here, so they are
/// kept (and written back) rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Virksomhetmottaker {
    pub virksomhetsidentifikator: Virksomhetsidentifikator,
    /// Note the one-"t" spelling of the wire name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motakeridentifikator: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Virksomhetmottaker {
    fn validate(&self, path: &str) -> Res<()> {
        self.virksomhetsidentifikator
            .validate(&format!("{path}/virksomhetsidentifikator"))?;
        max_len(
            self.motakeridentifikator.as_deref(),
            100,
            &format!("{path}/motakeridentifikator"),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Personmottaker {
    pub postkasseadresse: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dokumentpakkefingeravtrykk {
    pub digest_method: String,
    pub digest_value: String,
}

impl Dokumentpakkefingeravtrykk {
    /// The fingerprint of CMS bytes: base64(SHA-256).
    pub fn of(cms: &[u8]) -> Self {
        Self {
            digest_method: SHA256_URI.into(),
            digest_value: crate::b64_std(&crate::sha256(cms)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Epostvarsel {
    pub epostadresse: String,
    pub varslingstekst: String,
    pub repetisjoner: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smsvarsel {
    pub mobiltelefonnummer: String,
    pub varslingstekst: String,
    pub repetisjoner: Vec<u8>,
}

/// `varsler`; the schema allows other members, which are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Varsler {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epostvarsel: Option<Epostvarsel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smsvarsel: Option<Smsvarsel>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Varsler {
    fn validate(&self, path: &str) -> Res<()> {
        if let Some(e) = &self.epostvarsel {
            let p = format!("{path}/epostvarsel");
            if !is_email(&e.epostadresse) {
                return Err(MessageError::new(
                    "sbd_format",
                    format!("{p}/epostadresse"),
                    "not an e-mail address",
                ));
            }
            len_range(&e.varslingstekst, 1, 500, &format!("{p}/varslingstekst"))?;
            repetisjoner(&e.repetisjoner, &format!("{p}/repetisjoner"))?;
        }
        if let Some(s) = &self.smsvarsel {
            let p = format!("{path}/smsvarsel");
            len_range(
                &s.mobiltelefonnummer,
                8,
                20,
                &format!("{p}/mobiltelefonnummer"),
            )?;
            let m = s
                .mobiltelefonnummer
                .strip_prefix('+')
                .unwrap_or(&s.mobiltelefonnummer);
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c == b'-' || c == b' ' || c == b'_')
            {
                return Err(MessageError::new(
                    "sbd_pattern",
                    format!("{p}/mobiltelefonnummer"),
                    "does not match ^\\+?[- _0-9]+$",
                ));
            }
            len_range(&s.varslingstekst, 1, 160, &format!("{p}/varslingstekst"))?;
            repetisjoner(&s.repetisjoner, &format!("{p}/repetisjoner"))?;
        }
        Ok(())
    }
}

fn repetisjoner(r: &[u8], path: &str) -> Res<()> {
    if r.is_empty() || r.len() > 10 {
        return Err(MessageError::new(
            "sbd_cardinality",
            path,
            "repetisjoner must have 1..10 items",
        ));
    }
    if r.iter().any(|d| *d > 25) {
        return Err(MessageError::new(
            "sbd_range",
            path,
            "repetisjoner items must be 0..25",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The message bodies

/// `digital`: a letter to a citizen's digital mailbox (§4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digital {
    pub avsender: Avsender,
    pub mottaker: Personmottaker,
    pub dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk,
    pub maskinportentoken: String,
    pub sikkerhetsnivaa: Sikkerhetsnivaa,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virkningsdato: Option<Dato>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virkningstidspunkt: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aapningskvittering: Option<bool>,
    pub ikkesensitivtittel: String,
    pub spraak: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varsler: Option<Varsler>,
}

impl Digital {
    fn validate(&self, p: &str) -> Res<()> {
        self.avsender.validate(&format!("{p}/avsender"))?;
        len_range(
            &self.ikkesensitivtittel,
            1,
            255,
            &format!("{p}/ikkesensitivtittel"),
        )?;
        len_range(&self.spraak, 2, 2, &format!("{p}/spraak"))?;
        if let Some(v) = &self.varsler {
            v.validate(&format!("{p}/varsler"))?;
        }
        Ok(())
    }
}

/// `utskriftstype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Utskriftstype {
    #[serde(rename = "SORT_HVIT")]
    SortHvit,
    #[serde(rename = "FARGE")]
    Farge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Returposthaandtering {
    #[serde(rename = "DIREKTE_RETUR")]
    DirekteRetur,
    #[serde(rename = "MAKULERING_MED_MELDING")]
    MakuleringMedMelding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Posttype {
    A,
    B,
}

/// `adresseInformasjon` (§4.2) with its exclusive `oneOf` rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdresseInformasjon {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresselinje1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresselinje2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresselinje3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adresselinje4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postnummer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poststed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub land: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landkode: Option<String>,
}

impl AdresseInformasjon {
    fn validate(&self, p: &str) -> Res<()> {
        for (name, v) in [
            ("adresselinje1", &self.adresselinje1),
            ("adresselinje2", &self.adresselinje2),
            ("adresselinje3", &self.adresselinje3),
            ("adresselinje4", &self.adresselinje4),
        ] {
            max_len(v.as_deref(), 100, &format!("{p}/{name}"))?;
        }
        max_len(self.poststed.as_deref(), 80, &format!("{p}/poststed"))?;
        max_len(self.land.as_deref(), 80, &format!("{p}/land"))?;
        if let Some(n) = &self.postnummer
            && !(n.len() == 4 && n.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(MessageError::new(
                "sbd_pattern",
                format!("{p}/postnummer"),
                "must be 4 digits",
            ));
        }
        if let Some(k) = &self.landkode
            && !(k.len() == 2 && k.bytes().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(MessageError::new(
                "sbd_pattern",
                format!("{p}/landkode"),
                "must be 2 letters",
            ));
        }
        let base = self.navn.is_some() && self.adresselinje1.is_some();
        let norsk = base && self.postnummer.is_some() && self.poststed.is_some();
        let utland = base && self.land.is_some();
        let kode = base && self.landkode.is_some();
        let foreign = utland ^ kode;
        if !(norsk ^ foreign) {
            return Err(MessageError::new(
                "sbd_address_rule",
                p,
                "an address is either Norwegian (navn, adresselinje1, postnummer, poststed) or foreign \
                 (navn, adresselinje1 and exactly one of land/landkode), never both",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retur {
    pub mottaker: AdresseInformasjon,
    pub returposthaandtering: Returposthaandtering,
}

/// `utskrift`: a letter to print and post (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utskrift {
    pub avsender: Avsender,
    pub mottaker: AdresseInformasjon,
    pub dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk,
    pub maskinportentoken: String,
    pub utskriftstype: Utskriftstype,
    pub retur: Retur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posttype: Option<Posttype>,
}

impl Utskrift {
    fn validate(&self, p: &str) -> Res<()> {
        self.avsender.validate(&format!("{p}/avsender"))?;
        self.mottaker.validate(&format!("{p}/mottaker"))?;
        self.retur.mottaker.validate(&format!("{p}/retur/mottaker"))
    }
}

/// `flyttet`: a letter moved between mailbox providers (§4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flyttet {
    pub avsender: Avsender,
    pub mottaker: Personmottaker,
    pub maskinportentoken: String,
    pub tidspunkt: Timestamp,
    pub dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk,
    pub mottakstidspunkt: Dato,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aapnet: Option<bool>,
    pub sikkerhetsnivaa: Sikkerhetsnivaa,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virkningsdato: Option<Dato>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virkningstidspunkt: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aapningskvittering: Option<bool>,
    pub ikkesensitivtittel: String,
    pub spraak: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varsler: Option<Varsler>,
}

impl Flyttet {
    fn validate(&self, p: &str) -> Res<()> {
        self.avsender.validate(&format!("{p}/avsender"))?;
        len_range(
            &self.ikkesensitivtittel,
            1,
            255,
            &format!("{p}/ikkesensitivtittel"),
        )?;
        len_range(&self.spraak, 2, 2, &format!("{p}/spraak"))?;
        if let Some(v) = &self.varsler {
            v.validate(&format!("{p}/varsler"))?;
        }
        Ok(())
    }
}

/// The common receipt body (`leveringskvittering`, `aapningskvittering`, `mottakskvittering`,
/// `returpostkvittering`). `avsender` is the provider issuing it, `mottaker` the original controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kvittering {
    pub avsender: Avsender,
    pub mottaker: Virksomhetmottaker,
    pub tidspunkt: Timestamp,
}

impl Kvittering {
    fn validate(&self, p: &str) -> Res<()> {
        self.avsender.validate(&format!("{p}/avsender"))?;
        self.mottaker.validate(&format!("{p}/mottaker"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Varslingskanal {
    Epost,
    Sms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarslingfeiletKvittering {
    pub avsender: Avsender,
    pub mottaker: Virksomhetmottaker,
    pub tidspunkt: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beskrivelse: Option<String>,
    pub varslingskanal: Varslingskanal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Feiltype {
    #[serde(rename = "KLIENT")]
    Klient,
    #[serde(rename = "SERVER")]
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feil {
    pub avsender: Avsender,
    pub mottaker: Virksomhetmottaker,
    pub tidspunkt: Timestamp,
    pub feiltype: Feiltype,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detaljer: Option<String>,
}

/// The body of an SBD: one of the nine business messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Digital(Digital),
    Utskrift(Utskrift),
    Flyttet(Flyttet),
    Leveringskvittering(Kvittering),
    Aapningskvittering(Kvittering),
    Mottakskvittering(Kvittering),
    Varslingfeiletkvittering(VarslingfeiletKvittering),
    Returpostkvittering(Kvittering),
    Feil(Feil),
}

impl Body {
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Digital(_) => MessageType::Digital,
            Self::Utskrift(_) => MessageType::Utskrift,
            Self::Flyttet(_) => MessageType::Flyttet,
            Self::Leveringskvittering(_) => MessageType::Leveringskvittering,
            Self::Aapningskvittering(_) => MessageType::Aapningskvittering,
            Self::Mottakskvittering(_) => MessageType::Mottakskvittering,
            Self::Varslingfeiletkvittering(_) => MessageType::Varslingfeiletkvittering,
            Self::Returpostkvittering(_) => MessageType::Returpostkvittering,
            Self::Feil(_) => MessageType::Feil,
        }
    }

    /// The business-level avsender (controller for letters, provider for receipts).
    pub fn avsender(&self) -> &Avsender {
        match self {
            Self::Digital(m) => &m.avsender,
            Self::Utskrift(m) => &m.avsender,
            Self::Flyttet(m) => &m.avsender,
            Self::Leveringskvittering(k)
            | Self::Aapningskvittering(k)
            | Self::Mottakskvittering(k)
            | Self::Returpostkvittering(k) => &k.avsender,
            Self::Varslingfeiletkvittering(k) => &k.avsender,
            Self::Feil(f) => &f.avsender,
        }
    }

    /// `maskinportentoken` for the three letter types.
    pub fn maskinportentoken(&self) -> Option<&str> {
        match self {
            Self::Digital(m) => Some(&m.maskinportentoken),
            Self::Utskrift(m) => Some(&m.maskinportentoken),
            Self::Flyttet(m) => Some(&m.maskinportentoken),
            _ => None,
        }
    }

    pub fn fingeravtrykk(&self) -> Option<&Dokumentpakkefingeravtrykk> {
        match self {
            Self::Digital(m) => Some(&m.dokumentpakkefingeravtrykk),
            Self::Utskrift(m) => Some(&m.dokumentpakkefingeravtrykk),
            Self::Flyttet(m) => Some(&m.dokumentpakkefingeravtrykk),
            _ => None,
        }
    }

    pub fn sikkerhetsnivaa(&self) -> Option<Sikkerhetsnivaa> {
        match self {
            Self::Digital(m) => Some(m.sikkerhetsnivaa),
            Self::Flyttet(m) => Some(m.sikkerhetsnivaa),
            _ => None,
        }
    }

    fn validate(&self, p: &str) -> Res<()> {
        match self {
            Self::Digital(m) => m.validate(p),
            Self::Utskrift(m) => m.validate(p),
            Self::Flyttet(m) => m.validate(p),
            Self::Leveringskvittering(k)
            | Self::Aapningskvittering(k)
            | Self::Mottakskvittering(k)
            | Self::Returpostkvittering(k) => k.validate(p),
            Self::Varslingfeiletkvittering(k) => {
                k.avsender.validate(&format!("{p}/avsender"))?;
                k.mottaker.validate(&format!("{p}/mottaker"))
            }
            Self::Feil(f) => {
                f.avsender.validate(&format!("{p}/avsender"))?;
                f.mottaker.validate(&format!("{p}/mottaker"))
            }
        }
    }

    fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::Digital(m) => serde_json::to_value(m),
            Self::Utskrift(m) => serde_json::to_value(m),
            Self::Flyttet(m) => serde_json::to_value(m),
            Self::Leveringskvittering(k)
            | Self::Aapningskvittering(k)
            | Self::Mottakskvittering(k)
            | Self::Returpostkvittering(k) => serde_json::to_value(k),
            Self::Varslingfeiletkvittering(k) => serde_json::to_value(k),
            Self::Feil(f) => serde_json::to_value(f),
        }
    }

    fn from_value(t: MessageType, v: Value, p: &str) -> Res<Self> {
        fn de<T: serde::de::DeserializeOwned>(v: Value, p: &str) -> Res<T> {
            serde_json::from_value(v).map_err(|e| MessageError::from_serde(p, &e))
        }
        Ok(match t {
            MessageType::Digital => Self::Digital(de(v, p)?),
            MessageType::Utskrift => Self::Utskrift(de(v, p)?),
            MessageType::Flyttet => Self::Flyttet(de(v, p)?),
            MessageType::Leveringskvittering => Self::Leveringskvittering(de(v, p)?),
            MessageType::Aapningskvittering => Self::Aapningskvittering(de(v, p)?),
            MessageType::Mottakskvittering => Self::Mottakskvittering(de(v, p)?),
            MessageType::Varslingfeiletkvittering => Self::Varslingfeiletkvittering(de(v, p)?),
            MessageType::Returpostkvittering => Self::Returpostkvittering(de(v, p)?),
            MessageType::Feil => Self::Feil(de(v, p)?),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The whole document

/// A parsed `{"standardBusinessDocument": {header, <type>: body}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbd {
    pub header: Header,
    pub body: Body,
}

/// Largest business message accepted (a real one is a few KB; the token dominates).
pub const MAX_SBD_BYTES: usize = 256 * 1024;

impl Sbd {
    /// Parse and schema-validate JSON bytes.
    pub fn parse(json: &[u8]) -> Res<Self> {
        if json.len() > MAX_SBD_BYTES {
            return Err(MessageError::new(
                "sbd_too_large",
                "",
                format!("business message larger than {MAX_SBD_BYTES} bytes"),
            ));
        }
        // Duplicate members are refused before anything else: parsers disagree on which one
        // wins, and a signed message must mean the same thing to every reader.
        if let Err(e) = serde_json::from_slice::<NoDuplicates>(json) {
            let code = if e.to_string().contains(DUPLICATE) {
                "sbd_duplicate_member"
            } else {
                MessageError::from_serde("", &e).code
            };
            return Err(MessageError::new(code, "", e.to_string()));
        }
        let root: Value =
            serde_json::from_slice(json).map_err(|e| MessageError::from_serde("", &e))?;
        Self::from_value(root)
    }

    pub fn from_value(root: Value) -> Res<Self> {
        let Value::Object(mut root) = root else {
            return Err(MessageError::new(
                "sbd_type",
                "",
                "top level must be an object",
            ));
        };
        let doc = root.remove("standardBusinessDocument").ok_or_else(|| {
            MessageError::new(
                "sbd_missing_member",
                "",
                "missing field `standardBusinessDocument`",
            )
        })?;
        if let Some(k) = root.keys().next() {
            return Err(MessageError::new(
                "sbd_unknown_member",
                "",
                format!("unknown field `{k}`"),
            ));
        }
        let Value::Object(mut doc) = doc else {
            return Err(MessageError::new(
                "sbd_type",
                "/standardBusinessDocument",
                "must be an object",
            ));
        };
        let header = doc
            .remove("standardBusinessDocumentHeader")
            .ok_or_else(|| {
                MessageError::new(
                    "sbd_missing_member",
                    "/standardBusinessDocument",
                    "missing field `standardBusinessDocumentHeader`",
                )
            })?;
        let hp = "/standardBusinessDocument/standardBusinessDocumentHeader";
        let header: Header =
            serde_json::from_value(header).map_err(|e| MessageError::from_serde(hp, &e))?;
        let mut body = None;
        for (k, v) in doc {
            let Some(t) = MessageType::from_key(&k) else {
                return Err(MessageError::new(
                    "sbd_unknown_member",
                    "/standardBusinessDocument",
                    format!("unknown field `{k}`"),
                ));
            };
            if body.is_some() {
                return Err(MessageError::new(
                    "sbd_cardinality",
                    "/standardBusinessDocument",
                    "more than one message body",
                ));
            }
            body = Some((t, v));
        }
        let Some((t, v)) = body else {
            return Err(MessageError::new(
                "sbd_missing_member",
                "/standardBusinessDocument",
                "no message body",
            ));
        };
        let bp = format!("/standardBusinessDocument/{}", t.key());
        let body = Body::from_value(t, v, &bp)?;
        body.validate(&bp)?;
        Ok(Self { header, body })
    }

    pub fn to_value(&self) -> Value {
        let mut doc = Map::new();
        doc.insert(
            "standardBusinessDocumentHeader".into(),
            serde_json::to_value(&self.header).unwrap_or(Value::Null),
        );
        doc.insert(
            self.body.message_type().key().into(),
            self.body.to_value().unwrap_or(Value::Null),
        );
        let mut root = Map::new();
        root.insert("standardBusinessDocument".into(), Value::Object(doc));
        Value::Object(root)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    pub fn message_type(&self) -> MessageType {
        self.body.message_type()
    }
    pub fn message_id(&self) -> MessageId {
        self.header.document_identification.instance_identifier
    }
    pub fn conversation_id(&self) -> Option<ConversationId> {
        self.header
            .conversation_scope()
            .and_then(|s| s.instance_identifier)
    }
    pub fn process(&self) -> Option<Process> {
        self.header
            .conversation_scope()
            .and_then(|s| s.identifier.as_deref())
            .and_then(Process::from_uri)
    }
    pub fn created(&self) -> Timestamp {
        self.header.document_identification.creation_date_and_time
    }

    /// Rules of the DPI profile beyond the JSON schema (§3.1, §8). Empty when all hold.
    pub fn dpi_issues(&self) -> Vec<MessageError> {
        let mut out = Vec::new();
        let t = self.message_type();
        let h = &self.header;
        let hp = "/standardBusinessDocument/standardBusinessDocumentHeader";
        let mut bad =
            |code, path: String, detail: String| out.push(MessageError::new(code, path, detail));
        if h.header_version != "1.0" {
            bad(
                "sbd_header_version",
                format!("{hp}/headerVersion"),
                "must be 1.0".into(),
            );
        }
        let di = &h.document_identification;
        if di.doc_type != t.key() {
            bad(
                "sbd_type_mismatch",
                format!("{hp}/documentIdentification/type"),
                format!("type {:?} but body is {}", di.doc_type, t.key()),
            );
        }
        if di.standard != t.standard() {
            bad(
                "sbd_standard",
                format!("{hp}/documentIdentification/standard"),
                format!("expected {}", t.standard()),
            );
        }
        if di.type_version != "1.0" {
            bad(
                "sbd_type_version",
                format!("{hp}/documentIdentification/typeVersion"),
                "must be 1.0".into(),
            );
        }
        for (name, id) in [("sender", &h.sender), ("receiver", &h.receiver)] {
            if id.authority != ISO6523 {
                bad(
                    "sbd_authority",
                    format!("{hp}/{name}"),
                    format!("authority must be {ISO6523}"),
                );
            }
            if let Err(e) = ActorId::parse(&id.value) {
                bad(
                    "sbd_orgnr",
                    format!("{hp}/{name}"),
                    format!("{}: {e}", id.value),
                );
            }
        }
        let scopes = &h.business_scope.scope;
        match h.conversation_scope() {
            None => bad(
                "sbd_scope",
                format!("{hp}/businessScope"),
                "no ConversationId scope".into(),
            ),
            Some(s) => {
                if scopes.len() != 1 {
                    bad(
                        "sbd_scope",
                        format!("{hp}/businessScope"),
                        "exactly one scope expected".into(),
                    );
                }
                if s.instance_identifier.is_none() {
                    bad(
                        "sbd_scope",
                        format!("{hp}/businessScope"),
                        "ConversationId has no instanceIdentifier".into(),
                    );
                }
                match s.identifier.as_deref().map(|i| (i, Process::from_uri(i))) {
                    None => bad(
                        "sbd_scope",
                        format!("{hp}/businessScope"),
                        "no process identifier".into(),
                    ),
                    Some((i, None)) => bad(
                        "sbd_process",
                        format!("{hp}/businessScope"),
                        format!("unknown process {i}"),
                    ),
                    Some((_, Some(p))) if !t.allowed_in(p) => bad(
                        "sbd_process",
                        format!("{hp}/businessScope"),
                        format!("{} is not allowed in process {}", t.key(), p.uri()),
                    ),
                    Some(_) => {}
                }
            }
        }
        let bp = format!("/standardBusinessDocument/{}", t.key());
        if let Err(e) = self.body.avsender().virksomhetsidentifikator.actor_id() {
            bad("sbd_orgnr", format!("{bp}/avsender"), e.to_string());
        }
        if let Some(f) = self.body.fingeravtrykk() {
            if f.digest_method != SHA256_URI {
                bad(
                    "fingerprint_method",
                    format!("{bp}/dokumentpakkefingeravtrykk"),
                    format!("digestMethod must be {SHA256_URI}"),
                );
            }
            if crate::b64_std_decode(&f.digest_value).map(|d| d.len()) != Some(32) {
                bad(
                    "fingerprint_encoding",
                    format!("{bp}/dokumentpakkefingeravtrykk"),
                    "digestValue is not base64 of 32 bytes".into(),
                );
            }
        }
        let varsler = match &self.body {
            Body::Digital(d) => d.varsler.as_ref(),
            Body::Flyttet(f) => f.varsler.as_ref(),
            _ => None,
        };
        if let Some(v) = varsler {
            for (n, r) in [
                (
                    "epostvarsel",
                    v.epostvarsel.as_ref().map(|e| &e.repetisjoner),
                ),
                ("smsvarsel", v.smsvarsel.as_ref().map(|e| &e.repetisjoner)),
            ] {
                if let Some(r) = r {
                    let mut s = r.clone();
                    s.sort_unstable();
                    s.dedup();
                    if s.len() != r.len() {
                        bad(
                            "sbd_repetisjoner_unique",
                            format!("{bp}/varsler/{n}/repetisjoner"),
                            "repetitions must be unique".into(),
                        );
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Small schema helpers

const DUPLICATE: &str = "duplicate member";

/// JSON schema `format: uuid`: the hyphenated RFC 4122 form only (no braces, URN or simple).
fn is_hyphenated_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn strict_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<uuid::Uuid, D::Error> {
    let s = String::deserialize(d)?;
    if !is_hyphenated_uuid(&s) {
        return Err(de::Error::custom(format!("not a hyphenated UUID: {s:?}")));
    }
    uuid::Uuid::parse_str(&s).map_err(de::Error::custom)
}

fn de_message_id<'de, D: Deserializer<'de>>(d: D) -> Result<MessageId, D::Error> {
    strict_uuid(d).map(MessageId)
}

fn de_conversation_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ConversationId>, D::Error> {
    strict_uuid(d).map(|u| Some(ConversationId(u)))
}

/// Walks any JSON value and fails on an object with the same member twice.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        while a.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = a.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("{DUPLICATE} `{k}`")));
            }
            a.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn len_range(s: &str, min: usize, max: usize, path: &str) -> Res<()> {
    let n = chars(s);
    if n < min {
        return Err(MessageError::new(
            "sbd_too_short",
            path,
            format!("at least {min} characters"),
        ));
    }
    if n > max {
        return Err(MessageError::new(
            "sbd_too_long",
            path,
            format!("at most {max} characters"),
        ));
    }
    Ok(())
}

fn max_len(s: Option<&str>, max: usize, path: &str) -> Res<()> {
    match s {
        Some(s) => len_range(s, 0, max, path),
        None => Ok(()),
    }
}

/// A pragmatic `format: email`: `local@domain`, no whitespace, dotted domain.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
        && local.len() <= 64
        && s.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_pattern_is_unanchored_like_ecma() {
        assert!(matches_actor_pattern("0192:991825827"));
        assert!(matches_actor_pattern("x0192:a"));
        assert!(!matches_actor_pattern("019:991825827"));
        assert!(!matches_actor_pattern("0192:"));
        assert!(!matches_actor_pattern("0192:-"));
    }

    #[test]
    fn address_one_of() {
        let mut a = AdresseInformasjon {
            navn: Some("N".into()),
            adresselinje1: Some("A".into()),
            postnummer: Some("0123".into()),
            poststed: Some("Oslo".into()),
            ..Default::default()
        };
        assert!(a.validate("").is_ok());
        a.landkode = Some("SE".into());
        assert_eq!(a.validate("").unwrap_err().code, "sbd_address_rule");
        a.postnummer = None;
        assert!(a.validate("").is_ok());
        a.land = Some("Sverige".into());
        assert_eq!(a.validate("").unwrap_err().code, "sbd_address_rule");
    }
}
