//! The DPI rules for HTML documents (dpi-spec §5.2, Digdir's "HTML" page): no JavaScript,
//! Flash or Java, no forms, no references to external content, images only as single-line
//! `data:` URLs, links (which may point out) with `target="_blank"`, no `align` on `hr`, no
//! empty `td`. A letter breaking them is refused with a `feil` KLIENT (§7.1 "invalid HTML").
//!
//! [`check`] reports the first violation in document order with a stable code. What the
//! rules allow passes: inline `<style>` and `style` attributes, `data:` images also in CSS,
//! in-document (`#…`) references, links out with `target="_blank"` (or a `<base
//! target="_blank">`), `<td>` holding only whitespace. The viewport width (~793 px) is advice
//! and is not checked.
//!
//! Sans-I/O and panic-free on any input. The document is parsed by html5ever, a WHATWG tree
//! builder, so that what counts as an element here is what a browser builds: markup hidden in
//! `<svg><style>`, `<noscript>` (parsed both with and without scripting) or misnested tables
//! is seen as the browser sees it. CSS is read with cssparser's tokenizer, which undoes
//! escapes (`u\72l(`). Work is bounded: at most [`MAX_NODES`] nodes nested at most
//! [`MAX_DEPTH`] deep (more is refused as `html_too_complex`; the parse is fed in chunks and
//! stopped there), CSS blocks nested at most 32 deep.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use cssparser::{ParseError, Parser, Token};
use html5ever::interface::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::TreeBuilderOpts;
use html5ever::{Attribute, LocalName, Namespace, ParseOpts, QualName, ns, parse_document};

/// `<script>` (in any namespace).
pub const SCRIPT: &str = "html_script";
/// An `on…` event handler attribute (or an SVG animation setting one).
pub const EVENT_HANDLER: &str = "html_event_handler";
/// A `javascript:` or `vbscript:` URL in an attribute or in CSS.
pub const JAVASCRIPT_URL: &str = "html_javascript_url";
/// CSS `expression(…)` (script in old Internet Explorer).
pub const CSS_EXPRESSION: &str = "html_css_expression";
/// `<object>`, `<embed>` or `<applet>`: Flash, Java and other plug-ins.
pub const PLUGIN: &str = "html_plugin";
/// `<iframe>`, `<frame>`, `<frameset>`: another document inside the letter.
pub const FRAME: &str = "html_frame";
/// `<form>`.
pub const FORM: &str = "html_form";
/// Content loaded from outside the document (stylesheet, CSS `url()`, media, `ping`,
/// `<meta refresh>`…): only `data:` and in-document `#…` references are allowed.
pub const EXTERNAL_REFERENCE: &str = "html_external_reference";
/// An `<img>` whose `src`/`srcset` is not a `data:` URL.
pub const IMAGE_NOT_DATA_URI: &str = "html_image_not_data_uri";
/// An `<img src>` spanning more than one line.
pub const IMAGE_SRC_MULTILINE: &str = "html_image_src_multiline";
/// A link out of the document without `target="_blank"`.
pub const LINK_WITHOUT_TARGET_BLANK: &str = "html_link_without_target_blank";
/// `<hr align>`.
pub const HR_ALIGN: &str = "html_hr_align";
/// An empty `<td>`.
pub const EMPTY_TD: &str = "html_empty_td";
/// A document in an encoding the rules cannot be checked in (ISO-2022 escape sequences can
/// hide markup from a UTF-8 reading and show it to a browser).
pub const UNSUPPORTED_ENCODING: &str = "html_unsupported_encoding";
/// More nodes or deeper nesting than the limits (no real letter comes near them).
pub const TOO_COMPLEX: &str = "html_too_complex";

/// Every code [`check`] can return.
pub const ALL_CODES: &[&str] = &[
    SCRIPT,
    EVENT_HANDLER,
    JAVASCRIPT_URL,
    CSS_EXPRESSION,
    PLUGIN,
    FRAME,
    FORM,
    EXTERNAL_REFERENCE,
    IMAGE_NOT_DATA_URI,
    IMAGE_SRC_MULTILINE,
    LINK_WITHOUT_TARGET_BLANK,
    HR_ALIGN,
    EMPTY_TD,
    UNSUPPORTED_ENCODING,
    TOO_COMPLEX,
];

/// Most nodes (elements, text, comments) one document may build.
pub const MAX_NODES: usize = 500_000;
/// Deepest element nesting (what Chromium's parser allows before flattening).
pub const MAX_DEPTH: u32 = 512;
/// The parse is fed this many bytes at a time and stopped after the chunk that broke a limit.
const CHUNK: usize = 4096;
/// Deepest nesting of CSS blocks and functions.
const MAX_CSS_DEPTH: usize = 32;
/// `data:` stylesheets imported by `data:` stylesheets are read this deep.
const MAX_DATA_CSS_NESTING: u8 = 2;

/// The first rule a document breaks: a stable `code` (one of [`ALL_CODES`]) and a detail
/// naming the element and attribute (never the document's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct HtmlViolation {
    pub code: &'static str,
    pub detail: String,
}

fn violation(code: &'static str, detail: impl Into<String>) -> HtmlViolation {
    HtmlViolation {
        code,
        detail: detail.into(),
    }
}

/// Checks an HTML document (the bytes of a `text/html` document of a dokumentpakke) against
/// the DPI HTML rules; `Err` carries the first violation in document order.
pub fn check(bytes: &[u8]) -> Result<(), HtmlViolation> {
    let text = decode(bytes)?;
    let (dom, noscript) = parse(&text, true)?;
    check_dom(&dom)?;
    // With scripting off `<noscript>` holds markup, with it on raw text: both readings count
    // (a sandboxed viewer has scripting off, a downloaded copy may be opened with it on).
    if noscript {
        let (dom, _) = parse(&text, false)?;
        check_dom(&dom)?;
    }
    Ok(())
}

