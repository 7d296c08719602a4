//! View models of the smart views (`lenke`, `arrangement`, `bevis`) and the date formatting
//! they share: pure functions of the extension and the current time, so they are tested
//! without a server.

use dpi::container::{
    Arrangement, Bevis, Gyldighetsperiode, Lenke, Maanedstidspunkt, Strekkode, StrekkodeType, Tekst,
};
use time::{
    Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset,
    format_description::well_known::Rfc3339, macros::format_description,
};

use crate::i18n::{Lang, Tr};

/// Norwegian civil time: CET, CEST from the last Sunday of March to the last Sunday of
/// October (01:00 UTC both ways, the EU rule).
pub fn oslo_offset(t: OffsetDateTime) -> UtcOffset {
    let utc = t.to_offset(UtcOffset::UTC);
    // EU rule: summer time from the last Sunday of March to the last Sunday of October, both
    // at 01:00 UTC. Only those two months need the date arithmetic (a page shows 20 dates).
    let last_sunday = |m: Month| -> Option<OffsetDateTime> {
        let d = Date::from_calendar_date(utc.year(), m, 31).ok()?;
        let d = d.checked_sub(time::Duration::days(i64::from(
            d.weekday().number_days_from_sunday(),
        )))?;
        Some(PrimitiveDateTime::new(d, Time::from_hms(1, 0, 0).ok()?).assume_utc())
    };
    let summer = match utc.month() {
        Month::March => last_sunday(Month::March).is_some_and(|a| utc >= a),
        Month::October => last_sunday(Month::October).is_some_and(|b| utc < b),
        m => (4..=9).contains(&u8::from(m)),
    };
    UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0).unwrap_or(UtcOffset::UTC)
}

pub fn to_oslo(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(oslo_offset(t))
}

fn month_name(l: Lang, m: Month) -> &'static str {
    let i = u8::from(m) as usize - 1;
    let nb = [
        "januar",
        "februar",
        "mars",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "desember",
    ];
    let en = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match l {
        Lang::En => en.get(i).copied().unwrap_or(""),
        _ => nb.get(i).copied().unwrap_or(""),
    }
}

/// The Norwegian calendar day of a moment, for `<time datetime="{{ d.iso() }}">{{ d }}</time>`:
/// converted once and written straight into the page (an inbox row's two date strings were 3%
/// of the page's CPU in perf).
#[derive(Debug, Clone, Copy)]
pub struct ShownDay {
    lang: Lang,
    date: Date,
}

impl ShownDay {
    pub fn of(lang: Lang, t: OffsetDateTime) -> Self {
        ShownDay {
            lang,
            date: to_oslo(t).date(),
        }
    }

    /// `YYYY-MM-DD`, for `<time datetime>`.
    pub fn iso(self) -> IsoDay {
        IsoDay(self.date)
    }
}

/// "3. mars 2026" / "3 March 2026".
impl std::fmt::Display for ShownDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.date;
        let month = month_name(self.lang, d.month());
        match self.lang {
            Lang::En => write!(f, "{} {month} {}", d.day(), d.year()),
            _ => write!(f, "{}. {month} {}", d.day(), d.year()),
        }
    }
}

/// A calendar day as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct IsoDay(Date);

impl std::fmt::Display for IsoDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    }
}

/// "3. mars 2026" / "3 March 2026".
pub fn date(l: Lang, t: OffsetDateTime) -> String {
    ShownDay::of(l, t).to_string()
}

/// "3. mars 2026 kl. 14:05" / "3 March 2026 at 14:05".
pub fn date_time(l: Lang, t: OffsetDateTime) -> String {
    let o = to_oslo(t);
    let at = match l {
        Lang::En => "at",
        _ => "kl.",
    };
    format!("{} {at} {:02}:{:02}", date(l, t), o.hour(), o.minute())
}

/// Machine-readable form for `<time datetime>`.
pub fn iso(t: OffsetDateTime) -> String {
    to_oslo(t).format(&Rfc3339).unwrap_or_default()
}

