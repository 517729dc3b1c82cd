//! A display name: 1–32 characters after trimming, no control characters.

use crate::error::AppError;

pub(super) const MAX_CHARS: usize = 32;

/// A display name: 1 to 32 printable characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NickName(String);

impl NickName {
    /// The name of a request's `field`.
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, AppError> {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        if count == 0 || count > MAX_CHARS {
            return Err(AppError::validation(
                field,
                format!("must be 1 to {MAX_CHARS} characters after trimming"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(AppError::validation(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_counts_characters() {
        assert_eq!(NickName::parse("  Ann ", "n").unwrap().as_str(), "Ann");
        assert!(NickName::parse(&"名".repeat(32), "n").is_ok());
        assert!(NickName::parse(&"名".repeat(33), "n").is_err());
        assert!(NickName::parse("   ", "n").is_err());
        assert!(NickName::parse("a\u{0}b", "n").is_err());
    }
}
