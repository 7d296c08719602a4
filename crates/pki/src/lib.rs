//! The local test PKI of samspill: a CA that issues enterprise-style certificates
//! (virksomhetssertifikat look-alikes with the orgnr in `organizationIdentifier` =
//! `NTRNO-<orgnr>` and in `serialNumber`) for organizations, mailbox and print providers,
//! plus RSA token-signing keys. It re-exports the JOSE layer (the `jose` crate) as
//! [`jose`], so `pki::jose` and `jose` are the same code.
//!
//! Everything lives as PEM files in one folder and is reused on restart: the first caller
//! creates a file, later callers (also in other processes) read it. Files are created
//! atomically with a hard link from a temporary file, so concurrent initialisers agree on
//! one CA. Never commit this folder.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod demo;
pub use jose;

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use domain::Organisasjonsnummer;
use openssl::{
    asn1::{Asn1Object, Asn1Time},
    bn::{BigNum, MsbOption},
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    rsa::Rsa,
    stack::Stack,
    x509::{
        X509, X509Builder, X509NameBuilder, X509StoreContext,
        extension::{
            AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
            SubjectKeyIdentifier,
        },
        store::X509StoreBuilder,
    },
};

/// Errors of the test PKI and of certificate checks.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("crypto error: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error("file {0} does not hold the expected PEM objects")]
    BadFile(PathBuf),
    #[error("invalid name {0:?}: use letters, digits, '-' and '_'")]
    BadName(String),
    #[error("certificate is not valid base64 DER")]
    BadCertificate,
    #[error("certificate chain does not verify: {0}")]
    Untrusted(String),
    #[error("certificate carries no Norwegian organization number")]
    NoOrgnr,
}

impl PkiError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            PkiError::Io { .. } => "pki_io",
            PkiError::Crypto(_) => "crypto_error",
            PkiError::BadFile(_) => "pki_bad_file",
            PkiError::BadName(_) => "pki_bad_name",
            PkiError::BadCertificate => "bad_certificate",
            PkiError::Untrusted(_) => "untrusted_certificate",
            PkiError::NoOrgnr => "certificate_without_orgnr",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

const KEY_BITS: u32 = 2048;

/// A certificate issued by the test CA, with its private key.
#[derive(Clone)]
pub struct Issued {
    /// Leaf certificate, PEM.
    pub cert_pem: String,
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Issuer certificates above the leaf (here: the CA), PEM, leaf first order.
    pub chain: Vec<String>,
    cert: X509,
    key: PKey<Private>,
    chain_x509: Vec<X509>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("subject", &subject_line(&self.cert))
            .finish_non_exhaustive()
    }
}

impl Issued {
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// The JOSE `x5c` value: base64 (standard, padded) DER of the leaf, then the issuers.
    pub fn x5c(&self) -> Vec<String> {
        std::iter::once(&self.cert)
            .chain(self.chain_x509.iter())
            .filter_map(|c| c.to_der().ok())
            .map(|d| STANDARD.encode(d))
            .collect()
    }

    /// Base64 DER of the leaf only (KRR's `sertifikat`, DPI's one-element `x5c`).
    pub fn cert_b64(&self) -> String {
        self.cert
            .to_der()
            .map(|d| STANDARD.encode(d))
            .unwrap_or_default()
    }

    /// The orgnr the certificate names, if any.
    pub fn orgnr(&self) -> Option<Organisasjonsnummer> {
        orgnr_of(&self.cert)
    }
}