/// An `xsd:dateTime` (timezone optional; without one it is Norwegian local time).
pub fn parse_xsd_datetime(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let fmt_frac = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let p = PrimitiveDateTime::parse(s, &fmt)
        .or_else(|_| PrimitiveDateTime::parse(s, &fmt_frac))
        .ok()?;
    // Local time: take the offset in force at that moment (an hour off at most at the switch).
    let guess = p.assume_utc();
    Some(p.assume_offset(oslo_offset(guess)))
}

/// Picks the text; the extensions carry one language each.
pub fn text(t: &Option<Tekst>) -> Option<String> {
    t.as_ref().map(|t| t.text.clone())
}

/// Only `http(s)` links are ever made clickable.
pub fn safe_url(u: &str) -> Option<String> {
    let parsed = url::Url::parse(u.trim()).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

/// A lenke ready for the page.
#[derive(Debug, Clone)]
pub struct LenkeView {
    pub url: Option<String>,
    pub button: String,
    pub description: String,
    pub deadline: Option<String>,
    pub deadline_iso: Option<String>,
    pub expired: bool,
}

pub fn lenke(tr: Tr, l: &Lenke, now: OffsetDateTime) -> LenkeView {
    let frist = l.frist.as_deref().and_then(parse_xsd_datetime);
    LenkeView {
        url: safe_url(&l.url),
        button: text(&l.knapp_tekst).unwrap_or_else(|| tr.lenke_default_button().to_owned()),
        description: text(&l.beskrivelse).unwrap_or_else(|| tr.lenke_default_text().to_owned()),
        deadline: frist.map(|f| date_time(tr.0, f)),
        deadline_iso: frist.map(iso),
        expired: frist.is_some_and(|f| f < now),
    }
}

/// One period of an arrangement.
#[derive(Debug, Clone)]
pub struct Period {
    pub text: String,
    pub iso: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ArrangementView {
    pub title: String,
    pub times_title: Option<String>,
    pub times: Vec<Period>,
    pub attendance: Option<String>,
    pub place_title: String,
    pub place_lines: Vec<String>,
    pub barcode: Option<BarcodeView>,
    pub info: Vec<(String, String)>,
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct BarcodeView {
    pub title: Option<String>,
    pub svg: String,
    pub value: String,
    pub show_value: bool,
    pub text: Option<String>,
    pub kind: &'static str,
}

fn period_text(l: Lang, fra: Option<OffsetDateTime>, til: Option<OffsetDateTime>) -> String {
    match (fra, til) {
        (Some(a), Some(b)) if to_oslo(a).date() == to_oslo(b).date() => {
            let b = to_oslo(b);
            format!("{}–{:02}:{:02}", date_time(l, a), b.hour(), b.minute())
        }
        (Some(a), Some(b)) => format!("{} – {}", date_time(l, a), date_time(l, b)),
        (Some(a), None) => date_time(l, a),
        (None, Some(b)) => format!("– {}", date_time(l, b)),
        (None, None) => String::new(),
    }
}

pub fn barcode(s: &Strekkode, label: &str) -> Option<BarcodeView> {
    let svg = match s.kind {
        StrekkodeType::Code128 => crate::barcode::code128_svg(&s.verdi, label),
        StrekkodeType::Code39 => crate::barcode::code39_svg(&s.verdi, label),
    }
    .ok()?;
    Some(BarcodeView {
        title: text(&s.tittel),
        svg,
        value: s.verdi.clone(),
        show_value: s.vis_verdi.unwrap_or(true),
        text: text(&s.tekst),
        kind: s.kind.as_str(),
    })
}

pub fn arrangement(tr: Tr, a: &Arrangement) -> ArrangementView {
    let times = a
        .tidsrom
        .iter()
        .map(|t| {
            let fra = t.fra.as_deref().and_then(parse_xsd_datetime);
            let til = t.til.as_deref().and_then(parse_xsd_datetime);
            Period {
                text: period_text(tr.0, fra, til),
                iso: fra.map(iso),
            }
        })
        .filter(|p| !p.text.is_empty())
        .collect();
    let m = &a.moteplass;
    let mut place_lines = vec![m.navn.clone()];
    if let Some(g) = &m.gateadresse {
        place_lines.push(g.clone());
    }
    let city = [m.postnummer.clone(), m.sted.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !city.is_empty() {
        place_lines.push(city);
    }
    if let Some(l) = &m.land {
        place_lines.push(l.clone());
    }
    let label = format!("{}: {}", tr.barcode(), a.tittel.text);
    ArrangementView {
        title: a.tittel.text.clone(),
        times_title: text(&a.tidsrom_tittel),
        times,
        attendance: text(&a.oppmote_informasjon),
        place_title: m.tittel.text.clone(),
        place_lines,
        barcode: a.strekkode.as_ref().and_then(|s| barcode(s, &label)),
        info: a
            .info
            .iter()
            .map(|i| (i.tittel.text.clone(), i.tekst.text.clone()))
            .collect(),
        links: a
            .lenker
            .iter()
            .filter_map(|l| safe_url(&l.url).map(|u| (l.navn.text.clone(), u)))
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub struct BevisView {
    pub issuer: Option<String>,
    pub background: String,
    /// Black or white, whichever reads better on the background.
    pub foreground: &'static str,
    pub title: String,
    pub holder: String,
    pub id_name: Option<String>,
    pub id_value: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub info: Vec<(Option<String>, String)>,
    pub validity: Option<String>,
    pub issued: Option<String>,
    pub valid_now: bool,
}

fn channel(hex: &str, i: usize) -> f64 {
    let v = hex
        .get(i..i + 2)
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    let c = f64::from(v) / 255.0;
    if c <= 0.03928 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// WCAG relative luminance of `#rrggbb`.
pub fn luminance(color: &str) -> f64 {
    let h = color.trim_start_matches('#');
    0.2126 * channel(h, 0) + 0.7152 * channel(h, 2) + 0.0722 * channel(h, 4)
}

/// The text colour with the better contrast on `background`.
pub fn foreground_for(background: &str) -> &'static str {
    let l = luminance(background);
    let on_black = (l + 0.05) / 0.05;
    let on_white = 1.05 / (l + 0.05);
    if on_black >= on_white {
        "#000000"
    } else {
        "#ffffff"
    }
}

fn valid_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
}

fn offset_of(tz: Option<&str>) -> UtcOffset {
    let Some(tz) = tz else {
        return UtcOffset::from_hms(2, 0, 0).unwrap_or(UtcOffset::UTC);
    };
    if tz == "Z" {
        return UtcOffset::UTC;
    }
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let digits: String = tz.chars().filter(char::is_ascii_digit).collect();
    let h = digits
        .get(0..2)
        .and_then(|d| d.parse::<i8>().ok())
        .unwrap_or(0);
    let m = digits
        .get(2..4)
        .and_then(|d| d.parse::<i8>().ok())
        .unwrap_or(0);
    UtcOffset::from_hms(sign * h, sign * m, 0).unwrap_or(UtcOffset::UTC)
}

fn month_point(year: i32, p: &Maanedstidspunkt) -> Option<OffsetDateTime> {
    let month = Month::try_from(p.maaned).ok()?;
    let day = p.dag.unwrap_or(1).min(month.length(year));
    let d = Date::from_calendar_date(year, month, day).ok()?;
    let t = Time::from_hms(p.time.unwrap_or(0), p.minutt.unwrap_or(0), 0).ok()?;
    Some(PrimitiveDateTime::new(d, t).assume_offset(offset_of(p.tidssone.as_deref())))
}

fn month_point_text(l: Lang, p: &Maanedstidspunkt) -> String {
    let m = Month::try_from(p.maaned).unwrap_or(Month::January);
    let d = p.dag.unwrap_or(1);
    match l {
        Lang::En => format!("{d} {}", month_name(l, m)),
        _ => format!("{d}. {}", month_name(l, m)),
    }
}

/// Whether a yearly repeating period (e.g. 1 May – 30 September) covers `now`, also when it
/// wraps the new year (1 November – 31 March), within the optional first/last year.
pub fn yearly_valid(
    start_aar: Option<i32>,
    slutt_aar: Option<i32>,
    fra: &Maanedstidspunkt,
    til: &Maanedstidspunkt,
    now: OffsetDateTime,
) -> bool {
    let y = now.year();
    // The period starting last year may still be running (wrap-around), so try both.
    [y - 1, y].into_iter().any(|start_year| {
        if start_aar.is_some_and(|s| start_year < s) || slutt_aar.is_some_and(|e| start_year > e) {
            return false;
        }
        let (Some(a), Some(b0)) = (month_point(start_year, fra), month_point(start_year, til))
        else {
            return false;
        };
        let b = if b0 < a {
            month_point(start_year + 1, til).unwrap_or(b0)
        } else {
            b0
        };
        now >= a && now <= b
    })
}

pub fn bevis(tr: Tr, b: &Bevis, now: OffsetDateTime) -> BevisView {
    let l = tr.0;
    let background = b
        .bakgrunnsfarge
        .clone()
        .filter(|c| valid_color(c))
        .unwrap_or_else(|| "#e6eef8".into());
    let (validity, valid_now) = match &b.gyldighetsperiode {
        None => (None, true),
        Some(Gyldighetsperiode::Periode { fra, til }) => {
            let fra = fra.as_deref().and_then(parse_xsd_datetime);
            let til = til.as_deref().and_then(parse_xsd_datetime);
            let ok = fra.is_none_or(|f| now >= f) && til.is_none_or(|t| now <= t);
            (Some(period_text(l, fra, til)), ok)
        }
        Some(Gyldighetsperiode::AarligRepeterendePeriode {
            start_aar,
            slutt_aar,
            fra,
            til,
        }) => {
            let mut s = format!(
                "{} {} {} {}",
                month_point_text(l, fra),
                tr.to(),
                month_point_text(l, til),
                tr.every_year()
            );
            match (start_aar, slutt_aar) {
                (Some(a), Some(e)) => s.push_str(&format!(" ({a}–{e})")),
                (Some(a), None) => s.push_str(&format!(" ({} {a})", tr.from())),
                (None, Some(e)) => s.push_str(&format!(" ({} {e})", tr.to())),
                (None, None) => {}
            }
            (Some(s), yearly_valid(*start_aar, *slutt_aar, fra, til, now))
        }
    };
    BevisView {
        issuer: text(&b.utsteder_visningsnavn),
        foreground: foreground_for(&background),
        background,
        title: b.tittel.text.clone(),
        holder: format!("{} {}", b.bevisholder.fornavn, b.bevisholder.etternavn),
        id_name: text(&b.bevis_id_navn),
        id_value: b.bevis_id_verdi.clone(),
        attributes: b
            .attributt
            .iter()
            .map(|a| (a.navn.text.clone(), a.verdi.text.clone()))
            .collect(),
        info: b
            .info
            .iter()
            .map(|i| (text(&i.navn), i.verdi.text.clone()))
            .collect(),
        validity,
        issued: b
            .utstedt_tidspunkt
            .as_deref()
            .and_then(parse_xsd_datetime)
            .map(|t| date(l, t)),
        valid_now,
    }
}

/// Human-readable byte size.
pub fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.0} kB", b / 1024.0)
    } else {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn oslo_time_follows_summer_time() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC. Either side of
        // each switch, early and late in the switching months, and a year whose last Sunday
        // of March is the 31st (2024).
        for (t, hours) in [
            (datetime!(2026-01-15 12:00 UTC), 1),
            (datetime!(2026-07-15 12:00 UTC), 2),
            (datetime!(2026-03-29 00:59 UTC), 1),
            (datetime!(2026-03-29 01:00 UTC), 2),
            (datetime!(2026-10-25 01:00 UTC), 1),
            (datetime!(2026-10-25 00:59 UTC), 2),
            (datetime!(2026-03-01 12:00 UTC), 1),
            (datetime!(2026-10-01 12:00 UTC), 2),
            (datetime!(2026-10-31 12:00 UTC), 1),
            (datetime!(2026-02-28 23:59 UTC), 1),
            (datetime!(2026-04-01 00:00 UTC), 2),
            (datetime!(2026-09-30 23:59 UTC), 2),
            (datetime!(2026-11-01 00:00 UTC), 1),
            (datetime!(2024-03-31 00:59 UTC), 1),
            (datetime!(2024-03-31 01:00 UTC), 2),
            (datetime!(2027-03-28 01:00 UTC), 2),
            (datetime!(2027-10-31 00:59 UTC), 2),
            (datetime!(2027-10-31 01:00 UTC), 1),
        ] {
            assert_eq!(oslo_offset(t).whole_hours(), hours, "{t}");
        }
        assert_eq!(
            date_time(Lang::Nb, datetime!(2026-03-03 13:05 UTC)),
            "3. mars 2026 kl. 14:05"
        );
        assert_eq!(
            date(Lang::En, datetime!(2026-12-24 23:30 UTC)),
            "25 December 2026"
        );
        // The machine-readable day is the same Norwegian day as the text next to it.
        let day = |t| ShownDay::of(Lang::Nb, t).iso().to_string();
        assert_eq!(day(datetime!(2026-12-24 23:30 UTC)), "2026-12-25");
        assert_eq!(day(datetime!(2026-07-03 21:59 UTC)), "2026-07-03");
        assert_eq!(day(datetime!(2026-07-03 22:00 UTC)), "2026-07-04");
    }

    #[test]
    fn xsd_datetimes_with_and_without_zone() {
        assert_eq!(
            parse_xsd_datetime("2026-12-15T12:00:00+01:00"),
            Some(datetime!(2026-12-15 11:00 UTC))
        );
        assert_eq!(
            parse_xsd_datetime("2026-07-01T10:00:00"),
            Some(datetime!(2026-07-01 08:00 UTC))
        );
        assert_eq!(parse_xsd_datetime("nonsense"), None);
    }

    #[test]
    fn lenke_defaults_and_expiry() {
        let tr = Lang::Nb.tr();
        let l = Lenke {
            url: "javascript:alert(1)".into(),
            beskrivelse: None,
            knapp_tekst: None,
            frist: Some("2026-01-01T00:00:00Z".into()),
        };
        let v = lenke(tr, &l, datetime!(2026-06-01 00:00 UTC));
        assert_eq!(v.url, None, "only http(s) links");
        assert_eq!(v.button, tr.lenke_default_button());
        assert!(v.expired);
        let v = lenke(tr, &l, datetime!(2025-06-01 00:00 UTC));
        assert!(!v.expired);
    }

    #[test]
    fn yearly_periods_wrap_the_new_year() {
        let p = |m, d| Maanedstidspunkt {
            maaned: m,
            dag: Some(d),
            time: None,
            minutt: None,
            tidssone: Some("+01:00".into()),
        };
        // Season card 1 November – 31 March.
        let (a, b) = (p(11, 1), p(3, 31));
        assert!(yearly_valid(
            None,
            None,
            &a,
            &b,
            datetime!(2026-01-10 12:00 UTC)
        ));
        assert!(yearly_valid(
            None,
            None,
            &a,
            &b,
            datetime!(2026-11-10 12:00 UTC)
        ));
        assert!(!yearly_valid(
            None,
            None,
            &a,
            &b,
            datetime!(2026-06-10 12:00 UTC)
        ));
        // Summer 1 May – 30 September, only 2024–2025.
        let (a, b) = (p(5, 1), p(9, 30));
        assert!(yearly_valid(
            Some(2024),
            Some(2025),
            &a,
            &b,
            datetime!(2025-07-01 12:00 UTC)
        ));
        assert!(!yearly_valid(
            Some(2024),
            Some(2025),
            &a,
            &b,
            datetime!(2026-07-01 12:00 UTC)
        ));
    }

    #[test]
    fn card_text_colour_has_contrast() {
        assert_eq!(foreground_for("#000000"), "#ffffff");
        assert_eq!(foreground_for("#ffff00"), "#000000");
        assert_eq!(foreground_for("#003087"), "#ffffff");
        for bg in ["#777777", "#ff0000", "#00aa00", "#1e90ff"] {
            let fg = foreground_for(bg);
            let (l1, l2) = (luminance(bg), luminance(fg));
            let ratio = (l1.max(l2) + 0.05) / (l1.min(l2) + 0.05);
            assert!(ratio >= 4.5, "{bg} with {fg}: {ratio}");
        }
    }
}
