//! Safe XML parsing for untrusted documents (manifest, signatures, extensions): a size cap
//! before parsing, no DOCTYPE or entity declaration at all (XXE, billion laughs), a node limit,
//! UTF-8 only. Plus small helpers for strict, allow-list style reading and for writing.

use roxmltree::{Document, Node, ParsingOptions};

use super::Limits;
use super::error::ContainerError;

/// Parses `bytes` as a standalone UTF-8 XML document under `limits`.
pub(crate) fn parse<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    what: &str,
) -> Result<Document<'a>, ContainerError> {
    if bytes.len() > limits.max_xml_bytes {
        return Err(ContainerError::XmlLimit(format!(
            "{what}: {} bytes exceeds {}",
            bytes.len(),
            limits.max_xml_bytes
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ContainerError::XmlMalformed(format!("{what}: {e}")))?;
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(ContainerError::XmlDtd(format!(
            "{what}: document type declaration present"
        )));
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_xml_nodes,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::NodesLimitReached => ContainerError::XmlLimit(format!("{what}: {e}")),
        roxmltree::Error::DtdDetected | roxmltree::Error::EntityReferenceLoop(_) => {
            ContainerError::XmlDtd(format!("{what}: {e}"))
        }
        _ => ContainerError::XmlMalformed(format!("{what}: {e}")),
    })
}

/// Element children of `n` (comments, PIs and whitespace-only text skipped; other text is an
/// error reported by the caller through [`no_text`]).
pub(crate) fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// Fails when `n` has non-whitespace text directly inside (mixed content is never allowed in
/// our schemas' complex types).
pub(crate) fn no_text(
    n: Node<'_, '_>,
    err: &dyn Fn(String) -> ContainerError,
) -> Result<(), ContainerError> {
    for c in n.children() {
        if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(err(format!(
                "unexpected text inside <{}>",
                n.tag_name().name()
            )));
        }
    }
    Ok(())
}

/// Text content of a simple element (no element children allowed).
pub(crate) fn simple_text(
    n: Node<'_, '_>,
    err: &dyn Fn(String) -> ContainerError,
) -> Result<String, ContainerError> {
    let mut s = String::new();
    for c in n.children() {
        if c.is_element() {
            return Err(err(format!(
                "<{}> must not contain elements",
                n.tag_name().name()
            )));
        }
        if c.is_text() {
            s.push_str(c.text().unwrap_or(""));
        }
    }
    Ok(s)
}

/// Fails on any attribute not in `allowed` (attributes in no namespace), ignoring
/// `xsi:schemaLocation`-style attributes in the XML Schema instance namespace.
pub(crate) fn only_attrs(
    n: Node<'_, '_>,
    allowed: &[&str],
    err: &dyn Fn(String) -> ContainerError,
) -> Result<(), ContainerError> {
    for a in n.attributes() {
        if a.namespace() == Some("http://www.w3.org/2001/XMLSchema-instance") {
            continue;
        }
        if a.namespace().is_some() || !allowed.contains(&a.name()) {
            return Err(err(format!(
                "unexpected attribute {} on <{}>",
                a.name(),
                n.tag_name().name()
            )));
        }
    }
    Ok(())
}

/// Escapes text content for writing.
pub(crate) fn esc_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\r' => o.push_str("&#xD;"),
            _ => o.push(c),
        }
    }
    o
}

/// Escapes an attribute value (double-quoted) for writing.
pub(crate) fn esc_attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#x9;"),
            '\n' => o.push_str("&#xA;"),
            '\r' => o.push_str("&#xD;"),
            _ => o.push(c),
        }
    }
    o
}
