//! A strict, small BER reader (definite and indefinite lengths, constructed strings) with
//! depth and node limits, and a DER writer for the few structures we emit. Written by hand so
//! that hostile CMS input never reaches a general-purpose ASN.1 parser.

use super::error::ContainerError;

/// Universal tag numbers we look at.
pub(crate) const TAG_INTEGER: u32 = 2;
pub(crate) const TAG_OCTET_STRING: u32 = 4;
pub(crate) const TAG_NULL: u32 = 5;
pub(crate) const TAG_OID: u32 = 6;
pub(crate) const TAG_SEQUENCE: u32 = 16;
pub(crate) const TAG_SET: u32 = 17;

pub(crate) const CLASS_UNIVERSAL: u8 = 0;
pub(crate) const CLASS_CONTEXT: u8 = 2;

/// Limits for one BER parse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BerLimits {
    pub max_depth: usize,
    pub max_nodes: usize,
}

/// One TLV. Primitive values borrow their content; constructed ones own their children.
#[derive(Debug)]
pub(crate) struct Tlv<'a> {
    pub class: u8,
    pub constructed: bool,
    pub tag: u32,
    pub content: &'a [u8],
    /// The whole encoding: identifier, length, content (and end-of-contents when indefinite).
    pub raw: &'a [u8],
    pub children: Vec<Tlv<'a>>,
}

fn trunc(what: &str) -> ContainerError {
    ContainerError::BerTruncated(what.to_string())
}
fn bad(what: impl Into<String>) -> ContainerError {
    ContainerError::BerMalformed(what.into())
}

struct Parser {
    limits: BerLimits,
    nodes: usize,
}

/// Parses exactly one TLV covering all of `input` (trailing bytes are an error).
pub(crate) fn parse(input: &[u8], limits: BerLimits) -> Result<Tlv<'_>, ContainerError> {
    let mut p = Parser { limits, nodes: 0 };
    let (tlv, rest) = p.one(input, 0)?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} trailing bytes after the outer element",
            rest.len()
        )));
    }
    Ok(tlv)
}

impl Parser {
    /// Returns the TLV and the remaining input; `None` content for an end-of-contents marker
    /// is signalled by tag 0 class 0 primitive with empty content (checked by callers).
    fn one<'a>(
        &mut self,
        input: &'a [u8],
        depth: usize,
    ) -> Result<(Tlv<'a>, &'a [u8]), ContainerError> {
        if depth > self.limits.max_depth {
            return Err(ContainerError::BerLimit(format!(
                "nesting deeper than {}",
                self.limits.max_depth
            )));
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(ContainerError::BerLimit(format!(
                "more than {} nodes",
                self.limits.max_nodes
            )));
        }
        let (&first, mut rest) = input.split_first().ok_or_else(|| trunc("missing tag"))?;
        let class = first >> 6;
        let constructed = first & 0x20 != 0;
        let mut tag = u32::from(first & 0x1f);
        if tag == 0x1f {
            // High tag number form: base-128, at most 4 bytes, minimal.
            tag = 0;
            let mut count = 0;
            loop {
                let (&b, r) = rest.split_first().ok_or_else(|| trunc("tag number"))?;
                rest = r;
                if count == 0 && b == 0x80 {
                    return Err(bad("non-minimal tag number"));
                }
                count += 1;
                if count > 4 {
                    return Err(bad("tag number too long"));
                }
                tag = (tag << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
            if tag < 0x1f {
                return Err(bad("high tag form for a low tag number"));
            }
        }
        let (&lb, r) = rest.split_first().ok_or_else(|| trunc("length"))?;
        rest = r;
        if lb == 0x80 {
            // Indefinite length: constructed only, children until end-of-contents.
            if !constructed {
                return Err(bad("indefinite length on a primitive value"));
            }
            let start = rest;
            let mut children = Vec::new();
            loop {
                match rest {
                    [0, 0, tail @ ..] => {
                        let used = start.len() - rest.len();
                        let content = start.get(..used).ok_or_else(|| bad("internal length"))?;
                        rest = tail;
                        let raw = input.get(..input.len() - rest.len()).unwrap_or(input);
                        return Ok((
                            Tlv {
                                class,
                                constructed,
                                tag,
                                content,
                                raw,
                                children,
                            },
                            rest,
                        ));
                    }
                    [] | [_] => return Err(trunc("missing end-of-contents")),
                    _ => {
                        let (child, r) = self.one(rest, depth + 1)?;
                        rest = r;
                        children.push(child);
                    }
                }
            }
        }
        let len = if lb & 0x80 == 0 {
            usize::from(lb)
        } else {
            let n = usize::from(lb & 0x7f);
            if n == 0x7f {
                return Err(bad("reserved length form"));
            }
            if n > 4 {
                return Err(bad("length of length above 4 bytes"));
            }
            let bytes = rest.get(..n).ok_or_else(|| trunc("long length"))?;
            rest = rest.get(n..).ok_or_else(|| trunc("long length"))?;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if len > rest.len() {
            return Err(trunc("content shorter than its declared length"));
        }
        let (content, after) = rest.split_at(len);
        if class == CLASS_UNIVERSAL && tag == 0 && !constructed && len != 0 {
            return Err(bad("end-of-contents with content"));
        }
        let mut children = Vec::new();
        if constructed {
            let mut inner = content;
            while !inner.is_empty() {
                let (child, r) = self.one(inner, depth + 1)?;
                if child.is_eoc() {
                    return Err(bad("end-of-contents inside a definite-length value"));
                }
                inner = r;
                children.push(child);
            }
        }
        Ok((
            Tlv {
                class,
                constructed,
                tag,
                content,
                raw: input.get(..input.len() - after.len()).unwrap_or(input),
                children,
            },
            after,
        ))
    }
}

impl<'a> Tlv<'a> {
    fn is_eoc(&self) -> bool {
        self.class == CLASS_UNIVERSAL && self.tag == 0 && !self.constructed
    }

    pub fn is(&self, class: u8, tag: u32) -> bool {
        self.class == class && self.tag == tag
    }

    /// Requires a universal type with the given tag and constructedness.
    pub fn expect(&self, tag: u32, constructed: bool, what: &str) -> Result<&Self, ContainerError> {
        if self.class == CLASS_UNIVERSAL && self.tag == tag && self.constructed == constructed {
            Ok(self)
        } else {
            Err(ContainerError::CmsStructure(format!(
                "{what}: expected universal tag {tag}, found class {} tag {}",
                self.class, self.tag
            )))
        }
    }

    pub fn seq(&self, what: &str) -> Result<&[Tlv<'a>], ContainerError> {
        Ok(&self.expect(TAG_SEQUENCE, true, what)?.children)
    }

    pub fn oid(&self, what: &str) -> Result<&'a [u8], ContainerError> {
        Ok(self.expect(TAG_OID, false, what)?.content)
    }

    /// Small non-negative INTEGER (versions).
    pub fn small_uint(&self, what: &str) -> Result<u64, ContainerError> {
        let c = self.expect(TAG_INTEGER, false, what)?.content;
        if c.is_empty() || c.len() > 8 || c.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(ContainerError::CmsStructure(format!(
                "{what}: not a small non-negative integer"
            )));
        }
        Ok(c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Octets of a string type, primitive or constructed (chunks concatenated, BER style).
    /// `tag` is the universal tag for the chunks (OCTET STRING); the outer may be implicitly
    /// tagged, so only the chunks' tag is checked.
    pub fn octets_into(&self, out: &mut Vec<u8>) -> Result<(), ContainerError> {
        if !self.constructed {
            out.extend_from_slice(self.content);
            return Ok(());
        }
        for c in &self.children {
            if !(c.class == CLASS_UNIVERSAL && c.tag == TAG_OCTET_STRING) {
                return Err(bad("constructed OCTET STRING chunk of another type"));
            }
            c.octets_into(out)?;
        }
        Ok(())
    }

    pub fn octet_string(&self, what: &str) -> Result<Vec<u8>, ContainerError> {
        if !(self.class == CLASS_UNIVERSAL && self.tag == TAG_OCTET_STRING) {
            return Err(ContainerError::CmsStructure(format!(
                "{what}: expected OCTET STRING"
            )));
        }
        let mut v = Vec::new();
        self.octets_into(&mut v)?;
        Ok(v)
    }
}

// --- DER writer -----------------------------------------------------------------------------

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let tail = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | tail.len() as u8);
        out.extend_from_slice(tail);
    }
}