/// The text a browser reads: a byte order mark decides, otherwise UTF-8 (every encoding a
/// browser may apply instead keeps ASCII where it is, so the markup reads the same), except
/// that ISO-2022-JP's escape sequences can turn bytes into markup only a browser sees.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, HtmlViolation> {
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => Ok(String::from_utf8_lossy(rest)),
        [0xFF, 0xFE, rest @ ..] => Ok(Cow::Owned(utf16(rest, u16::from_le_bytes))),
        [0xFE, 0xFF, rest @ ..] => Ok(Cow::Owned(utf16(rest, u16::from_be_bytes))),
        _ if bytes.contains(&0x1B) => Err(violation(
            UNSUPPORTED_ENCODING,
            "escape (0x1B) bytes: an ISO-2022 encoding cannot be checked",
        )),
        _ => Ok(String::from_utf8_lossy(bytes)),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(unit);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn too_complex() -> HtmlViolation {
    violation(
        TOO_COMPLEX,
        format!("more than {MAX_NODES} nodes or nesting deeper than {MAX_DEPTH}"),
    )
}

/// Parses `text` into a tree; also says whether a `<noscript>` was seen.
fn parse(text: &str, scripting: bool) -> Result<(Vec<Node>, bool), HtmlViolation> {
    let budget = Rc::new(Budget::default());
    let sink = Sink {
        nodes: RefCell::new(vec![Node::new(Data::Document)]),
        budget: budget.clone(),
    };
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: scripting,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut parser = parse_document(sink, opts);
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(CHUNK);
        while cut < rest.len() && !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (head, tail) = rest.split_at_checked(cut).unwrap_or((rest, ""));
        parser.process(StrTendril::from_slice(head));
        if budget.exceeded.get() {
            return Err(too_complex());
        }
        rest = tail;
    }
    let nodes = parser.finish();
    if budget.exceeded.get() {
        return Err(too_complex());
    }
    Ok((nodes, budget.noscript.get()))
}

// --- the tree ----------------------------------------------------------------------------

#[derive(Default)]
struct Budget {
    exceeded: Cell<bool>,
    noscript: Cell<bool>,
}

enum Data {
    Document,
    Element {
        name: QualName,
        attrs: Vec<Attribute>,
        template: Option<usize>,
        annotation_xml_integration_point: bool,
    },
    Text(StrTendril),
    /// Comments and processing instructions.
    Other,
}

/// A node of an index-linked tree (no reference counting, no recursion when dropped, O(1)
/// moves: the parser's adoption agency moves nodes a lot).
struct Node {
    parent: Option<usize>,
    first_child: Option<usize>,
    last_child: Option<usize>,
    prev: Option<usize>,
    next: Option<usize>,
    /// Nesting depth where the node was last inserted.
    depth: u32,
    data: Data,
}

impl Node {
    fn new(data: Data) -> Self {
        Node {
            parent: None,
            first_child: None,
            last_child: None,
            prev: None,
            next: None,
            depth: 0,
            data,
        }
    }
}

struct Sink {
    nodes: RefCell<Vec<Node>>,
    budget: Rc<Budget>,
}

/// An element name handed to the tree builder (a cheap clone of interned atoms).
#[derive(Debug)]
struct Name(QualName);

impl ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.0.ns
    }
    fn local_name(&self) -> &LocalName {
        &self.0.local
    }
}

fn edit(nodes: &mut [Node], i: usize, f: impl FnOnce(&mut Node)) {
    if let Some(n) = nodes.get_mut(i) {
        f(n);
    }
}

fn detach(nodes: &mut [Node], i: usize) {
    let Some(n) = nodes.get_mut(i) else { return };
    let (parent, prev, next) = (n.parent.take(), n.prev.take(), n.next.take());
    match (next, parent) {
        (Some(x), _) => edit(nodes, x, |x| x.prev = prev),
        (None, Some(p)) => edit(nodes, p, |p| p.last_child = prev),
        (None, None) => {}
    }
    match (prev, parent) {
        (Some(x), _) => edit(nodes, x, |x| x.next = next),
        (None, Some(p)) => edit(nodes, p, |p| p.first_child = next),
        (None, None) => {}
    }
}

impl Sink {
    fn push(&self, nodes: &mut Vec<Node>, data: Data) -> usize {
        nodes.push(Node::new(data));
        if nodes.len() > MAX_NODES {
            self.budget.exceeded.set(true);
        }
        nodes.len() - 1
    }

    fn placed(&self, nodes: &mut [Node], child: usize, depth: u32) {
        edit(nodes, child, |c| c.depth = depth);
        if depth > MAX_DEPTH {
            self.budget.exceeded.set(true);
        }
    }

    fn append_child(&self, nodes: &mut [Node], parent: usize, child: usize) {
        if parent == child || nodes.get(parent).is_none() {
            return;
        }
        detach(nodes, child);
        let (last, depth) = nodes
            .get(parent)
            .map_or((None, 0), |p| (p.last_child, p.depth.saturating_add(1)));
        edit(nodes, child, |c| {
            c.parent = Some(parent);
            c.prev = last;
        });
        match last {
            Some(l) => edit(nodes, l, |l| l.next = Some(child)),
            None => edit(nodes, parent, |p| p.first_child = Some(child)),
        }
        edit(nodes, parent, |p| p.last_child = Some(child));
        self.placed(nodes, child, depth);
    }

    fn insert_before(&self, nodes: &mut [Node], sibling: usize, new: usize) {
        if sibling == new || nodes.get(sibling).is_none() {
            return;
        }
        detach(nodes, new);
        let (parent, prev, depth) = nodes
            .get(sibling)
            .map_or((None, None, 0), |s| (s.parent, s.prev, s.depth));
        edit(nodes, new, |n| {
            n.parent = parent;
            n.prev = prev;
            n.next = Some(sibling);
        });
        edit(nodes, sibling, |s| s.prev = Some(new));
        match (prev, parent) {
            (Some(p), _) => edit(nodes, p, |p| p.next = Some(new)),
            (None, Some(p)) => edit(nodes, p, |p| p.first_child = Some(new)),
            (None, None) => {}
        }
        self.placed(nodes, new, depth);
    }

    /// Appends text to the text node `before` when there is one (the tree builder merges
    /// adjacent text), else makes a new text node.
    fn text_node(
        &self,
        nodes: &mut Vec<Node>,
        before: Option<usize>,
        text: StrTendril,
    ) -> Option<usize> {
        if let Some(Node {
            data: Data::Text(t),
            ..
        }) = before.and_then(|b| nodes.get_mut(b))
        {
            t.push_tendril(&text);
            return None;
        }
        Some(self.push(nodes, Data::Text(text)))
    }
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = Vec<Node>;
    type ElemName<'a> = Name;

