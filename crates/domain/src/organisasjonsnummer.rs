use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{IdError, digits, mod11_remainder};

/// A Norwegian organisation number (9 digits, mod-11 control digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Organisasjonsnummer([u8; 9]);

const ORGNR_WEIGHTS: [u8; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

impl Organisasjonsnummer {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let d = digits::<9>(s.trim())?;
        let (body, control) = d.split_at(8);
        if Some(&control_digit(body)?) != control.first() {
            return Err(IdError::ControlDigit);
        }
        Ok(Self(d))
    }

    /// Completes 8 digits with their control digit, or `None` when no digit fits (remainder 10).
    /// Used by tests and fixture generators.
    pub fn from_prefix(prefix: [u8; 8]) -> Option<Self> {
        let k = control_digit(&prefix).ok()?;
        let mut d = [0u8; 9];
        d[..8].copy_from_slice(&prefix);
        d[8] = k;
        Some(Self(d))
    }

    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// The ISO 6523 actor id `0192:<orgnr>`.
    pub fn actor_id(&self) -> ActorId {
        ActorId(*self)
    }
}

fn control_digit(body: &[u8]) -> Result<u8, IdError> {
    match 11 - mod11_remainder(body, &ORGNR_WEIGHTS) {
        11 => Ok(0),
        10 => Err(IdError::ControlDigit),
        k => Ok(k as u8),
    }
}

impl fmt::Display for Organisasjonsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl FromStr for Organisasjonsnummer {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Organisasjonsnummer {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Organisasjonsnummer> for String {
    fn from(o: Organisasjonsnummer) -> String {
        o.as_string()
    }
}

/// An ISO 6523 actor id for a Norwegian organisation (`iso6523-actorid-upis`).
///
/// Accepts `0192:<orgnr>` and the legacy `9908:<orgnr>` (and a bare orgnr, which the DPI docs
/// say to read as 9908); always written as `0192:<orgnr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorId(Organisasjonsnummer);

impl ActorId {
    /// The authority string used in SBD headers.
    pub const AUTHORITY: &'static str = "iso6523-actorid-upis";

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let orgnr = match s.split_once(':') {
            Some(("0192" | "9908", rest)) => rest,
            Some((scheme, _)) => return Err(IdError::Scheme(scheme.chars().take(8).collect())),
            None => s,
        };
        Organisasjonsnummer::parse(orgnr).map(Self)
    }

    pub fn orgnr(&self) -> Organisasjonsnummer {
        self.0
    }
}

impl From<Organisasjonsnummer> for ActorId {
    fn from(o: Organisasjonsnummer) -> Self {
        Self(o)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0192:{}", self.0)
    }
}

impl FromStr for ActorId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ActorId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<ActorId> for String {
    fn from(a: ActorId) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        // Digdir's and real-world organisation numbers from the DPI vectors.
        for ok in ["991825827", "984661185", "910075918", "974760673"] {
            assert!(Organisasjonsnummer::parse(ok).is_ok(), "{ok}");
        }
        // Placeholders used in the docs fail the control digit.
        for bad in ["123456789", "987654321", "999888999"] {
            assert_eq!(
                Organisasjonsnummer::parse(bad),
                Err(IdError::ControlDigit),
                "{bad}"
            );
        }
        assert_eq!(
            Organisasjonsnummer::parse("99182582"),
            Err(IdError::Length {
                expected: 9,
                got: "99182582".into()
            })
        );
        assert_eq!(
            Organisasjonsnummer::parse("99182582x"),
            Err(IdError::NotDigits)
        );
    }

    #[test]
    fn actor_ids() {
        let a = ActorId::parse("9908:991825827").unwrap();
        assert_eq!(a.to_string(), "0192:991825827");
        assert_eq!(ActorId::parse("0192:991825827").unwrap(), a);
        assert_eq!(ActorId::parse("991825827").unwrap(), a);
        assert!(matches!(
            ActorId::parse("0088:TBCNTRL00002"),
            Err(IdError::Scheme(_))
        ));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0192:991825827\"");
        assert!(serde_json::from_str::<ActorId>("\"0192:123456789\"").is_err());
    }

    proptest! {
        #[test]
        fn generated_numbers_round_trip(prefix in proptest::array::uniform8(0u8..10)) {
            if let Some(o) = Organisasjonsnummer::from_prefix(prefix) {
                let s = o.to_string();
                prop_assert_eq!(Organisasjonsnummer::parse(&s).unwrap(), o);
                // Any single-digit change of the control digit is refused.
                let last = s.as_bytes()[8] - b'0';
                let other = format!("{}{}", &s[..8], (last + 1) % 10);
                prop_assert!(Organisasjonsnummer::parse(&other).is_err());
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,20}") {
            if let Ok(o) = Organisasjonsnummer::parse(&s) {
                prop_assert_eq!(o.to_string(), s.trim());
            }
            if let Ok(a) = ActorId::parse(&s) {
                prop_assert!(s.trim().ends_with(&a.orgnr().to_string()));
            }
        }
    }
}
