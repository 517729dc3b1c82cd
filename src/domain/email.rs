//! An email address in the common `local@domain.tld` form. Deliberately stricter than RFC 5322
//! (no quoted local parts, no IP-literal domains): what real sign-up forms accept.

use crate::error::AppError;

pub(super) const MAX_BYTES: usize = 254;

/// An email address as the API takes it: trimmed, lowercased, one `@` with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The address of a request's `field`.
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, AppError> {
        let trimmed = raw.trim();
        if is_valid(trimmed) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(AppError::validation(field, "is not a valid email address"))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_valid(s: &str) -> bool {
    if s.len() > MAX_BYTES {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org", " x@y.io "] {
            assert!(Email::parse(ok, "email").is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.co",
            "a b@c.de",
            "@b.co",
            "a@-b.co",
            "a..b@c.de",
            "a@b..co",
        ] {
            assert!(Email::parse(bad, "email").is_err(), "{bad}");
        }
    }
}