    fn finish(self) -> Vec<Node> {
        self.nodes.into_inner()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Name {
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element { name, .. }) => Name(name.clone()),
            // Never asked for a non-element; a name matching nothing is harmless.
            _ => Name(QualName::new(None, ns!(), LocalName::from(""))),
        }
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        if name.ns == ns!(html) && &*name.local == "noscript" {
            self.budget.noscript.set(true);
        }
        let template = flags
            .template
            .then(|| self.push(&mut nodes, Data::Document));
        self.push(
            &mut nodes,
            Data::Element {
                name,
                attrs,
                template,
                annotation_xml_integration_point: flags.mathml_annotation_xml_integration_point,
            },
        )
    }

    fn create_comment(&self, _text: StrTendril) -> usize {
        self.push(&mut self.nodes.borrow_mut(), Data::Other)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> usize {
        self.push(&mut self.nodes.borrow_mut(), Data::Other)
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        let nodes = &mut *self.nodes.borrow_mut();
        let child = match child {
            NodeOrText::AppendNode(n) => n,
            NodeOrText::AppendText(t) => {
                let last = nodes.get(*parent).and_then(|p| p.last_child);
                match self.text_node(nodes, last, t) {
                    Some(n) => n,
                    None => return,
                }
            }
        };
        self.append_child(nodes, *parent, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        let has_parent = self
            .nodes
            .borrow()
            .get(*element)
            .is_some_and(|e| e.parent.is_some());
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &usize) -> usize {
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element {
                template: Some(t), ..
            }) => *t,
            // Only asked for templates; the element itself is a harmless stand-in.
            _ => *target,
        }
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        let nodes = &mut *self.nodes.borrow_mut();
        let new = match new_node {
            NodeOrText::AppendNode(n) => n,
            NodeOrText::AppendText(t) => {
                let prev = nodes.get(*sibling).and_then(|s| s.prev);
                match self.text_node(nodes, prev, t) {
                    Some(n) => n,
                    None => return,
                }
            }
        };
        self.insert_before(nodes, *sibling, new);
    }

    fn add_attrs_if_missing(&self, target: &usize, attrs: Vec<Attribute>) {
        if let Some(Node {
            data: Data::Element { attrs: have, .. },
            ..
        }) = self.nodes.borrow_mut().get_mut(*target)
        {
            for a in attrs {
                if !have.iter().any(|h| h.name == a.name) {
                    have.push(a);
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &usize) {
        detach(&mut self.nodes.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        let nodes = &mut *self.nodes.borrow_mut();
        let mut next = nodes.get(*node).and_then(|n| n.first_child);
        let mut moved = 0usize;
        while let Some(c) = next {
            next = nodes.get(c).and_then(|n| n.next);
            self.append_child(nodes, *new_parent, c);
            moved += 1;
            if moved > nodes.len() {
                break;
            }
        }
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &usize) -> bool {
        matches!(
            self.nodes.borrow().get(*handle).map(|n| &n.data),
            Some(Data::Element {
                annotation_xml_integration_point: true,
                ..
            })
        )
    }
}

// --- the rules ---------------------------------------------------------------------------

/// Children of `i` (template contents first), in order; bounded by the node count so that no
/// corrupt link can make it loop.
fn children(nodes: &[Node], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(n) = nodes.get(i) else { return out };
    if let Data::Element {
        template: Some(t), ..
    } = n.data
    {
        out.extend(children(nodes, t));
    }
    let mut next = n.first_child;
    while let Some(c) = next {
        if out.len() > nodes.len() {
            break;
        }
        out.push(c);
        next = nodes.get(c).and_then(|n| n.next);
    }
    out
}

/// Every element in document order, each with its index.
fn elements(nodes: &[Node]) -> impl Iterator<Item = (usize, &QualName, &[Attribute])> {
    let mut stack = vec![0usize];
    let mut visits = 0usize;
    std::iter::from_fn(move || {
        while let Some(i) = stack.pop() {
            visits += 1;
            if visits > nodes.len().saturating_mul(2) {
                return None;
            }
            stack.extend(children(nodes, i).into_iter().rev());
            if let Some(Node {
                data: Data::Element { name, attrs, .. },
                ..
            }) = nodes.get(i)
            {
                return Some((i, name, attrs.as_slice()));
            }
        }
        None
    })
}

fn attr<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| str::eq_ignore_ascii_case(&a.name.local, name))
        .map(|a| &*a.value)
}

fn is_html(n: &QualName, local: &str) -> bool {
    n.ns == ns!(html) && &*n.local == local
}

fn is_svg(n: &QualName, local: &str) -> bool {
    n.ns == ns!(svg) && &*n.local == local
}

fn check_dom(nodes: &[Node]) -> Result<(), HtmlViolation> {
    // "The first base element with a target attribute, in tree order" sets the default target.
    let base_blank = elements(nodes)
        .find(|(_, n, a)| is_html(n, "base") && attr(a, "target").is_some())
        .and_then(|(_, _, a)| attr(a, "target"))
        .is_some_and(is_blank);
    for (i, name, attrs) in elements(nodes) {
        check_element(nodes, i, name, attrs, base_blank)?;
    }
    Ok(())
}

fn is_blank(target: &str) -> bool {
    target
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .eq_ignore_ascii_case("_blank")
}

/// At most 40 characters of a name taken from the document, for details.
fn shown(name: &str) -> String {
    name.chars().take(40).collect()
}

fn check_element(
    nodes: &[Node],
    i: usize,
    name: &QualName,
    attrs: &[Attribute],
    base_blank: bool,
) -> Result<(), HtmlViolation> {
    let local = &*name.local;
    let html = name.ns == ns!(html);
    let el = shown(local);
    if local == "script" {
        return Err(violation(SCRIPT, format!("<{el}> element")));
    }
    if html && matches!(local, "object" | "embed" | "applet") {
        return Err(violation(PLUGIN, format!("<{el}> element (plug-in)")));
    }
    if html
        && matches!(
            local,
            "iframe" | "frame" | "frameset" | "portal" | "fencedframe"
        )
    {
        return Err(violation(FRAME, format!("<{el}> element")));
    }
    if html && local == "form" {
        return Err(violation(FORM, "<form> element"));
    }

    let is_link = is_html(name, "a") || is_html(name, "area") || is_svg(name, "a");
    let img = is_html(name, "img");
    for a in attrs {
        let an = &*a.name.local;
        let value = &*a.value;
        let at = || format!("<{el} {}>", shown(an));
        if an.len() > 2 && an.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("on")) {
            return Err(violation(EVENT_HANDLER, format!("{} event handler", at())));
        }
        let urls = url_values(an, value);
        if urls.iter().any(|u| classify(u) == UrlKind::Script) {
            return Err(violation(JAVASCRIPT_URL, format!("{}: script URL", at())));
        }
        if an.eq_ignore_ascii_case("style") {
            check_css(value, false, 0).map_err(|v| in_place(v, &at()))?;
        }
        let resource = match an.to_ascii_lowercase().as_str() {
            "src" | "srcset" if img => {
                for u in &urls {
                    if !matches!(classify(u), UrlKind::Empty | UrlKind::Data) {
                        return Err(violation(
                            IMAGE_NOT_DATA_URI,
                            format!("{} is not a data: URL", at()),
                        ));
                    }
                }
                if an.eq_ignore_ascii_case("src") && value.contains(['\n', '\r']) {
                    return Err(violation(
                        IMAGE_SRC_MULTILINE,
                        format!("{} spans more than one line", at()),
                    ));
                }
                false
            }
            "src" | "srcset" | "imagesrcset" | "poster" | "background" | "lowsrc" | "dynsrc"
            | "ping" => true,
            "manifest" => is_html(name, "html"),
            // Links, stylesheets and the base URL are judged below.
            "href" => !(is_link || is_html(name, "link") || is_html(name, "base")),
            _ => false,
        };
        if resource {
            for u in &urls {
                if classify(u) == UrlKind::Other {
                    return Err(violation(
                        EXTERNAL_REFERENCE,
                        format!("{} refers outside the document", at()),
                    ));
                }
            }
        }
    }

    if is_html(name, "link") {
        check_link(attrs)?;
    }
    if is_html(name, "meta") {
        check_meta(attrs)?;
    }
    if name.ns == ns!(svg)
        && matches!(
            local,
            "animate" | "set" | "animateMotion" | "animateTransform" | "discard"
        )
    {
        check_animation(&el, attrs)?;
    }
    if is_link
        && let Some(href) = attrs
            .iter()
            .find(|a| &*a.name.local == "href")
            .map(|a| &*a.value)
        && classify(href) != UrlKind::Fragment
        && !base_blank
        && !attr(attrs, "target").is_some_and(is_blank)
    {
        return Err(violation(
            LINK_WITHOUT_TARGET_BLANK,
            format!("<{el} href> without target=\"_blank\""),
        ));
    }
    if is_html(name, "hr") && attr(attrs, "align").is_some() {
        return Err(violation(HR_ALIGN, "<hr align>"));
    }
    if is_html(name, "td")
        && !children(nodes, i).iter().any(|c| {
            matches!(
                nodes.get(*c).map(|n| &n.data),
                Some(Data::Element { .. } | Data::Text(_))
            )
        })
    {
        return Err(violation(EMPTY_TD, "empty <td>"));
    }
    if is_html(name, "style") || is_svg(name, "style") {
        // A stylesheet is its element's child text, comments between texts left out.
        let css: String = children(nodes, i)
            .iter()
            .filter_map(|c| match nodes.get(*c).map(|n| &n.data) {
                Some(Data::Text(t)) => Some(&**t),
                _ => None,
            })
            .collect();
        check_css(&css, true, 0).map_err(|v| in_place(v, &format!("<{el}>")))?;
    }
    Ok(())
}

