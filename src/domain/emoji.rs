//! A reaction's emoji: exactly one emoji (one grapheme cluster found in the Unicode emoji list,
//! the `emojis` crate), at most 32 bytes, kept in its fully qualified form so that "👍" with or
//! without a variation selector is one reaction.

use unicode_segmentation::UnicodeSegmentation;

use crate::error::AppError;

/// Longest accepted emoji, in bytes (family and flag sequences fit).
pub const EMOJI_MAX_BYTES: usize = 32;

/// One emoji, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Emoji(&'static str);

impl Emoji {
    /// Parses the `emoji` field. Anything but one emoji → 40000 naming it.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let bad = || AppError::validation("emoji", "must be exactly one emoji");
        if raw.is_empty() || raw.len() > EMOJI_MAX_BYTES || raw.graphemes(true).count() != 1 {
            return Err(bad());
        }
        emojis::get(raw).map(|e| Self(e.as_str())).ok_or_else(bad)
    }

    /// The emoji as clients send and see it.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_only() {
        for ok in ["👍", "❤️", "👍🏽", "👨‍👩‍👧", "🇩🇪", "1️⃣"] {
            assert!(Emoji::parse(ok).is_ok(), "{ok}");
        }
        // Unqualified and qualified forms are one reaction.
        assert_eq!(Emoji::parse("❤").ok(), Emoji::parse("❤️").ok());
        for bad in [
            "", "a", "1", "#", "👍👍", "👍 ", "ok👍", "\u{200d}", "<script>",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Emoji::parse(&"👍".repeat(9)).is_err());
    }
}
