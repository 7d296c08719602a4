//! XAdES-B `META-INF/signatures.xml` for ASiC-E (dpi-spec §5.3): writing (C14N 1.0, RSA-SHA256,
//! one detached Reference per file plus the SignedProperties reference, Digdir's serialization)
//! and verification (C14N 1.0/1.1, both ASiC namespaces, percent/form-decoded file URIs) with
//! the signature-wrapping defences: every file covered exactly once, the SignedProperties
//! reference must resolve to this signature's own SignedProperties, Ids must be unique.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};
use openssl::x509::{X509, X509NameRef, X509Ref};
use roxmltree::{Document, Node};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Limits;
use super::c14n::{self, ALG_C14N10, Version};
use super::error::{ContainerError, write_err};
use super::xml;

pub(crate) const ASIC_NS: &str = "http://uri.etsi.org/02918/v1.2.1#";
pub(crate) const ASIC_NS_OLD: &str = "http://uri.etsi.org/2918/v1.2.1#";
pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const XADES_NS: &str = "http://uri.etsi.org/01903/v1.3.2#";
const SIGNED_PROPS_TYPE: &str = "http://uri.etsi.org/01903#SignedProperties";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const MAX_CERTS: usize = 10;

/// What a verified signature tells us.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// The certificate whose key made the signature (matched by SigningCertificate digest).
    pub signer_cert: X509,
    /// All certificates of KeyInfo, the signer first, then the others in document order.
    pub chain: Vec<X509>,
    /// The signed SigningTime.
    pub signing_time: OffsetDateTime,
    /// MIME type per signed file name, from the signed DataObjectFormat properties.
    pub mime_types: BTreeMap<String, String>,
}

fn structure(m: impl Into<String>) -> ContainerError {
    ContainerError::SignatureStructure(m.into())
}
fn algorithm(m: impl Into<String>) -> ContainerError {
    ContainerError::SignatureAlgorithm(m.into())
}

fn is(n: Node<'_, '_>, ns: &str, local: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == local
}

fn child<'a, 'i>(n: Node<'a, 'i>, ns: &str, local: &str) -> Result<Node<'a, 'i>, ContainerError> {
    let mut it = xml::elements(n).filter(|c| is(*c, ns, local));
    let first = it
        .next()
        .ok_or_else(|| structure(format!("<{}> lacks <{local}>", n.tag_name().name())))?;
    if it.next().is_some() {
        return Err(structure(format!(
            "<{}> has more than one <{local}>",
            n.tag_name().name()
        )));
    }
    Ok(first)
}

fn text<'a>(n: Node<'a, '_>) -> Result<String, ContainerError> {
    xml::simple_text(n, &|m| structure(m))
}

fn b64(n: Node<'_, '_>) -> Result<Vec<u8>, ContainerError> {
    let t: String = text(n)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    B64.decode(t.as_bytes())
        .map_err(|e| structure(format!("base64 in <{}>: {e}", n.tag_name().name())))
}

fn digest_alg(uri: &str) -> Result<MessageDigest, ContainerError> {
    match uri {
        SHA256 => Ok(MessageDigest::sha256()),
        SHA384 => Ok(MessageDigest::sha384()),
        SHA512 => Ok(MessageDigest::sha512()),
        other => Err(algorithm(format!("digest method {other}"))),
    }
}

fn digest(md: MessageDigest, data: &[u8]) -> Result<Vec<u8>, ContainerError> {
    hash(md, data)
        .map(|d| d.to_vec())
        .map_err(|e| algorithm(e.to_string()))
}

fn algo_attr<'a>(n: Node<'a, '_>) -> Result<&'a str, ContainerError> {
    n.attribute("Algorithm")
        .ok_or_else(|| structure(format!("<{}> without Algorithm", n.tag_name().name())))
}

