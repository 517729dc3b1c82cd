//! A new password: 8–72 bytes (bcrypt ignores everything past 72 bytes, so longer passwords
//! would silently be truncated). Kept secret so it never reaches a log line.

use secrecy::{ExposeSecret, SecretString};

use crate::error::AppError;

pub(super) const MIN_BYTES: usize = 8;
pub(super) const MAX_BYTES: usize = 72;

/// A new password as the API accepts it (length rules), kept out of logs.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    /// The password of a request's `field`.
    pub fn parse(raw: String, field: &'static str) -> Result<Self, AppError> {
        if (MIN_BYTES..=MAX_BYTES).contains(&raw.len()) {
            Ok(Self(SecretString::from(raw)))
        } else {
            Err(AppError::validation(
                field,
                format!("must be {MIN_BYTES} to {MAX_BYTES} bytes long"),
            ))
        }
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_bytes() {
        assert!(Password::parse("12345678".into(), "password").is_ok());
        assert!(Password::parse("1234567".into(), "password").is_err());
        assert!(Password::parse("é".repeat(36), "password").is_ok());
        assert!(Password::parse("é".repeat(37), "password").is_err());
    }
}
