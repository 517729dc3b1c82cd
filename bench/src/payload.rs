//! The bytes of the files the uploads scenario sends: pseudo-random (so neither the store nor
//! the transport can compress them), reproducible from a seed (so a file's sha256 can be
//! computed again after the upload instead of being kept), and generated piece by piece (so 20
//! clients × 20 MiB never sit in the load generator's memory at once).
//!
//! Byte `i` depends only on the seed and `i`, so any piece size yields the same file.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Every payload starts with these bytes: no file signature the server's sniffing knows and not
/// text (the NUL), so each upload is stored as `application/octet-stream` and never taken for an
/// image to be decoded.
pub const PREFIX: &[u8] = b"loadgen\0";

/// One generated file: `len` bytes from `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    seed: u64,
    len: u64,
}

impl Payload {
    pub fn new(seed: u64, len: u64) -> Self {
        Self { seed, len }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = vec![0u8; usize::try_from(self.len).unwrap_or(usize::MAX)];
        self.fill(0, &mut out);
        Bytes::from(out)
    }

    /// The file in pieces of `piece` bytes (the last one shorter), each generated when it is
    /// taken.
    pub fn pieces(self, piece: usize) -> impl Iterator<Item = Bytes> + Send + 'static {
        let piece = piece.max(1) as u64;
        (0..self.len.div_ceil(piece)).map(move |k| {
            let start = k * piece;
            let end = (start + piece).min(self.len);
            let mut out = vec![0u8; (end - start) as usize];
            self.fill(start, &mut out);
            Bytes::from(out)
        })
    }

    /// The file's sha256 in lowercase hex (as the server reports it), generated again.
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        for piece in self.pieces(1 << 20) {
            hasher.update(&piece);
        }
        hex(&hasher.finalize())
    }

    /// Bytes `start..start + out.len()` of the file.
    fn fill(&self, start: u64, out: &mut [u8]) {
        let mut at = 0usize;
        while at < out.len() {
            let offset = start + at as u64;
            let word = splitmix64(self.seed, offset / 8).to_le_bytes();
            let from = (offset % 8) as usize;
            let take = (8 - from).min(out.len() - at);
            out[at..at + take].copy_from_slice(&word[from..from + take]);
            at += take;
        }
        // The prefix overlays the first bytes of the file, wherever the piece starts.
        let prefix_end = (PREFIX.len() as u64).min(self.len);
        if start < prefix_end {
            let end = prefix_end.min(start + out.len() as u64);
            for offset in start..end {
                out[(offset - start) as usize] = PREFIX[offset as usize];
            }
        }
    }
}

/// The `k`-th output of SplitMix64 seeded with `seed`: a fast generator whose every output can
/// be computed on its own.
fn splitmix64(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The sha256 (lowercase hex) of bytes in memory.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_piece_size_gives_the_same_file() {
        let payload = Payload::new(7, 1000);
        let whole = payload.to_bytes();
        assert_eq!(whole.len(), 1000);
        for piece in [1, 3, 8, 13, 999, 1000, 4096] {
            let joined: Vec<u8> = payload.pieces(piece).flat_map(|p| p.to_vec()).collect();
            assert_eq!(joined, whole.to_vec(), "pieces of {piece}");
        }
    }

    #[test]
    fn pieces_have_the_asked_size_and_the_last_is_the_rest() {
        let sizes: Vec<usize> = Payload::new(1, 20).pieces(8).map(|p| p.len()).collect();
        assert_eq!(sizes, vec![8, 8, 4]);
        assert_eq!(Payload::new(1, 0).pieces(8).count(), 0);
    }

    #[test]
    fn every_file_starts_with_the_prefix_even_a_short_one() {
        assert!(Payload::new(3, 100).to_bytes().starts_with(PREFIX));
        assert_eq!(&Payload::new(3, 4).to_bytes()[..], &PREFIX[..4]);
    }

    #[test]
    fn seeds_give_different_files_and_the_same_seed_the_same() {
        let a = Payload::new(1, 4096).to_bytes();
        assert_eq!(a, Payload::new(1, 4096).to_bytes());
        assert_ne!(a, Payload::new(2, 4096).to_bytes());
        // Not a constant fill after the prefix.
        assert!(a[PREFIX.len()..].windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn the_sha256_is_the_one_of_the_bytes() {
        let payload = Payload::new(9, 3 << 20 | 5);
        assert_eq!(payload.sha256_hex(), sha256_hex(&payload.to_bytes()));
        // The digest of nothing, as every sha256 tool prints it.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
