//! Search terms: what a message's text is indexed under and what a query asks for, computed the
//! same way on both sides so that an indexed array and `$all` find messages on any
//! MongoDB-compatible store (no regex scan, no `$text`).
//!
//! Words are found by Unicode word segmentation (UAX #29, the `unicode-segmentation` crate),
//! folded to lower case with accents dropped (compatibility decomposition, combining marks
//! removed: "Éte" and "ete" are one term). Chinese, Japanese and Korean text has no spaces
//! between words, so each run of such characters is indexed by its character bigrams ("東京都"
//! → "東京", "京都"); a query's bigrams must all be there, which finds the query anywhere in
//! the run.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_segmentation::UnicodeSegmentation;

/// Most distinct terms kept for one message (a message of thousands of distinct words is
/// found by its first ones).
pub const MAX_TERMS: usize = 1000;
/// Longer words are indexed by their first this many characters (and queried the same way).
pub const MAX_TERM_CHARS: usize = 64;

/// Whether `c` belongs to a script written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // Hiragana, Katakana
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9D     // Halfwidth Katakana
        | 0x20000..=0x3134F   // CJK Extensions B to G
    )
}

/// Lower case without accents; CJK characters are kept as they are (decomposing Hangul or kana
/// would split them into parts).
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_cjk(c) {
            out.push(c);
            continue;
        }
        decompose_compatible(c, |d| {
            if !is_combining_mark(d) {
                out.extend(d.to_lowercase());
            }
        });
    }
    out
}

/// The distinct terms of `text`, in order of first appearance, at most [`MAX_TERMS`].
pub fn terms(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut out = Terms::default();
    // Segmentation gives one "word" per ideograph: adjacent ones are one run.
    let mut run_end = 0;
    for (start, word) in folded.unicode_word_indices() {
        if word.chars().all(is_cjk) {
            if start != run_end {
                out.flush_run();
            }
            out.run.extend(word.chars());
            run_end = start + word.len();
            continue;
        }
        out.flush_run();
        // A word mixing scripts (rare) is split the same way: its CJK part by bigrams.
        let (cjk, rest): (String, String) = word.chars().partition(|c| is_cjk(*c));
        out.run.extend(cjk.chars());
        out.flush_run();
        if !rest.is_empty() {
            out.push(rest.chars().take(MAX_TERM_CHARS).collect());
        }
    }
    out.flush_run();
    out.terms
}

/// Terms collected so far, and the CJK run being read.
#[derive(Default)]
struct Terms {
    terms: Vec<String>,
    run: Vec<char>,
}

impl Terms {
    fn push(&mut self, term: String) {
        if self.terms.len() < MAX_TERMS && !self.terms.contains(&term) {
            self.terms.push(term);
        }
    }

    /// A run of one character is its own term; a longer one gives its bigrams.
    fn flush_run(&mut self) {
        let run = std::mem::take(&mut self.run);
        match run.as_slice() {
            [] => {}
            [one] => self.push(one.to_string()),
            _ => {
                for pair in run.windows(2) {
                    self.push(pair.iter().collect());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_to_lower_case_without_accents() {
        assert_eq!(terms("Crème Brûlée, CAFÉ!"), ["creme", "brulee", "cafe"]);
        assert_eq!(terms("ﬁne Ｆｕｌｌ"), ["fine", "full"]);
        assert_eq!(
            terms("don't stop-now 3.14"),
            ["don't", "stop", "now", "3.14"]
        );
        assert_eq!(terms("hi hi HI"), ["hi"]);
        assert!(terms("  ... !!! ").is_empty());
    }

    #[test]
    fn cjk_runs_become_bigrams() {
        assert_eq!(terms("東京都"), ["東京", "京都"]);
        assert_eq!(terms("我 爱"), ["我", "爱"]);
        assert_eq!(terms("会议在東京"), ["会议", "议在", "在東", "東京"]);
        assert_eq!(terms("서울 meeting"), ["서울", "meeting"]);
        // A query's bigrams are among the text's: it is found.
        let text = terms("明天在東京都开会");
        assert!(terms("東京").iter().all(|t| text.contains(t)));
        assert!(terms("京都开").iter().all(|t| text.contains(t)));
        assert!(!terms("大阪").iter().all(|t| text.contains(t)));
    }

    #[test]
    fn terms_are_bounded() {
        let long = "x".repeat(500);
        assert_eq!(terms(&long)[0].chars().count(), MAX_TERM_CHARS);
        let many: String = (0..5000).map(|i| format!("w{i} ")).collect();
        assert_eq!(terms(&many).len(), MAX_TERMS);
    }
}
