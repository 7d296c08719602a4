//! The print file of one letter: an address page in front, then the letter's PDF documents
//! (hoveddokument, then vedlegg) page by page, as one PDF.
//!
//! Built on `lopdf`'s object model: every input document is parsed, its objects renumbered
//! into the output's id space, its pages re-parented under one new page tree (with the
//! attributes they inherited from their old tree copied onto them), and whatever is no longer
//! reachable (old catalogs, outlines, page-tree nodes) pruned. The address page uses the
//! standard Helvetica font in WinAnsiEncoding, so it needs no embedded font and covers
//! Norwegian letters (æ, ø, å).

use lopdf::{
    Dictionary, Document, Object, ObjectId, Stream, StringFormat,
    content::{Content, Operation},
    dictionary,
};

/// Deepest nesting of arrays and dictionaries accepted in a letter's PDF. Real documents stay
/// far below; the PDF parser recurses per level and would overflow its stack on hostile depth.
const MAX_NESTING: usize = 256;

/// Inflated size cap of one object stream while checking it.
const MAX_OBJSTM_BYTES: u64 = 64 * 1024 * 1024;

/// Stack of the thread that parses and composes (hostile depth is refused before, this is
/// the margin).
const COMPOSE_STACK: usize = 64 * 1024 * 1024;

/// A4 portrait in PDF points.
const A4: (f32, f32) = (595.28, 841.89);

/// Attributes a page may inherit from its page-tree ancestors (ISO 32000-1 §7.7.3.4).
const INHERITABLE: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

/// Why a letter cannot be printed. All of these are the sender's to fix (`feil` KLIENT).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PdfError {
    #[error("{href} is {mime}, but the print service prints PDF documents only")]
    NotPdf { href: String, mime: String },
    #[error("{href} is not a readable PDF: {detail}")]
    Unreadable { href: String, detail: String },
    #[error("{href} is password protected or encrypted")]
    Encrypted { href: String },
    #[error("{href} has no pages")]
    NoPages { href: String },
    #[error("the letter has {pages} pages, more than the {max} the print service takes")]
    TooManyPages { pages: usize, max: usize },
    #[error(
        "{href} page {page} is {width_mm:.0} × {height_mm:.0} mm; the print service prints A4 portrait"
    )]
    NotA4 {
        href: String,
        page: usize,
        width_mm: f32,
        height_mm: f32,
    },
    #[error("the print file could not be written: {0}")]
    Write(String),
}

/// What the print line accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Most pages of one letter (address page not counted).
    pub max_pages: usize,
    /// How far a page may be from A4 portrait (210 × 297 mm) in either direction; pages are
    /// cut, not scaled.
    pub a4_tolerance_mm: f32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_pages: 500,
            a4_tolerance_mm: 10.0,
        }
    }
}

const PT_PER_MM: f32 = 72.0 / 25.4;

impl PdfError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotPdf { .. } => "document_not_pdf",
            Self::Unreadable { .. } => "pdf_unreadable",
            Self::Encrypted { .. } => "pdf_encrypted",
            Self::NoPages { .. } => "pdf_no_pages",
            Self::TooManyPages { .. } => "pdf_too_many_pages",
            Self::NotA4 { .. } => "pdf_not_a4_portrait",
            Self::Write(_) => "pdf_write_failed",
        }
    }
}

/// What the address page says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPage {
    /// Recipient: name, then address lines, then `postnummer poststed`, then country.
    pub recipient: Vec<String>,
    /// Return address, same layout.
    pub return_address: Vec<String>,
    /// `A` or `B`.
    pub posttype: String,
    /// `SORT_HVIT` or `FARGE`.
    pub utskriftstype: String,
    /// `DIREKTE_RETUR` or `MAKULERING_MED_MELDING`.
    pub returposthaandtering: String,
    /// The DPI message id, printed as the letter's reference.
    pub reference: String,
}

