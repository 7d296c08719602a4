use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{IdError, digits, mod11_remainder};

/// Which control-digit rule to apply.
///
/// Numbers issued before 2032 satisfy the classic rule (weighted sums ≡ 0 mod 11). From
/// 2032-01-01 Skatteetaten relaxes the first control digit: the weighted sum over d1..d10 may
/// leave 0, 1, 2 or 3. The relaxed rule accepts every classic number, so it is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlDigitRule {
    Classic,
    #[default]
    Relaxed2032,
}

/// What a caller accepts when parsing a fødselsnummer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FnrPolicy {
    /// Accept synthetic test numbers (Tenor, month + 80). On in dev and test, off in production.
    pub allow_synthetic: bool,
    pub rule: ControlDigitRule,
}

impl FnrPolicy {
    /// Production: real numbers only.
    pub const PRODUCTION: Self = Self {
        allow_synthetic: false,
        rule: ControlDigitRule::Relaxed2032,
    };
    /// Development and tests: synthetic numbers too.
    pub const PERMISSIVE: Self = Self {
        allow_synthetic: true,
        rule: ControlDigitRule::Relaxed2032,
    };
}

impl Default for FnrPolicy {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

/// The kind of person identifier, read from the date digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FnrKind {
    Fodselsnummer,
    /// D-nummer: day + 40, for people without a Norwegian birth registration.
    DNummer,
    /// H-nummer: month + 40, an auxiliary number.
    HNummer,
}

/// A Norwegian national identity number (fødselsnummer, D-nummer or H-nummer), possibly a
/// synthetic test number. `Debug` masks the personal part so that it never lands in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fodselsnummer {
    digits: [u8; 11],
    kind: FnrKind,
    synthetic: bool,
}

const K1_WEIGHTS: [u8; 10] = [3, 7, 6, 1, 8, 9, 4, 5, 2, 1];
const K2_WEIGHTS: [u8; 11] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1];

impl Fodselsnummer {
    pub fn parse(s: &str, policy: &FnrPolicy) -> Result<Self, IdError> {
        let d = digits::<11>(s.trim())?;
        let [d1, d2, d3, d4, d5, d6, ..] = d;
        let mut day = d1 * 10 + d2;
        let mut month = d3 * 10 + d4;
        let year = d5 * 10 + d6;

        let mut kind = FnrKind::Fodselsnummer;
        let mut synthetic = false;
        if day > 40 {
            day -= 40;
            kind = FnrKind::DNummer;
        }
        if month > 80 {
            month -= 80;
            synthetic = true;
        } else if month > 40 {
            month -= 40;
            if kind == FnrKind::DNummer {
                return Err(IdError::Date);
            }
            kind = FnrKind::HNummer;
        }
        if !valid_date(day, month, year) {
            return Err(IdError::Date);
        }
        if !control_digits_ok(&d, policy.rule) {
            return Err(IdError::ControlDigit);
        }
        if synthetic && !policy.allow_synthetic {
            return Err(IdError::SyntheticNotAllowed);
        }
        Ok(Self {
            digits: d,
            kind,
            synthetic,
        })
    }

    /// Builds a valid number from the first nine digits by computing classic control digits.
    /// `None` when no control digit fits (a remainder of 10). For generators and fixtures.
    pub fn complete_classic(first_nine: [u8; 9], policy: &FnrPolicy) -> Option<Self> {
        let k1 = classic_control(&first_nine, &K1_WEIGHTS)?;
        let mut ten = [0u8; 10];
        ten[..9].copy_from_slice(&first_nine);
        ten[9] = k1;
        let k2 = classic_control(&ten, &K2_WEIGHTS)?;
        let s: String = ten
            .iter()
            .chain(std::iter::once(&k2))
            .map(|d| char::from(b'0' + d))
            .collect();
        Self::parse(&s, policy).ok()
    }

    pub fn kind(&self) -> FnrKind {
        self.kind
    }

    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    pub fn as_string(&self) -> String {
        self.digits.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

fn classic_control(digits: &[u8], weights: &[u8]) -> Option<u8> {
    match 11 - mod11_remainder(digits, weights) {
        11 => Some(0),
        10 => None,
        k => Some(k as u8),
    }
}

fn control_digits_ok(d: &[u8; 11], rule: ControlDigitRule) -> bool {
    // Including the control digit itself (weight 1) turns "k = 11 - r" into "sum ≡ 0 mod 11".
    let r1 = mod11_remainder(d, &K1_WEIGHTS);
    let r2 = mod11_remainder(d, &K2_WEIGHTS);
    let k1_ok = match rule {
        ControlDigitRule::Classic => r1 == 0,
        ControlDigitRule::Relaxed2032 => r1 <= 3,
    };
    k1_ok && r2 == 0
}

fn valid_date(day: u8, month: u8, yy: u8) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        // The century is not certain from the digits alone (and the 2032 scheme widens the
        // individual numbers), so 29 February is accepted in every year divisible by four.
        2 if yy.is_multiple_of(4) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=max).contains(&day)
}

impl fmt::Debug for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_string();
        write!(f, "Fodselsnummer({}*****)", s.get(..6).unwrap_or(""))
    }
}

impl fmt::Display for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// Parses permissively (synthetic numbers accepted); services check `is_synthetic` against
/// their own policy at the boundary.
impl FromStr for Fodselsnummer {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s, &FnrPolicy::PERMISSIVE)
    }
}

