//! Barcodes of the `arrangement` extension as SVG: Code 128 (subset B, or subset C for an
//! even number of digits) and Code 39. Small on purpose: the values are at most 20
//! characters (arrangement XSD), and the page needs nothing but black bars on white.

/// Why a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarcodeError {
    #[error("the value is empty")]
    Empty,
    #[error("the value has a character the symbology cannot encode: {0:?}")]
    Unencodable(char),
}

/// Bar/space widths (in modules) of the Code 128 symbols 0–105, starting with a bar.
const C128: [&str; 106] = [
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232",
];
const C128_STOP: &str = "2331112";
const START_B: usize = 104;
const START_C: usize = 105;

/// The Code 128 symbol values of `value` including start and check symbol (not the stop).
pub fn code128_symbols(value: &str) -> Result<Vec<usize>, BarcodeError> {
    if value.is_empty() {
        return Err(BarcodeError::Empty);
    }
    let digits_only = value.bytes().all(|b| b.is_ascii_digit());
    let mut syms = Vec::with_capacity(value.len() + 2);
    if digits_only && value.len().is_multiple_of(2) {
        syms.push(START_C);
        for pair in value.as_bytes().chunks(2) {
            let (a, b) = match pair {
                [a, b] => (*a, *b),
                _ => return Err(BarcodeError::Empty),
            };
            syms.push(usize::from(a - b'0') * 10 + usize::from(b - b'0'));
        }
    } else {
        syms.push(START_B);
        for c in value.chars() {
            if !(' '..='~').contains(&c) {
                return Err(BarcodeError::Unencodable(c));
            }
            syms.push(c as usize - 32);
        }
    }
    let check = syms
        .iter()
        .enumerate()
        .map(|(i, s)| if i == 0 { *s } else { i * s })
        .sum::<usize>()
        % 103;
    syms.push(check);
    Ok(syms)
}

/// Module widths, alternating bar and space, of the whole Code 128 symbol.
pub fn code128_widths(value: &str) -> Result<Vec<u8>, BarcodeError> {
    let mut w = Vec::new();
    for s in code128_symbols(value)? {
        let pattern = C128.get(s).copied().unwrap_or("");
        w.extend(pattern.bytes().map(|b| b - b'0'));
    }
    w.extend(C128_STOP.bytes().map(|b| b - b'0'));
    Ok(w)
}

/// Code 39 patterns, bar first, `w` = wide.
const C39: [(char, &str); 44] = [
    ('0', "nnnwwnwnn"),
    ('1', "wnnwnnnnw"),
    ('2', "nnwwnnnnw"),
    ('3', "wnwwnnnnn"),
    ('4', "nnnwwnnnw"),
    ('5', "wnnwwnnnn"),
    ('6', "nnwwwnnnn"),
    ('7', "nnnwnnwnw"),
    ('8', "wnnwnnwnn"),
    ('9', "nnwwnnwnn"),
    ('A', "wnnnnwnnw"),
    ('B', "nnwnnwnnw"),
    ('C', "wnwnnwnnn"),
    ('D', "nnnnwwnnw"),
    ('E', "wnnnwwnnn"),
    ('F', "nnwnwwnnn"),
    ('G', "nnnnnwwnw"),
    ('H', "wnnnnwwnn"),
    ('I', "nnwnnwwnn"),
    ('J', "nnnnwwwnn"),
    ('K', "wnnnnnnww"),
    ('L', "nnwnnnnww"),
    ('M', "wnwnnnnwn"),
    ('N', "nnnnwnnww"),
    ('O', "wnnnwnnwn"),
    ('P', "nnwnwnnwn"),
    ('Q', "nnnnnnwww"),
    ('R', "wnnnnnwwn"),
    ('S', "nnwnnnwwn"),
    ('T', "nnnnwnwwn"),
    ('U', "wwnnnnnnw"),
    ('V', "nwwnnnnnw"),
    ('W', "wwwnnnnnn"),
    ('X', "nwnnwnnnw"),
    ('Y', "wwnnwnnnn"),
    ('Z', "nwwnwnnnn"),
    ('-', "nwnnnnwnw"),
    ('.', "wwnnnnwnn"),
    (' ', "nwwnnnwnn"),
    ('$', "nwnwnwnnn"),
    ('/', "nwnwnnnwn"),
    ('+', "nwnnnwnwn"),
    ('%', "nnnwnwnwn"),
    ('*', "nwnnwnwnn"),
];

fn c39(c: char) -> Option<&'static str> {
    C39.iter().find(|(k, _)| *k == c).map(|(_, p)| *p)
}