impl AddressPage {
    /// Address lines from a DPI `adresseInformasjon`.
    pub fn lines(a: &dpi::message::AdresseInformasjon) -> Vec<String> {
        let mut out: Vec<String> = [
            &a.navn,
            &a.adresselinje1,
            &a.adresselinje2,
            &a.adresselinje3,
            &a.adresselinje4,
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .collect();
        match (&a.postnummer, &a.poststed) {
            (Some(n), Some(s)) => out.push(format!("{n} {}", s.to_uppercase())),
            (Some(n), None) => out.push(n.clone()),
            (None, Some(s)) => out.push(s.to_uppercase()),
            (None, None) => {}
        }
        if let Some(l) = a.land.as_ref().or(a.landkode.as_ref()) {
            out.push(l.to_uppercase());
        }
        out
    }
}

/// One document of the letter, in print order.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub href: &'a str,
    pub mime: &'a str,
    pub bytes: &'a [u8],
}

/// The composed print file.
#[derive(Debug, Clone)]
pub struct Composed {
    pub pdf: Vec<u8>,
    /// Pages including the address page.
    pub pages: usize,
}

/// Checks that every part is a PDF the print service can use, without composing anything.
pub fn check_parts(parts: &[Part<'_>]) -> Result<(), PdfError> {
    for p in parts {
        if p.mime != "application/pdf" {
            return Err(PdfError::NotPdf {
                href: p.href.to_owned(),
                mime: p.mime.to_owned(),
            });
        }
        if !p.bytes.starts_with(b"%PDF-") {
            return Err(PdfError::NotPdf {
                href: p.href.to_owned(),
                mime: "not a PDF file (no %PDF- header)".to_owned(),
            });
        }
    }
    Ok(())
}

/// Builds the print file: the address page, then every page of every part, under `rules`.
/// Never panics: a parser panic on hostile input becomes [`PdfError::Unreadable`].
pub fn compose(
    page: &AddressPage,
    parts: &[Part<'_>],
    rules: &Rules,
) -> Result<Composed, PdfError> {
    check_parts(parts)?;
    for p in parts {
        nesting_ok(p.bytes, true).map_err(|detail| PdfError::Unreadable {
            href: p.href.to_owned(),
            detail,
        })?;
    }
    let gave_up = || PdfError::Unreadable {
        href: "(letter)".into(),
        detail: "the PDF parser gave up on this input".into(),
    };
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("utskrift-pdf".into())
            .stack_size(COMPOSE_STACK)
            .spawn_scoped(scope, || compose_inner(page, parts, rules));
        match worker {
            // A parser panic on hostile input surfaces here as an Err from join.
            Ok(handle) => handle.join().unwrap_or_else(|_| Err(gave_up())),
            Err(e) => Err(PdfError::Write(format!("no thread for the PDF work: {e}"))),
        }
    })
}

