//! Narrow inclusive canonical XML (C14N 1.0 and 1.1, without comments) of one element subtree
//! of a roxmltree document — exactly what XAdES needs for SignedInfo and SignedProperties.
//!
//! The two versions differ only in how `xml:*` attributes of ancestors are carried onto the
//! apex: 1.0 copies all of them; 1.1 copies `xml:lang` and `xml:space` (not `xml:id`), and we
//! refuse an inherited `xml:base` under 1.1 instead of implementing its URI fix-up.

use std::collections::BTreeMap;

use roxmltree::Node;

use super::error::ContainerError;

pub(crate) const ALG_C14N10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
pub(crate) const ALG_C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V10,
    V11,
}

impl Version {
    pub(crate) fn from_uri(uri: &str) -> Option<Version> {
        match uri {
            ALG_C14N10 => Some(Version::V10),
            ALG_C14N11 => Some(Version::V11),
            _ => None,
        }
    }
}

fn limit(what: &str) -> ContainerError {
    ContainerError::XmlLimit(what.to_string())
}

/// In-scope namespaces of an element as prefix ("" for default) → URI, `xml` excluded and an
/// empty default URI treated as "no default namespace".
fn in_scope<'a>(n: Node<'a, '_>) -> BTreeMap<&'a str, &'a str> {
    let mut m = BTreeMap::new();
    for ns in n.namespaces() {
        let p = ns.name().unwrap_or("");
        if p == "xml" {
            continue;
        }
        if p.is_empty() && ns.uri().is_empty() {
            continue;
        }
        m.insert(p, ns.uri());
    }
    m
}

/// The qualified name as written in the source (prefix included).
fn element_qname<'i>(n: Node<'_, 'i>) -> Result<&'i str, ContainerError> {
    let src = n.document().input_text();
    let start = n.range().start;
    let s = src
        .get(start + 1..)
        .ok_or_else(|| ContainerError::XmlMalformed("element position".into()))?;
    let end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .ok_or_else(|| ContainerError::XmlMalformed("element name".into()))?;
    s.get(..end)
        .ok_or_else(|| ContainerError::XmlMalformed("element name".into()))
}

fn attr_qname<'i>(
    n: Node<'_, 'i>,
    a: &roxmltree::Attribute<'_, 'i>,
) -> Result<&'i str, ContainerError> {
    n.document()
        .input_text()
        .get(a.range_qname())
        .ok_or_else(|| ContainerError::XmlMalformed("attribute position".into()))
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

fn push_text(out: &mut String, t: &str) {
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

/// Canonicalizes the subtree rooted at element `apex`.
pub(crate) fn canonicalize(
    apex: Node<'_, '_>,
    version: Version,
) -> Result<Vec<u8>, ContainerError> {
    if !apex.is_element() {
        return Err(ContainerError::XmlMalformed(
            "C14N apex is not an element".into(),
        ));
    }
    // xml:* attributes inherited from ancestors onto the apex.
    let mut inherited: BTreeMap<String, (String, String)> = BTreeMap::new();
    for anc in apex.ancestors().skip(1).filter(|a| a.is_element()) {
        for a in anc.attributes() {
            if a.namespace() != Some(XML_NS) || apex.attribute((XML_NS, a.name())).is_some() {
                continue;
            }
            let keep = match (version, a.name()) {
                (Version::V10, _) => true,
                (Version::V11, "lang" | "space") => true,
                (Version::V11, "base") => {
                    return Err(ContainerError::SignatureAlgorithm(
                        "C14N 1.1 with an inherited xml:base is not supported".into(),
                    ));
                }
                (Version::V11, _) => false,
            };
            if keep && !inherited.contains_key(a.name()) {
                inherited.insert(
                    a.name().to_string(),
                    (format!("xml:{}", a.name()), a.value().to_string()),
                );
            }
        }
    }
    let mut out = String::new();
    let empty = BTreeMap::new();
    element(apex, &empty, &inherited, &mut out, 0)?;
    Ok(out.into_bytes())
}

fn element(
    n: Node<'_, '_>,
    parent_ns: &BTreeMap<&str, &str>,
    inherited: &BTreeMap<String, (String, String)>,
    out: &mut String,
    depth: usize,
) -> Result<(), ContainerError> {
    if depth > MAX_DEPTH {
        return Err(limit("XML nested too deeply for canonicalization"));
    }
    let qname = element_qname(n)?;
    out.push('<');
    out.push_str(qname);

    let ns = in_scope(n);
    // Namespace declarations that differ from the parent's rendered context, default first
    // (empty prefix sorts first in the BTreeMap).
    if !ns.contains_key("") && parent_ns.contains_key("") {
        out.push_str(" xmlns=\"\"");
    }
    for (p, uri) in &ns {
        if parent_ns.get(p) != Some(uri) {
            if p.is_empty() {
                push_attr(out, "xmlns", uri);
            } else {
                push_attr(out, &format!("xmlns:{p}"), uri);
            }
        }
    }

    // Attributes sorted by (namespace URI, local name); no-namespace ones first.
    let mut attrs: Vec<(&str, &str, String, String)> = Vec::new();
    for a in n.attributes() {
        attrs.push((
            a.namespace().unwrap_or(""),
            a.name(),
            attr_qname(n, &a)?.to_string(),
            a.value().to_string(),
        ));
    }
    for (local, (q, v)) in inherited {
        attrs.push((XML_NS, local.as_str(), q.clone(), v.clone()));
    }
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, q, v) in &attrs {
        push_attr(out, q, v);
    }
    out.push('>');

    let none = BTreeMap::new();
    for c in n.children() {
        if c.is_element() {
            element(c, &ns, &none, out, depth + 1)?;
        } else if c.is_text() {
            push_text(out, c.text().unwrap_or(""));
        } else if let Some(pi) = c.pi() {
            out.push_str("<?");
            out.push_str(pi.target);
            if let Some(v) = pi.value {
                out.push(' ');
                out.push_str(v);
            }
            out.push_str("?>");
        }
    }
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, path_local: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let n = doc
            .descendants()
            .find(|n| n.tag_name().name() == path_local)
            .unwrap();
        String::from_utf8(canonicalize(n, Version::V10).unwrap()).unwrap()
    }

    #[test]
    fn inherits_namespaces_and_sorts() {
        let x = r#"<a xmlns="urn:a" xmlns:z="urn:z" xml:lang="no"><b c="2" z:a="1" a="x&#13;y"><z:c/></b></a>"#;
        assert_eq!(
            c14n(x, "b"),
            r#"<b xmlns="urn:a" xmlns:z="urn:z" a="x&#xD;y" c="2" xml:lang="no" z:a="1"><z:c></z:c></b>"#
        );
    }

    #[test]
    fn default_undeclared() {
        let x = r#"<a xmlns="urn:a"><b xmlns=""><c/></b></a>"#;
        assert_eq!(
            c14n(x, "a"),
            r#"<a xmlns="urn:a"><b xmlns=""><c></c></b></a>"#
        );
    }

    #[test]
    fn text_escapes_and_comments_dropped() {
        let x = "<a>x &amp; &lt; &gt; \"q\"<!-- c --><?p d?></a>";
        assert_eq!(c14n(x, "a"), "<a>x &amp; &lt; &gt; \"q\"<?p d?></a>");
    }
}
