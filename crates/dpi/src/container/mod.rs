//! The dokumentpakke (dpi-spec §5, §6): the ASiC-E container with `manifest.xml`, documents,
//! extension files and the XAdES-B `META-INF/signatures.xml`, and its CMS encryption.
//! Sans-I/O; every refusal is a [`ContainerError`] with a stable `code()`.
//!
//! # API for the rest of `dpi`
//! - [`write_asice`]`(&Dokumentpakke, signer_chain, signer_key, signing_time) -> zip bytes`
//! - [`read_asice`]`(zip, &Limits) -> VerifiedAsice` — limits, names, manifest, extensions and the
//!   XAdES signature verified cryptographically against the certificate in KeyInfo. Whether that
//!   certificate chains to a trusted root, and whose it is, is the caller's decision
//!   (`VerifiedAsice::signer_cert`, `signer_chain`).
//! - [`cms::encrypt`]`(zip, recipient_cert) -> DER` and [`cms::decrypt`]`(cms, key, &Limits) -> zip`
//!   ([`cms::decrypt_for`] also requires the recipientInfo to name the given certificate).
//! - Lower level: [`xades::sign`], [`xades::verify`], [`manifest::parse`], [`Extension::parse`].
//!
//! Decisions on the spec's open points (§10): the writer emits `mimetype` first and stored and
//! Digdir's ODF `META-INF/manifest.xml`; the reader tolerates both being absent. Nested zips are
//! not refused: `application/octet-stream` (zip) is an allowed document type, and we never open
//! documents. A manifest-level `<lenke>` is read, and written as a `data` extension on the
//! hoveddokument (`lenke.xml`).

mod ber;
mod c14n;
pub mod cms;
mod error;
pub mod extensions;
pub mod manifest;
pub mod xades;
mod xml;
mod zipio;

use std::collections::{BTreeMap, HashSet};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use error::ContainerError;
pub use extensions::{
    Arrangement, ArrangementInfo, ArrangementLenke, Bevis, BevisAdresse, BevisAttributt, BevisInfo,
    Bevisholder, Extension, Gyldighetsperiode, Lenke, Maanedstidspunkt, Moteplass, Strekkode,
    StrekkodeType, Tekst, Tidsrom,
};
pub use manifest::{ALLOWED_DOCUMENT_MIME, Avsender, Mottaker};
pub use zipio::ASIC_MIMETYPE;

/// Limits applied while reading untrusted dokumentpakker. `Default` follows dpi-spec §5/§8.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum zip size, and maximum sum of inflated entry sizes (30 MB).
    pub max_total_bytes: usize,
    /// Maximum number of zip entries.
    pub max_entries: usize,
    /// Maximum inflated size of one entry.
    pub max_entry_bytes: usize,
    /// Maximum ratio inflated/compressed for one entry (checked on bytes actually inflated)…
    pub max_compression_ratio: u64,
    /// …for entries inflating to more than this many bytes (small entries are exempt).
    pub ratio_exempt_bytes: usize,
    /// Maximum size of one XML document (manifest, signatures, extension) before parsing.
    pub max_xml_bytes: usize,
    /// Maximum number of XML nodes in one document.
    pub max_xml_nodes: u32,
    /// Maximum BER nesting depth in CMS.
    pub max_ber_depth: usize,
    /// Maximum number of BER nodes in CMS.
    pub max_ber_nodes: usize,
    /// Maximum number of vedlegg (attachments) in the manifest.
    pub max_attachments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 30 * 1024 * 1024,
            max_entries: 512,
            max_entry_bytes: 30 * 1024 * 1024,
            max_compression_ratio: 100,
            ratio_exempt_bytes: 1024 * 1024,
            max_xml_bytes: 1024 * 1024,
            max_xml_nodes: 100_000,
            max_ber_depth: 32,
            max_ber_nodes: 200_000,
            max_attachments: 200,
        }
    }
}