/// Checks the nesting depth of arrays and dictionaries over the raw file and inside every
/// object stream (where compressed objects hide), skipping strings, comments and other
/// streams' data. Only the structure is looked at; everything else is the parser's job.
fn nesting_ok(bytes: &[u8], look_into_object_streams: bool) -> Result<(), String> {
    let too_deep = || format!("arrays or dictionaries nest deeper than {MAX_NESTING} levels");
    let mut depth = 0usize;
    let mut i = 0usize;
    let mut last_obj = 0usize;
    let at = |i: usize, pat: &[u8]| bytes.get(i..i + pat.len()) == Some(pat);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                while bytes.get(i).is_some_and(|c| *c != b'\n' && *c != b'\r') {
                    i += 1;
                }
            }
            b'(' => {
                // Literal string: balanced parentheses, backslash escapes.
                let mut level = 0usize;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 1,
                        b'(' => level += 1,
                        b')' => {
                            level = level.saturating_sub(1);
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'<' if at(i, b"<<") => {
                depth += 1;
                i += 1;
            }
            b'<' => {
                while bytes.get(i).is_some_and(|c| *c != b'>') {
                    i += 1;
                }
            }
            b'>' if at(i, b">>") => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'o' if at(i, b"obj") => last_obj = i,
            b's' if at(i, b"stream") && !at(i.saturating_sub(3), b"endstream") => {
                let dict = bytes.get(last_obj..i).unwrap_or_default();
                let mut start = i + b"stream".len();
                if at(start, b"\r") {
                    start += 1;
                }
                if at(start, b"\n") {
                    start += 1;
                }
                let end = find(bytes, b"endstream", start).unwrap_or(bytes.len());
                if look_into_object_streams && find(dict, b"/ObjStm", 0).is_some() {
                    let data = bytes.get(start..end).unwrap_or_default();
                    let inflated = inflate(dict, data)?;
                    nesting_ok(&inflated, false)?;
                }
                i = end + b"endstream".len();
                continue;
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(too_deep());
        }
        i += 1;
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The content of an object stream, for the depth check: unfiltered or FlateDecode only.
fn inflate(dict: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let filters = find(dict, b"/Filter", 0).map(|f| dict.get(f..).unwrap_or_default());
    match filters {
        None => Ok(data.to_vec()),
        Some(rest) => {
            let flate_only = find(rest, b"/FlateDecode", 0).is_some()
                && [
                    b"/ASCII".as_slice(),
                    b"/LZW",
                    b"/RunLength",
                    b"/DCT",
                    b"/JBIG2",
                    b"/JPX",
                    b"/Crypt",
                ]
                .iter()
                .all(|f| find(rest, f, 0).is_none());
            if !flate_only {
                return Err("object stream with a filter other than FlateDecode".into());
            }
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .take(MAX_OBJSTM_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| format!("object stream does not inflate: {e}"))?;
            Ok(out)
        }
    }
}

fn compose_inner(
    page: &AddressPage,
    parts: &[Part<'_>],
    rules: &Rules,
) -> Result<Composed, PdfError> {
    let max_pages = rules.max_pages;
    let mut out = Document::with_version("1.7");
    let pages_id = out.new_object_id();
    let mut kids: Vec<Object> = Vec::new();
    kids.push(address_page(&mut out, pages_id, page)?.into());

    for part in parts {
        let unreadable = |e: lopdf::Error| PdfError::Unreadable {
            href: part.href.to_owned(),
            detail: e.to_string(),
        };
        let mut doc = Document::load_mem(part.bytes).map_err(unreadable)?;
        if doc.is_encrypted() || doc.encryption_state.is_some() {
            return Err(PdfError::Encrypted {
                href: part.href.to_owned(),
            });
        }
        doc.renumber_objects_with(out.max_id + 1);
        let page_ids: Vec<ObjectId> = doc.get_pages().into_values().collect();
        if page_ids.is_empty() {
            return Err(PdfError::NoPages {
                href: part.href.to_owned(),
            });
        }
        if kids.len() - 1 + page_ids.len() > max_pages {
            return Err(PdfError::TooManyPages {
                pages: kids.len() - 1 + page_ids.len(),
                max: max_pages,
            });
        }
        for (n, id) in page_ids.iter().enumerate() {
            let inherited = inherited_attributes(&doc, *id);
            let dict = doc
                .get_object_mut(*id)
                .and_then(Object::as_dict_mut)
                .map_err(unreadable)?;
            for (k, v) in inherited {
                if !dict.has(&k) {
                    dict.set(k, v);
                }
            }
            if !dict.has(b"MediaBox") {
                dict.set("MediaBox", a4_box());
            }
            dict.set("Parent", pages_id);
            kids.push((*id).into());
            check_a4(&doc, *id, rules.a4_tolerance_mm).map_err(|(w, h)| PdfError::NotA4 {
                href: part.href.to_owned(),
                page: n + 1,
                width_mm: w,
                height_mm: h,
            })?;
        }
        out.max_id = out.max_id.max(doc.max_id);
        out.objects.append(&mut doc.objects);
    }

    let count = i64::try_from(kids.len()).unwrap_or(i64::MAX);
    let pages_count = kids.len();
    out.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
        }),
    );
    let catalog_id = out.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    out.trailer.set("Root", catalog_id);
    out.prune_objects();
    // No recompression: the letters' streams arrive compressed as their producers chose, and
    // deflating what is not costs more CPU than the spool's disk space is worth.
    let mut pdf = Vec::new();
    out.save_to(&mut pdf)
        .map_err(|e| PdfError::Write(e.to_string()))?;
    Ok(Composed {
        pdf,
        pages: pages_count,
    })
}