/// Percent-decodes a URI reference (RFC 3986); `plus_as_space` also maps `+` to a space, as
/// Java's `URLEncoder` (used by klient-java) encodes spaces.
fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(if plus_as_space && c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a file name for a Reference URI like Java's `URLEncoder` (space → `+`).
pub(crate) fn form_encode(name: &str) -> String {
    let mut o = String::new();
    for &b in name.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                o.push(char::from(b))
            }
            b' ' => o.push('+'),
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn all_ids<'a, 'i>(
    doc: &'a Document<'i>,
) -> Result<HashMap<&'a str, Node<'a, 'i>>, ContainerError> {
    let mut ids = HashMap::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            if a.namespace().is_none()
                && matches!(a.name(), "Id" | "ID" | "id")
                && ids.insert(a.value(), n).is_some()
            {
                return Err(ContainerError::DuplicateId(a.value().to_string()));
            }
        }
    }
    Ok(ids)
}

/// Verifies `signatures.xml` against `files` (every file outside `META-INF/`, by name).
pub fn verify(
    sig_xml: &[u8],
    files: &BTreeMap<String, &[u8]>,
    limits: &Limits,
) -> Result<VerifiedSignature, ContainerError> {
    let doc = xml::parse(sig_xml, limits, "META-INF/signatures.xml")?;
    let root = doc.root_element();
    if root.tag_name().name() != "XAdESSignatures"
        || !matches!(root.tag_name().namespace(), Some(ASIC_NS | ASIC_NS_OLD))
    {
        return Err(structure("root element is not asic:XAdESSignatures"));
    }
    xml::no_text(root, &|m| structure(m))?;
    let ids = all_ids(&doc)?;
    let mut sigs = xml::elements(root);
    let sig = sigs.next().ok_or_else(|| structure("no ds:Signature"))?;
    if !is(sig, DSIG_NS, "Signature") || sigs.next().is_some() {
        return Err(structure(
            "XAdESSignatures must hold exactly one ds:Signature",
        ));
    }
    xml::no_text(sig, &|m| structure(m))?;
    let parts: Vec<Node> = xml::elements(sig).collect();
    let (signed_info, sig_value, key_info, objects) = match parts.as_slice() {
        [si, sv, ki, objects @ ..]
            if is(*si, DSIG_NS, "SignedInfo")
                && is(*sv, DSIG_NS, "SignatureValue")
                && is(*ki, DSIG_NS, "KeyInfo") =>
        {
            (*si, *sv, *ki, objects)
        }
        _ => {
            return Err(structure(
                "ds:Signature must be SignedInfo, SignatureValue, KeyInfo, Object…",
            ));
        }
    };
    if objects.is_empty() || !objects.iter().all(|o| is(*o, DSIG_NS, "Object")) {
        return Err(structure("ds:Signature must end with ds:Object elements"));
    }

    // --- SignedInfo -------------------------------------------------------------------------
    xml::no_text(signed_info, &|m| structure(m))?;
    let si: Vec<Node> = xml::elements(signed_info).collect();
    let (cm, sm, refs) = match si.as_slice() {
        [cm, sm, refs @ ..]
            if is(*cm, DSIG_NS, "CanonicalizationMethod")
                && is(*sm, DSIG_NS, "SignatureMethod") =>
        {
            (*cm, *sm, refs)
        }
        _ => {
            return Err(structure(
                "SignedInfo must start with CanonicalizationMethod, SignatureMethod",
            ));
        }
    };
    let c14n_version = c14n::Version::from_uri(algo_attr(cm)?)
        .ok_or_else(|| algorithm(format!("canonicalization {}", algo_attr(cm).unwrap_or(""))))?;
    if xml::elements(cm).next().is_some() || xml::elements(sm).next().is_some() {
        return Err(structure(
            "unexpected parameters in CanonicalizationMethod or SignatureMethod",
        ));
    }
    let sig_md = match algo_attr(sm)? {
        RSA_SHA256 => MessageDigest::sha256(),
        RSA_SHA384 => MessageDigest::sha384(),
        RSA_SHA512 => MessageDigest::sha512(),
        other => return Err(algorithm(format!("signature method {other}"))),
    };
    if refs.is_empty() || !refs.iter().all(|r| is(*r, DSIG_NS, "Reference")) {
        return Err(structure(
            "SignedInfo must hold References only after the methods",
        ));
    }

    // --- KeyInfo, SigningCertificate -> signer ------------------------------------------------
    let x509_data = child(key_info, DSIG_NS, "X509Data")?;
    let mut certs = Vec::new();
    for c in xml::elements(x509_data) {
        if !is(c, DSIG_NS, "X509Certificate") {
            continue;
        }
        if certs.len() == MAX_CERTS {
            return Err(structure(format!(
                "more than {MAX_CERTS} certificates in KeyInfo"
            )));
        }
        let der = b64(c)?;
        certs.push(
            crate::certcache::x509_from_der(&der)
                .map_err(|e| ContainerError::CertificateInvalid(e.to_string()))?,
        );
    }
    if certs.is_empty() {
        return Err(structure("no X509Certificate in KeyInfo"));
    }

    // The SignedProperties this signature owns: Object/QualifyingProperties/SignedProperties.
    let mut own_props = Vec::new();
    for o in objects {
        for qp in xml::elements(*o).filter(|q| is(*q, XADES_NS, "QualifyingProperties")) {
            if let (Some(t), Some(id)) = (qp.attribute("Target"), sig.attribute("Id"))
                && t.strip_prefix('#') != Some(id)
            {
                return Err(ContainerError::ReferenceTarget(format!(
                    "QualifyingProperties Target {t}"
                )));
            }
            own_props.extend(xml::elements(qp).filter(|s| is(*s, XADES_NS, "SignedProperties")));
        }
    }
    let props = match own_props.as_slice() {
        [p] => *p,
        _ => return Err(structure("exactly one xades:SignedProperties is required")),
    };
    let ssp = child(props, XADES_NS, "SignedSignatureProperties")?;
    let st = text(child(ssp, XADES_NS, "SigningTime")?)?;
    let signing_time = OffsetDateTime::parse(st.trim(), &Rfc3339)
        .map_err(|e| ContainerError::SigningTime(format!("{st}: {e}")))?;
    let signing_cert = match (
        xml::elements(ssp).find(|n| is(*n, XADES_NS, "SigningCertificate")),
        xml::elements(ssp).find(|n| is(*n, XADES_NS, "SigningCertificateV2")),
    ) {
        (Some(c), None) | (None, Some(c)) => c,
        _ => {
            return Err(structure(
                "exactly one SigningCertificate or SigningCertificateV2 is required",
            ));
        }
    };
    let cert_el = xml::elements(signing_cert)
        .find(|n| is(*n, XADES_NS, "Cert"))
        .ok_or_else(|| structure("SigningCertificate without Cert"))?;
    let cert_digest = child(cert_el, XADES_NS, "CertDigest")?;
    let cd_md = match algo_attr(child(cert_digest, DSIG_NS, "DigestMethod")?)? {
        SHA1 => MessageDigest::sha1(),
        other => digest_alg(other)?,
    };
    let cd_value = b64(child(cert_digest, DSIG_NS, "DigestValue")?)?;
    let mut signer_idx = None;
    for (i, c) in certs.iter().enumerate() {
        let der = c
            .to_der()
            .map_err(|e| ContainerError::CertificateInvalid(e.to_string()))?;
        if digest(cd_md, &der)? == cd_value {
            signer_idx = Some(i);
            break;
        }
    }
    let signer_idx = signer_idx.ok_or_else(|| {
        ContainerError::SigningCertificateMismatch(
            "no KeyInfo certificate matches the CertDigest".into(),
        )
    })?;
    let signer = certs
        .get(signer_idx)
        .cloned()
        .ok_or_else(|| structure("signer index"))?;
    if let Some(is_el) = xml::elements(cert_el).find(|n| is(*n, XADES_NS, "IssuerSerial")) {
        let serial = text(child(is_el, DSIG_NS, "X509SerialNumber")?)?;
        let actual = signer
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_dec_str().map(|s| s.to_string()))
            .map_err(|e| ContainerError::CertificateInvalid(e.to_string()))?;
        if serial.trim() != actual {
            return Err(ContainerError::SigningCertificateMismatch(format!(
                "IssuerSerial serial {serial} but certificate serial {actual}"
            )));
        }
    }

    // --- SignatureValue over canonical SignedInfo ------------------------------------------------
    let pubkey = signer
        .public_key()
        .map_err(|e| ContainerError::CertificateInvalid(e.to_string()))?;
    let rsa = pubkey
        .rsa()
        .map_err(|_| ContainerError::CertificateInvalid("signer key is not RSA".into()))?;
    if rsa.size() < 256 {
        return Err(ContainerError::WeakKey(format!(
            "RSA key of {} bits",
            rsa.size() * 8
        )));
    }
    let sv = b64(sig_value)?;
    let canonical_si = c14n::canonicalize(signed_info, c14n_version)?;
    let ok = (|| -> Result<bool, openssl::error::ErrorStack> {
        let mut v = Verifier::new(sig_md, &pubkey)?;
        v.update(&canonical_si)?;
        v.verify(&sv)
    })()
    .unwrap_or(false);
    if !ok {
        return Err(ContainerError::SignatureInvalid(
            "RSA signature over SignedInfo".into(),
        ));
    }

    // --- References -------------------------------------------------------------------------
    let mut covered: HashSet<&str> = HashSet::new();
    let mut ref_ids: HashMap<String, String> = HashMap::new();
    let mut props_refs = 0;
    for r in refs {
        xml::no_text(*r, &|m| structure(m))?;
        let uri = r
            .attribute("URI")
            .ok_or_else(|| structure("Reference without URI"))?;
        let kids: Vec<Node> = xml::elements(*r).collect();
        let (transforms, dm, dv) = match kids.as_slice() {
            [t, dm, dv] if is(*t, DSIG_NS, "Transforms") => (Some(*t), *dm, *dv),
            [dm, dv] => (None, *dm, *dv),
            _ => {
                return Err(structure(
                    "Reference must be [Transforms], DigestMethod, DigestValue",
                ));
            }
        };
        if !is(dm, DSIG_NS, "DigestMethod") || !is(dv, DSIG_NS, "DigestValue") {
            return Err(structure(
                "Reference must be [Transforms], DigestMethod, DigestValue",
            ));
        }
        let md = digest_alg(algo_attr(dm)?)?;
        let expected = b64(dv)?;
        let actual = if r.attribute("Type") == Some(SIGNED_PROPS_TYPE) {
            props_refs += 1;
            let id = uri.strip_prefix('#').ok_or_else(|| {
                ContainerError::ReferenceTarget(format!("SignedProperties URI {uri}"))
            })?;
            let target = ids.get(id).ok_or_else(|| {
                ContainerError::ReferenceNotFound(format!("no element with Id {id}"))
            })?;
            if target.id() != props.id() {
                return Err(ContainerError::ReferenceTarget(format!(
                    "#{id} is <{}>, not this signature's SignedProperties",
                    target.tag_name().name()
                )));
            }
            let mut version = Version::V10;
            if let Some(t) = transforms {
                let ts: Vec<Node> = xml::elements(t).collect();
                match ts.as_slice() {
                    [one] if is(*one, DSIG_NS, "Transform") => {
                        version = Version::from_uri(algo_attr(*one)?).ok_or_else(|| {
                            algorithm(format!("transform {}", algo_attr(*one).unwrap_or("")))
                        })?;
                    }
                    _ => {
                        return Err(algorithm(
                            "SignedProperties reference must have one C14N transform",
                        ));
                    }
                }
            }
            digest(md, &c14n::canonicalize(*target, version)?)?
        } else {
            if let Some(t) = r.attribute("Type") {
                return Err(structure(format!("unexpected Reference Type {t}")));
            }
            if transforms.is_some() {
                return Err(algorithm(format!("transforms on file reference {uri}")));
            }
            if uri.starts_with('#') {
                return Err(ContainerError::ReferenceTarget(format!(
                    "same-document reference {uri}"
                )));
            }
            let name = [false, true]
                .into_iter()
                .filter_map(|plus| percent_decode(uri, plus))
                .find(|n| files.contains_key(n))
                .ok_or_else(|| ContainerError::ReferenceNotFound(uri.to_string()))?;
            let (key, data) = files
                .get_key_value(&name)
                .ok_or_else(|| ContainerError::ReferenceNotFound(uri.to_string()))?;
            if !covered.insert(key.as_str()) {
                return Err(ContainerError::DuplicateReference(name));
            }
            if let Some(id) = r.attribute("Id") {
                ref_ids.insert(id.to_string(), name.clone());
            }
            digest(md, data)?
        };
        if actual != expected {
            return Err(ContainerError::DigestMismatch(format!("Reference {uri}")));
        }
    }
    if props_refs != 1 {
        return Err(structure(format!(
            "{props_refs} SignedProperties references (exactly one required)"
        )));
    }
    if let Some(unsigned) = files.keys().find(|k| !covered.contains(k.as_str())) {
        return Err(ContainerError::UnsignedFile(unsigned.clone()));
    }

    // --- DataObjectFormat: signed MIME types per file -----------------------------------------
    let mut mime_types = BTreeMap::new();
    if let Some(sdop) =
        xml::elements(props).find(|n| is(*n, XADES_NS, "SignedDataObjectProperties"))
    {
        for dof in xml::elements(sdop).filter(|n| is(*n, XADES_NS, "DataObjectFormat")) {
            let r = dof.attribute("ObjectReference").unwrap_or("");
            let file = r
                .strip_prefix('#')
                .and_then(|id| ref_ids.get(id))
                .ok_or_else(|| {
                    ContainerError::ReferenceTarget(format!("DataObjectFormat ObjectReference {r}"))
                })?;
            if let Some(m) = xml::elements(dof).find(|n| is(*n, XADES_NS, "MimeType")) {
                mime_types.insert(file.clone(), text(m)?.trim().to_string());
            }
        }
    }

    let mut chain = vec![signer.clone()];
    chain.extend(
        certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != signer_idx)
            .map(|(_, c)| c.clone()),
    );
    Ok(VerifiedSignature {
        signer_cert: signer,
        chain,
        signing_time,
        mime_types,
    })
}