/// An RSA key for signing tokens, with its RFC 7638 thumbprint as `kid`.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub key_pem: String,
    key: PKey<Private>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parse a PEM private key (PKCS#8 or PKCS#1); the kid is the key's JWK thumbprint.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let key = PKey::private_key_from_pem(pem.as_bytes())?;
        let kid = jose::Jwk::from_rsa(&key, None)
            .map_err(|_| PkiError::BadFile(PathBuf::from("<pem>")))?
            .thumbprint();
        Ok(SigningKey {
            kid,
            key_pem: pem.to_owned(),
            key,
        })
    }

    /// A fresh key (not persisted); tests use it for keys the server must not know.
    pub fn generate() -> Result<Self, PkiError> {
        let key = PKey::from_rsa(Rsa::generate(KEY_BITS)?)?;
        let pem = String::from_utf8_lossy(&key.private_key_to_pem_pkcs8()?).into_owned();
        Self::from_pem(&pem)
    }

    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// Public JWK with this key's kid.
    pub fn jwk(&self) -> jose::Jwk {
        jose::Jwk::from_rsa(&self.key, Some(self.kid.clone())).unwrap_or(jose::Jwk {
            kty: "RSA".into(),
            kid: Some(self.kid.clone()),
            use_: None,
            alg: None,
            n: String::new(),
            e: String::new(),
        })
    }

    /// Public key as PEM (SubjectPublicKeyInfo), as registered on a Maskinporten client.
    pub fn public_pem(&self) -> String {
        self.key
            .public_key_to_pem()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default()
    }

    /// Sign claims as an RS256 JWT with `kid` (and `typ`, if given) in the header.
    pub fn sign_jwt(
        &self,
        claims: &serde_json::Value,
        typ: Option<&str>,
    ) -> Result<String, jose::JoseError> {
        jose::sign_jwt(&self.key, Some(&self.kid), typ, claims)
    }

    /// The key in the PEM file at `path`, or a new 2048-bit one written there (mode 0600)
    /// on first use; concurrent first callers agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Self, PkiError> {
        let text = if path.exists() {
            fs::read_to_string(path).map_err(io(path))?
        } else {
            let key = PKey::from_rsa(Rsa::generate(KEY_BITS)?)?;
            create_once(path, &key.private_key_to_pem_pkcs8()?)?
        };
        Self::from_pem(&text).map_err(|_| PkiError::BadFile(path.to_owned()))
    }
}

/// The local CA and everything it issued, rooted in one folder.
#[derive(Clone)]
pub struct TestPki {
    dir: PathBuf,
    ca_cert: X509,
    ca_key: PKey<Private>,
    cache: Arc<Mutex<HashMap<String, Issued>>>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Organization names use only characters that are safe in a distinguished name.
fn clean_name(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || " -_.&".contains(*c))
        .take(64)
        .collect();
    if s.trim().is_empty() {
        "Virksomhet".into()
    } else {
        s.trim().to_owned()
    }
}

fn check_file_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadName(name.chars().take(64).collect()))
    }
}

fn subject_line(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_serial() -> Result<openssl::asn1::Asn1Integer, PkiError> {
    let mut bn = BigNum::new()?;
    bn.rand(120, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

/// Write `content` to `path` only if it does not exist yet; return what is at `path` then.
fn create_once(path: &Path, content: &[u8]) -> Result<String, PkiError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), random_suffix()));
        {
            let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(content).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        restrict_permissions(&tmp);
        // hard_link fails if the target exists: the first writer wins, others read theirs.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(path)(e)),
        }
    }
    fs::read_to_string(path).map_err(io(path))
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    let _ = openssl::rand::rand_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Split a bundle of "PRIVATE KEY" + "CERTIFICATE" PEM blocks.
fn split_bundle(path: &Path, text: &str) -> Result<(PKey<Private>, String, X509), PkiError> {
    let key = PKey::private_key_from_pem(text.as_bytes())
        .map_err(|_| PkiError::BadFile(path.to_owned()))?;
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| PkiError::BadFile(path.to_owned()))?;
    let cert_pem = text.get(start..).unwrap_or_default().to_owned();
    let cert =
        X509::from_pem(cert_pem.as_bytes()).map_err(|_| PkiError::BadFile(path.to_owned()))?;
    Ok((key, cert_pem, cert))
}

fn pem_string(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

static LOADED: OnceLock<Mutex<HashMap<PathBuf, TestPki>>> = OnceLock::new();

/// What kind of certificate to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Signing (JWS, XAdES, Maskinporten grants) and encryption (CMS to a mailbox/print
    /// provider): one certificate for both, like many real enterprise certificates.
    Enterprise,
}