/// The page's visible size must be A4 portrait within `tolerance_mm`; `Err((w, h))` in mm.
fn check_a4(doc: &Document, page: ObjectId, tolerance_mm: f32) -> Result<(), (f32, f32)> {
    let num = |o: &Object| doc.dereference(o).ok().and_then(|(_, v)| v.as_float().ok());
    let dict = doc.get_dictionary(page).map_err(|_| (0.0, 0.0))?;
    let rect = dict
        .get(b"CropBox")
        .or_else(|_| dict.get(b"MediaBox"))
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, v)| v.as_array().ok())
        .map(|a| a.iter().filter_map(num).collect::<Vec<f32>>())
        .unwrap_or_default();
    let [x0, y0, x1, y1] = rect.as_slice() else {
        return Err((0.0, 0.0));
    };
    let (mut w, mut h) = ((x1 - x0).abs() / PT_PER_MM, (y1 - y0).abs() / PT_PER_MM);
    let rotate = dict
        .get(b"Rotate")
        .ok()
        .and_then(|o| o.as_i64().ok())
        .unwrap_or(0);
    if rotate.rem_euclid(180) == 90 {
        std::mem::swap(&mut w, &mut h);
    }
    if (w - 210.0).abs() <= tolerance_mm && (h - 297.0).abs() <= tolerance_mm {
        Ok(())
    } else {
        Err((w, h))
    }
}

fn a4_box() -> Object {
    vec![0.into(), 0.into(), A4.0.into(), A4.1.into()].into()
}

/// Inheritable attributes of `page` found on its ancestors (nearest first wins).
fn inherited_attributes(doc: &Document, page: ObjectId) -> Vec<(Vec<u8>, Object)> {
    let mut found: Vec<(Vec<u8>, Object)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut current = doc
        .get_dictionary(page)
        .ok()
        .and_then(|d| d.get(b"Parent").ok())
        .and_then(|p| p.as_reference().ok());
    while let Some(id) = current {
        if !seen.insert(id) || seen.len() > 64 {
            break;
        }
        let Ok(node) = doc.get_dictionary(id) else {
            break;
        };
        for key in INHERITABLE {
            if !found.iter().any(|(k, _)| k.as_slice() == key)
                && let Ok(v) = node.get(key)
            {
                found.push((key.to_vec(), v.clone()));
            }
        }
        current = node.get(b"Parent").ok().and_then(|p| p.as_reference().ok());
    }
    found
}

/// Text in WinAnsiEncoding (Windows-1252): Latin-1 maps 1:1, the rest becomes `?`.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            '€' => 0x80,
            '–' => 0x96,
            '—' => 0x97,
            '’' => 0x92,
            _ => b'?',
        })
        .collect()
}

fn text(font: &str, size: f32, x: f32, y: f32, s: &str) -> Vec<Operation> {
    vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec![font.into(), size.into()]),
        Operation::new("Td", vec![x.into(), y.into()]),
        Operation::new(
            "Tj",
            vec![Object::String(win_ansi(s), StringFormat::Literal)],
        ),
        Operation::new("ET", vec![]),
    ]
}