fn in_place(v: HtmlViolation, place: &str) -> HtmlViolation {
    violation(v.code, format!("{place}: {}", v.detail))
}

/// The URLs an attribute holds (none for attributes that hold no URL).
fn url_values<'a>(name: &str, value: &'a str) -> Vec<&'a str> {
    match name.to_ascii_lowercase().as_str() {
        "href" | "src" | "action" | "formaction" | "data" | "codebase" | "background"
        | "poster" | "cite" | "longdesc" | "lowsrc" | "dynsrc" | "usemap" | "manifest" | "to"
        | "from" | "by" => vec![value],
        "srcset" | "imagesrcset" => srcset_urls(value),
        "ping" => value.split_ascii_whitespace().collect(),
        "values" => value.split(';').collect(),
        _ => Vec::new(),
    }
}

/// The URLs of a `srcset` (HTML "parse a srcset attribute": a URL runs to whitespace, trailing
/// commas are not part of it, descriptors run to a comma outside parentheses).
fn srcset_urls(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            return out;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let (url, after) = rest.split_at_checked(end).unwrap_or((rest, ""));
        out.push(url.trim_end_matches(','));
        rest = after;
        if !url.ends_with(',') {
            let mut depth = 0usize;
            let stop = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        ',' if depth == 0 => return true,
                        _ => {}
                    }
                    false
                })
                .map_or(rest.len(), |(i, _)| i);
            rest = rest.get(stop..).unwrap_or("");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlKind {
    /// Nothing (no fetch).
    Empty,
    /// `#…`: inside the document.
    Fragment,
    Data,
    Script,
    /// Anything else: another document or server.
    Other,
}

/// What a URL is, read as the URL parser reads it: leading and trailing C0 controls and
/// spaces dropped, tabs and newlines removed anywhere, the scheme case-insensitive.
fn classify(raw: &str) -> UrlKind {
    let mut head = raw
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'));
    let Some(first) = head.next() else {
        return UrlKind::Empty;
    };
    if first == '#' {
        return UrlKind::Fragment;
    }
    if !first.is_ascii_alphabetic() {
        return UrlKind::Other;
    }
    let mut scheme = String::from(first.to_ascii_lowercase());
    for c in head.take(32) {
        match c {
            ':' => {
                return match scheme.as_str() {
                    "data" => UrlKind::Data,
                    "javascript" | "vbscript" | "livescript" => UrlKind::Script,
                    _ => UrlKind::Other,
                };
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.') => {
                scheme.push(c.to_ascii_lowercase());
            }
            _ => return UrlKind::Other,
        }
    }
    UrlKind::Other
}

