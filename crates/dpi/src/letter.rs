//! Sealing and opening a whole letter: the JWS-signed business message plus the CMS-encrypted,
//! XAdES-signed ASiC-E dokumentpakke, with the corner-4 validation of dpi-spec §3.6 a–e and §8.
//!
//! [`open_letter`] never stops at the first problem: it reports every finding as an [`Issue`]
//! with a stable code, and `valid` is true only when there are none. It does exactly one RSA
//! private-key operation (the CMS key transport), verifies each signature once and hashes each
//! byte a bounded number of times.

use domain::{ActorId, Organisasjonsnummer};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use time::OffsetDateTime;

use crate::container::{self, Dokumentpakke, Limits};
use crate::jws::{self, VerifiedJws};
use crate::message::{Body, Dokumentpakkefingeravtrykk, SHA256_URI, Sbd};
use crate::token::{self, SCOPE_SEND, TokenClaims};
use crate::trust::{self, TrustAnchors};

pub use crate::Issue;

/// Tolerance when comparing the token's lifetime with the message's creation time.
const TOKEN_SKEW_SECS: i64 = 300;

/// Everything needed to seal a letter. `sbd.body` must be `digital`, `utskrift` or `flyttet`;
/// its `dokumentpakkefingeravtrykk` and `maskinportentoken` are filled in by [`seal_letter`].
#[derive(Debug, Clone)]
pub struct LetterSpec {
    pub sbd: Sbd,
    pub package: Dokumentpakke,
    /// XAdES SigningTime.
    pub signing_time: OffsetDateTime,
}

/// The two wire parts of a letter.
#[derive(Debug, Clone)]
pub struct SealedLetter {
    /// Compact JWS of the SBD (`forretningsmelding`).
    pub jwt: String,
    /// CMS EnvelopedData of the ASiC-E zip (`dokumentpakke`).
    pub cms: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("only digital, utskrift and flyttet are letters, not {0}")]
    NotALetter(String),
    #[error("signer certificate chain is empty")]
    NoSigner,
    #[error("business message: {0}")]
    Message(#[from] crate::message::MessageError),
    #[error("dokumentpakke: {0}")]
    Container(#[from] container::ContainerError),
    #[error("JWS: {0}")]
    Jws(#[from] jws::JwsError),
}

impl SealError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotALetter(_) => "seal_not_a_letter",
            Self::NoSigner => "seal_no_signer",
            Self::Message(e) => e.code,
            Self::Container(e) => e.code(),
            Self::Jws(e) => e.code(),
        }
    }
}

fn set_fingerprint_and_token(body: &mut Body, f: Dokumentpakkefingeravtrykk, t: &str) -> bool {
    match body {
        Body::Digital(m) => {
            m.dokumentpakkefingeravtrykk = f;
            m.maskinportentoken = t.to_owned();
        }
        Body::Utskrift(m) => {
            m.dokumentpakkefingeravtrykk = f;
            m.maskinportentoken = t.to_owned();
        }
        Body::Flyttet(m) => {
            m.dokumentpakkefingeravtrykk = f;
            m.maskinportentoken = t.to_owned();
        }
        _ => return false,
    }
    true
}

/// Build, sign and encrypt a letter: ASiC-E signed with `signer_chain[0]`/`signer_key`, CMS to
/// `recipient_cert`, SBD with the CMS fingerprint and `token` embedded, JWS with the same
/// certificate. Returns the wire parts and the SBD as sent.
pub fn seal_letter(
    spec: &LetterSpec,
    signer_chain: &[X509],
    signer_key: &PKey<Private>,
    recipient_cert: &X509,
    token: &str,
) -> Result<(SealedLetter, Sbd), SealError> {
    let leaf = signer_chain.first().ok_or(SealError::NoSigner)?;
    let zip = container::write_asice(&spec.package, signer_chain, signer_key, spec.signing_time)?;
    let cms = container::cms::encrypt(&zip, recipient_cert)?;
    let mut sbd = spec.sbd.clone();
    if !set_fingerprint_and_token(&mut sbd.body, Dokumentpakkefingeravtrykk::of(&cms), token) {
        return Err(SealError::NotALetter(sbd.message_type().to_string()));
    }
    // Re-validate what we are about to sign: never emit a schema-invalid message.
    let json = sbd.to_json();
    Sbd::parse(&json)?;
    let jwt = jws::sign(&json, &[leaf], signer_key)?;
    Ok((SealedLetter { jwt, cms }, sbd))
}