/// Writes the address page into `out` and returns its id. Layout follows a C4/C5 window
/// envelope: the recipient block sits in the left window, 18 mm free at the left edge.
fn address_page(
    out: &mut Document,
    parent: ObjectId,
    p: &AddressPage,
) -> Result<ObjectId, PdfError> {
    let font = out.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let bold = out.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica-Bold",
        "Encoding" => "WinAnsiEncoding",
    });
    let mut ops = Vec::new();
    let left = 65.0_f32;
    // Sender's return address, small, above the window.
    let mut y = 790.0_f32;
    ops.extend(text("F2", 8.0, left, y, "Returadresse:"));
    for line in &p.return_address {
        y -= 10.0;
        ops.extend(text("F1", 8.0, left, y, line));
    }
    // Recipient in the window.
    let mut y = 690.0_f32;
    for (i, line) in p.recipient.iter().enumerate() {
        let f = if i == 0 { "F2" } else { "F1" };
        ops.extend(text(f, 12.0, left, y, line));
        y -= 15.0;
    }
    // Handling marks for the print line.
    let mut y = 480.0_f32;
    for line in [
        format!("Posttype: {}", p.posttype),
        format!("Utskrift: {}", p.utskriftstype),
        format!("Returpost: {}", p.returposthaandtering),
        format!("Referanse: {}", p.reference),
    ] {
        ops.extend(text("F1", 9.0, left, y, &line));
        y -= 12.0;
    }
    let content = Content { operations: ops }
        .encode()
        .map_err(|e| PdfError::Write(e.to_string()))?;
    let contents = out.add_object(Stream::new(Dictionary::new(), content));
    let page = out.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => parent,
        "MediaBox" => a4_box(),
        "Contents" => contents,
        "Resources" => dictionary! {
            "Font" => dictionary! { "F1" => font, "F2" => bold },
        },
    });
    Ok(page)
}

