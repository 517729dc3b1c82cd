//! A point in time as the API shows it: RFC 3339 in UTC with milliseconds
//! (`2026-11-21T10:00:00.123Z`), whichever backend it was read from.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// A point in time, serialised as RFC 3339 with milliseconds (`2026-01-01T12:00:00.000Z`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// The time of Unix milliseconds (None out of range).
    pub fn from_millis(ms: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_millis(ms).map(Self)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_rfc3339_utc_with_milliseconds() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T11:00:00.1234+01:00")
            .map(|t| t.with_timezone(&Utc))
            .map(Timestamp)
            .ok();
        let json = at.map(|t| serde_json::to_string(&t).ok());
        assert_eq!(json, Some(Some("\"2026-11-21T10:00:00.123Z\"".to_owned())));
        let none: Option<Timestamp> = None;
        assert_eq!(serde_json::to_string(&none).ok().as_deref(), Some("null"));
    }
}