/// Reads a zip under `limits` and verifies its `META-INF/signatures.xml` over every file outside
/// `META-INF/`. Lower level than [`read_asice`]: no manifest checks.
pub fn verify_zip_signature(
    zip: &[u8],
    limits: &Limits,
) -> Result<xades::VerifiedSignature, ContainerError> {
    let entries = zipio::read(zip, limits)?;
    let sig = entries
        .iter()
        .find(|e| e.name == "META-INF/signatures.xml")
        .ok_or_else(|| ContainerError::MissingEntry("META-INF/signatures.xml".into()))?;
    let files = entries
        .iter()
        .filter(|e| !e.name.starts_with("META-INF/") && e.name != "mimetype")
        .map(|e| (e.name.clone(), e.data.as_slice()))
        .collect();
    xades::verify(&sig.data, &files, limits)
}

/// The package-level parts of the manifest; documents are in [`Dokumentpakke::documents`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The citizen (omitted for print).
    #[serde(default)]
    pub mottaker: Option<Mottaker>,
    pub avsender: Avsender,
    /// Legacy manifest-level "lenke utenfor brev". Read when present; on writing it is moved to a
    /// `lenke.xml` data extension of the hoveddokument (the form the spec recommends).
    #[serde(default)]
    pub lenke: Option<Lenke>,
}

/// Whether a document is the main document or an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentRole {
    Hoveddokument,
    Vedlegg,
}

/// An extension file attached to a document (`<data href mime>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentData {
    /// File name of the extension document in the container (4..100 characters).
    pub href: String,
    pub extension: Extension,
}

/// One document of the package with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// File name in the container (4..100 characters, unique).
    pub href: String,
    /// One of [`ALLOWED_DOCUMENT_MIME`].
    pub mime: String,
    /// `tittel` (1..255 characters); may be sensitive.
    pub title: Option<String>,
    /// Two-letter language of the title; required when `title` is set.
    pub lang: Option<String>,
    pub role: DocumentRole,
    pub bytes: Vec<u8>,
    /// Extension attached to this document.
    pub data: Option<DocumentData>,
}

/// A dokumentpakke: manifest parts plus documents (hoveddokument first, then vedlegg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dokumentpakke {
    pub manifest: Manifest,
    pub documents: Vec<Document>,
}

impl Dokumentpakke {
    /// The hoveddokument.
    pub fn hoveddokument(&self) -> Option<&Document> {
        self.documents
            .iter()
            .find(|d| d.role == DocumentRole::Hoveddokument)
    }

    /// The "lenke utenfor brev", whichever way it was attached (a document's `data` first).
    pub fn lenke(&self) -> Option<&Lenke> {
        self.documents
            .iter()
            .filter_map(|d| match &d.data {
                Some(DocumentData {
                    extension: Extension::Lenke(l),
                    ..
                }) => Some(l),
                _ => None,
            })
            .next()
            .or(self.manifest.lenke.as_ref())
    }

    /// Hrefs of extension files whose MIME type we do not know (kept opaque, to be reported).
    pub fn unknown_extensions(&self) -> Vec<&str> {
        self.documents
            .iter()
            .filter_map(|d| d.data.as_ref())
            .filter(|d| d.extension.is_unknown())
            .map(|d| d.href.as_str())
            .collect()
    }