/// Test and tooling helper: a plain PDF of A4 pages, each showing one line of text.
pub fn simple_pdf(lines: &[&str]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    // Resources on the page tree (inherited), as many producers do.
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font },
    });
    let mut kids: Vec<Object> = Vec::new();
    for line in lines {
        let ops = text("F1", 14.0, 72.0, 720.0, line);
        let content = Content { operations: ops }.encode().unwrap_or_default();
        let contents = doc.add_object(Stream::new(Dictionary::new(), content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => contents,
        });
        kids.push(page.into());
    }
    let count = i64::try_from(kids.len()).unwrap_or(0);
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources,
            "MediaBox" => a4_box(),
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    let _ = doc.save_to(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> AddressPage {
        AddressPage {
            recipient: vec![
                "Aud Testesen".into(),
                "Storgata 1".into(),
                "0155 OSLO".into(),
            ],
            return_address: vec![
                "Samspill kommune".into(),
                "Postboks 1".into(),
                "0101 OSLO".into(),
            ],
            posttype: "B".into(),
            utskriftstype: "SORT_HVIT".into(),
            returposthaandtering: "DIREKTE_RETUR".into(),
            reference: "abc".into(),
        }
    }

    fn rules(max_pages: usize) -> Rules {
        Rules {
            max_pages,
            ..Rules::default()
        }
    }

    fn part<'a>(href: &'a str, bytes: &'a [u8]) -> Part<'a> {
        Part {
            href,
            mime: "application/pdf",
            bytes,
        }
    }

    #[test]
    fn address_page_comes_first_then_every_page_in_order() {
        let a = simple_pdf(&["Brev side 1", "Brev side 2"]);
        let b = simple_pdf(&["Vedlegg æøå"]);
        let c = compose(
            &page(),
            &[part("brev.pdf", &a), part("vedlegg.pdf", &b)],
            &rules(100),
        )
        .unwrap();
        assert_eq!(c.pages, 4);
        let doc = Document::load_mem(&c.pdf).unwrap();
        assert_eq!(doc.get_pages().len(), 4);
        let first = doc.extract_text(&[1]).unwrap();
        assert!(first.contains("Aud Testesen"), "{first}");
        assert!(first.contains("0155 OSLO"), "{first}");
        assert!(first.contains("Samspill kommune"), "{first}");
        assert!(first.contains("Posttype: B"), "{first}");
        assert!(doc.extract_text(&[2]).unwrap().contains("Brev side 1"));
        assert!(doc.extract_text(&[3]).unwrap().contains("Brev side 2"));
        assert!(doc.extract_text(&[4]).unwrap().contains("Vedlegg æøå"));
        // Inherited resources and media box were carried onto the moved pages.
        let p2 = *doc.get_pages().get(&2).unwrap();
        let d = doc.get_dictionary(p2).unwrap();
        assert!(d.has(b"Resources") && d.has(b"MediaBox"));
    }

    #[test]
    fn non_pdf_documents_are_refused_by_mime_and_by_content() {
        let txt = Part {
            href: "brev.txt",
            mime: "text/plain",
            bytes: b"Hei",
        };
        let e = compose(&page(), &[txt], &rules(100)).unwrap_err();
        assert_eq!(e.code(), "document_not_pdf");
        let fake = part("brev.pdf", b"GIF89a....");
        assert_eq!(
            compose(&page(), &[fake], &rules(100)).unwrap_err().code(),
            "document_not_pdf"
        );
        let broken = part("brev.pdf", b"%PDF-1.4\nthis is not a pdf body");
        assert_eq!(
            compose(&page(), &[broken], &rules(100)).unwrap_err().code(),
            "pdf_unreadable"
        );
    }

    /// A PDF file of `objects` (numbered from 1, object 1 the catalog) with a correct xref.
    fn with_xref(objects: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(o);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for off in offsets {
            out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    #[test]
    fn well_formed_hand_written_pdf_composes() {
        let pdf = with_xref(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 595 842] >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R >>".to_vec(),
        ]);
        let c = compose(&page(), &[part("x.pdf", &pdf)], &rules(100)).unwrap();
        assert_eq!(c.pages, 2);
    }

    #[test]
    fn hostile_inputs_end_in_an_error_or_a_pdf_never_a_crash() {
        let good = simple_pdf(&["Side 1", "Side 2"]);
        // Deep nesting, huge counts, reference loops in the page tree.
        let mut hostile: Vec<Vec<u8>> = vec![
            [b"%PDF-1.4\n1 0 obj\n".as_slice(), &[b'['; 100_000]].concat(),
            [b"%PDF-1.4\n1 0 obj\n".as_slice(), &b"<< /A ".repeat(50_000)].concat(),
            b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
              2 0 obj << /Type /Pages /Kids [2 0 R] /Count 99999999 >> endobj\n\
              trailer << /Root 1 0 R >>\n%%EOF"
                .to_vec(),
        ];
        // A well-formed file (real xref) whose page dictionary nests 20 000 arrays deep.
        hostile.push(with_xref(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            [
                b"<< /Type /Page /Parent 2 0 R /X ".as_slice(),
                &[b'['; 20_000],
                &[b']'; 20_000],
                b" >>",
            ]
            .concat(),
        ]));
        // The same depth hidden in a compressed object stream.
        {
            use std::io::Write;
            let deep = [b"3 0 ".as_slice(), &[b'['; 20_000], &[b']'; 20_000]].concat();
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(&deep).unwrap();
            let data = z.finish().unwrap();
            let obj = [
                format!(
                    "<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length {} >>\nstream\n",
                    data.len()
                )
                .as_bytes(),
                &data,
                b"\nendstream",
            ]
            .concat();
            hostile.push(with_xref(&[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec(),
                obj,
            ]));
        }
        // Every 97th byte flipped in turn.
        for i in (0..good.len()).step_by(97) {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            hostile.push(b);
        }
        // The three deep ones are refused by the depth check, before the parser sees them.
        for n in [0, 3, 4] {
            let e = compose(&page(), &[part("x.pdf", &hostile[n])], &rules(100)).unwrap_err();
            assert!(e.to_string().contains("nest deeper"), "case {n}: {e}");
        }
        for (n, bytes) in hostile.iter().enumerate() {
            match compose(&page(), &[part("x.pdf", bytes)], &rules(100)) {
                Ok(c) => assert!(c.pdf.starts_with(b"%PDF-"), "case {n}"),
                Err(e) => assert!(!e.code().is_empty(), "case {n}"),
            }
        }
    }

    #[test]
    fn ordinary_nesting_and_strings_with_brackets_pass_the_depth_check() {
        assert!(nesting_ok(&simple_pdf(&["((( [[[ <<<< ]]] )))"]), true).is_ok());
        let deep = [&[b'['; 300][..], &[b']'; 300]].concat();
        assert!(nesting_ok(&deep, true).is_err());
        let in_string = [b"(".as_slice(), &[b'['; 300], b")"].concat();
        assert!(nesting_ok(&in_string, true).is_ok());
    }

    #[test]
    fn pages_must_be_a4_portrait_within_the_tolerance() {
        let sized = |mb: &str, extra: &str| {
            with_xref(&[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                format!("<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox {mb} >>").into_bytes(),
                format!("<< /Type /Page /Parent 2 0 R {extra} >>").into_bytes(),
            ])
        };
        // US Letter (216 × 279 mm) is 18 mm short of A4.
        let letter = sized("[0 0 612 792]", "");
        let e = compose(&page(), &[part("us.pdf", &letter)], &rules(10)).unwrap_err();
        assert_eq!(e.code(), "pdf_not_a4_portrait", "{e}");
        // A4 landscape, and A4 rotated to landscape.
        let landscape = sized("[0 0 842 595]", "");
        assert!(compose(&page(), &[part("l.pdf", &landscape)], &rules(10)).is_err());
        let rotated = sized("[0 0 595 842]", "/Rotate 90");
        assert!(compose(&page(), &[part("r.pdf", &rotated)], &rules(10)).is_err());
        // A4 stored sideways and rotated upright is portrait; 5 mm off is fine.
        let upright = sized("[0 0 842 595]", "/Rotate 270");
        assert!(compose(&page(), &[part("u.pdf", &upright)], &rules(10)).is_ok());
        let near = sized("[0 0 609.5 856]", "");
        assert!(compose(&page(), &[part("n.pdf", &near)], &rules(10)).is_ok());
        // The CropBox, what is visible, decides.
        let cropped = sized("[0 0 900 900]", "/CropBox [0 0 595 842]");
        assert!(compose(&page(), &[part("c.pdf", &cropped)], &rules(10)).is_ok());
    }

    #[test]
    fn page_limit_is_enforced() {
        let a = simple_pdf(&["1", "2", "3"]);
        let e = compose(&page(), &[part("a.pdf", &a)], &rules(2)).unwrap_err();
        assert_eq!(e, PdfError::TooManyPages { pages: 3, max: 2 });
    }

    #[test]
    fn address_lines_follow_the_norwegian_and_foreign_forms() {
        let no = dpi::message::AdresseInformasjon {
            navn: Some("Aud".into()),
            adresselinje1: Some("Gate 1".into()),
            postnummer: Some("0155".into()),
            poststed: Some("Oslo".into()),
            ..Default::default()
        };
        assert_eq!(AddressPage::lines(&no), vec!["Aud", "Gate 1", "0155 OSLO"]);
        let se = dpi::message::AdresseInformasjon {
            navn: Some("Sven".into()),
            adresselinje1: Some("Gatan 2".into()),
            adresselinje2: Some("111 22 Stockholm".into()),
            landkode: Some("se".into()),
            ..Default::default()
        };
        assert_eq!(
            AddressPage::lines(&se),
            vec!["Sven", "Gatan 2", "111 22 Stockholm", "SE"]
        );
        assert_eq!(win_ansi("æøå€✓"), vec![0xe6, 0xf8, 0xe5, 0x80, b'?']);
    }
}