/// A letter after [`open_letter`]: every field that could be read, and every finding.
#[derive(Debug, Clone, Default)]
pub struct OpenedLetter {
    /// True only when `errors` is empty.
    pub valid: bool,
    pub errors: Vec<Issue>,
    /// The business message (read even when the JWS did not verify, for reporting).
    pub sbd: Option<Sbd>,
    pub token: Option<TokenClaims>,
    /// The decrypted ASiC-E zip, byte for byte.
    pub zip: Option<Vec<u8>>,
    pub package: Option<Dokumentpakke>,
    /// Certificate that signed the JWS.
    pub jws_signer: Option<X509>,
    /// Certificate that signed the ASiC-E.
    pub asic_signer: Option<X509>,
    pub signing_time: Option<OffsetDateTime>,
}

impl OpenedLetter {
    fn err(&mut self, code: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(Issue::new(code, detail));
    }
}

fn org_of(cert: &X509) -> Option<Organisasjonsnummer> {
    trust::org_number(cert)
}

/// Open and validate a received letter as corner 4 does (§3.6 a–e, §8):
/// a) JWS RS256 signature with x5c; schema and profile rules of the SBD;
/// b) ASiC-E XAdES signature over every file, manifest rules (by the container);
/// c) `base64(SHA-256(cms)) == dokumentpakkefingeravtrykk`;
/// d) message avsender == token `consumer`;
/// e) the certificates that signed the JWS and the ASiC belong to token `supplier`, else
///    `consumer`, which is also the SBDH sender;
/// plus manifest avsender == message avsender, and both chains trusted at `at`.
pub fn open_letter(
    forretningsmelding: &str,
    dokumentpakke: &[u8],
    recipient_key: &PKey<Private>,
    anchors: &TrustAnchors,
    at: OffsetDateTime,
    limits: &Limits,
) -> OpenedLetter {
    open_inner(
        forretningsmelding,
        dokumentpakke,
        recipient_key,
        None,
        anchors,
        at,
        limits,
    )
}

/// [`open_letter`] that also requires the CMS recipient identifier to name `recipient_cert`
/// (the certificate of `recipient_key`); for a mailbox holding several keys.
pub fn open_letter_as(
    forretningsmelding: &str,
    dokumentpakke: &[u8],
    recipient_key: &PKey<Private>,
    recipient_cert: &X509,
    anchors: &TrustAnchors,
    at: OffsetDateTime,
    limits: &Limits,
) -> OpenedLetter {
    open_inner(
        forretningsmelding,
        dokumentpakke,
        recipient_key,
        Some(recipient_cert),
        anchors,
        at,
        limits,
    )
}