impl TestPki {
    /// Open the PKI in `dir` (e.g. `<data>/pki`), creating the CA on first use.
    /// Repeated calls in one process return the same cached instance.
    pub fn load_or_init(dir: impl AsRef<Path>) -> Result<TestPki, PkiError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(io(dir))?;
        let canon = dir.canonicalize().map_err(io(dir))?;
        let loaded = LOADED.get_or_init(|| Mutex::new(HashMap::new()));
        let mut guard = loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = guard.get(&canon) {
            return Ok(p.clone());
        }
        let ca_path = canon.join("ca.pem");
        let text = if ca_path.exists() {
            fs::read_to_string(&ca_path).map_err(io(&ca_path))?
        } else {
            let (key, cert) = Self::make_ca()?;
            let mut bundle = key.private_key_to_pem_pkcs8()?;
            bundle.extend(cert.to_pem()?);
            create_once(&ca_path, &bundle)?
        };
        let (ca_key, ca_cert_pem, ca_cert) = split_bundle(&ca_path, &text)?;
        // Convenience copy of the public CA certificate for tools (curl --cacert, browsers).
        let crt = canon.join("ca.crt");
        if !crt.exists() {
            create_once(&crt, ca_cert_pem.as_bytes())?;
        }
        let pki = TestPki {
            dir: canon.clone(),
            ca_cert,
            ca_key,
            cache: Arc::new(Mutex::new(HashMap::new())),
        };
        guard.insert(canon, pki.clone());
        Ok(pki)
    }

    fn make_ca() -> Result<(PKey<Private>, X509), PkiError> {
        let key = PKey::from_rsa(Rsa::generate(KEY_BITS)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COUNTRYNAME, "NO")?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Samspill Test")?;
        name.append_entry_by_nid(Nid::COMMONNAME, "Samspill Test Root CA")?;
        let name = name.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = random_serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let not_before = Asn1Time::from_unix(now_unix() - 86_400)?;
        b.set_not_before(&not_before)?;
        let not_after = Asn1Time::days_from_now(365 * 20)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok((key, b.build()))
    }

    /// The folder this PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (trust anchor for everything issued here).
    pub fn ca_cert(&self) -> &X509 {
        &self.ca_cert
    }

    /// The CA certificate as PEM.
    pub fn ca_cert_pem(&self) -> String {
        self.ca_cert.to_pem().map(pem_string).unwrap_or_default()
    }

    /// The enterprise certificate of `orgnr`, issued on first request and reused after.
    /// `name` becomes `O` and `CN` the first time; later calls return the stored one.
    pub fn issue_enterprise(
        &self,
        orgnr: &Organisasjonsnummer,
        name: &str,
    ) -> Result<Issued, PkiError> {
        self.issue_named(&orgnr.to_string(), orgnr, name, Usage::Enterprise)
    }

    /// Like [`TestPki::issue_enterprise`] but stored under `label`, so one organization
    /// can hold several certificates (e.g. a second key for rotation tests).
    pub fn issue_named(
        &self,
        label: &str,
        orgnr: &Organisasjonsnummer,
        name: &str,
        usage: Usage,
    ) -> Result<Issued, PkiError> {
        check_file_name(label)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.get(label) {
            return Ok(i.clone());
        }
        let path = self.dir.join("enterprise").join(format!("{label}.pem"));
        let text = if path.exists() {
            fs::read_to_string(&path).map_err(io(&path))?
        } else {
            let (key, cert) = self.make_leaf(orgnr, name, usage)?;
            let mut bundle = key.private_key_to_pem_pkcs8()?;
            bundle.extend(cert.to_pem()?);
            create_once(&path, &bundle)?
        };
        let (key, cert_pem, cert) = split_bundle(&path, &text)?;
        let issued = Issued {
            key_pem: pem_string(key.private_key_to_pem_pkcs8()?),
            cert_pem,
            chain: vec![self.ca_cert_pem()],
            cert,
            key,
            chain_x509: vec![self.ca_cert.clone()],
        };
        cache.insert(label.to_owned(), issued.clone());
        Ok(issued)
    }

    fn make_leaf(
        &self,
        orgnr: &Organisasjonsnummer,
        name: &str,
        usage: Usage,
    ) -> Result<(PKey<Private>, X509), PkiError> {
        let Usage::Enterprise = usage;
        let key = PKey::from_rsa(Rsa::generate(KEY_BITS)?)?;
        let name = clean_name(name);
        let mut n = X509NameBuilder::new()?;
        n.append_entry_by_nid(Nid::COUNTRYNAME, "NO")?;
        n.append_entry_by_nid(Nid::ORGANIZATIONNAME, &name)?;
        n.append_entry_by_text("organizationIdentifier", &format!("NTRNO-{orgnr}"))?;
        n.append_entry_by_nid(Nid::SERIALNUMBER, &orgnr.to_string())?;
        n.append_entry_by_nid(Nid::COMMONNAME, &name)?;
        let n = n.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = random_serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&n)?;
        b.set_issuer_name(self.ca_cert.subject_name())?;
        b.set_pubkey(&key)?;
        let not_before = Asn1Time::from_unix(now_unix() - 86_400)?;
        b.set_not_before(&not_before)?;
        let not_after = Asn1Time::days_from_now(365 * 5)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .non_repudiation()
                .key_encipherment()
                .data_encipherment()
                .build()?,
        )?;
        b.append_extension(
            ExtendedKeyUsage::new()
                .client_auth()
                .email_protection()
                .build()?,
        )?;
        let ski =
            SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.ca_cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.ca_cert), None))?;
        b.append_extension(aki)?;
        b.sign(&self.ca_key, MessageDigest::sha256())?;
        Ok((key, b.build()))
    }

    /// A named RSA token-signing key (e.g. `maskinporten`, `idporten`), created once.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey, PkiError> {
        check_file_name(name)?;
        SigningKey::load_or_create(&self.dir.join("keys").join(format!("{name}.pem")))
    }

    /// Verify a chain (leaf first, as in `x5c`) against this CA; see [`verify_chain`].
    pub fn verify_x5c(&self, x5c: &[String]) -> Result<X509, PkiError> {
        verify_chain(std::slice::from_ref(&self.ca_cert), x5c)
    }
}