/// Formats a distinguished name like Java's `X500Principal.toString()` (most specific RDN
/// first, `, ` separated), which is what Digdir's and klient-java's signers write.
pub(crate) fn java_dn(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in name.entries() {
        let nid = e.object().nid();
        let key = match nid.short_name() {
            Ok("CN") => "CN".to_string(),
            Ok("OU") => "OU".to_string(),
            Ok("O") => "O".to_string(),
            Ok("L") => "L".to_string(),
            Ok("ST") => "ST".to_string(),
            Ok("C") => "C".to_string(),
            Ok("street") => "STREET".to_string(),
            Ok("DC") => "DC".to_string(),
            Ok("UID") => "UID".to_string(),
            Ok("serialNumber") => "SERIALNUMBER".to_string(),
            Ok("emailAddress") => "EMAILADDRESS".to_string(),
            _ => format!("OID.{}", e.object()),
        };
        let value = e.data().to_string().unwrap_or_default();
        let needs_quotes = value.is_empty()
            || value.starts_with(' ')
            || value.ends_with(' ')
            || value.contains([',', '+', '=', '"', '\n', '<', '>', '#', ';']);
        let v = if needs_quotes {
            format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            value
        };
        parts.push(format!("{key}={v}"));
    }
    parts.reverse();
    parts.join(", ")
}

