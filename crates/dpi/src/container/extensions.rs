//! Extensions (utvidelser, dpi-spec §6): extra XML files in the dokumentpakke referenced by a
//! document's `<data href mime>`. `lenke`, `bevis` and `arrangement` are typed and validated
//! against the limits of their XSDs; anything else is kept as opaque bytes with its MIME type.
//! Date-times and `postnummer` keep their lexical form so that reading and writing round-trip.

use roxmltree::Node;
use serde::{Deserialize, Serialize};

use super::Limits;
use super::error::ContainerError;
use super::xml::{self, Kids, W, check_len};

pub const MIME_LENKE: &str = "application/vnd.difi.dpi.lenke+xml";
pub const MIME_BEVIS: &str = "application/vnd.difi.dpi.bevis+xml";
pub const MIME_ARRANGEMENT: &str = "application/vnd.difi.dpi.arrangement+xml";
pub const NS_LENKE: &str = "http://begrep.difi.no/sdp/utvidelser/lenke";
pub const NS_BEVIS: &str = "http://begrep.difi.no/sdp/utvidelser/bevis";
pub const NS_ARRANGEMENT: &str = "http://begrep.difi.no/sdp/utvidelser/arrangement";

fn inv(m: String) -> ContainerError {
    ContainerError::ExtensionInvalid(m)
}

/// A text with its required two-letter `lang` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tekst {
    pub text: String,
    pub lang: String,
}

impl Tekst {
    pub fn new(text: impl Into<String>, lang: impl Into<String>) -> Tekst {
        Tekst {
            text: text.into(),
            lang: lang.into(),
        }
    }
}

/// Lenke utenfor brev (§6.1); also the manifest-level `<lenke>` of `sdp-manifest.xsd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lenke {
    /// `https?://.+`
    pub url: String,
    /// 1..70 characters.
    #[serde(default)]
    pub beskrivelse: Option<Tekst>,
    /// 1..30 characters.
    #[serde(default)]
    pub knapp_tekst: Option<Tekst>,
    /// Deadline, `xsd:dateTime` lexical form.
    #[serde(default)]
    pub frist: Option<String>,
}

