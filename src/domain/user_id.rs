//! A user id. Stored as an unsigned integer, always a string on the wire so JavaScript clients
//! never lose precision; a JSON number is accepted on input too.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A user's id, serialised as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub u64);

impl UserId {
    /// The id of a path or query value (digits only).
    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        trimmed.parse().ok().filter(|id| *id > 0).map(Self)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let id = match Raw::deserialize(deserializer)? {
            Raw::Number(n) if n > 0 => Some(Self(n)),
            Raw::Number(_) => None,
            Raw::Text(s) => Self::parse(&s),
        };
        id.ok_or_else(|| {
            serde::de::Error::custom(
                "expected a user id (a positive integer, as a string or number)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_a_string_and_accepts_numbers() {
        assert_eq!(serde_json::to_string(&UserId(42)).unwrap(), "\"42\"");
        assert_eq!(
            serde_json::from_str::<UserId>("\"42\"").unwrap(),
            UserId(42)
        );
        assert_eq!(serde_json::from_str::<UserId>("42").unwrap(), UserId(42));
        assert!(serde_json::from_str::<UserId>("\"0\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"4x\"").is_err());
        assert!(serde_json::from_str::<UserId>("-1").is_err());
    }
}