fn open_inner(
    forretningsmelding: &str,
    dokumentpakke: &[u8],
    recipient_key: &PKey<Private>,
    recipient_cert: Option<&X509>,
    anchors: &TrustAnchors,
    at: OffsetDateTime,
    limits: &Limits,
) -> OpenedLetter {
    let mut out = OpenedLetter::default();
    let cms_fp = Dokumentpakkefingeravtrykk::of(dokumentpakke);

    // a) JWS and business message.
    let verified: Option<VerifiedJws> = match jws::verify(forretningsmelding) {
        Ok(v) => Some(v),
        Err(e) => {
            out.err(e.code(), e.to_string());
            None
        }
    };
    let payload = match &verified {
        Some(v) => Some(v.payload.clone()),
        None => jws::decode_unverified(forretningsmelding)
            .ok()
            .map(|(_, p)| p),
    };
    if let Some(p) = payload {
        match Sbd::parse(&p) {
            Ok(s) => out.sbd = Some(s),
            Err(e) => out.err(e.code, e.to_string()),
        }
    }
    out.jws_signer = verified.as_ref().and_then(|v| v.chain.first().cloned());

    let mut avsender: Option<ActorId> = None;
    let mut signing_party: Option<ActorId> = None;
    if let Some(sbd) = out.sbd.clone() {
        for e in sbd.dpi_issues() {
            out.err(e.code, e.to_string());
        }
        if sbd.message_type().is_receipt() {
            out.err(
                "letter_is_receipt",
                format!("a {} is a receipt, not a letter", sbd.message_type()),
            );
        }
        avsender = sbd.body.avsender().virksomhetsidentifikator.actor_id().ok();

        // c) fingerprint over the raw CMS bytes.
        if let Some(f) = sbd.body.fingeravtrykk()
            && f.digest_method == SHA256_URI
            && f.digest_value != cms_fp.digest_value
        {
            out.err(
                "fingerprint_mismatch",
                format!(
                    "dokumentpakkefingeravtrykk {} but SHA-256 of the dokumentpakke is {}",
                    f.digest_value, cms_fp.digest_value
                ),
            );
        }

        // d) token claims.
        if let Some(t) = sbd.body.maskinportentoken() {
            match token::parse_unverified(t) {
                Err(e) => out.err(e.code(), e.to_string()),
                Ok(claims) => {
                    check_token(&mut out, &sbd, &claims, avsender.as_ref());
                    signing_party = claims.signing_party().and_then(|c| c.actor_id().ok());
                    out.token = Some(claims);
                }
            }
        }

        // e) JWS certificate and SBDH sender belong to the signing party.
        if let Some(party) = &signing_party {
            if let Some(cert) = &out.jws_signer {
                let org = org_of(cert);
                if org != Some(party.orgnr()) {
                    out.err(
                        "jws_signer_mismatch",
                        format!(
                            "JWS certificate belongs to {} but the token's {} is {party}",
                            org.map_or("no organisation".into(), |o| o.to_string()),
                            if out.token.as_ref().is_some_and(|t| t.supplier.is_some()) {
                                "supplier"
                            } else {
                                "consumer"
                            }
                        ),
                    );
                }
            }
            if ActorId::parse(&sbd.header.sender.value).ok().as_ref() != Some(party) {
                out.err(
                    "sbd_sender_mismatch",
                    format!(
                        "SBDH sender {} is not the token's signing party {party}",
                        sbd.header.sender.value
                    ),
                );
            }
        }
    }

    // b) decrypt and verify the dokumentpakke — only when the signed business message vouches
    // for these exact CMS bytes: the RSA private-key operation is never spent on bytes nobody
    // signed for (cheap refusal of forged or corrupted letters).
    let vouched = verified.is_some()
        && out
            .sbd
            .as_ref()
            .and_then(|s| s.body.fingeravtrykk())
            .is_some_and(|f| {
                f.digest_method == SHA256_URI && f.digest_value == cms_fp.digest_value
            });
    if !vouched {
        if !out
            .errors
            .iter()
            .any(|e| e.code.starts_with("jws_") || e.code.starts_with("fingerprint_"))
        {
            out.err(
                "dokumentpakke_not_vouched",
                "the dokumentpakke is not covered by a verified business message",
            );
        }
        // No trust verdict here: the JWS x5c usually holds only the leaf, and the chain
        // that completes it is inside the dokumentpakke we refuse to open.
        out.valid = false;
        return out;
    }
    let decrypted = match recipient_cert {
        Some(c) => container::cms::decrypt_for(dokumentpakke, recipient_key, c, limits),
        None => container::cms::decrypt(dokumentpakke, recipient_key, limits),
    };
    match decrypted {
        Err(e) => out.err(e.code(), e.to_string()),
        Ok(zip) => {
            match container::read_asice(&zip, limits) {
                Err(e) => out.err(e.code(), e.to_string()),
                Ok(v) => {
                    check_package(&mut out, &v, avsender.as_ref(), signing_party.as_ref());
                    out.asic_signer = Some(v.signer_cert.clone());
                    out.signing_time = Some(v.signing_time);
                    // Trust: the JWS x5c usually carries only the leaf, the ASiC KeyInfo the
                    // whole chain; the same enterprise certificate signs both.
                    trust_check(&mut out, verified.as_ref(), Some(&v), anchors, at);
                    out.package = Some(v.package);
                }
            }
            out.zip = Some(zip);
        }
    }

    out.valid = out.errors.is_empty();
    out
}

