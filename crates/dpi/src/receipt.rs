//! Receipts (kvitteringer) and errors (`feil`) answering a letter (§7): built from the letter's
//! SBD, signed as JWS by the provider, and opened (signature, schema, profile rules, trust) by
//! the sender.

use domain::{ActorId, ConversationId, MessageId};
use openssl::pkey::{HasPrivate, PKeyRef};
use openssl::x509::X509Ref;
use time::OffsetDateTime;

use crate::Issue;
use crate::message::{
    Avsender, Body, Feil, Feiltype, Header, Kvittering, MessageType, Process, Sbd, Timestamp,
    VarslingfeiletKvittering, Varslingskanal, Virksomhetmottaker,
};
use crate::trust::TrustAnchors;

/// What the receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptKind {
    Levering,
    Aapning,
    Mottak,
    Returpost,
    VarslingFeilet {
        kanal: Varslingskanal,
        beskrivelse: Option<String>,
    },
    Feil {
        feiltype: Feiltype,
        detaljer: Option<String>,
    },
}

impl ReceiptKind {
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Levering => MessageType::Leveringskvittering,
            Self::Aapning => MessageType::Aapningskvittering,
            Self::Mottak => MessageType::Mottakskvittering,
            Self::Returpost => MessageType::Returpostkvittering,
            Self::VarslingFeilet { .. } => MessageType::Varslingfeiletkvittering,
            Self::Feil { .. } => MessageType::Feil,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("{0} answers letters only, not a {1}")]
    NotALetter(&'static str, MessageType),
    #[error("a {0} is not allowed in process {1:?}")]
    NotAllowed(MessageType, Process),
    #[error("the letter has no usable conversation id or process")]
    NoConversation,
    #[error("the letter's SBDH sender is not an organisation number: {0}")]
    BadSender(String),
    #[error(transparent)]
    Jws(#[from] crate::jws::JwsError),
}

impl ReceiptError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotALetter(..) => "receipt_not_a_letter",
            Self::NotAllowed(..) => "receipt_not_allowed_in_process",
            Self::NoConversation => "receipt_no_conversation",
            Self::BadSender(_) => "receipt_bad_sender",
            Self::Jws(e) => e.code(),
        }
    }
}

/// Build the receipt `kind` answering `letter`, issued by `provider` at `tidspunkt`:
/// SBDH sender = provider, receiver = the letter's SBDH sender, same conversation and process;
/// body `avsender` = provider, `mottaker` = the letter's avsender (with its avsenderidentifikator).
pub fn build_receipt(
    letter: &Sbd,
    kind: ReceiptKind,
    provider: &ActorId,
    tidspunkt: Timestamp,
    message_id: MessageId,
) -> Result<Sbd, ReceiptError> {
    let lt = letter.message_type();
    if lt.is_receipt() {
        return Err(ReceiptError::NotALetter("a receipt", lt));
    }
    let process = letter.process().ok_or(ReceiptError::NoConversation)?;
    let conversation: ConversationId = letter
        .conversation_id()
        .ok_or(ReceiptError::NoConversation)?;
    let t = kind.message_type();
    if !t.allowed_in(process) {
        return Err(ReceiptError::NotAllowed(t, process));
    }
    let back_to = ActorId::parse(&letter.header.sender.value)
        .map_err(|e| ReceiptError::BadSender(e.to_string()))?;
    let header = Header::new(
        t,
        provider,
        &back_to,
        message_id,
        conversation,
        process,
        tidspunkt,
        None,
    );
    let av = letter.body.avsender();
    let mottaker = Virksomhetmottaker {
        virksomhetsidentifikator: av.virksomhetsidentifikator.clone(),
        motakeridentifikator: av.avsenderidentifikator.clone(),
        extra: Default::default(),
    };
    let avsender = Avsender::new(provider);
    let k = || Kvittering {
        avsender: avsender.clone(),
        mottaker: mottaker.clone(),
        tidspunkt,
    };
    let body = match kind {
        ReceiptKind::Levering => Body::Leveringskvittering(k()),
        ReceiptKind::Aapning => Body::Aapningskvittering(k()),
        ReceiptKind::Mottak => Body::Mottakskvittering(k()),
        ReceiptKind::Returpost => Body::Returpostkvittering(k()),
        ReceiptKind::VarslingFeilet { kanal, beskrivelse } => {
            Body::Varslingfeiletkvittering(VarslingfeiletKvittering {
                avsender: avsender.clone(),
                mottaker: mottaker.clone(),
                tidspunkt,
                beskrivelse,
                varslingskanal: kanal,
            })
        }
        ReceiptKind::Feil { feiltype, detaljer } => Body::Feil(Feil {
            avsender: avsender.clone(),
            mottaker: mottaker.clone(),
            tidspunkt,
            feiltype,
            detaljer,
        }),
    };
    Ok(Sbd { header, body })
}

