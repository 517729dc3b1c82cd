//! Conversation ids: `u:<a>:<b>` for two users (smaller id first, numerically) and
//! `g:<group id>` for a group. The lobby is group 0.

use std::fmt;

use crate::domain::UserId;
use crate::error::AppError;

/// A group's id; 0 is the lobby, the group every user is in. Serialised as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The built-in group every user belongs to.
    pub const LOBBY: GroupId = GroupId(0);

    /// Whether this is the lobby.
    pub fn is_lobby(self) -> bool {
        self == Self::LOBBY
    }

    /// A group id as clients send it: decimal digits; `""` means the lobby.
    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Some(Self::LOBBY);
        }
        if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        trimmed.parse().ok().map(Self)
    }
}

/// Group ids leave as strings, like user ids.
impl serde::Serialize for GroupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A conversation: `u:<low>:<high>` between two users, or `g:<group>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConversationId {
    /// Always `low <= high`.
    Direct {
        /// The smaller of the two user ids.
        low: UserId,
        /// The larger of the two user ids (equal to `low` for notes to oneself).
        high: UserId,
    },
    /// A group's conversation.
    Group(GroupId),
}

impl ConversationId {
    /// The conversation between two users, whichever order they are given in.
    pub fn direct(a: UserId, b: UserId) -> Self {
        Self::Direct {
            low: a.min(b),
            high: a.max(b),
        }
    }

    /// A conversation of its wire name (`u:<a>:<b>` with a ≤ b, or `g:<id>`).
    pub fn parse(raw: &str) -> Option<Self> {
        if let Some(rest) = raw.strip_prefix("u:") {
            let (a, b) = rest.split_once(':')?;
            let (a, b) = (UserId::parse(a)?, UserId::parse(b)?);
            // Only the canonical form names a conversation, so ids compare as strings too.
            if a > b || rest != format!("{a}:{b}") {
                return None;
            }
            return Some(Self::direct(a, b));
        }
        let rest = raw.strip_prefix("g:")?;
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: u64 = rest.parse().ok()?;
        (rest == id.to_string()).then_some(Self::Group(GroupId(id)))
    }

    /// For a 1:1 conversation: the other participant (yourself in a note-to-self).
    pub fn peer_of(&self, user: UserId) -> Option<UserId> {
        match *self {
            Self::Direct { low, high } if low == user => Some(high),
            Self::Direct { low, high } if high == user => Some(low),
            _ => None,
        }
    }

    /// The group of a group conversation.
    pub fn group(&self) -> Option<GroupId> {
        match *self {
            Self::Group(g) => Some(g),
            Self::Direct { .. } => None,
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct { low, high } => write!(f, "u:{low}:{high}"),
            Self::Group(g) => write!(f, "g:{g}"),
        }
    }
}

/// What a message carries: 1 text, 2 image, 3 voice, 4 video, 5 location, 6 file (and 10, the
/// system notices of groups, which no client sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageType(pub i32);

impl MessageType {
    /// Text.
    pub const TEXT: Self = Self(1);
    /// An image upload, with an optional caption.
    pub const IMAGE: Self = Self(2);
    /// A voice recording.
    pub const VOICE: Self = Self(3);
    /// A video.
    pub const VIDEO: Self = Self(4);
    /// A place.
    pub const LOCATION: Self = Self(5);
    /// Any other file.
    pub const FILE: Self = Self(6);

    /// A type a client may send (1 to 6).
    pub fn parse(raw: i64) -> Option<Self> {
        (1..=6)
            .contains(&raw)
            .then(|| Self(i32::try_from(raw).unwrap_or(1)))
    }
}

/// The text of a message as a sender gives it: not blank, at most `max_chars` characters, and
/// no control characters other than line breaks and tabs (invisible in a chat, and escaped to
/// six bytes each in every reply and event that carries the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// The content of a send, checked (40000 blank or control characters, 40013 too long).
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, AppError> {
        if raw.trim().is_empty() {
            return Err(AppError::validation("content", "must not be empty"));
        }
        if raw.chars().count() > max_chars {
            return Err(AppError::ContentTooLong { max: max_chars });
        }
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(AppError::validation(
                "content",
                "must not contain control characters other than line breaks (\\n) and tabs (\\t)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_ids_are_canonical() {
        let c = ConversationId::direct(UserId(12), UserId(7));
        assert_eq!(c.to_string(), "u:7:12");
        assert_eq!(ConversationId::parse("u:7:12"), Some(c));
        assert_eq!(ConversationId::parse("u:12:7"), None);
        assert_eq!(ConversationId::parse("u:07:12"), None);
        assert_eq!(
            ConversationId::parse("u:5:5").unwrap().peer_of(UserId(5)),
            Some(UserId(5))
        );
        assert_eq!(c.peer_of(UserId(7)), Some(UserId(12)));
        assert_eq!(c.peer_of(UserId(8)), None);
    }

    #[test]
    fn group_ids_parse() {
        assert_eq!(
            ConversationId::parse("g:3"),
            Some(ConversationId::Group(GroupId(3)))
        );
        assert_eq!(
            ConversationId::parse("g:0").unwrap().group(),
            Some(GroupId::LOBBY)
        );
        for bad in ["g:", "g:x", "g:03", "x:1", "u:1", "u:a:b", "", "g:-1"] {
            assert_eq!(ConversationId::parse(bad), None, "{bad}");
        }
        assert_eq!(GroupId::parse(""), Some(GroupId::LOBBY));
        assert_eq!(GroupId::parse("17"), Some(GroupId(17)));
        assert_eq!(GroupId::parse("1x"), None);
    }

    #[test]
    fn content_refuses_control_characters_but_line_breaks_and_tabs() {
        assert!(MessageContent::parse("two\nlines\tand a tab", 100).is_ok());
        for bad in [
            "nul\u{0}",
            "bell\u{7}",
            "cr\r",
            "esc\u{1b}[2J",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let err = MessageContent::parse(bad, 100).unwrap_err();
            assert_eq!(err.ws_code(), 40000, "{bad:?}");
        }
        assert_eq!(
            MessageContent::parse(" \n ", 100).unwrap_err().ws_code(),
            40000
        );
        assert_eq!(
            MessageContent::parse("12345", 4).unwrap_err().ws_code(),
            40013
        );
    }

    #[test]
    fn message_types_are_one_to_six() {
        assert!(MessageType::parse(1).is_some() && MessageType::parse(6).is_some());
        assert!(MessageType::parse(0).is_none() && MessageType::parse(7).is_none());
    }
}
