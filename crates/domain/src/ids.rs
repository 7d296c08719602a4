use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::IdError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| IdError::Malformed("expected a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// SBD `documentIdentification.instanceIdentifier`: unique per DPI message.
    MessageId
);
uuid_id!(
    /// SBD `ConversationId` scope: shared by a message and all its receipts.
    ConversationId
);
uuid_id!(
    /// A letter as stored by a mailbox or a sender.
    LetterId
);
uuid_id!(
    /// A row in the durable job/outbox table.
    JobId
);

/// A citizen's address at a mailbox provider, as KRR gives it (opaque; e.g. `ola.nordmann#9YDT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Postkasseadresse(String);

impl Postkasseadresse {
    /// Limit from the DPI JSON schema (`postkasseadresse`, maxLength 100).
    pub const MAX_LEN: usize = 100;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Malformed("postkasseadresse is empty"));
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(IdError::Malformed(
                "postkasseadresse is longer than 100 characters",
            ));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(IdError::Malformed(
                "postkasseadresse contains whitespace or control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Postkasseadresse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Postkasseadresse {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Postkasseadresse> for String {
    fn from(p: Postkasseadresse) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postkasseadresse_limits() {
        assert_eq!(
            Postkasseadresse::parse("ola.nordmann#9YDT")
                .unwrap()
                .as_str(),
            "ola.nordmann#9YDT"
        );
        assert!(Postkasseadresse::parse("").is_err());
        assert!(Postkasseadresse::parse("a b").is_err());
        assert!(Postkasseadresse::parse(&"x".repeat(101)).is_err());
        assert!(Postkasseadresse::parse(&"x".repeat(100)).is_ok());
    }

    #[test]
    fn uuid_ids() {
        let id = MessageId::parse("ff88849c-e281-4809-8555-7cd54952b916").unwrap();
        assert_eq!(id.to_string(), "ff88849c-e281-4809-8555-7cd54952b916");
        assert!(MessageId::parse("not-a-uuid").is_err());
        assert_ne!(LetterId::new(), LetterId::new());
    }
}