/// Sign any SBD (typically a receipt) as the compact JWS that travels on the wire.
pub fn sign_sbd<T: HasPrivate>(
    sbd: &Sbd,
    signer_cert: &X509Ref,
    key: &PKeyRef<T>,
) -> Result<String, ReceiptError> {
    Ok(crate::jws::sign(&sbd.to_json(), &[signer_cert], key)?)
}

/// A received receipt after checking.
#[derive(Debug, Clone)]
pub struct OpenedReceipt {
    pub valid: bool,
    pub errors: Vec<Issue>,
    pub sbd: Option<Sbd>,
}

/// Verify a receipt JWS: RS256 signature, schema, DPI profile rules, receipt type, signer
/// certificate belongs to the SBDH sender (the provider), chain trusted at `at`.
pub fn open_receipt(jwt: &str, anchors: &TrustAnchors, at: OffsetDateTime) -> OpenedReceipt {
    let mut errors = Vec::new();
    let verified = match crate::jws::verify(jwt) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(Issue::new(e.code(), e.to_string()));
            None
        }
    };
    let payload = match &verified {
        Some(v) => Some(v.payload.clone()),
        None => crate::jws::decode_unverified(jwt).ok().map(|(_, p)| p),
    };
    let sbd = payload.and_then(|p| match Sbd::parse(&p) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(Issue::new(e.code, e.to_string()));
            None
        }
    });
    if let Some(s) = &sbd {
        errors.extend(
            s.dpi_issues()
                .into_iter()
                .map(|e| Issue::new(e.code, e.to_string())),
        );
        if !s.message_type().is_receipt() {
            errors.push(Issue::new(
                "receipt_not_a_receipt",
                format!("a {} is not a receipt", s.message_type()),
            ));
        }
        if let Some(v) = &verified {
            if let Some(leaf) = v.chain.first() {
                let org = crate::trust::org_number(leaf);
                let sender = ActorId::parse(&s.header.sender.value).ok();
                if org.is_none() || org != sender.map(|a| a.orgnr()) {
                    errors.push(Issue::new(
                        "jws_signer_mismatch",
                        format!(
                            "JWS certificate organisation {:?} is not the SBDH sender {}",
                            org.map(|o| o.to_string()),
                            s.header.sender.value
                        ),
                    ));
                }
            }
            if let Err(e) = anchors.verify(&v.chain, at) {
                errors.push(Issue::new(e.code(), e.to_string()));
            }
        }
    }
    OpenedReceipt {
        valid: errors.is_empty(),
        errors,
        sbd,
    }
}

/// The `feil` (KLIENT) a provider sends back for a letter that did not validate: `detaljer`
/// lists the finding codes and details, cut to the classic XSD's 1000 characters. `None` when
/// the letter is valid or its business message could not be read at all (then there is no
/// conversation to answer).
pub fn klient_feil_for(
    opened: &crate::letter::OpenedLetter,
    provider: &ActorId,
    tidspunkt: Timestamp,
    message_id: MessageId,
) -> Option<Result<Sbd, ReceiptError>> {
    if opened.valid {
        return None;
    }
    let letter = opened.sbd.as_ref()?;
    let mut detaljer = opened
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.code, e.detail))
        .collect::<Vec<_>>()
        .join("; ");
    if detaljer.chars().count() > 1000 {
        detaljer = detaljer.chars().take(997).collect::<String>() + "...";
    }
    Some(build_receipt(
        letter,
        ReceiptKind::Feil {
            feiltype: Feiltype::Klient,
            detaljer: Some(detaljer),
        },
        provider,
        tidspunkt,
        message_id,
    ))
}