/// Parse a base64 (standard) DER certificate, as found in `x5c` and KRR's `sertifikat`.
pub fn cert_from_b64(b64: &str) -> Result<X509, PkiError> {
    if b64.len() > 16 * 1024 {
        return Err(PkiError::BadCertificate);
    }
    let der = STANDARD.decode(b64).map_err(|_| PkiError::BadCertificate)?;
    X509::from_der(&der).map_err(|_| PkiError::BadCertificate)
}

/// Verify `x5c` (base64 DER, leaf first) against `anchors` at the current time and
/// return the leaf. Intermediates in the chain are used for path building only.
pub fn verify_chain(anchors: &[X509], x5c: &[String]) -> Result<X509, PkiError> {
    let Some((leaf_b64, rest)) = x5c.split_first() else {
        return Err(PkiError::BadCertificate);
    };
    if x5c.len() > 5 {
        return Err(PkiError::Untrusted("chain too long".into()));
    }
    let leaf = cert_from_b64(leaf_b64)?;
    let mut store = X509StoreBuilder::new()?;
    for a in anchors {
        store.add_cert(a.clone())?;
    }
    let store = store.build();
    let mut chain = Stack::new()?;
    for c in rest {
        chain.push(cert_from_b64(c)?)?;
    }
    let mut ctx = X509StoreContext::new()?;
    let result = ctx.init(&store, &leaf, &chain, |c| {
        let ok = c.verify_cert()?;
        Ok((ok, c.error().error_string().to_owned()))
    })?;
    match result {
        (true, _) => Ok(leaf),
        (false, why) => Err(PkiError::Untrusted(why)),
    }
}

