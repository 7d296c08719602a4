//! `manifest.xml` (`sdp-manifest.xsd`, namespace `http://begrep.difi.no/sdp/schema_v10`,
//! dpi-spec §5.2): typed reading with the XSD's cardinalities, lengths and patterns, and writing
//! in Digdir's compact serialization.

use roxmltree::Node;
use serde::{Deserialize, Serialize};

use super::Limits;
use super::error::ContainerError;
use super::extensions::{self, Lenke, Tekst};
use super::xml::{self, Kids, W, check_len};

pub const NS_MANIFEST: &str = "http://begrep.difi.no/sdp/schema_v10";
pub const AUTHORITY: &str = "iso6523-actorid-upis";

/// Document MIME types allowed in a dokumentpakke (dpi-spec §5.2).
pub const ALLOWED_DOCUMENT_MIME: &[&str] = &[
    "application/pdf",
    "text/html",
    "application/ehf+xml",
    "text/plain",
    "application/vnd.oasis.opendocument.formula",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/vnd.oasis.opendocument.graphics",
    "image/gif",
    "image/jpeg",
    "image/png",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/octet-stream",
];

fn inv(m: String) -> ContainerError {
    ContainerError::ManifestInvalid(m)
}

/// The avsender block: `organisasjon` is `<icd>:<id>` (e.g. `0192:991825827`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Avsender {
    pub organisasjon: String,
    #[serde(default)]
    pub avsenderidentifikator: Option<String>,
    #[serde(default)]
    pub faktura_referanse: Option<String>,
}

/// The mottaker block (omitted for print).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mottaker {
    /// `[0-9]{11}`
    #[serde(default)]
    pub personidentifikator: Option<String>,
    pub postkasseadresse: String,
}

/// One `<hoveddokument>` or `<vedlegg>` as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDocument {
    /// File name in the container.
    pub href: String,
    pub mime: String,
    pub tittel: Option<Tekst>,
    /// `<data href mime>`: the extension file attached to this document.
    pub data: Option<(String, String)>,
}

/// The manifest as written on the wire, documents included (see [`super::Dokumentpakke`] for
/// the typed package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    pub mottaker: Option<Mottaker>,
    pub avsender: Avsender,
    pub hoveddokument: ManifestDocument,
    pub vedlegg: Vec<ManifestDocument>,
    pub lenke: Option<Lenke>,
}

/// `[0-9]{4}:\w{1,35}` (XSD `\w`: letters, digits and connector punctuation).
pub(crate) fn iso6523_ok(s: &str) -> bool {
    let Some((icd, id)) = s.split_once(':') else {
        return false;
    };
    icd.len() == 4
        && icd.bytes().all(|b| b.is_ascii_digit())
        && (1..=35).contains(&id.chars().count())
        && id.chars().all(|c| c.is_alphanumeric() || c == '_')
}

pub(crate) fn check_avsender(a: &Avsender) -> Result<(), ContainerError> {
    if !iso6523_ok(&a.organisasjon) {
        return Err(inv(format!(
            "organisasjon {:?} is not <icd>:<id>",
            a.organisasjon
        )));
    }
    if let Some(v) = &a.avsenderidentifikator {
        check_len("avsenderidentifikator", v, 0, 100, inv)?;
    }
    if let Some(v) = &a.faktura_referanse {
        check_len("fakturaReferanse", v, 0, 40, inv)?;
    }
    Ok(())
}

pub(crate) fn check_mottaker(m: &Mottaker) -> Result<(), ContainerError> {
    if let Some(p) = &m.personidentifikator
        && !(p.len() == 11 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(inv("personidentifikator is not 11 digits".into()));
    }
    check_len("postkasseadresse", &m.postkasseadresse, 0, 1000, inv)
}

/// Checks href/mime/title of one document entry.
pub(crate) fn check_document(d: &ManifestDocument) -> Result<(), ContainerError> {
    check_len("href", &d.href, 4, 100, inv)?;
    check_len("mime", &d.mime, 1, 100, inv)?;
    if !ALLOWED_DOCUMENT_MIME.contains(&d.mime.as_str()) {
        return Err(ContainerError::MimeNotAllowed(format!(
            "{}: {}",
            d.href, d.mime
        )));
    }
    if let Some(t) = &d.tittel {
        check_len("tittel", &t.text, 1, 255, inv)?;
        if !extensions::lang_ok(&t.lang) {
            return Err(inv(format!("tittel lang {:?} is not two letters", t.lang)));
        }
    }
    if let Some((href, mime)) = &d.data {
        check_len("data href", href, 4, 100, inv)?;
        check_len("data mime", mime, 1, 100, inv)?;
    }
    Ok(())
}

fn read_document(n: Node<'_, '_>, what: &'static str) -> Result<ManifestDocument, ContainerError> {
    xml::only_attrs(n, &["href", "mime"], &|m| inv(m))?;
    let href = n
        .attribute("href")
        .ok_or_else(|| inv(format!("<{what}> without href")))?
        .to_string();
    let mime = n
        .attribute("mime")
        .ok_or_else(|| inv(format!("<{what}> without mime")))?
        .to_string();
    let mut k = Kids::new(n, NS_MANIFEST, what, inv)?;
    let tittel = k
        .opt("tittel")
        .map(|t| extensions::tekst(t, 1, 255, inv))
        .transpose()?;
    let data = match k.opt("data") {
        None => None,
        Some(d) => {
            xml::only_attrs(d, &["href", "mime"], &|m| inv(m))?;
            xml::no_text(d, &|m| inv(m))?;
            if xml::elements(d).next().is_some() {
                return Err(inv("<data> must be empty".into()));
            }
            let h = d
                .attribute("href")
                .ok_or_else(|| inv("<data> without href".into()))?;
            let m = d
                .attribute("mime")
                .ok_or_else(|| inv("<data> without mime".into()))?;
            Some((h.to_string(), m.to_string()))
        }
    };
    k.finish()?;
    let doc = ManifestDocument {
        href,
        mime,
        tittel,
        data,
    };
    check_document(&doc)?;
    Ok(doc)
}