/// Module widths of the Code 39 symbol (`*value*`, wide = 3 modules, one narrow gap
/// between characters). Lower-case letters are read as upper case.
pub fn code39_widths(value: &str) -> Result<Vec<u8>, BarcodeError> {
    if value.is_empty() {
        return Err(BarcodeError::Empty);
    }
    let upper = value.to_ascii_uppercase();
    let mut w = Vec::new();
    let chars = std::iter::once('*')
        .chain(upper.chars())
        .chain(std::iter::once('*'));
    for (i, c) in chars.enumerate() {
        if c == '*' && i != 0 && i != upper.chars().count() + 1 {
            return Err(BarcodeError::Unencodable('*'));
        }
        let p = c39(c).ok_or(BarcodeError::Unencodable(c))?;
        if i > 0 {
            w.push(1);
        }
        w.extend(p.bytes().map(|b| if b == b'w' { 3 } else { 1 }));
    }
    Ok(w)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bars as an SVG image with a 10-module quiet zone; `label` is its accessible name.
pub fn svg(widths: &[u8], label: &str) -> String {
    let module = 2u32;
    let quiet = 10u32;
    let total: u32 = widths.iter().map(|w| u32::from(*w)).sum::<u32>() + 2 * quiet;
    let (w, h) = (total * module, 80u32);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
         height=\"{h}\" role=\"img\" aria-label=\"{l}\" class=\"barcode\"><title>{l}</title>\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\"",
        l = esc(label)
    );
    let mut x = quiet;
    for (i, wd) in widths.iter().enumerate() {
        let wd = u32::from(*wd);
        if i % 2 == 0 {
            out.push_str(&format!(
                "M{} 0h{}v{h}h-{}z",
                x * module,
                wd * module,
                wd * module
            ));
        }
        x += wd;
    }
    out.push_str("\"/></svg>");
    out
}

pub fn code128_svg(value: &str, label: &str) -> Result<String, BarcodeError> {
    Ok(svg(&code128_widths(value)?, label))
}

pub fn code39_svg(value: &str, label: &str) -> Result<String, BarcodeError> {
    Ok(svg(&code39_widths(value)?, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code128_table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for p in C128 {
            assert_eq!(p.len(), 6);
            assert_eq!(
                p.bytes().map(|b| u32::from(b - b'0')).sum::<u32>(),
                11,
                "{p}"
            );
            // Bars (positions 0, 2, 4) always add up to an even number of modules.
            let bars: u32 = p.bytes().step_by(2).map(|b| u32::from(b - b'0')).sum();
            assert_eq!(bars % 2, 0, "{p}");
            assert!(seen.insert(p), "duplicate {p}");
        }
        assert_eq!(
            C128_STOP.bytes().map(|b| u32::from(b - b'0')).sum::<u32>(),
            13
        );
    }

    #[test]
    fn code128_check_symbol() {
        // Start B (104) + "PJJ123C": the classic worked example has check value 55 (879 mod 103).
        let s = code128_symbols("PJJ123C").unwrap();
        assert_eq!(s.first(), Some(&104));
        assert_eq!(s.last(), Some(&55));
        // Even digit strings use subset C: 2 digits per symbol.
        let s = code128_symbols("123456").unwrap();
        assert_eq!(s, vec![105, 12, 34, 56, (105 + 12 + 2 * 34 + 3 * 56) % 103]);
        assert_eq!(code128_symbols(""), Err(BarcodeError::Empty));
        assert_eq!(code128_symbols("æ"), Err(BarcodeError::Unencodable('æ')));
        // 11 modules per symbol + 13 for stop.
        let w = code128_widths("AB").unwrap();
        assert_eq!(w.iter().map(|x| u32::from(*x)).sum::<u32>(), 4 * 11 + 13);
    }

    #[test]
    fn code39_table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (c, p) in C39 {
            assert_eq!(p.len(), 9, "{c}");
            let wide: Vec<usize> = p
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'w')
                .map(|(i, _)| i)
                .collect();
            assert_eq!(wide.len(), 3, "{c}");
            let wide_spaces = wide.iter().filter(|i| *i % 2 == 1).count();
            if "$/+%".contains(c) {
                assert_eq!(wide_spaces, 3, "{c}");
            } else {
                assert_eq!(wide_spaces, 1, "{c}");
            }
            assert!(seen.insert(p), "duplicate pattern for {c}");
        }
    }

    #[test]
    fn code39_frames_with_stars() {
        let w = code39_widths("a1").unwrap();
        // 4 characters × (6 narrow + 3×3 wide) + 3 gaps.
        assert_eq!(w.iter().map(|x| u32::from(*x)).sum::<u32>(), 4 * 15 + 3);
        assert!(code39_widths("A*B").is_err());
        assert!(code39_widths("Æ").is_err());
    }

    #[test]
    fn svg_escapes_the_label_and_draws_every_bar() {
        let s = code128_svg("AB", "<x\"&").unwrap();
        assert!(s.contains("aria-label=\"&lt;x&quot;&amp;\""));
        assert!(!s.contains("<x"));
        let bars = code128_widths("AB").unwrap().len().div_ceil(2);
        assert_eq!(s.matches('M').count(), bars);
    }
}