fn check_token(
    out: &mut OpenedLetter,
    sbd: &Sbd,
    claims: &TokenClaims,
    avsender: Option<&ActorId>,
) {
    if !claims.has_scope(SCOPE_SEND) {
        out.err(
            "token_scope",
            format!("maskinportentoken lacks scope {SCOPE_SEND}"),
        );
    }
    match claims.consumer.as_ref().map(|c| c.actor_id()) {
        None => out.err("token_no_consumer", "maskinportentoken has no consumer"),
        Some(Err(e)) => out.err("token_consumer_invalid", e.to_string()),
        Some(Ok(c)) => {
            if avsender != Some(&c) {
                out.err(
                    "avsender_not_consumer",
                    format!(
                        "message avsender {} is not the token consumer {c}",
                        sbd.body.avsender().virksomhetsidentifikator.value
                    ),
                );
            }
        }
    }
    if let Some(Err(e)) = claims.supplier.as_ref().map(|s| s.actor_id()) {
        out.err("token_supplier_invalid", e.to_string());
    }
    // The claims are read before anyone verified the token: `exp` and `iat` may be any i64.
    // A time no calendar holds (beyond ±9999 years) is refused as such, and the comparisons
    // saturate instead of overflowing.
    for (claim, value) in [("exp", claims.exp), ("iat", claims.iat)] {
        if let Some(v) = value
            && OffsetDateTime::from_unix_timestamp(v).is_err()
        {
            out.err(
                "token_claims_invalid",
                format!("maskinportentoken {claim} {v} is not a valid time"),
            );
            return;
        }
    }
    let created = sbd.created().0.unix_timestamp();
    if let Some(exp) = claims.exp
        && created > exp.saturating_add(TOKEN_SKEW_SECS)
    {
        out.err(
            "token_expired",
            "maskinportentoken had expired when the message was created",
        );
    }
    if let Some(iat) = claims.iat
        && created.saturating_add(TOKEN_SKEW_SECS) < iat
    {
        out.err(
            "token_not_yet_valid",
            "maskinportentoken was issued after the message was created",
        );
    }
}

fn check_package(
    out: &mut OpenedLetter,
    v: &container::VerifiedAsice,
    avsender: Option<&ActorId>,
    signing_party: Option<&ActorId>,
) {
    let org = org_of(&v.signer_cert);
    if let Some(party) = signing_party
        && org != Some(party.orgnr())
    {
        out.err(
            "asic_signer_mismatch",
            format!(
                "ASiC-E signed by {} but the signing party is {party}",
                org.map_or("no organisation".into(), |o| o.to_string())
            ),
        );
    }
    if let Some(jws_cert) = &out.jws_signer
        && org_of(jws_cert) != org
    {
        out.err(
            "signer_org_differs",
            "the JWS and the ASiC-E are signed by different organisations",
        );
    }
    let manifest_avsender = ActorId::parse(v.package.manifest.avsender.organisasjon.as_str()).ok();
    if avsender.is_some() && manifest_avsender.as_ref() != avsender {
        out.err(
            "manifest_avsender_mismatch",
            format!(
                "manifest avsender {} is not the message avsender",
                v.package.manifest.avsender.organisasjon
            ),
        );
    }
    if let Some(Body::Digital(d)) = out.sbd.as_ref().map(|s| &s.body)
        && let Some(m) = &v.package.manifest.mottaker
        && m.postkasseadresse != d.mottaker.postkasseadresse
    {
        out.err(
            "manifest_mottaker_mismatch",
            "manifest postkasseadresse is not the message's",
        );
    }
}

fn trust_check(
    out: &mut OpenedLetter,
    jws: Option<&VerifiedJws>,
    asic: Option<&container::VerifiedAsice>,
    anchors: &TrustAnchors,
    at: OffsetDateTime,
) {
    let asic_helpers: Vec<X509> = asic.map(|a| a.signer_chain.clone()).unwrap_or_default();
    if let Some(j) = jws {
        let mut chain = j.chain.clone();
        chain.extend(asic_helpers.iter().cloned());
        if let Err(e) = anchors.verify(&chain, at) {
            out.err(e.code(), format!("JWS certificate: {e}"));
            // One report is enough when the same certificate signed both.
            return;
        }
    }
    if let Some(a) = asic {
        let same = out
            .jws_signer
            .as_ref()
            .zip(a.signer_cert.to_der().ok())
            .is_some_and(|(j, d)| j.to_der().ok().as_deref() == Some(d.as_slice()));
        if !same {
            let mut chain = vec![a.signer_cert.clone()];
            chain.extend(asic_helpers.iter().cloned());
            if let Err(e) = anchors.verify(&chain, at) {
                out.err(e.code(), format!("ASiC-E certificate: {e}"));
            }
        }
    }
}
