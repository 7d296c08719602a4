//! A throwaway PKI for tests, benches and demos: a root CA, an issuing CA, enterprise
//! certificates carrying an organisation number (old `serialNumber` style or SEID-2
//! `organizationIdentifier=NTRNO-…`), recipient certificates, and Maskinporten-shaped tokens.
//! Nothing here is used on a production path.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::token::SCOPE_SEND;

pub type Key = PKey<Private>;

#[derive(Debug, thiserror::Error)]
#[error("test PKI: {0}")]
pub struct TestkitError(String);

impl From<openssl::error::ErrorStack> for TestkitError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self(e.to_string())
    }
}

type R<T> = Result<T, TestkitError>;

/// Root CA + issuing CA, valid 2000-01-01 .. 2099-12-31 (deterministic validity so tests can
/// pick any `at` inside it).
#[derive(Debug, Clone)]
pub struct TestPki {
    pub root: X509,
    pub root_key: Key,
    pub ca: X509,
    pub ca_key: Key,
}

pub fn rsa_key(bits: u32) -> R<Key> {
    Ok(PKey::from_rsa(Rsa::generate(bits)?)?)
}

fn serial() -> R<Asn1Integer> {
    let mut bn = BigNum::new()?;
    bn.rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn validity(b: &mut X509Builder) -> R<()> {
    let nb = Asn1Time::from_str("20000101000000Z")?;
    let na = Asn1Time::from_str("20991231235959Z")?;
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    Ok(())
}

fn cert(subject: &[(Nid, &str)], key: &Key, issuer: Option<(&X509, &Key)>, is_ca: bool) -> R<X509> {
    let mut name = X509NameBuilder::new()?;
    for (nid, v) in subject {
        name.append_entry_by_nid(*nid, v)?;
    }
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(&name)?;
    match issuer {
        Some((ic, _)) => b.set_issuer_name(ic.subject_name())?,
        None => b.set_issuer_name(&name)?,
    }
    b.set_pubkey(key)?;
    validity(&mut b)?;
    if is_ca {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
    } else {
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .non_repudiation()
                .key_encipherment()
                .build()?,
        )?;
    }
    let ski =
        SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))?;
    b.append_extension(ski)?;
    let signing_key = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signing_key, MessageDigest::sha256())?;
    Ok(b.build())
}

impl TestPki {
    pub fn new() -> R<Self> {
        let root_key = rsa_key(2048)?;
        let root = cert(
            &[
                (Nid::COUNTRYNAME, "NO"),
                (Nid::ORGANIZATIONNAME, "Samspill Test"),
                (Nid::COMMONNAME, "Samspill Test Root CA"),
            ],
            &root_key,
            None,
            true,
        )?;
        let ca_key = rsa_key(2048)?;
        let ca = cert(
            &[
                (Nid::COUNTRYNAME, "NO"),
                (Nid::ORGANIZATIONNAME, "Samspill Test"),
                (Nid::COMMONNAME, "Samspill Test Issuing CA"),
            ],
            &ca_key,
            Some((&root, &root_key)),
            true,
        )?;
        Ok(Self {
            root,
            root_key,
            ca,
            ca_key,
        })
    }

    /// An enterprise certificate for `orgnr` (9 digits); `seid2` puts it in
    /// `organizationIdentifier=NTRNO-<orgnr>` instead of `serialNumber`.
    pub fn enterprise(&self, orgnr: &str, seid2: bool, bits: u32) -> R<(X509, Key)> {
        let key = rsa_key(bits)?;
        let org_id = format!("NTRNO-{orgnr}");
        let mut subject = vec![
            (Nid::COUNTRYNAME, "NO"),
            (Nid::ORGANIZATIONNAME, "Test Virksomhet"),
            (Nid::COMMONNAME, "Test Virksomhet"),
        ];
        if seid2 {
            subject.push((Nid::from_raw(1089), org_id.as_str()));
        } else {
            subject.push((Nid::SERIALNUMBER, orgnr));
        }
        let c = cert(&subject, &key, Some((&self.ca, &self.ca_key)), false)?;
        Ok((c, key))
    }

    /// Leaf, issuing CA, root — the chain a sender puts in KeyInfo.
    pub fn chain_for(&self, leaf: &X509) -> Vec<X509> {
        vec![leaf.clone(), self.ca.clone(), self.root.clone()]
    }

    pub fn anchors(&self) -> crate::trust::TrustAnchors {
        crate::trust::TrustAnchors::new(vec![self.root.clone()])
    }
}

/// A Maskinporten-shaped access token (RS256 JWT, `kid` header) signed with a throwaway key.
pub fn maskinporten_token(consumer: &str, supplier: Option<&str>, iat: i64) -> R<String> {
    let key = rsa_key(2048)?;
    maskinporten_token_with(&key, consumer, supplier, iat)
}

pub fn maskinporten_token_with(
    key: &Key,
    consumer: &str,
    supplier: Option<&str>,
    iat: i64,
) -> R<String> {
    let mut claims = serde_json::json!({
        "scope": SCOPE_SEND,
        "iss": "https://test.maskinporten.no/",
        "client_amr": "virksomhetssertifikat",
        "token_type": "Bearer",
        "exp": iat + 120,
        "iat": iat,
        "client_id": "samspill-test",
        "jti": uuid::Uuid::new_v4().to_string(),
        "consumer": {"authority": "iso6523-actorid-upis", "ID": consumer},
    });
    if let (Some(s), Some(obj)) = (supplier, claims.as_object_mut()) {
        obj.insert(
            "supplier".into(),
            serde_json::json!({"authority": "iso6523-actorid-upis", "ID": s}),
        );
    }
    let header = br#"{"kid":"samspill-test","alg":"RS256"}"#;
    let payload = serde_json::to_vec(&claims).map_err(|e| TestkitError(e.to_string()))?;
    let mut out = format!("{}.{}", crate::b64_url(header), crate::b64_url(&payload));
    let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), key)?;
    s.update(out.as_bytes())?;
    let sig = s.sign_to_vec()?;
    out.push('.');
    out.push_str(&crate::b64_url(&sig));
    Ok(out)
}