/// A file to sign: its name in the container, MIME type and bytes.
#[derive(Debug, Clone, Copy)]
pub struct SignedFile<'a> {
    pub name: &'a str,
    pub mime: &'a str,
    pub data: &'a [u8],
}

/// Formats a signing time as Digdir's Java signers do: UTC with milliseconds and `Z`.
pub(crate) fn format_signing_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Produces `META-INF/signatures.xml` over `files` (in the given order) with the signer's
/// certificate chain (signer first) in KeyInfo.
pub fn sign(
    files: &[SignedFile<'_>],
    chain: &[X509],
    key: &PKey<Private>,
    signing_time: OffsetDateTime,
) -> Result<Vec<u8>, ContainerError> {
    let signer: &X509Ref = chain
        .first()
        .ok_or_else(|| ContainerError::Write("empty certificate chain".into()))?;
    let der = signer.to_der().map_err(write_err)?;
    let cert_sha1 = B64.encode(hash(MessageDigest::sha1(), &der).map_err(write_err)?);
    let serial = signer
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_dec_str().map(|s| s.to_string()))
        .map_err(write_err)?;

    let mut refs = String::new();
    let mut dofs = String::new();
    for (i, f) in files.iter().enumerate() {
        let d = B64.encode(hash(MessageDigest::sha256(), f.data).map_err(write_err)?);
        refs.push_str(&format!(
            "<Reference Id=\"ID_{i}\" URI=\"{}\"><DigestMethod Algorithm=\"{SHA256}\"/><DigestValue>{d}</DigestValue></Reference>",
            xml::esc_attr(&form_encode(f.name))
        ));
        dofs.push_str(&format!(
            "<DataObjectFormat ObjectReference=\"#ID_{i}\"><MimeType>{}</MimeType></DataObjectFormat>",
            xml::esc_text(f.mime)
        ));
    }
    let certs: String = chain
        .iter()
        .map(|c| {
            c.to_der()
                .map(|d| format!("<X509Certificate>{}</X509Certificate>", B64.encode(d)))
        })
        .collect::<Result<_, _>>()
        .map_err(write_err)?;
    let build = |props_digest: &str, sig_value: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\
<XAdESSignatures xmlns=\"{ASIC_NS}\"><Signature xmlns=\"{DSIG_NS}\" Id=\"Signature\"><SignedInfo>\
<CanonicalizationMethod Algorithm=\"{ALG_C14N10}\"/><SignatureMethod Algorithm=\"{RSA_SHA256}\"/>{refs}\
<Reference Type=\"{SIGNED_PROPS_TYPE}\" URI=\"#SignedProperties\"><Transforms><Transform Algorithm=\"{ALG_C14N10}\"/></Transforms>\
<DigestMethod Algorithm=\"{SHA256}\"/><DigestValue>{props_digest}</DigestValue></Reference></SignedInfo>\
<SignatureValue>{sig_value}</SignatureValue><KeyInfo><X509Data>{certs}</X509Data></KeyInfo>\
<Object><QualifyingProperties xmlns=\"{XADES_NS}\" xmlns:ns2=\"{DSIG_NS}\" Target=\"#Signature\">\
<SignedProperties Id=\"SignedProperties\"><SignedSignatureProperties><SigningTime>{}</SigningTime>\
<SigningCertificate><Cert><CertDigest><ns2:DigestMethod Algorithm=\"{SHA1}\"/><ns2:DigestValue>{cert_sha1}</ns2:DigestValue></CertDigest>\
<IssuerSerial><ns2:X509IssuerName>{}</ns2:X509IssuerName><ns2:X509SerialNumber>{serial}</ns2:X509SerialNumber></IssuerSerial>\
</Cert></SigningCertificate></SignedSignatureProperties><SignedDataObjectProperties>{dofs}</SignedDataObjectProperties>\
</SignedProperties></QualifyingProperties></Object></Signature></XAdESSignatures>",
            format_signing_time(signing_time),
            xml::esc_text(&java_dn(signer.issuer_name())),
        )
    };
    let find = |doc: &'_ Document<'_>, ns: &str, local: &str| -> Result<Vec<u8>, ContainerError> {
        let n = doc
            .descendants()
            .find(|n| is(*n, ns, local))
            .ok_or_else(|| ContainerError::Write(format!("{local} missing")))?;
        c14n::canonicalize(n, Version::V10).map_err(write_err)
    };
    let unlimited = Limits {
        max_xml_bytes: usize::MAX,
        max_xml_nodes: u32::MAX,
        ..Limits::default()
    };

    let draft = build("", "");
    let doc = xml::parse(draft.as_bytes(), &unlimited, "signatures.xml").map_err(write_err)?;
    let props_digest = B64.encode(
        hash(
            MessageDigest::sha256(),
            &find(&doc, XADES_NS, "SignedProperties")?,
        )
        .map_err(write_err)?,
    );

    let draft = build(&props_digest, "");
    let doc = xml::parse(draft.as_bytes(), &unlimited, "signatures.xml").map_err(write_err)?;
    let si = find(&doc, DSIG_NS, "SignedInfo")?;
    let mut s = Signer::new(MessageDigest::sha256(), key).map_err(write_err)?;
    s.update(&si).map_err(write_err)?;
    let sig = B64.encode(s.sign_to_vec().map_err(write_err)?);
    Ok(build(&props_digest, &sig).into_bytes())
}

