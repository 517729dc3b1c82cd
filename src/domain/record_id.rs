//! The id of a stored record (a friend request, a join request, an invitation): an unsigned
//! integer in MySQL, always a string on the wire so JavaScript clients never lose precision.

use std::fmt;

use serde::{Serialize, Serializer};

/// The id of a stored record (a request, an invitation), serialised as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for RecordId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}
