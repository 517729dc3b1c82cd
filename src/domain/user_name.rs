//! A login name: 3–32 characters of `[A-Za-z0-9_.-]`. Uniqueness is case-insensitive (the
//! column's collation), so `Alice` and `alice` are the same account name.

use crate::error::AppError;

pub const MIN_CHARS: usize = 3;
pub const MAX_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
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

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn rejects_bad_lengths_and_characters() {
        for bad in ["ab", "", "has space", "ünï", "semi;colon", &"a".repeat(33)] {
            let err = UserName::parse(bad.to_owned(), "user_name").unwrap_err();
            assert_eq!(err.code(), "validation_failed", "{bad}");
        }
    }
}