/// Helpers for hostile-input tests (ours and other crates'): re-sign a modified signature so
/// that checks behind the SignatureValue can be reached. Not for production use.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Recomputes the SignatureValue (RSA-SHA256) over the current SignedInfo of `sig_xml` with
    /// `key`, leaving everything else byte for byte as it is.
    pub fn resign(sig_xml: &[u8], key: &PKey<Private>) -> Result<Vec<u8>, ContainerError> {
        let text = std::str::from_utf8(sig_xml).map_err(write_err)?;
        let unlimited = Limits {
            max_xml_bytes: usize::MAX,
            max_xml_nodes: u32::MAX,
            ..Limits::default()
        };
        let doc = xml::parse(sig_xml, &unlimited, "signatures.xml")?;
        let si = doc
            .descendants()
            .find(|n| is(*n, DSIG_NS, "SignedInfo"))
            .ok_or_else(|| ContainerError::Write("no SignedInfo".into()))?;
        let version = si
            .children()
            .find(|n| is(*n, DSIG_NS, "CanonicalizationMethod"))
            .and_then(|n| n.attribute("Algorithm"))
            .and_then(Version::from_uri)
            .unwrap_or(Version::V10);
        let canonical = c14n::canonicalize(si, version)?;
        let mut s = Signer::new(MessageDigest::sha256(), key).map_err(write_err)?;
        s.update(&canonical).map_err(write_err)?;
        let value = B64.encode(s.sign_to_vec().map_err(write_err)?);
        let sv = doc
            .descendants()
            .find(|n| is(*n, DSIG_NS, "SignatureValue"))
            .ok_or_else(|| ContainerError::Write("no SignatureValue".into()))?;
        let r = sv.range();
        let inner_start = text
            .get(r.clone())
            .and_then(|t| t.find('>'))
            .map(|i| r.start + i + 1);
        let inner_end = text
            .get(r.clone())
            .and_then(|t| t.rfind("</"))
            .map(|i| r.start + i);
        match (inner_start, inner_end) {
            (Some(a), Some(b)) if a <= b => Ok(format!(
                "{}{}{}",
                text.get(..a).unwrap_or(""),
                value,
                text.get(b..).unwrap_or("")
            )
            .into_bytes()),
            _ => Err(ContainerError::Write("SignatureValue position".into())),
        }
    }
}