pub fn parse(bytes: &[u8], limits: &Limits) -> Result<ParsedManifest, ContainerError> {
    let doc = xml::parse(bytes, limits, "manifest.xml")?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(NS_MANIFEST) || root.tag_name().name() != "manifest" {
        return Err(inv(
            "root element is not {http://begrep.difi.no/sdp/schema_v10}manifest".into(),
        ));
    }
    xml::only_attrs(root, &[], &|m| inv(m))?;
    let mut k = Kids::new(root, NS_MANIFEST, "manifest", inv)?;
    let mottaker = match k.opt("mottaker") {
        None => None,
        Some(m) => {
            xml::only_attrs(m, &[], &|e| inv(e))?;
            let mut mk = Kids::new(m, NS_MANIFEST, "mottaker", inv)?;
            let p = mk.req("person")?;
            mk.finish()?;
            xml::only_attrs(p, &[], &|e| inv(e))?;
            let mut pk = Kids::new(p, NS_MANIFEST, "person", inv)?;
            let personidentifikator = pk
                .opt("personidentifikator")
                .map(|n| extensions::plain(n, 11, 11, inv))
                .transpose()?;
            let postkasseadresse = extensions::plain(pk.req("postkasseadresse")?, 0, 1000, inv)?;
            pk.finish()?;
            let m = Mottaker {
                personidentifikator,
                postkasseadresse,
            };
            check_mottaker(&m)?;
            Some(m)
        }
    };
    let a = k.req("avsender")?;
    xml::only_attrs(a, &[], &|e| inv(e))?;
    let mut ak = Kids::new(a, NS_MANIFEST, "avsender", inv)?;
    let org = ak.req("organisasjon")?;
    xml::only_attrs(org, &["authority"], &|e| inv(e))?;
    if let Some(auth) = org.attribute("authority")
        && auth != AUTHORITY
    {
        return Err(inv(format!("organisasjon authority {auth:?}")));
    }
    let organisasjon = xml::simple_text(org, &|e| inv(e))?.trim().to_string();
    let avsenderidentifikator = ak
        .opt("avsenderidentifikator")
        .map(|n| extensions::plain(n, 0, 100, inv))
        .transpose()?;
    let faktura_referanse = ak
        .opt("fakturaReferanse")
        .map(|n| extensions::plain(n, 0, 40, inv))
        .transpose()?;
    ak.finish()?;
    let avsender = Avsender {
        organisasjon,
        avsenderidentifikator,
        faktura_referanse,
    };
    check_avsender(&avsender)?;
    let hoveddokument = read_document(k.req("hoveddokument")?, "hoveddokument")?;
    let mut vedlegg = Vec::new();
    for v in k.many("vedlegg", usize::MAX)? {
        if vedlegg.len() == limits.max_attachments {
            return Err(ContainerError::TooManyAttachments(format!(
                "more than {}",
                limits.max_attachments
            )));
        }
        vedlegg.push(read_document(v, "vedlegg")?);
    }
    let lenke = k
        .opt("lenke")
        .map(|l| extensions::read_lenke(l, NS_MANIFEST, inv))
        .transpose()?;
    k.finish()?;
    Ok(ParsedManifest {
        mottaker,
        avsender,
        hoveddokument,
        vedlegg,
        lenke,
    })
}

fn write_document(w: &mut W, name: &str, d: &ManifestDocument) {
    w.open_attrs(name, &[("href", &d.href), ("mime", &d.mime)]);
    if let Some(t) = &d.tittel {
        w.leaf_attrs("tittel", &[("lang", &t.lang)], &t.text);
    }
    if let Some((href, mime)) = &d.data {
        w.empty_attrs("data", &[("href", href), ("mime", mime)]);
    }
    w.close(name);
}

pub fn write(m: &ParsedManifest) -> Vec<u8> {
    let mut w = W::new();
    w.open_attrs("manifest", &[("xmlns", NS_MANIFEST)]);
    if let Some(mt) = &m.mottaker {
        w.open("mottaker");
        w.open("person");
        if let Some(p) = &mt.personidentifikator {
            w.leaf("personidentifikator", p);
        }
        w.leaf("postkasseadresse", &mt.postkasseadresse);
        w.close("person");
        w.close("mottaker");
    }
    w.open("avsender");
    w.leaf_attrs(
        "organisasjon",
        &[("authority", AUTHORITY)],
        &m.avsender.organisasjon,
    );
    if let Some(v) = &m.avsender.avsenderidentifikator {
        w.leaf("avsenderidentifikator", v);
    }
    if let Some(v) = &m.avsender.faktura_referanse {
        w.leaf("fakturaReferanse", v);
    }
    w.close("avsender");
    write_document(&mut w, "hoveddokument", &m.hoveddokument);
    for v in &m.vedlegg {
        write_document(&mut w, "vedlegg", v);
    }
    if let Some(l) = &m.lenke {
        w.open("lenke");
        extensions::write_lenke_body(&mut w, l);
        w.close("lenke");
    }
    w.close("manifest");
    w.0.into_bytes()
}
