//! Where a request stands (a friend request, a group invitation, a join request): `pending`
//! until it is decided. Stored as its wire name, compared as an enum.

use serde::Serialize;

/// The state of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Not decided yet.
    Pending,
    /// Accepted by whoever decides it.
    Accepted,
    /// Rejected (the requester is told).
    Rejected,
    /// Friend requests only: decided silently, shown to the requester as still pending.
    Ignored,
}

impl RequestStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
        }
    }

    /// The status of a wire or stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Rejected, Self::Ignored]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl TryFrom<String> for RequestStatus {
    type Error = String;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        Self::from_name(&stored).ok_or_else(|| format!("unknown stored status {stored:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_its_own_name() {
        for status in [
            RequestStatus::Pending,
            RequestStatus::Accepted,
            RequestStatus::Rejected,
            RequestStatus::Ignored,
        ] {
            assert_eq!(RequestStatus::from_name(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap_or_default(),
                status.as_str()
            );
        }
        assert_eq!(RequestStatus::from_name("Pending"), None);
        assert!(RequestStatus::try_from("done".to_owned()).is_err());
    }
}