/// `<link>`: only link types that fetch nothing may point out; anything else (stylesheet,
/// icon, preload…) must be a `data:` URL, whose stylesheet is checked too.
fn check_link(attrs: &[Attribute]) -> Result<(), HtmlViolation> {
    let Some(href) = attr(attrs, "href") else {
        return Ok(());
    };
    let rel = attr(attrs, "rel").unwrap_or("").to_ascii_lowercase();
    const FETCH_NOTHING: &[&str] = &[
        "alternate",
        "author",
        "bookmark",
        "canonical",
        "external",
        "help",
        "license",
        "me",
        "next",
        "nofollow",
        "noopener",
        "noreferrer",
        "opener",
        "prev",
        "search",
        "tag",
    ];
    if rel
        .split_ascii_whitespace()
        .all(|t| FETCH_NOTHING.contains(&t))
    {
        return Ok(());
    }
    match classify(href) {
        UrlKind::Empty | UrlKind::Fragment => Ok(()),
        UrlKind::Data => {
            if rel.split_ascii_whitespace().any(|t| t == "stylesheet")
                && let Some(css) = data_url_payload(href)
            {
                check_css(&String::from_utf8_lossy(&css), true, 1)
                    .map_err(|v| in_place(v, "<link rel=stylesheet>"))?;
            }
            Ok(())
        }
        UrlKind::Script => Err(violation(JAVASCRIPT_URL, "<link href>: script URL")),
        UrlKind::Other => Err(violation(
            EXTERNAL_REFERENCE,
            format!(
                "<link rel=\"{}\" href> refers outside the document",
                shown(&rel)
            ),
        )),
    }
}

/// `<meta http-equiv=refresh content="5; url=…">` navigates away.
fn check_meta(attrs: &[Attribute]) -> Result<(), HtmlViolation> {
    let refresh = attr(attrs, "http-equiv").is_some_and(|h| {
        h.trim_matches(|c: char| c.is_ascii_whitespace())
            .eq_ignore_ascii_case("refresh")
    });
    let Some(content) = attr(attrs, "content").filter(|_| refresh) else {
        return Ok(());
    };
    let ws = |c: char| c.is_ascii_whitespace();
    let rest = content
        .trim_start_matches(ws)
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
        .trim_start_matches(ws);
    let rest = rest
        .strip_prefix([';', ','])
        .unwrap_or(rest)
        .trim_start_matches(ws);
    let url = match rest.get(..3) {
        Some(u) if u.eq_ignore_ascii_case("url") => {
            let after = rest.get(3..).unwrap_or("").trim_start_matches(ws);
            match after.strip_prefix('=') {
                Some(v) => v.trim_start_matches(ws),
                None => rest,
            }
        }
        _ => rest,
    };
    let url = url.trim_matches(['"', '\'']);
    match classify(url) {
        UrlKind::Empty | UrlKind::Fragment => Ok(()),
        UrlKind::Script => Err(violation(
            JAVASCRIPT_URL,
            "<meta http-equiv=refresh>: script URL",
        )),
        UrlKind::Data | UrlKind::Other => Err(violation(
            EXTERNAL_REFERENCE,
            "<meta http-equiv=refresh> navigates away",
        )),
    }
}

/// SVG animation can set an event handler or a link's target after the fact.
fn check_animation(el: &str, attrs: &[Attribute]) -> Result<(), HtmlViolation> {
    let Some(target) = attr(attrs, "attributeName").map(str::trim) else {
        return Ok(());
    };
    if target.len() > 2
        && target
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("on"))
    {
        return Err(violation(
            EVENT_HANDLER,
            format!("<{el}> animates an event handler"),
        ));
    }
    let href = target.eq_ignore_ascii_case("href") || target.eq_ignore_ascii_case("xlink:href");
    if href {
        for a in ["to", "from", "by", "values"] {
            let v = attr(attrs, a).unwrap_or("");
            if url_values(a, v)
                .iter()
                .any(|u| matches!(classify(u), UrlKind::Other | UrlKind::Data))
            {
                return Err(violation(
                    EXTERNAL_REFERENCE,
                    format!("<{el}> animates a link out of the document"),
                ));
            }
        }
    }
    Ok(())
}

// --- CSS ---------------------------------------------------------------------------------

/// What strings mean at one level of the CSS walk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strings {
    Text,
    /// Inside `url()`, `image-set()`…: strings are URLs.
    Urls,
    /// Inside `url()` of an `@import`: URLs of stylesheets.
    Imports,
}

/// Checks CSS (a stylesheet or a `style` attribute): no URL but `data:` and `#…`, no script
/// URL, no `expression()`. `data:` stylesheets imported are checked too, [`MAX_DATA_CSS_NESTING`]
/// deep. `stylesheet` only shapes the detail.
fn check_css(css: &str, stylesheet: bool, nesting: u8) -> Result<(), HtmlViolation> {
    let mut p = Parser::new(css);
    let mut found = None;
    walk_css(&mut p, 0, Strings::Text, nesting, &mut found);
    match found {
        None => Ok(()),
        Some(v) if stylesheet => Err(in_place(v, "stylesheet")),
        Some(v) => Err(v),
    }
}

fn walk_css(
    p: &mut Parser<'_>,
    depth: usize,
    strings: Strings,
    nesting: u8,
    found: &mut Option<HtmlViolation>,
) {
    let mut import = false;
    let mut namespace = false;
    while found.is_none() {
        let token = match p.next() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let mut nested = None;
        match &token {
            Token::UnquotedUrl(u) | Token::BadUrl(u) => {
                if !namespace {
                    *found = css_url(u, import || strings == Strings::Imports, nesting).err();
                }
                import = false;
            }
            Token::QuotedString(s) => {
                if (import || strings != Strings::Text) && !namespace {
                    *found = css_url(s, import || strings == Strings::Imports, nesting).err();
                }
                import = false;
            }
            Token::AtKeyword(k) => {
                import = k.eq_ignore_ascii_case("import");
                // `@namespace url(…)` names a namespace; nothing is fetched.
                namespace = k.eq_ignore_ascii_case("namespace");
            }
            Token::Function(f) => {
                if f.eq_ignore_ascii_case("expression") {
                    *found = Some(violation(CSS_EXPRESSION, "CSS expression()"));
                    return;
                }
                let urls = ["url", "src", "image", "image-set", "-webkit-image-set"]
                    .iter()
                    .any(|n| f.eq_ignore_ascii_case(n));
                nested = Some(match (urls, import) {
                    (true, true) => Strings::Imports,
                    (true, false) => Strings::Urls,
                    (false, _) => Strings::Text,
                });
                import = false;
            }
            Token::ParenthesisBlock | Token::SquareBracketBlock => nested = Some(Strings::Text),
            Token::CurlyBracketBlock => {
                nested = Some(Strings::Text);
                import = false;
                namespace = false;
            }
            Token::Semicolon => {
                import = false;
                namespace = false;
            }
            _ => {}
        }
        if let Some(inner) = nested
            && !namespace
        {
            if depth >= MAX_CSS_DEPTH {
                *found = Some(violation(TOO_COMPLEX, "CSS nested too deep"));
                return;
            }
            let _ = p.parse_nested_block(|q| {
                walk_css(q, depth + 1, inner, nesting, found);
                Ok::<(), ParseError<()>>(())
            });
        }
    }
}