impl TryFrom<String> for Fodselsnummer {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<Fodselsnummer> for String {
    fn from(f: Fodselsnummer) -> String {
        f.as_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: FnrPolicy = FnrPolicy::PERMISSIVE;

    #[test]
    fn synthetic_vector_from_tenor() {
        // The Tenor number used in Digdir's DPI test data (month + 80).
        let f = Fodselsnummer::parse("04817197073", &P).unwrap();
        assert!(f.is_synthetic());
        assert_eq!(f.kind(), FnrKind::Fodselsnummer);
        assert_eq!(
            Fodselsnummer::parse("04817197073", &FnrPolicy::PRODUCTION),
            Err(IdError::SyntheticNotAllowed)
        );
    }

    #[test]
    fn documentation_placeholders_are_invalid() {
        for bad in ["17051400000", "17058400000", "01013300001"] {
            assert!(Fodselsnummer::parse(bad, &P).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_and_dates() {
        let base = Fodselsnummer::complete_classic([0, 1, 0, 1, 9, 0, 1, 2, 3], &P);
        let d = Fodselsnummer::complete_classic([4, 1, 0, 1, 9, 0, 1, 2, 3], &P);
        let h = Fodselsnummer::complete_classic([0, 1, 4, 1, 9, 0, 1, 2, 3], &P);
        for (f, kind) in [
            (base, FnrKind::Fodselsnummer),
            (d, FnrKind::DNummer),
            (h, FnrKind::HNummer),
        ] {
            if let Some(f) = f {
                assert_eq!(f.kind(), kind);
            }
        }
        assert_eq!(
            Fodselsnummer::parse("31020012345", &P),
            Err(IdError::Date),
            "31 February"
        );
        assert_eq!(
            Fodselsnummer::parse("0101901234", &P).unwrap_err().code(),
            "invalid_length"
        );
    }

    #[test]
    fn debug_masks_personal_digits() {
        let f = Fodselsnummer::parse("04817197073", &P).unwrap();
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("97073"), "{dbg}");
        assert!(dbg.contains("048171"));
    }

    /// A number valid only under the 2032 rule: first control digit chosen so that the K1
    /// remainder is 2 (not 0), then K2 fitted to it.
    fn relaxed_only(first_nine: [u8; 9]) -> Option<String> {
        let r = mod11_remainder(&first_nine, &K1_WEIGHTS);
        // sum + k1 ≡ 2 (mod 11) with k1 a digit.
        let k1 = ((2 + 11 - r) % 11) as u8;
        if k1 > 9 {
            return None;
        }
        let mut ten = [0u8; 10];
        ten[..9].copy_from_slice(&first_nine);
        ten[9] = k1;
        let k2 = classic_control(&ten, &K2_WEIGHTS)?;
        Some(
            ten.iter()
                .chain(std::iter::once(&k2))
                .map(|d| char::from(b'0' + d))
                .collect(),
        )
    }

    fn date_prefix() -> impl Strategy<Value = [u8; 9]> {
        (1u8..=28, 1u8..=12, 0u8..=99, 0u16..=999, 0u8..=3).prop_map(
            |(day, month, yy, ind, variant)| {
                let (day, month) = match variant {
                    1 => (day + 40, month),
                    2 => (day, month + 40),
                    3 => (day, month + 80),
                    _ => (day, month),
                };
                [
                    day / 10,
                    day % 10,
                    month / 10,
                    month % 10,
                    yy / 10,
                    yy % 10,
                    (ind / 100) as u8,
                    (ind / 10 % 10) as u8,
                    (ind % 10) as u8,
                ]
            },
        )
    }

    proptest! {
        #[test]
        fn classic_numbers_valid_under_both_rules(prefix in date_prefix()) {
            if let Some(f) = Fodselsnummer::complete_classic(prefix, &P) {
                let s = f.to_string();
                let classic = FnrPolicy { allow_synthetic: true, rule: ControlDigitRule::Classic };
                prop_assert_eq!(Fodselsnummer::parse(&s, &classic).unwrap(), f);
                prop_assert_eq!(Fodselsnummer::parse(&s, &P).unwrap(), f);
                prop_assert_eq!(f.is_synthetic(), prefix[2] >= 8);
                // Changing the last digit always breaks K2.
                let last = s.as_bytes()[10] - b'0';
                let other = format!("{}{}", &s[..10], (last + 1) % 10);
                prop_assert_eq!(Fodselsnummer::parse(&other, &P), Err(IdError::ControlDigit));
            }
        }

        #[test]
        fn relaxed_numbers_need_the_2032_rule(prefix in date_prefix()) {
            if let Some(s) = relaxed_only(prefix) {
                let classic = FnrPolicy { allow_synthetic: true, rule: ControlDigitRule::Classic };
                prop_assert_eq!(Fodselsnummer::parse(&s, &classic), Err(IdError::ControlDigit));
                prop_assert!(Fodselsnummer::parse(&s, &P).is_ok());
            }
        }

        #[test]
        fn accepted_strings_are_eleven_digits(s in "[0-9 a]{0,13}") {
            if let Ok(f) = Fodselsnummer::parse(&s, &P) {
                prop_assert_eq!(f.to_string(), s.trim());
                prop_assert_eq!(f.to_string().len(), 11);
            }
        }
    }
}