    /// The wire manifest for this package (validated).
    fn to_wire(&self) -> Result<(manifest::ParsedManifest, Vec<Option<ExtFile>>), ContainerError> {
        let inv = |m: String| ContainerError::ManifestInvalid(m);
        let mut hoved = None;
        let mut vedlegg = Vec::new();
        let mut ext_files = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        names.insert("manifest.xml".into());
        let mut legacy_lenke = self.manifest.lenke.clone();
        for d in &self.documents {
            let tittel = match (&d.title, &d.lang) {
                (Some(t), Some(l)) => Some(Tekst::new(t.clone(), l.clone())),
                (None, None) => None,
                (Some(_), None) => return Err(inv(format!("{}: title without lang", d.href))),
                (None, Some(_)) => return Err(inv(format!("{}: lang without title", d.href))),
            };
            let mut data = d.data.clone();
            if d.role == DocumentRole::Hoveddokument
                && data.is_none()
                && let Some(l) = legacy_lenke.take()
            {
                data = Some(DocumentData {
                    href: "lenke.xml".into(),
                    extension: Extension::Lenke(l),
                });
            }
            let mut check_name = |n: &str| -> Result<(), ContainerError> {
                zipio::check_name(n)?;
                if n.starts_with("META-INF/") || n == "mimetype" || !names.insert(n.to_lowercase())
                {
                    return Err(inv(format!("file name {n:?} is reserved or used twice")));
                }
                Ok(())
            };
            check_name(&d.href)?;
            let md = manifest::ManifestDocument {
                href: d.href.clone(),
                mime: d.mime.clone(),
                tittel,
                data: data
                    .as_ref()
                    .map(|x| (x.href.clone(), x.extension.mime().to_string())),
            };
            manifest::check_document(&md)?;
            ext_files.push(match &data {
                Some(x) => {
                    check_name(&x.href)?;
                    Some(ExtFile {
                        href: x.href.clone(),
                        mime: x.extension.mime().to_string(),
                        bytes: x.extension.to_xml()?,
                    })
                }
                None => None,
            });
            match d.role {
                DocumentRole::Hoveddokument if hoved.is_none() => hoved = Some(md),
                DocumentRole::Hoveddokument => {
                    return Err(inv("more than one hoveddokument".into()));
                }
                DocumentRole::Vedlegg => vedlegg.push(md),
            }
        }
        if legacy_lenke.is_some() {
            return Err(inv(
                "manifest lenke cannot be attached: the hoveddokument already has data".into(),
            ));
        }
        if vedlegg.len() > 200 {
            return Err(ContainerError::TooManyAttachments(format!(
                "{} vedlegg",
                vedlegg.len()
            )));
        }
        let hoveddokument = hoved.ok_or_else(|| inv("no hoveddokument".into()))?;
        manifest::check_avsender(&self.manifest.avsender)?;
        if let Some(m) = &self.manifest.mottaker {
            manifest::check_mottaker(m)?;
        }
        let wire = manifest::ParsedManifest {
            mottaker: self.manifest.mottaker.clone(),
            avsender: self.manifest.avsender.clone(),
            hoveddokument,
            vedlegg,
            lenke: None,
        };
        Ok((wire, ext_files))
    }
}

/// An extension file ready to be written.
struct ExtFile {
    href: String,
    mime: String,
    bytes: Vec<u8>,
}

/// A container whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedAsice {
    pub package: Dokumentpakke,
    /// The certificate that made the XAdES signature (from KeyInfo, matched by
    /// SigningCertificate digest). Not yet trusted: chain validation is the caller's.
    pub signer_cert: X509,
    /// All KeyInfo certificates, the signer first.
    pub signer_chain: Vec<X509>,
    /// The signed SigningTime.
    pub signing_time: OffsetDateTime,
    /// The exact `manifest.xml` bytes.
    pub manifest_xml: Vec<u8>,
}

fn odf_manifest(files: &[(String, String)]) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<ns1:manifest xmlns:ns1=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\">\
<ns1:file-entry ns1:full-path=\"/\" ns1:media-type=\"application/vnd.etsi.asic-e+zip\"/>",
    );
    for (name, mime) in files {
        s.push_str(&format!(
            "<ns1:file-entry ns1:full-path=\"{}\" ns1:media-type=\"{}\"/>",
            xml::esc_attr(name),
            xml::esc_attr(mime)
        ));
    }
    s.push_str("</ns1:manifest>");
    s.into_bytes()
}