fn css_url(url: &str, import: bool, nesting: u8) -> Result<(), HtmlViolation> {
    match classify(url) {
        UrlKind::Empty | UrlKind::Fragment => Ok(()),
        UrlKind::Script => Err(violation(JAVASCRIPT_URL, "script URL in CSS")),
        UrlKind::Other => Err(violation(
            EXTERNAL_REFERENCE,
            if import {
                "@import of a stylesheet outside the document"
            } else {
                "CSS url() outside the document"
            },
        )),
        UrlKind::Data if import => {
            if nesting >= MAX_DATA_CSS_NESTING {
                return Err(violation(
                    TOO_COMPLEX,
                    "data: stylesheets imported too deep",
                ));
            }
            match data_url_payload(url) {
                Some(css) => check_css(&String::from_utf8_lossy(&css), false, nesting + 1),
                None => Ok(()),
            }
        }
        UrlKind::Data => Ok(()),
    }
}

/// The body of a `data:` URL (fetch's "data: URL processor": percent-decoded, then forgiving
/// base64 when the type ends in `;base64`); `None` when it does not decode (nothing loads).
fn data_url_payload(url: &str) -> Option<Vec<u8>> {
    let clean: String = url
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (meta, body) = clean.get(5..)?.split_once(',')?;
    let bytes = percent_decode(body.as_bytes());
    let meta = meta.trim_end_matches(' ').to_ascii_lowercase();
    let is_base64 = meta
        .strip_suffix("base64")
        .is_some_and(|m| m.trim_end_matches(' ').ends_with(';'));
    if !is_base64 {
        return Some(bytes);
    }
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let forgiving = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = bytes
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    forgiving.decode(compact).ok()
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    fn code(html: &str) -> Option<&'static str> {
        check(html.as_bytes()).err().map(|v| v.code)
    }

    fn letter(body: &str) -> String {
        format!(
            "<!DOCTYPE html><html lang=\"no\"><head><meta charset=\"utf-8\">\
             <title>Vedtak</title></head><body>{body}</body></html>"
        )
    }

    #[test]
    fn a_plain_letter_with_a_data_image_a_table_and_a_link_passes() {
        let doc = letter(&format!(
            "<style>body {{ font-family: sans-serif; max-width: 100%; }}\
             .logo {{ background: url({PNG}) no-repeat; }} h1 {{ color: #336 }}\
             svg .s {{ fill: url(#grad) }}</style>\
             <h1 class=\"logo\" style=\"margin: 0 auto; background-image: url('{PNG}')\">Vedtak</h1>\
             <p><img src=\"{PNG}\" alt=\"Kommunevåpen\" width=\"40\"></p>\
             <table><tr><th>Barn</th><td>Ola</td></tr><tr><td> </td><td>&nbsp;</td></tr></table>\
             <p>Les mer på <a href=\"https://www.kommune.no/barnehage\" target=\"_blank\">kommune.no</a>\
             eller <a href=\"#vilkar\">vilkårene</a>, og <a name=\"bunn\">her</a>.</p>\
             <hr><h2 id=\"vilkar\">Vilkår</h2><svg width=\"10\" height=\"10\"><defs>\
             <linearGradient id=\"grad\"/></defs><use href=\"#grad\"/><rect class=\"s\"/></svg>\
             <template><p>mal</p></template><noscript><p>Uten skript</p></noscript>"
        ));
        assert_eq!(check(doc.as_bytes()), Ok(()));
        // A letter without any markup at all is fine too.
        assert_eq!(check(b"Hei Ola"), Ok(()));
        assert_eq!(check(b""), Ok(()));
    }

    #[test]
    fn javascript_in_any_form_is_refused() {
        for (html, want) in [
            ("<script>alert(1)</script>", SCRIPT),
            ("<SCRIPT SRC=x.js></SCRIPT>", SCRIPT),
            ("<svg><script>alert(1)</script></svg>", SCRIPT),
            ("<p onclick=\"alert(1)\">x</p>", EVENT_HANDLER),
            (
                &format!("<img src=\"{PNG}\" OnError=\"alert(1)\">"),
                EVENT_HANDLER,
            ),
            ("<body onload=alert(1)>", EVENT_HANDLER),
            (
                "<svg><set attributeName=\"onmouseover\" to=\"alert(1)\"/></svg>",
                EVENT_HANDLER,
            ),
            (
                "<a href=\"javascript:alert(1)\" target=\"_blank\">x</a>",
                JAVASCRIPT_URL,
            ),
            (
                "<a href=\" jav&#x09;aScript:alert(1)\">x</a>",
                JAVASCRIPT_URL,
            ),
            (
                "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
                JAVASCRIPT_URL,
            ),
            (
                "<svg><animate attributeName=\"href\" values=\"#a;javascript:alert(1)\"/></svg>",
                JAVASCRIPT_URL,
            ),
            (
                "<div style=\"background:url(javascript:alert(1))\">x</div>",
                JAVASCRIPT_URL,
            ),
            (
                "<div style=\"width: expression(alert(1))\">x</div>",
                CSS_EXPRESSION,
            ),
            (
                "<div style=\"width: e\\78pression(alert(1))\">x</div>",
                CSS_EXPRESSION,
            ),
        ] {
            assert_eq!(code(&letter(html)), Some(want), "{html}");
        }
    }

    #[test]
    fn external_references_are_refused_and_data_or_fragments_are_not() {
        for html in [
            "<link rel=\"stylesheet\" href=\"https://cdn.example/x.css\">",
            "<link rel=\"icon\" href=\"/favicon.ico\">",
            "<style>@import \"https://cdn.example/x.css\";</style>",
            "<style>@import url(https://cdn.example/x.css);</style>",
            "<style>body { background: url(https://track.example/p.gif) }</style>",
            "<style>body { background: u\\72l(https://track.example/p.gif) }</style>",
            "<style>body { background: image-set(\"https://x.example/a.png\" 1x) }</style>",
            "<style>@font-face { font-family: f; src: url('https://x.example/f.woff') }</style>",
            "<p style=\"background-image: url('//track.example/p.gif')\">x</p>",
            "<svg><style>rect { fill: url(https://x.example/p.svg#a) }</style></svg>",
            "<svg><image href=\"https://x.example/a.png\"/></svg>",
            "<svg><use xlink:href=\"https://x.example/s.svg#a\"/></svg>",
            "<video src=\"https://x.example/v.mp4\"></video>",
            "<video poster=\"https://x.example/p.png\"></video>",
            "<picture><source srcset=\"https://x.example/a.png 2x\"></picture>",
            "<table background=\"https://x.example/bg.png\"><tr><td>x</td></tr></table>",
            "<a href=\"https://x.example/\" target=\"_blank\" ping=\"https://track.example/\">x</a>",
            "<meta http-equiv=\"refresh\" content=\"0; url=https://x.example/\">",
            "<input type=\"image\" src=\"https://x.example/b.png\">",
            "<style>@import url(\"data:text/css,body{background:url(https://x.example/p)}\");</style>",
        ] {
            assert_eq!(code(&letter(html)), Some(EXTERNAL_REFERENCE), "{html}");
        }
        let data_css = "data:text/css;base64,Ym9keXtjb2xvcjpyZWR9"; // body{color:red}
        for html in [
            format!("<link rel=\"stylesheet\" href=\"{data_css}\">"),
            format!("<style>@import url(\"{data_css}\");</style>"),
            "<link rel=\"canonical\" href=\"https://www.kommune.no/brev/1\">".into(),
            "<style>@namespace svg url(http://www.w3.org/2000/svg);</style>".into(),
            "<meta http-equiv=\"refresh\" content=\"30\">".into(),
        ] {
            assert_eq!(check(letter(&html).as_bytes()), Ok(()), "{html}");
        }
        // A stylesheet in a data: URL that itself reaches out is caught.
        let evil = "data:text/css;base64,Ym9keXtiYWNrZ3JvdW5kOnVybChodHRwczovL3guZXhhbXBsZS9wKX0=";
        assert_eq!(
            code(&letter(&format!(
                "<link rel=\"stylesheet\" href=\"{evil}\">"
            ))),
            Some(EXTERNAL_REFERENCE)
        );
    }

    #[test]
    fn images_must_be_single_line_data_urls() {
        for (html, want) in [
            (
                "<img src=\"https://x.example/logo.png\">",
                IMAGE_NOT_DATA_URI,
            ),
            ("<img src=\"logo.png\">", IMAGE_NOT_DATA_URI),
            ("<img src=\"cid:logo\">", IMAGE_NOT_DATA_URI),
            (
                &format!("<img src=\"{PNG}\" srcset=\"https://x.example/l.png 2x\">"),
                IMAGE_NOT_DATA_URI,
            ),
            (
                "<img src=\"data:image/png;base64,iVBORw0KGgo\nAAAANSUhEUg==\">",
                IMAGE_SRC_MULTILINE,
            ),
            (
                "<img src=\"data:image/png;base64,iVBORw0KGgo&#13;AAAA\">",
                IMAGE_SRC_MULTILINE,
            ),
        ] {
            assert_eq!(code(&letter(html)), Some(want), "{html}");
        }
        let srcset = format!("<img src=\"{PNG}\" srcset=\"{PNG} 1x, {PNG} 2x\">");
        assert_eq!(check(letter(&srcset).as_bytes()), Ok(()));
    }

    #[test]
    fn forms_frames_and_plugins_are_refused() {
        for (html, want) in [
            (
                "<form action=\"https://x.example/\"><input name=a></form>",
                FORM,
            ),
            ("<iframe src=\"https://x.example/\"></iframe>", FRAME),
            ("<iframe srcdoc=\"&lt;p&gt;hei\"></iframe>", FRAME),
            (
                "<object data=\"film.swf\" type=\"application/x-shockwave-flash\"></object>",
                PLUGIN,
            ),
            ("<embed src=\"film.swf\">", PLUGIN),
            ("<applet code=\"A.class\"></applet>", PLUGIN),
            (
                "<svg><foreignObject><form></form></foreignObject></svg>",
                FORM,
            ),
        ] {
            assert_eq!(code(&letter(html)), Some(want), "{html}");
        }
        // A frameset document.
        assert_eq!(
            code("<html><frameset><frame src=\"a.html\"></frameset></html>"),
            Some(FRAME)
        );
        // Buttons and inputs outside a form submit nothing.
        assert_eq!(
            check(letter("<button type=\"button\">OK</button>").as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn links_need_target_blank_hr_no_align_td_not_empty() {
        for (html, want) in [
            (
                "<a href=\"https://www.kommune.no/\">x</a>",
                LINK_WITHOUT_TARGET_BLANK,
            ),
            (
                "<a href=\"mailto:post@kommune.no\" target=\"_self\">x</a>",
                LINK_WITHOUT_TARGET_BLANK,
            ),
            (
                "<map><area href=\"https://x.example/\"></map>",
                LINK_WITHOUT_TARGET_BLANK,
            ),
            ("<hr align=\"center\">", HR_ALIGN),
            ("<table><tr><td></td></tr></table>", EMPTY_TD),
            ("<table><tr><td><!-- tom --></td></tr></table>", EMPTY_TD),
        ] {
            assert_eq!(code(&letter(html)), Some(want), "{html}");
        }
        // target compares ASCII case-insensitively; a <base target="_blank"> covers all links.
        let upper = letter("<a href=\"https://x.example/\" target=\" _BLANK \">x</a>");
        assert_eq!(check(upper.as_bytes()), Ok(()));
        let base = "<html><head><base target=\"_blank\"></head>\
                    <body><a href=\"https://x.example/\">x</a></body></html>";
        assert_eq!(check(base.as_bytes()), Ok(()));
    }

    #[test]
    fn markup_a_browser_would_build_is_found_wherever_it_hides() {
        for (html, want) in [
            // SVG's <style> is markup, not raw text: the <img> breaks out into HTML.
            (
                "<svg><style><img onerror=alert(1) src=x></style></svg>",
                EVENT_HANDLER,
            ),
            // Parsed with scripting on, <noscript> is raw text and the title attribute ends it.
            (
                "<noscript><p title=\"</noscript><img onerror=alert(1) src=x>\"></noscript>",
                EVENT_HANDLER,
            ),
            // With scripting off (a sandboxed viewer) the <noscript> content is markup.
            (
                "<noscript><img src=\"https://x.example/p.gif\"></noscript>",
                IMAGE_NOT_DATA_URI,
            ),
            ("<template><script>alert(1)</script></template>", SCRIPT),
            (
                "<table><script>alert(1)</script><tr><td>x</td></tr></table>",
                SCRIPT,
            ),
            // <mglyph> in <mtext> stays MathML, and so does its <style>: its content is markup.
            (
                "<math><mtext><mglyph><style><img onerror=alert(1) src=x>",
                EVENT_HANDLER,
            ),
        ] {
            assert_eq!(code(&letter(html)), Some(want), "{html}");
        }
        // In a table the same <mglyph> is foster-parented as HTML, its <style> is raw text,
        // and the <img> is text (it only became markup when a sanitizer re-serialized it).
        let fostered = letter("<math><mtext><table><mglyph><style><img onerror=alert(1) src=x>");
        assert_eq!(check(fostered.as_bytes()), Ok(()));
        // Text that only looks like markup is text.
        let text =
            letter("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p><textarea><script></textarea>");
        assert_eq!(check(text.as_bytes()), Ok(()));
        // Attributes merged into <body> by a second <body> tag are checked.
        assert_eq!(
            code(&letter("<body onload=\"alert(1)\">")),
            Some(EVENT_HANDLER)
        );
    }

    #[test]
    fn encodings() {
        // UTF-16 with a byte order mark is read as UTF-16.
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "<script>alert(1)</script>".encode_utf16() {
            utf16.extend(u.to_le_bytes());
        }
        assert_eq!(check(&utf16).err().map(|v| v.code), Some(SCRIPT));
        // ISO-2022-JP escape sequences could hide "<script>" from a UTF-8 reading.
        assert_eq!(
            check(b"<meta charset=\"iso-2022-jp\"><scr\x1b(Bipt>alert(1)</script>")
                .err()
                .map(|v| v.code),
            Some(UNSUPPORTED_ENCODING)
        );
        // Latin-1 bytes are not UTF-8 and still read right.
        assert_eq!(check(b"<p>Bl\xe5b\xe6r</p>"), Ok(()));
    }

    #[test]
    fn limits_are_enforced_without_exhausting_anything() {
        let deep = "<div>".repeat(MAX_DEPTH as usize + 10);
        assert_eq!(code(&deep), Some(TOO_COMPLEX));
        let deep = "<b>".repeat(100_000);
        assert_eq!(code(&deep), Some(TOO_COMPLEX));
        // Reconstructing many formatting elements over and over (quadratic in browsers).
        let mut blowup: String = (0..2000).map(|i| format!("<b id=b{i}>")).collect();
        blowup.push_str(&"<p>x".repeat(50_000));
        assert_eq!(code(&blowup), Some(TOO_COMPLEX));
        let wide = "<span>x</span>".repeat(MAX_NODES / 2 + 10);
        assert_eq!(code(&wide), Some(TOO_COMPLEX));
        let css = format!("<style>{}</style>", "(".repeat(10_000));
        assert_eq!(code(&css), Some(TOO_COMPLEX));
        // A large ordinary letter passes.
        let rows = "<tr><td>Ola</td><td>Nordmann</td></tr>".repeat(20_000);
        assert_eq!(
            check(letter(&format!("<table>{rows}</table>")).as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn every_code_is_listed_and_no_input_panics() {
        let mut seen = std::collections::HashSet::new();
        let corpus = [
            letter("<script>x</script><img src=y onerror=z><form><iframe>"),
            letter(&format!("<a href=\"https://x\">y</a><img src=\"{PNG}\">")),
            "<svg><![CDATA[<script>]]></svg><math><annotation-xml encoding=\"text/html\"><script>"
                .into(),
            "<table><td><table><caption><b><i><table><td></b><frameset>".into(),
        ];
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        for doc in &corpus {
            let bytes = doc.as_bytes();
            for _ in 0..300 {
                let mut b = bytes.to_vec();
                for _ in 0..4 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng as usize) % b.len();
                    b[i] = (rng >> 32) as u8;
                }
                if let Err(v) = check(&b) {
                    seen.insert(v.code);
                }
                let cut = (rng as usize) % b.len();
                if let Err(v) = check(&b[..cut]) {
                    seen.insert(v.code);
                }
            }
        }
        for c in seen {
            assert!(ALL_CODES.contains(&c), "{c}");
        }
    }

    #[test]
    fn srcset_and_urls_read_as_browsers_read_them() {
        assert_eq!(
            srcset_urls("a.png 1x, data:image/png;base64,AA== 2x,b.png,, c.png (x, y) 3w"),
            vec!["a.png", "data:image/png;base64,AA==", "b.png", "c.png"]
        );
        assert_eq!(classify("  \u{1}DaTa:image/png,x"), UrlKind::Data);
        assert_eq!(classify("java\nscript:x"), UrlKind::Script);
        assert_eq!(classify("//x.example/"), UrlKind::Other);
        assert_eq!(classify("\t#top"), UrlKind::Fragment);
        assert_eq!(classify(" \n"), UrlKind::Empty);
        assert_eq!(
            data_url_payload("data:text/css,a%7Bcolor:red%7D").as_deref(),
            Some(&b"a{color:red}"[..])
        );
        assert_eq!(
            data_url_payload("data:text/css;BASE64,YQ").as_deref(),
            Some(&b"a"[..])
        );
    }
}