/// Bevis (§6.2), e.g. a membership card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bevis {
    #[serde(default)]
    pub utsteder_visningsnavn: Option<Tekst>,
    /// `#[A-Fa-f0-9]{6}`
    #[serde(default)]
    pub bakgrunnsfarge: Option<String>,
    #[serde(default)]
    pub utstedt_tidspunkt: Option<String>,
    #[serde(default)]
    pub gyldighetsperiode: Option<Gyldighetsperiode>,
    pub bevisholder: Bevisholder,
    /// 1..255 characters.
    pub tittel: Tekst,
    #[serde(default)]
    pub bevis_id_navn: Option<Tekst>,
    #[serde(default)]
    pub bevis_id_verdi: Option<String>,
    /// 0..5
    #[serde(default)]
    pub attributt: Vec<BevisAttributt>,
    /// 0..3
    #[serde(default)]
    pub info: Vec<BevisInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Gyldighetsperiode {
    Periode {
        #[serde(default)]
        fra: Option<String>,
        #[serde(default)]
        til: Option<String>,
    },
    AarligRepeterendePeriode {
        #[serde(default)]
        start_aar: Option<i32>,
        #[serde(default)]
        slutt_aar: Option<i32>,
        fra: Maanedstidspunkt,
        til: Maanedstidspunkt,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maanedstidspunkt {
    /// 1..=12
    pub maaned: u8,
    /// 1..=31 (default 1)
    #[serde(default)]
    pub dag: Option<u8>,
    /// 0..=23 (default 0)
    #[serde(default)]
    pub time: Option<u8>,
    /// 0..=59 (default 0)
    #[serde(default)]
    pub minutt: Option<u8>,
    /// `Z|[+-][01]\d(:?[0-5]\d)?` (default +02:00)
    #[serde(default)]
    pub tidssone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bevisholder {
    pub fornavn: String,
    pub etternavn: String,
    /// `[0-9]{11}`
    #[serde(default)]
    pub foedselsnummer: Option<String>,
    #[serde(default)]
    pub adresse: Option<BevisAdresse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BevisAdresse {
    pub gate: String,
    pub postnummer: String,
    pub sted: String,
    #[serde(default)]
    pub land: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BevisAttributt {
    pub navn: Tekst,
    pub verdi: Tekst,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BevisInfo {
    #[serde(default)]
    pub navn: Option<Tekst>,
    pub verdi: Tekst,
}

/// Arrangement (§6.3), e.g. an election card or an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrangement {
    /// 1..100 characters.
    pub tittel: Tekst,
    #[serde(default)]
    pub tidsrom_tittel: Option<Tekst>,
    /// 0..10
    #[serde(default)]
    pub tidsrom: Vec<Tidsrom>,
    /// 1..400 characters.
    #[serde(default)]
    pub oppmote_informasjon: Option<Tekst>,
    pub moteplass: Moteplass,
    #[serde(default)]
    pub strekkode: Option<Strekkode>,
    /// 0..10
    #[serde(default)]
    pub info: Vec<ArrangementInfo>,
    /// 0..2 (written inside one `<lenker>` when non-empty)
    #[serde(default)]
    pub lenker: Vec<ArrangementLenke>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tidsrom {
    #[serde(default)]
    pub fra: Option<String>,
    #[serde(default)]
    pub til: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moteplass {
    pub tittel: Tekst,
    pub navn: String,
    #[serde(default)]
    pub gateadresse: Option<String>,
    /// `xsd:int`, kept in its lexical form ("0473").
    #[serde(default)]
    pub postnummer: Option<String>,
    #[serde(default)]
    pub sted: Option<String>,
    #[serde(default)]
    pub land: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrekkodeType {
    #[serde(rename = "code-128")]
    Code128,
    #[serde(rename = "code-39")]
    Code39,
}

impl StrekkodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            StrekkodeType::Code128 => "code-128",
            StrekkodeType::Code39 => "code-39",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strekkode {
    #[serde(default)]
    pub tittel: Option<Tekst>,
    /// 1..20 characters.
    pub verdi: String,
    #[serde(rename = "type")]
    pub kind: StrekkodeType,
    #[serde(default)]
    pub tekst: Option<Tekst>,
    /// Default true.
    #[serde(default)]
    pub vis_verdi: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrangementInfo {
    pub tittel: Tekst,
    pub tekst: Tekst,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrangementLenke {
    pub navn: Tekst,
    pub url: String,
}

/// A parsed extension document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Extension {
    Lenke(Lenke),
    Bevis(Bevis),
    Arrangement(Arrangement),
    /// An extension we do not know: kept as is and reported, never interpreted.
    Unknown {
        mime: String,
        #[serde(skip)]
        bytes: Vec<u8>,
    },
}

impl Extension {
    /// The MIME type written in the manifest's `<data mime>`.
    pub fn mime(&self) -> &str {
        match self {
            Extension::Lenke(_) => MIME_LENKE,
            Extension::Bevis(_) => MIME_BEVIS,
            Extension::Arrangement(_) => MIME_ARRANGEMENT,
            Extension::Unknown { mime, .. } => mime,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Extension::Unknown { .. })
    }

    /// Parses an extension file by its declared MIME type.
    pub fn parse(mime: &str, bytes: &[u8], limits: &Limits) -> Result<Extension, ContainerError> {
        let known = [MIME_LENKE, MIME_BEVIS, MIME_ARRANGEMENT];
        if !known.contains(&mime) {
            return Ok(Extension::Unknown {
                mime: mime.to_string(),
                bytes: bytes.to_vec(),
            });
        }
        let doc = xml::parse(bytes, limits, mime)?;
        let root = doc.root_element();
        Ok(match mime {
            MIME_LENKE => Extension::Lenke(read_lenke(root, NS_LENKE, inv)?),
            MIME_BEVIS => Extension::Bevis(read_bevis(root)?),
            _ => Extension::Arrangement(read_arrangement(root)?),
        })
    }

    /// Checks the XSD limits without writing.
    pub fn validate(&self) -> Result<(), ContainerError> {
        // Writing then re-reading would also do; this keeps a single source of truth: the reader.
        let bytes = self.to_xml_unchecked();
        if self.is_unknown() {
            return Ok(());
        }
        Extension::parse(self.mime(), &bytes, &Limits::default()).map(|_| ())
    }

    /// Serializes the extension (validated against its XSD limits first).
    pub fn to_xml(&self) -> Result<Vec<u8>, ContainerError> {
        self.validate()?;
        Ok(self.to_xml_unchecked())
    }

    fn to_xml_unchecked(&self) -> Vec<u8> {
        match self {
            Extension::Lenke(l) => write_lenke(l).into_bytes(),
            Extension::Bevis(b) => write_bevis(b).into_bytes(),
            Extension::Arrangement(a) => write_arrangement(a).into_bytes(),
            Extension::Unknown { bytes, .. } => bytes.clone(),
        }
    }
}

// --- shared readers ---------------------------------------------------------------------------

pub(crate) fn plain(
    n: Node<'_, '_>,
    min: usize,
    max: usize,
    err: fn(String) -> ContainerError,
) -> Result<String, ContainerError> {
    xml::only_attrs(n, &[], &|m| err(m))?;
    let t = xml::simple_text(n, &|m| err(m))?;
    check_len(n.tag_name().name(), &t, min, max, err)?;
    Ok(t)
}

pub(crate) fn lang_ok(lang: &str) -> bool {
    lang.len() == 2 && lang.bytes().all(|b| b.is_ascii_alphabetic())
}

pub(crate) fn tekst(
    n: Node<'_, '_>,
    min: usize,
    max: usize,
    err: fn(String) -> ContainerError,
) -> Result<Tekst, ContainerError> {
    xml::only_attrs(n, &["lang"], &|m| err(m))?;
    let lang = n
        .attribute("lang")
        .ok_or_else(|| err(format!("<{}> without lang", n.tag_name().name())))?;
    if !lang_ok(lang) {
        return Err(err(format!(
            "<{}> lang {lang:?} is not two letters",
            n.tag_name().name()
        )));
    }
    let t = xml::simple_text(n, &|m| err(m))?;
    check_len(n.tag_name().name(), &t, min, max, err)?;
    Ok(Tekst {
        text: t,
        lang: lang.to_string(),
    })
}

pub(crate) fn datetime(
    n: Node<'_, '_>,
    err: fn(String) -> ContainerError,
) -> Result<String, ContainerError> {
    let t = plain(n, 1, 64, err)?;
    let t = t.trim();
    if !xml::is_xsd_datetime(t) {
        return Err(err(format!(
            "<{}> {t:?} is not an xsd:dateTime",
            n.tag_name().name()
        )));
    }
    Ok(t.to_string())
}

pub(crate) fn http_url(
    n: Node<'_, '_>,
    err: fn(String) -> ContainerError,
) -> Result<String, ContainerError> {
    let t = plain(n, 1, 2048, err)?;
    let t = t.trim();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"));
    if rest.is_none_or(str::is_empty) || t.chars().any(char::is_whitespace) {
        return Err(err(format!(
            "<{}> {t:?} is not an http(s) link",
            n.tag_name().name()
        )));
    }
    Ok(t.to_string())
}

fn int_in(n: Node<'_, '_>, min: i64, max: i64) -> Result<i64, ContainerError> {
    let t = plain(n, 1, 20, inv)?;
    let v: i64 = t
        .trim()
        .trim_start_matches('+')
        .parse()
        .map_err(|_| inv(format!("<{}> {t:?} is not an integer", n.tag_name().name())))?;
    if v < min || v > max {
        return Err(inv(format!(
            "<{}> {v} outside {min}..={max}",
            n.tag_name().name()
        )));
    }
    Ok(v)
}

fn root_is(n: Node<'_, '_>, ns: &str, local: &str) -> Result<(), ContainerError> {
    if n.tag_name().namespace() != Some(ns) || n.tag_name().name() != local {
        return Err(inv(format!("root element is not {{{ns}}}{local}")));
    }
    xml::only_attrs(n, &[], &|m| inv(m))
}

// --- lenke ------------------------------------------------------------------------------------

/// Reads a `Lenke` (the extension's root, or the manifest's `<lenke>` with `ns` = manifest ns).
pub(crate) fn read_lenke(
    n: Node<'_, '_>,
    ns: &str,
    err: fn(String) -> ContainerError,
) -> Result<Lenke, ContainerError> {
    if n.tag_name().namespace() != Some(ns) || n.tag_name().name() != "lenke" {
        return Err(err(format!("expected {{{ns}}}lenke")));
    }
    xml::only_attrs(n, &[], &|m| err(m))?;
    let mut k = Kids::new(n, ns, "lenke", err)?;
    let url = http_url(k.req("url")?, err)?;
    let beskrivelse = k
        .opt("beskrivelse")
        .map(|b| tekst(b, 1, 70, err))
        .transpose()?;
    let knapp_tekst = k
        .opt("knappTekst")
        .map(|b| tekst(b, 1, 30, err))
        .transpose()?;
    let frist = k.opt("frist").map(|b| datetime(b, err)).transpose()?;
    k.finish()?;
    Ok(Lenke {
        url,
        beskrivelse,
        knapp_tekst,
        frist,
    })
}

pub(crate) fn write_lenke_body(w: &mut W, l: &Lenke) {
    w.leaf("url", &l.url);
    if let Some(b) = &l.beskrivelse {
        w.leaf_attrs("beskrivelse", &[("lang", &b.lang)], &b.text);
    }
    if let Some(b) = &l.knapp_tekst {
        w.leaf_attrs("knappTekst", &[("lang", &b.lang)], &b.text);
    }
    if let Some(f) = &l.frist {
        w.leaf("frist", f);
    }
}

fn write_lenke(l: &Lenke) -> String {
    let mut w = W::new();
    w.open_attrs("lenke", &[("xmlns", NS_LENKE)]);
    write_lenke_body(&mut w, l);
    w.close("lenke");
    w.0
}

// --- bevis ------------------------------------------------------------------------------------

fn maanedstidspunkt(n: Node<'_, '_>) -> Result<Maanedstidspunkt, ContainerError> {
    xml::only_attrs(n, &[], &|m| inv(m))?;
    let mut k = Kids::new(n, NS_BEVIS, "maanedstidspunkt", inv)?;
    let maaned = int_in(k.req("maaned")?, 1, 12)? as u8;
    let dag = k
        .opt("dag")
        .map(|d| int_in(d, 1, 31).map(|v| v as u8))
        .transpose()?;
    let time = k
        .opt("time")
        .map(|d| int_in(d, 0, 23).map(|v| v as u8))
        .transpose()?;
    let minutt = k
        .opt("minutt")
        .map(|d| int_in(d, 0, 59).map(|v| v as u8))
        .transpose()?;
    let tidssone = k
        .opt("tidssone")
        .map(|d| {
            let t = plain(d, 1, 6, inv)?.trim().to_string();
            if tidssone_ok(&t) {
                Ok(t)
            } else {
                Err(inv(format!("tidssone {t:?}")))
            }
        })
        .transpose()?;
    k.finish()?;
    Ok(Maanedstidspunkt {
        maaned,
        dag,
        time,
        minutt,
        tidssone,
    })
}

/// `Z|[+-][01]\d(:{0,1}[0-5]\d)?`
fn tidssone_ok(t: &str) -> bool {
    let b = t.as_bytes();
    if t == "Z" {
        return true;
    }
    let head = matches!(b.first(), Some(b'+' | b'-'))
        && matches!(b.get(1), Some(b'0' | b'1'))
        && b.get(2).is_some_and(u8::is_ascii_digit);
    let mm = |i: usize| {
        matches!(b.get(i), Some(b'0'..=b'5')) && b.get(i + 1).is_some_and(u8::is_ascii_digit)
    };
    head && match b.len() {
        3 => true,
        5 => mm(3),
        6 => b.get(3) == Some(&b':') && mm(4),
        _ => false,
    }
}

fn read_bevis(root: Node<'_, '_>) -> Result<Bevis, ContainerError> {
    root_is(root, NS_BEVIS, "bevis")?;
    let mut k = Kids::new(root, NS_BEVIS, "bevis", inv)?;
    let utsteder_visningsnavn = k
        .opt("utsteder-visningsnavn")
        .map(|n| tekst(n, 1, 100, inv))
        .transpose()?;
    let bakgrunnsfarge = k
        .opt("bakgrunnsfarge")
        .map(|n| {
            let t = plain(n, 7, 7, inv)?;
            let ok = t.starts_with('#') && t.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
            if ok {
                Ok(t)
            } else {
                Err(inv(format!("bakgrunnsfarge {t:?}")))
            }
        })
        .transpose()?;
    let utstedt_tidspunkt = k
        .opt("utstedt-tidspunkt")
        .map(|n| datetime(n, inv))
        .transpose()?;
    let gyldighetsperiode = match k.opt("gyldighetsperiode") {
        None => None,
        Some(g) => {
            xml::only_attrs(g, &[], &|m| inv(m))?;
            let mut gk = Kids::new(g, NS_BEVIS, "gyldighetsperiode", inv)?;
            let v = if let Some(p) = gk.opt("periode") {
                let mut pk = Kids::new(p, NS_BEVIS, "periode", inv)?;
                let fra = pk.opt("fra").map(|n| datetime(n, inv)).transpose()?;
                let til = pk.opt("til").map(|n| datetime(n, inv)).transpose()?;
                pk.finish()?;
                Gyldighetsperiode::Periode { fra, til }
            } else {
                let p = gk.req("aarlig-repeterende-periode")?;
                let mut pk = Kids::new(p, NS_BEVIS, "aarlig-repeterende-periode", inv)?;
                let year =
                    |n| int_in(n, i64::from(i32::MIN), i64::from(i32::MAX)).map(|v| v as i32);
                let start_aar = pk.opt("start-aar").map(year).transpose()?;
                let slutt_aar = pk.opt("slutt-aar").map(year).transpose()?;
                let fra = maanedstidspunkt(pk.req("fra")?)?;
                let til = maanedstidspunkt(pk.req("til")?)?;
                pk.finish()?;
                Gyldighetsperiode::AarligRepeterendePeriode {
                    start_aar,
                    slutt_aar,
                    fra,
                    til,
                }
            };
            gk.finish()?;
            Some(v)
        }
    };
    let holder = k.req("bevisholder")?;
    let mut hk = Kids::new(holder, NS_BEVIS, "bevisholder", inv)?;
    let fornavn = plain(hk.req("fornavn")?, 0, 10_000, inv)?;
    let etternavn = plain(hk.req("etternavn")?, 0, 10_000, inv)?;
    let foedselsnummer = hk
        .opt("foedselsnummer")
        .map(|n| {
            let t = plain(n, 11, 11, inv)?;
            if t.bytes().all(|b| b.is_ascii_digit()) {
                Ok(t)
            } else {
                Err(inv(format!("foedselsnummer {t:?}")))
            }
        })
        .transpose()?;
    let adresse = match hk.opt("adresse") {
        None => None,
        Some(a) => {
            let mut ak = Kids::new(a, NS_BEVIS, "adresse", inv)?;
            let r = BevisAdresse {
                gate: plain(ak.req("gate")?, 0, 10_000, inv)?,
                postnummer: plain(ak.req("postnummer")?, 0, 10_000, inv)?,
                sted: plain(ak.req("sted")?, 0, 10_000, inv)?,
                land: ak
                    .opt("land")
                    .map(|n| plain(n, 0, 10_000, inv))
                    .transpose()?,
            };
            ak.finish()?;
            Some(r)
        }
    };
    hk.finish()?;
    let tittel = tekst(k.req("tittel")?, 1, 255, inv)?;
    let bevis_id_navn = k
        .opt("bevis-id-navn")
        .map(|n| tekst(n, 1, 100, inv))
        .transpose()?;
    let bevis_id_verdi = k
        .opt("bevis-id-verdi")
        .map(|n| plain(n, 1, 100, inv))
        .transpose()?;
    let mut attributt = Vec::new();
    for a in k.many("attributt", 5)? {
        let mut ak = Kids::new(a, NS_BEVIS, "attributt", inv)?;
        attributt.push(BevisAttributt {
            navn: tekst(ak.req("navn")?, 1, 100, inv)?,
            verdi: tekst(ak.req("verdi")?, 1, 100, inv)?,
        });
        ak.finish()?;
    }
    let mut info = Vec::new();
    for a in k.many("info", 3)? {
        let mut ak = Kids::new(a, NS_BEVIS, "info", inv)?;
        info.push(BevisInfo {
            navn: ak.opt("navn").map(|n| tekst(n, 1, 100, inv)).transpose()?,
            verdi: tekst(ak.req("verdi")?, 1, 255, inv)?,
        });
        ak.finish()?;
    }
    k.finish()?;
    Ok(Bevis {
        utsteder_visningsnavn,
        bakgrunnsfarge,
        utstedt_tidspunkt,
        gyldighetsperiode,
        bevisholder: Bevisholder {
            fornavn,
            etternavn,
            foedselsnummer,
            adresse,
        },
        tittel,
        bevis_id_navn,
        bevis_id_verdi,
        attributt,
        info,
    })
}

fn lang_leaf(w: &mut W, name: &str, t: &Tekst) {
    w.leaf_attrs(name, &[("lang", &t.lang)], &t.text);
}

fn write_mt(w: &mut W, name: &str, m: &Maanedstidspunkt) {
    w.open(name);
    w.leaf("maaned", &m.maaned.to_string());
    if let Some(v) = m.dag {
        w.leaf("dag", &v.to_string());
    }
    if let Some(v) = m.time {
        w.leaf("time", &v.to_string());
    }
    if let Some(v) = m.minutt {
        w.leaf("minutt", &v.to_string());
    }
    if let Some(v) = &m.tidssone {
        w.leaf("tidssone", v);
    }
    w.close(name);
}

fn write_bevis(b: &Bevis) -> String {
    let mut w = W::new();
    w.open_attrs("bevis", &[("xmlns", NS_BEVIS)]);
    if let Some(t) = &b.utsteder_visningsnavn {
        lang_leaf(&mut w, "utsteder-visningsnavn", t);
    }
    if let Some(t) = &b.bakgrunnsfarge {
        w.leaf("bakgrunnsfarge", t);
    }
    if let Some(t) = &b.utstedt_tidspunkt {
        w.leaf("utstedt-tidspunkt", t);
    }
    if let Some(g) = &b.gyldighetsperiode {
        w.open("gyldighetsperiode");
        match g {
            Gyldighetsperiode::Periode { fra, til } => {
                w.open("periode");
                if let Some(v) = fra {
                    w.leaf("fra", v);
                }
                if let Some(v) = til {
                    w.leaf("til", v);
                }
                w.close("periode");
            }
            Gyldighetsperiode::AarligRepeterendePeriode {
                start_aar,
                slutt_aar,
                fra,
                til,
            } => {
                w.open("aarlig-repeterende-periode");
                if let Some(v) = start_aar {
                    w.leaf("start-aar", &v.to_string());
                }
                if let Some(v) = slutt_aar {
                    w.leaf("slutt-aar", &v.to_string());
                }
                write_mt(&mut w, "fra", fra);
                write_mt(&mut w, "til", til);
                w.close("aarlig-repeterende-periode");
            }
        }
        w.close("gyldighetsperiode");
    }
    let h = &b.bevisholder;
    w.open("bevisholder");
    w.leaf("fornavn", &h.fornavn);
    w.leaf("etternavn", &h.etternavn);
    if let Some(v) = &h.foedselsnummer {
        w.leaf("foedselsnummer", v);
    }
    if let Some(a) = &h.adresse {
        w.open("adresse");
        w.leaf("gate", &a.gate);
        w.leaf("postnummer", &a.postnummer);
        w.leaf("sted", &a.sted);
        if let Some(l) = &a.land {
            w.leaf("land", l);
        }
        w.close("adresse");
    }
    w.close("bevisholder");
    lang_leaf(&mut w, "tittel", &b.tittel);
    if let Some(t) = &b.bevis_id_navn {
        lang_leaf(&mut w, "bevis-id-navn", t);
    }
    if let Some(t) = &b.bevis_id_verdi {
        w.leaf("bevis-id-verdi", t);
    }
    for a in &b.attributt {
        w.open("attributt");
        lang_leaf(&mut w, "navn", &a.navn);
        lang_leaf(&mut w, "verdi", &a.verdi);
        w.close("attributt");
    }
    for i in &b.info {
        w.open("info");
        if let Some(n) = &i.navn {
            lang_leaf(&mut w, "navn", n);
        }
        lang_leaf(&mut w, "verdi", &i.verdi);
        w.close("info");
    }
    w.close("bevis");
    w.0
}

// --- arrangement ------------------------------------------------------------------------------

fn read_arrangement(root: Node<'_, '_>) -> Result<Arrangement, ContainerError> {
    root_is(root, NS_ARRANGEMENT, "arrangement")?;
    let ns = NS_ARRANGEMENT;
    let mut k = Kids::new(root, ns, "arrangement", inv)?;
    let tittel = tekst(k.req("tittel")?, 1, 100, inv)?;
    let tidsrom_tittel = k
        .opt("tidsrom-tittel")
        .map(|n| tekst(n, 1, 100, inv))
        .transpose()?;
    let mut tidsrom = Vec::new();
    for t in k.many("tidsrom", 10)? {
        let mut tk = Kids::new(t, ns, "tidsrom", inv)?;
        tidsrom.push(Tidsrom {
            fra: tk.opt("fra").map(|n| datetime(n, inv)).transpose()?,
            til: tk.opt("til").map(|n| datetime(n, inv)).transpose()?,
        });
        tk.finish()?;
    }
    let oppmote_informasjon = k
        .opt("oppmøte-informasjon")
        .map(|n| tekst(n, 1, 400, inv))
        .transpose()?;
    let m = k.req("møteplass")?;
    let mut mk = Kids::new(m, ns, "møteplass", inv)?;
    let moteplass = Moteplass {
        tittel: tekst(mk.req("tittel")?, 1, 100, inv)?,
        navn: plain(mk.req("navn")?, 0, 10_000, inv)?,
        gateadresse: mk
            .opt("gateadresse")
            .map(|n| plain(n, 0, 10_000, inv))
            .transpose()?,
        postnummer: mk
            .opt("postnummer")
            .map(|n| {
                let v = int_in(n, i64::from(i32::MIN), i64::from(i32::MAX));
                v.and_then(|_| plain(n, 1, 20, inv))
                    .map(|s| s.trim().to_string())
            })
            .transpose()?,
        sted: mk
            .opt("sted")
            .map(|n| plain(n, 0, 10_000, inv))
            .transpose()?,
        land: mk
            .opt("land")
            .map(|n| plain(n, 0, 10_000, inv))
            .transpose()?,
    };
    mk.finish()?;
    let strekkode = match k.opt("strekkode") {
        None => None,
        Some(s) => {
            let mut sk = Kids::new(s, ns, "strekkode", inv)?;
            let tittel = sk
                .opt("tittel")
                .map(|n| tekst(n, 1, 100, inv))
                .transpose()?;
            let verdi = plain(sk.req("verdi")?, 1, 20, inv)?;
            let kind = match plain(sk.req("type")?, 1, 20, inv)?.trim() {
                "code-128" => StrekkodeType::Code128,
                "code-39" => StrekkodeType::Code39,
                other => return Err(inv(format!("strekkode type {other:?}"))),
            };
            let tekst_ = sk.opt("tekst").map(|n| tekst(n, 1, 400, inv)).transpose()?;
            let vis_verdi = sk
                .opt("vis-verdi")
                .map(|n| match plain(n, 1, 10, inv)?.trim() {
                    "true" | "1" => Ok(true),
                    "false" | "0" => Ok(false),
                    other => Err(inv(format!("vis-verdi {other:?}"))),
                })
                .transpose()?;
            sk.finish()?;
            Some(Strekkode {
                tittel,
                verdi,
                kind,
                tekst: tekst_,
                vis_verdi,
            })
        }
    };
    let mut info = Vec::new();
    for i in k.many("info", 10)? {
        let mut ik = Kids::new(i, ns, "info", inv)?;
        info.push(ArrangementInfo {
            tittel: tekst(ik.req("tittel")?, 1, 100, inv)?,
            tekst: tekst(ik.req("tekst")?, 1, 400, inv)?,
        });
        ik.finish()?;
    }
    let mut lenker = Vec::new();
    if let Some(l) = k.opt("lenker") {
        let mut lk = Kids::new(l, ns, "lenker", inv)?;
        let items = lk.many("lenke", 2)?;
        if items.is_empty() {
            return Err(inv("<lenker> needs at least one <lenke>".into()));
        }
        for i in items {
            let mut ik = Kids::new(i, ns, "lenke", inv)?;
            lenker.push(ArrangementLenke {
                navn: tekst(ik.req("navn")?, 1, 100, inv)?,
                url: http_url(ik.req("url")?, inv)?,
            });
            ik.finish()?;
        }
        lk.finish()?;
    }
    k.finish()?;
    Ok(Arrangement {
        tittel,
        tidsrom_tittel,
        tidsrom,
        oppmote_informasjon,
        moteplass,
        strekkode,
        info,
        lenker,
    })
}

fn write_arrangement(a: &Arrangement) -> String {
    let mut w = W::new();
    w.open_attrs("arrangement", &[("xmlns", NS_ARRANGEMENT)]);
    lang_leaf(&mut w, "tittel", &a.tittel);
    if let Some(t) = &a.tidsrom_tittel {
        lang_leaf(&mut w, "tidsrom-tittel", t);
    }
    for t in &a.tidsrom {
        w.open("tidsrom");
        if let Some(v) = &t.fra {
            w.leaf("fra", v);
        }
        if let Some(v) = &t.til {
            w.leaf("til", v);
        }
        w.close("tidsrom");
    }
    if let Some(t) = &a.oppmote_informasjon {
        lang_leaf(&mut w, "oppmøte-informasjon", t);
    }
    let m = &a.moteplass;
    w.open("møteplass");
    lang_leaf(&mut w, "tittel", &m.tittel);
    w.leaf("navn", &m.navn);
    for (name, v) in [
        ("gateadresse", &m.gateadresse),
        ("postnummer", &m.postnummer),
        ("sted", &m.sted),
        ("land", &m.land),
    ] {
        if let Some(v) = v {
            w.leaf(name, v);
        }
    }
    w.close("møteplass");
    if let Some(s) = &a.strekkode {
        w.open("strekkode");
        if let Some(t) = &s.tittel {
            lang_leaf(&mut w, "tittel", t);
        }
        w.leaf("verdi", &s.verdi);
        w.leaf("type", s.kind.as_str());
        if let Some(t) = &s.tekst {
            lang_leaf(&mut w, "tekst", t);
        }
        if let Some(v) = s.vis_verdi {
            w.leaf("vis-verdi", if v { "true" } else { "false" });
        }
        w.close("strekkode");
    }
    for i in &a.info {
        w.open("info");
        lang_leaf(&mut w, "tittel", &i.tittel);
        lang_leaf(&mut w, "tekst", &i.tekst);
        w.close("info");
    }
    if !a.lenker.is_empty() {
        w.open("lenker");
        for l in &a.lenker {
            w.open("lenke");
            lang_leaf(&mut w, "navn", &l.navn);
            w.leaf("url", &l.url);
            w.close("lenke");
        }
        w.close("lenker");
    }
    w.close("arrangement");
    w.0
}