/// The identifier and length octets of a TLV with a low tag number (`identifier` is the whole
/// first byte) whose contents are `len` bytes long: for writing large contents in place.
pub(crate) fn der_header(identifier: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(identifier);
    der_len(len, &mut out);
    out
}

/// Encodes one TLV with a low tag number (`identifier` is the whole first byte).
pub(crate) fn der(identifier: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 10);
    out.push(identifier);
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

pub(crate) fn der_seq(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// Non-negative INTEGER from big-endian magnitude bytes.
pub(crate) fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude.iter().take_while(|&&b| b == 0).count();
        magnitude.get(skip..).unwrap_or(&[])
    };
    let mut c = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        c.push(0);
    }
    c.extend_from_slice(trimmed);
    der(0x02, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: BerLimits = BerLimits {
        max_depth: 8,
        max_nodes: 100,
    };

    #[test]
    fn indefinite_and_chunked() {
        // SEQUENCE(indef) { OCTET STRING constructed(indef) { "ab", "c" } }
        let b = [
            0x30, 0x80, 0x24, 0x80, 0x04, 2, b'a', b'b', 0x04, 1, b'c', 0, 0, 0, 0,
        ];
        let t = parse(&b, L).unwrap();
        let s = t.seq("x").unwrap();
        assert_eq!(s[0].octet_string("y").unwrap(), b"abc");
    }

    #[test]
    fn truncated_and_deep() {
        assert_eq!(
            parse(&[0x30, 0x05, 0x04], L).unwrap_err().code(),
            "ber_truncated"
        );
        assert_eq!(
            parse(&[0x30, 0x80, 0x04, 0x00], L).unwrap_err().code(),
            "ber_truncated"
        );
        let mut deep = Vec::new();
        for _ in 0..20 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..20 {
            deep.extend_from_slice(&[0, 0]);
        }
        assert_eq!(parse(&deep, L).unwrap_err().code(), "ber_limit");
        assert_eq!(
            parse(&[0x04, 0x80, 0, 0], L).unwrap_err().code(),
            "ber_malformed"
        );
        assert_eq!(
            parse(&[0x04, 0x00, 0x00], L).unwrap_err().code(),
            "ber_malformed"
        );
    }

    #[test]
    fn der_roundtrip() {
        let big = vec![7u8; 300];
        let enc = der_seq(&[&der_uint(&[0x80]), &der(0x04, &big)]);
        let t = parse(&enc, L).unwrap();
        let s = t.seq("x").unwrap();
        assert_eq!(s[0].content, &[0x00, 0x80]);
        assert_eq!(s[1].octet_string("y").unwrap(), big);
    }
}
