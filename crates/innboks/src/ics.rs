//! iCalendar (RFC 5545) export of an `arrangement`: one `VEVENT` per `tidsrom`, times in UTC,
//! text escaped and lines folded at 75 octets.

use dpi::container::Arrangement;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

use crate::views::parse_xsd_datetime;

fn utc(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

/// RFC 5545 §3.3.11 TEXT escaping.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            ';' => o.push_str("\\;"),
            ',' => o.push_str("\\,"),
            '\n' => o.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// Folds a content line at 75 octets without splitting a UTF-8 character.
fn fold(line: &str, out: &mut String) {
    let mut n = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if n + len > 75 {
            out.push_str("\r\n ");
            n = 1;
        }
        out.push(c);
        n += len;
    }
    out.push_str("\r\n");
}

/// The calendar file; `uid_base` makes the event ids stable (the letter id).
pub fn calendar(a: &Arrangement, uid_base: &str, now: OffsetDateTime) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//samspill//innboks//NO".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
    ];
    let m = &a.moteplass;
    let location = [
        Some(m.navn.clone()),
        m.gateadresse.clone(),
        [m.postnummer.clone(), m.sted.clone()]
            .into_iter()
            .flatten()
            .reduce(|a, b| format!("{a} {b}")),
        m.land.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let mut description = a
        .oppmote_informasjon
        .as_ref()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    for i in &a.info {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&format!("{}: {}", i.tittel.text, i.tekst.text));
    }
    for (i, t) in a.tidsrom.iter().enumerate() {
        let Some(start) = t.fra.as_deref().and_then(parse_xsd_datetime) else {
            continue;
        };
        let end = t.til.as_deref().and_then(parse_xsd_datetime);
        lines.push("BEGIN:VEVENT".into());
        lines.push(format!("UID:{}-{i}@innboks.samspill", escape(uid_base)));
        lines.push(format!("DTSTAMP:{}", utc(now)));
        lines.push(format!("DTSTART:{}", utc(start)));
        if let Some(e) = end.filter(|e| *e > start) {
            lines.push(format!("DTEND:{}", utc(e)));
        }
        lines.push(format!("SUMMARY:{}", escape(&a.tittel.text)));
        lines.push(format!("LOCATION:{}", escape(&location)));
        if !description.is_empty() {
            lines.push(format!("DESCRIPTION:{}", escape(&description)));
        }
        lines.push("END:VEVENT".into());
    }
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpi::container::{Moteplass, Tekst, Tidsrom};
    use time::macros::datetime;

    fn sample() -> Arrangement {
        Arrangement {
            tittel: Tekst::new("Valg; kommunestyre, 2027", "no"),
            tidsrom_tittel: None,
            tidsrom: vec![
                Tidsrom {
                    fra: Some("2027-09-13T09:00:00+02:00".into()),
                    til: Some("2027-09-13T21:00:00+02:00".into()),
                },
                Tidsrom {
                    fra: None,
                    til: None,
                },
            ],
            oppmote_informasjon: Some(Tekst::new(
                "Ta med legitimasjon.\nHusk valgkortet. ".repeat(4),
                "no",
            )),
            moteplass: Moteplass {
                tittel: Tekst::new("Valglokale", "no"),
                navn: "Rådhuset".into(),
                gateadresse: Some("Storgata 1".into()),
                postnummer: Some("0473".into()),
                sted: Some("Oslo".into()),
                land: None,
            },
            strekkode: None,
            info: vec![],
            lenker: vec![],
        }
    }

    #[test]
    fn one_event_per_dated_period_in_utc() {
        let ics = calendar(&sample(), "abc", datetime!(2027-01-01 00:00 UTC));
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(ics.matches("BEGIN:VEVENT").count(), 1);
        assert!(ics.contains("DTSTART:20270913T070000Z\r\n"));
        assert!(ics.contains("DTEND:20270913T190000Z\r\n"));
        assert!(ics.contains("SUMMARY:Valg\\; kommunestyre\\, 2027\r\n"));
        assert!(ics.contains("LOCATION:Rådhuset\\, Storgata 1\\, 0473 Oslo\r\n"));
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{line}");
        }
        // Unfolding gives back the escaped description.
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains("DESCRIPTION:Ta med legitimasjon.\\nHusk valgkortet."));
    }
}
