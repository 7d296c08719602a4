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

/// Cursor over the element children of one complex-type element, consumed in schema order
/// (`xsd:sequence`). Children must be in `ns`; text between them must be whitespace.
pub(crate) struct Kids<'a, 'i> {
    parent: &'static str,
    items: Vec<Node<'a, 'i>>,
    pos: usize,
    err: fn(String) -> ContainerError,
}

impl<'a, 'i> Kids<'a, 'i> {
    pub(crate) fn new(
        n: Node<'a, 'i>,
        ns: &str,
        parent: &'static str,
        err: fn(String) -> ContainerError,
    ) -> Result<Self, ContainerError> {
        no_text(n, &|m| err(m))?;
        let items: Vec<Node<'a, 'i>> = elements(n).collect();
        if let Some(bad) = items.iter().find(|c| c.tag_name().namespace() != Some(ns)) {
            return Err(err(format!(
                "<{}> in a foreign namespace inside <{parent}>",
                bad.tag_name().name()
            )));
        }
        Ok(Kids {
            parent,
            items,
            pos: 0,
            err,
        })
    }

    pub(crate) fn opt(&mut self, local: &str) -> Option<Node<'a, 'i>> {
        match self.items.get(self.pos) {
            Some(n) if n.tag_name().name() == local => {
                self.pos += 1;
                Some(*n)
            }
            _ => None,
        }
    }

    pub(crate) fn req(&mut self, local: &str) -> Result<Node<'a, 'i>, ContainerError> {
        self.opt(local)
            .ok_or_else(|| (self.err)(format!("<{}> requires <{local}> here", self.parent)))
    }

    pub(crate) fn many(
        &mut self,
        local: &str,
        max: usize,
    ) -> Result<Vec<Node<'a, 'i>>, ContainerError> {
        let mut v = Vec::new();
        while let Some(n) = self.opt(local) {
            if v.len() == max {
                return Err((self.err)(format!(
                    "more than {max} <{local}> in <{}>",
                    self.parent
                )));
            }
            v.push(n);
        }
        Ok(v)
    }

    pub(crate) fn finish(self) -> Result<(), ContainerError> {
        match self.items.get(self.pos) {
            None => Ok(()),
            Some(n) => Err((self.err)(format!(
                "unexpected <{}> in <{}>",
                n.tag_name().name(),
                self.parent
            ))),
        }
    }
}

/// Checks a string length in characters (as XSD counts).
pub(crate) fn check_len(
    what: &str,
    s: &str,
    min: usize,
    max: usize,
    err: fn(String) -> ContainerError,
) -> Result<(), ContainerError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(err(format!("{what}: length {n} outside {min}..={max}")));
    }
    Ok(())
}

/// Minimal XML writer for our small, namespaced documents.
pub(crate) struct W(pub String);

impl W {
    pub(crate) fn new() -> W {
        W(String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>",
        ))
    }
    pub(crate) fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }
    pub(crate) fn open_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.0.push('<');
        self.0.push_str(name);
        for (k, v) in attrs {
            self.0.push_str(&format!(" {k}=\"{}\"", esc_attr(v)));
        }
        self.0.push('>');
    }
    pub(crate) fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }
    pub(crate) fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&esc_text(text));
        self.close(name);
    }
    pub(crate) fn leaf_attrs(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open_attrs(name, attrs);
        self.0.push_str(&esc_text(text));
        self.close(name);
    }
    pub(crate) fn empty_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.open_attrs(name, attrs);
        self.0.pop();
        self.0.push_str("/>");
    }
}

/// Checks an `xsd:dateTime` lexical value: `YYYY-MM-DDThh:mm:ss[.f+][Z|±hh:mm]`.
pub(crate) fn is_xsd_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|x| !x.is_empty() && x.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let neg = usize::from(at(0, b'-'));
    // Year has at least 4 digits.
    let mut i = neg;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i - neg < 4 {
        return false;
    }
    if !(at(i, b'-')
        && digits(i + 1..i + 3)
        && at(i + 3, b'-')
        && digits(i + 4..i + 6)
        && at(i + 6, b'T'))
    {
        return false;
    }
    let t = i + 7;
    if !(digits(t..t + 2)
        && at(t + 2, b':')
        && digits(t + 3..t + 5)
        && at(t + 5, b':')
        && digits(t + 6..t + 8))
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        std::str::from_utf8(b.get(r).unwrap_or(&[]))
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(99)
    };
    let (mo, d, h, mi, se) = (
        num(i + 1..i + 3),
        num(i + 4..i + 6),
        num(t..t + 2),
        num(t + 3..t + 5),
        num(t + 6..t + 8),
    );
    let year: i64 = std::str::from_utf8(b.get(neg..i).unwrap_or(&[]))
        .ok()
        .and_then(|y| y.parse().ok())
        .unwrap_or(0);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || !(1..=days_in_month).contains(&d) || h > 24 || mi > 59 || se > 60
    {
        return false;
    }
    let mut j = t + 8;
    if at(j, b'.') {
        let s = j + 1;
        j = s;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == s {
            return false;
        }
    }
    match b.get(j) {
        None => true,
        Some(b'Z') => j + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(j + 1..j + 3)
                && at(j + 3, b':')
                && digits(j + 4..j + 6)
                && j + 6 == b.len()
                && num(j + 1..j + 3) <= 14
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_xsd_datetime;

    #[test]
    fn xsd_datetime() {
        for ok in [
            "2017-10-01T12:00:00+02:00",
            "2019-05-15T11:12:13Z",
            "2020-02-29T00:00:00",
            "2014-05-21T15:07:15.756Z",
        ] {
            assert!(is_xsd_datetime(ok), "{ok}");
        }
        for bad in [
            "2017-10-01",
            "2019-02-29T00:00:00Z",
            "2019-04-31T00:00:00Z",
            "2019-13-01T00:00:00Z",
            "2019-01-01T00:00:00+2",
            "x",
        ] {
            assert!(!is_xsd_datetime(bad), "{bad}");
        }
    }
}
