//! A login name: 3–32 characters of `[A-Za-z0-9_.-]`. Names are unique regardless of case:
//! `Alice` and `alice` are the same account name, and [`UserName::key`] is what both become.
//! Accounts are looked up and login failures counted by that key, never by the raw input, so
//! no other spelling (accents, dotless or dotted i, invisible characters) reaches an account.

use crate::error::AppError;

pub(super) const MIN_CHARS: usize = 3;
/// Longest user name, in characters.
pub const MAX_CHARS: usize = 32;

/// A login name: letters, digits, `_`, `-` and `.`, unique ignoring case and lookalikes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// The name of a request's `field`.
    pub fn parse(raw: String, field: &'static str) -> Result<Self, AppError> {
        let valid_len = (MIN_CHARS..=MAX_CHARS).contains(&raw.len());
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid_len && valid_chars {
            Ok(Self(raw))
        } else {
            Err(AppError::validation(
                field,
                format!(
                    "must be {MIN_CHARS} to {MAX_CHARS} characters of letters, digits, `_`, `.` or `-`"
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical form every spelling of this name shares: ASCII-lowercased (the alphabet
    /// is ASCII, so this is exact). Stored in `users.user_name_key` under a binary collation.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(UserName::parse("al.ice_-9".into(), "user_name").is_ok());
        assert!(UserName::parse("abc".into(), "user_name").is_ok());
        assert!(UserName::parse("a".repeat(32), "user_name").is_ok());
    }

    #[test]
    fn spellings_differing_in_case_share_one_key() {
        let key = |raw: &str| UserName::parse(raw.to_owned(), "user_name").unwrap().key();
        assert_eq!(key("Alice"), "alice");
        assert_eq!(key("aLiCE"), key("alice"));
    }

    #[test]
    fn lookalike_spellings_are_not_names() {
        for bad in ["Álice", "ALİCE", "alice\u{200b}", "ａlice", "alıce"] {
            assert!(
                UserName::parse(bad.to_owned(), "user_name").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        for bad in ["ab", "", "has space", "ünï", "semi;colon", &"a".repeat(33)] {
            let err = UserName::parse(bad.to_owned(), "user_name").unwrap_err();
            assert_eq!(err.code(), "validation_failed", "{bad}");
        }
    }
}
