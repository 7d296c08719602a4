//! Certificate chain validation against configured trust anchors at a given time, and the
//! organisation number of a Norwegian enterprise certificate.
//!
//! Chain building and checking is OpenSSL's `X509_verify_cert` (via `X509Store` with
//! `X509VerifyParam::set_time`): it is the same code that `openssl verify` runs, it handles
//! path building, name chaining, basic constraints, key usage and validity periods, and writing
//! our own X.509 path validator would be more attack surface for no gain. The store is built per
//! call (a handful of anchors, microseconds) so every validation gets its own time.

use domain::Organisasjonsnummer;
use openssl::nid::Nid;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509Ref, X509StoreContext};
use time::OffsetDateTime;

/// `organizationIdentifier` (2.5.4.97); the openssl crate has no named constant for it.
const NID_ORGANIZATION_IDENTIFIER: i32 = 1089;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no trust anchors configured; the chain is untrusted")]
    NoAnchors,
    #[error("certificate chain is empty")]
    EmptyChain,
    #[error("certificate expired or not yet valid at the given time: {0}")]
    Validity(String),
    #[error("certificate chain does not lead to a trusted root: {0}")]
    Untrusted(String),
    #[error("crypto failure: {0}")]
    Crypto(String),
    #[error("trust anchor file is not PEM or DER certificates: {0}")]
    BadAnchor(String),
}

impl TrustError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoAnchors => "chain_untrusted_no_anchors",
            Self::EmptyChain => "chain_empty",
            Self::Validity(_) => "chain_validity_period",
            Self::Untrusted(_) => "chain_untrusted",
            Self::Crypto(_) => "chain_crypto",
            Self::BadAnchor(_) => "trust_anchor_invalid",
        }
    }
}

impl From<openssl::error::ErrorStack> for TrustError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// The configured trust anchors (root CA certificates).
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    roots: Vec<X509>,
    /// Issuing CAs offered as untrusted path-building helpers (the JWS `x5c` of Digdir-style
    /// messages carries only the leaf).
    intermediates: Vec<X509>,
}

impl TrustAnchors {
    pub fn new(roots: Vec<X509>) -> Self {
        Self {
            roots,
            intermediates: Vec::new(),
        }
    }

    /// Add issuing CA certificates used to complete chains; they are not trusted by themselves.
    pub fn with_intermediates(mut self, intermediates: Vec<X509>) -> Self {
        self.intermediates.extend(intermediates);
        self
    }

    /// No anchors: every chain is reported untrusted.
    pub fn none() -> Self {
        Self::default()
    }

    /// Add every certificate in a PEM bundle (or one DER certificate).
    pub fn add_pem_or_der(&mut self, bytes: &[u8]) -> Result<usize, TrustError> {
        let certs = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            X509::stack_from_pem(bytes).map_err(|e| TrustError::BadAnchor(e.to_string()))?
        } else {
            vec![X509::from_der(bytes).map_err(|e| TrustError::BadAnchor(e.to_string()))?]
        };
        if certs.is_empty() {
            return Err(TrustError::BadAnchor("no certificate found".into()));
        }
        let n = certs.len();
        self.roots.extend(certs);
        Ok(n)
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn roots(&self) -> &[X509] {
        &self.roots
    }

    /// Validate `chain` (leaf first; the rest are untrusted helpers, may include the root) at
    /// time `at`.
    pub fn verify(&self, chain: &[X509], at: OffsetDateTime) -> Result<(), TrustError> {
        let leaf = chain.first().ok_or(TrustError::EmptyChain)?;
        if self.roots.is_empty() {
            return Err(TrustError::NoAnchors);
        }
        let mut builder = X509StoreBuilder::new()?;
        for r in &self.roots {
            builder.add_cert(r.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(at.unix_timestamp());
        builder.set_param(&param)?;
        let store = builder.build();
        let mut untrusted = Stack::new()?;
        for c in chain.iter().skip(1).chain(&self.intermediates) {
            untrusted.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        let (ok, err) = ctx.init(&store, leaf, &untrusted, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })?;
        if ok {
            return Ok(());
        }
        let msg = err.error_string().to_string();
        // X509_V_ERR_CERT_NOT_YET_VALID = 9, X509_V_ERR_CERT_HAS_EXPIRED = 10
        match err.as_raw() {
            9 | 10 => Err(TrustError::Validity(msg)),
            _ => Err(TrustError::Untrusted(msg)),
        }
    }
}

/// The organisation number in a Norwegian enterprise certificate's subject: from
/// `organizationIdentifier` = `NTRNO-<orgnr>` (SEID 2) or else `serialNumber` = `<orgnr>`.
pub fn org_number(cert: &X509Ref) -> Option<Organisasjonsnummer> {
    let subject = cert.subject_name();
    let text = |nid: Nid| -> Vec<String> {
        subject
            .entries_by_nid(nid)
            .filter_map(|e| e.data().to_string().ok())
            .collect()
    };
    for v in text(Nid::from_raw(NID_ORGANIZATION_IDENTIFIER)) {
        if let Some(o) = v.strip_prefix("NTRNO-")
            && let Ok(n) = Organisasjonsnummer::parse(o)
        {
            return Some(n);
        }
    }
    for v in text(Nid::SERIALNUMBER) {
        if let Ok(n) = Organisasjonsnummer::parse(&v) {
            return Some(n);
        }
    }
    None
}

/// Short human description of a certificate subject (for error details and CLI output).
pub fn subject_string(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let k = e.object().nid().short_name().unwrap_or("?");
            e.data().to_string().ok().map(|v| format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
