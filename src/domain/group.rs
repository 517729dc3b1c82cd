//! What a group's rules are made of: a member's role and how one joins. Stored as their wire
//! names (`owner`, `approval`, ...), compared as enums.

use serde::Serialize;

use crate::error::{AppError, AppResult};

/// A member's role: exactly one owner; admins and the owner are the managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The one member who owns the group.
    Owner,
    /// A manager appointed by the owner.
    Admin,
    /// Everybody else.
    Member,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Owners and admins manage a group.
    pub fn is_manager(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        match stored.as_str() {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(format!("unknown stored role {stored:?}")),
        }
    }
}

/// How a user gets into a group: `open` (anyone joins), `approval` (a manager decides a
/// request), `invite_only` (only by an addition). The last two are private groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinMode {
    /// Anyone may join.
    Open,
    /// A join is a request a manager decides.
    Approval,
    /// Only managers add people.
    InviteOnly,
}

impl JoinMode {
    /// From a request body's `field`.
    pub fn parse(raw: &str, field: &'static str) -> AppResult<Self> {
        Self::from_name(raw)
            .ok_or_else(|| AppError::validation(field, "must be open, approval or invite_only"))
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "open" => Some(Self::Open),
            "approval" => Some(Self::Approval),
            "invite_only" => Some(Self::InviteOnly),
            _ => None,
        }
    }

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approval => "approval",
            Self::InviteOnly => "invite_only",
        }
    }

    /// Approval and invite-only groups are not revealed to strangers.
    pub fn is_private(self) -> bool {
        self != Self::Open
    }
}

impl TryFrom<String> for JoinMode {
    type Error = String;

    fn try_from(stored: String) -> Result<Self, Self::Error> {
        Self::from_name(&stored).ok_or_else(|| format!("unknown stored join mode {stored:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(Role::try_from(role.as_str().to_owned()), Ok(role));
        }
        for mode in [JoinMode::Open, JoinMode::Approval, JoinMode::InviteOnly] {
            assert_eq!(JoinMode::try_from(mode.as_str().to_owned()), Ok(mode));
            assert_eq!(JoinMode::parse(mode.as_str(), "join_mode").ok(), Some(mode));
        }
        assert!(JoinMode::parse("secret", "join_mode").is_err());
        assert!(Role::try_from("boss".to_owned()).is_err());
    }
}