/// The organization number of an enterprise certificate: `organizationIdentifier`
/// (`NTRNO-<orgnr>`, SEID-2) first, then the older `serialNumber` form.
pub fn orgnr_of(cert: &X509) -> Option<Organisasjonsnummer> {
    let org_id_nid = Asn1Object::from_str("2.5.4.97").ok().map(|o| o.nid());
    let mut serial = None;
    for e in cert.subject_name().entries() {
        let nid = e.object().nid();
        let Ok(val) = e.data().to_string() else {
            continue;
        };
        if Some(nid) == org_id_nid && nid != Nid::UNDEF {
            if let Some(o) = val
                .strip_prefix("NTRNO-")
                .and_then(|rest| Organisasjonsnummer::parse(rest).ok())
            {
                return Some(o);
            }
        } else if nid == Nid::SERIALNUMBER {
            serial = Organisasjonsnummer::parse(&val).ok();
        }
    }
    serial
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgnr(p: [u8; 8]) -> Organisasjonsnummer {
        Organisasjonsnummer::from_prefix(p).unwrap()
    }

    #[test]
    fn init_is_idempotent_and_reused_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let a = TestPki::load_or_init(dir.path()).unwrap();
        let ca1 = a.ca_cert_pem();
        let o = orgnr([9, 1, 0, 0, 0, 0, 0, 1]);
        let i1 = a.issue_enterprise(&o, "Testkommune").unwrap();
        // Drop the in-process cache to force a reload from disk.
        LOADED.get().unwrap().lock().unwrap().clear();
        let b = TestPki::load_or_init(dir.path()).unwrap();
        assert_eq!(b.ca_cert_pem(), ca1);
        let i2 = b.issue_enterprise(&o, "Other name").unwrap();
        assert_eq!(i1.cert_pem, i2.cert_pem);
        assert_eq!(i1.key_pem, i2.key_pem);
        assert!(dir.path().join("ca.crt").exists());
    }

    #[test]
    fn enterprise_cert_carries_orgnr_and_chains_to_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::load_or_init(dir.path()).unwrap();
        let o = orgnr([9, 2, 0, 0, 0, 0, 0, 2]);
        let i = pki.issue_enterprise(&o, "Posten <script>").unwrap();
        assert_eq!(i.orgnr(), Some(o));
        let subject = subject_line(i.cert());
        assert!(subject.contains(&format!("NTRNO-{o}")), "{subject}");
        assert!(!subject.contains('<'));
        let leaf = pki.verify_x5c(&i.x5c()).unwrap();
        assert_eq!(orgnr_of(&leaf), Some(o));
        let org_id_nid = Asn1Object::from_str("2.5.4.97").unwrap().nid();
        assert_ne!(org_id_nid, Nid::UNDEF);
        assert!(
            i.cert()
                .subject_name()
                .entries_by_nid(org_id_nid)
                .next()
                .is_some()
        );
        // Leaf alone also verifies: the CA is the trust anchor.
        pki.verify_x5c(&[i.cert_b64()]).unwrap();
    }

    #[test]
    fn foreign_ca_is_rejected() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let p1 = TestPki::load_or_init(d1.path()).unwrap();
        let p2 = TestPki::load_or_init(d2.path()).unwrap();
        let i = p2
            .issue_enterprise(&orgnr([9, 3, 0, 0, 0, 0, 0, 3]), "X")
            .unwrap();
        let err = p1.verify_x5c(&i.x5c()).unwrap_err();
        assert_eq!(err.code(), "untrusted_certificate");
        assert_eq!(
            p1.verify_x5c(&["not base64!".into()]).unwrap_err().code(),
            "bad_certificate"
        );
        assert_eq!(p1.verify_x5c(&[]).unwrap_err().code(), "bad_certificate");
    }

    #[test]
    fn signing_key_round_trip_and_jws() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::load_or_init(dir.path()).unwrap();
        let k = pki.signing_key("maskinporten").unwrap();
        assert_eq!(pki.signing_key("maskinporten").unwrap().kid, k.kid);
        assert!(pki.signing_key("../evil").is_err());
        let t = k
            .sign_jwt(&serde_json::json!({"a": 1}), Some("JWT"))
            .unwrap();
        let d = jose::decode(&t).unwrap();
        assert_eq!(d.kid(), Some(k.kid.as_str()));
        let public = k.jwk().to_public_key().unwrap();
        assert!(d.verify(&public).unwrap());
        // Tamper with the payload: signature must fail.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"a":2}"#);
        parts[1] = &forged;
        let d2 = jose::decode(&parts.join(".")).unwrap();
        assert!(!d2.verify(&public).unwrap());
        // A different key does not verify.
        let other = SigningKey::generate().unwrap();
        assert!(!d.verify(&other.jwk().to_public_key().unwrap()).unwrap());
    }

    #[test]
    fn signing_key_load_or_create_reuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let k = SigningKey::load_or_create(&path).unwrap();
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(k.kid, again.kid, "key is reused on restart");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
        assert_eq!(
            SigningKey::load_or_create(&dir.path().join("bad.pem"))
                .unwrap_err()
                .code(),
            "pki_bad_file"
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.e30",
            "bm90anNvbg.e30.AA",
        ] {
            assert!(jose::decode(bad).is_err(), "{bad}");
        }
        let huge = "a".repeat(jose::MAX_TOKEN_LEN + 1);
        assert_eq!(jose::decode(&huge).unwrap_err().code(), "token_too_large");
    }
}