/// Writes and signs an ASiC-E dokumentpakke. `signer_chain` is the signer's certificate first,
/// then its CA certificates (all go into KeyInfo, as the spec asks for the chain up to the root).
pub fn write_asice(
    package: &Dokumentpakke,
    signer_chain: &[X509],
    signer_key: &PKey<Private>,
    signing_time: OffsetDateTime,
) -> Result<Vec<u8>, ContainerError> {
    let (wire, ext_files) = package.to_wire()?;
    let manifest_xml = manifest::write(&wire);
    // Signed files: manifest first, then each document followed by its extension file.
    let mut files: Vec<(String, String, &[u8])> = vec![(
        "manifest.xml".into(),
        "application/xml".into(),
        &manifest_xml,
    )];
    for (d, ext) in package.documents.iter().zip(&ext_files) {
        files.push((d.href.clone(), d.mime.clone(), &d.bytes));
        if let Some(x) = ext {
            files.push((x.href.clone(), x.mime.clone(), &x.bytes));
        }
    }
    let signed: Vec<xades::SignedFile> = files
        .iter()
        .map(|(n, m, d)| xades::SignedFile {
            name: n,
            mime: m,
            data: d,
        })
        .collect();
    let signatures = xades::sign(&signed, signer_chain, signer_key, signing_time)?;
    let odf = odf_manifest(
        &files
            .iter()
            .map(|(n, m, _)| (n.clone(), m.clone()))
            .collect::<Vec<_>>(),
    );
    let mut entries: Vec<(&str, &[u8])> = files.iter().map(|(n, _, d)| (n.as_str(), *d)).collect();
    entries.push(("META-INF/signatures.xml", &signatures));
    entries.push(("META-INF/manifest.xml", &odf));
    zipio::write(&entries)
}

/// Reads an ASiC-E dokumentpakke under `limits`: zip rules, signature (cryptographically, over
/// every file outside `META-INF/`), manifest, hrefs, MIME types and extensions.
pub fn read_asice(zip: &[u8], limits: &Limits) -> Result<VerifiedAsice, ContainerError> {
    let entries = zipio::read(zip, limits)?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut signatures = None;
    for e in entries {
        match e.name.as_str() {
            "mimetype" | "META-INF/manifest.xml" => {}
            "META-INF/signatures.xml" => signatures = Some(e.data),
            n if n.starts_with("META-INF/") => return Err(ContainerError::UnlistedFile(e.name)),
            _ => {
                files.insert(e.name, e.data);
            }
        }
    }
    let signatures =
        signatures.ok_or_else(|| ContainerError::MissingEntry("META-INF/signatures.xml".into()))?;
    if !files.contains_key("manifest.xml") {
        return Err(ContainerError::MissingEntry("manifest.xml".into()));
    }
    let sig = {
        let view: BTreeMap<String, &[u8]> = files
            .iter()
            .map(|(k, v)| (k.clone(), v.as_slice()))
            .collect();
        xades::verify(&signatures, &view, limits)?
    };
    let manifest_xml = files.remove("manifest.xml").unwrap_or_default();
    let wire = manifest::parse(&manifest_xml, limits)?;

    let mut documents = Vec::with_capacity(1 + wire.vedlegg.len());
    let all = std::iter::once((&wire.hoveddokument, DocumentRole::Hoveddokument))
        .chain(wire.vedlegg.iter().map(|v| (v, DocumentRole::Vedlegg)));
    let mut taken: HashSet<String> = HashSet::new();
    for (md, role) in all {
        // Moves each file out of the map so the container is held in memory only once.
        let mut take = |href: &str| -> Result<Vec<u8>, ContainerError> {
            match files.remove(href) {
                Some(v) => {
                    taken.insert(href.to_string());
                    Ok(v)
                }
                None if taken.contains(href) || href == "manifest.xml" => Err(
                    ContainerError::ManifestInvalid(format!("{href} is listed twice")),
                ),
                None => Err(ContainerError::HrefNotFound(href.to_string())),
            }
        };
        let bytes = take(&md.href)?;
        let data = match &md.data {
            None => None,
            Some((href, mime)) => {
                let b = take(href)?;
                Some(DocumentData {
                    href: href.clone(),
                    extension: Extension::parse(mime, &b, limits)?,
                })
            }
        };
        documents.push(Document {
            href: md.href.clone(),
            mime: md.mime.clone(),
            title: md.tittel.as_ref().map(|t| t.text.clone()),
            lang: md.tittel.as_ref().map(|t| t.lang.clone()),
            role,
            bytes,
            data,
        });
    }
    if let Some(extra) = files.keys().next() {
        return Err(ContainerError::UnlistedFile(extra.clone()));
    }
    Ok(VerifiedAsice {
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: wire.mottaker,
                avsender: wire.avsender,
                lenke: wire.lenke,
            },
            documents,
        },
        signer_cert: sig.signer_cert,
        signer_chain: sig.chain,
        signing_time: sig.signing_time,
        manifest_xml,
    })
}
