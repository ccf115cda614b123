//! SHA-256 of two messages at once, for the 16 KiB leaves of [BEP 52] merkle trees.
//!
//! One SHA-256 stream on the x86 SHA extensions waits on the latency of `sha256rnds2`
//! most of the time. Two independent streams interleaved fill those waits, so hashing a
//! pair of equal-length messages costs little more than hashing one: about 1.9x the rate
//! of a single stream on the AMD Zen 4 this was measured on. A torrent's leaves come in
//! long runs of equal-length blocks, which is where this pays.
//!
//! What it does: [`digest_pair`] hashes two messages, [`digest_chunks`] hashes the
//! consecutive chunks of a buffer two at a time. Results are plain SHA-256, identical to
//! [`sha2::Sha256`]'s. Where the CPU lacks the SHA extensions (or on other architectures),
//! or the two messages differ in length, each message goes through `sha2` on its own.
//!
//! What it does not do: incremental hashing, or anything but SHA-256.
//!
//! ```
//! use sha2::{Digest, Sha256};
//!
//! let data = vec![7u8; 3 * 16384 + 100];
//! let leaves: Vec<[u8; 32]> = piecework_sha256x2::digest_chunks(&data, 16384).collect();
//! assert_eq!(leaves.len(), 4);
//! assert_eq!(leaves[3], <[u8; 32]>::from(Sha256::digest(&data[3 * 16384..])));
//!
//! let (a, b) = piecework_sha256x2::digest_pair(b"left", b"rite");
//! assert_eq!(a, <[u8; 32]>::from(Sha256::digest(b"left")));
//! assert_eq!(b, <[u8; 32]>::from(Sha256::digest(b"rite")));
//! ```
//!
//! Unsafe code: one call, into the interleaved compression function after run-time
//! detection has confirmed the CPU features it is compiled for. The intrinsics themselves
//! are safe to call inside that function.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#![deny(missing_docs)]

use sha2::{Digest, Sha256};

#[cfg(target_arch = "x86_64")]
mod x86;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of `a` and of `b`; interleaved when they have the same length and the CPU
/// has the SHA extensions.
pub fn digest_pair(a: &[u8], b: &[u8]) -> (Digest32, Digest32) {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len()
        && let Some(r) = x86::digest_pair(a, b)
    {
        return r;
    }
    (one(a), one(b))
}

/// SHA-256 of one message (through `sha2`).
pub fn one(data: &[u8]) -> Digest32 {
    Sha256::digest(data).into()
}

/// The SHA-256 of each consecutive `chunk_len`-byte chunk of `data` (the last one may be
/// shorter), computed two at a time.
///
/// # Panics
/// If `chunk_len` is 0, like [`slice::chunks`].
pub fn digest_chunks(data: &[u8], chunk_len: usize) -> Chunks<'_> {
    assert!(chunk_len > 0, "chunk length must be non-zero");
    Chunks { data, chunk_len, pending: None }
}

/// Iterator returned by [`digest_chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    data: &'a [u8],
    chunk_len: usize,
    /// The second digest of the last pair.
    pending: Option<Digest32>,
}

impl Iterator for Chunks<'_> {
    type Item = Digest32;

    fn next(&mut self) -> Option<Digest32> {
        if let Some(d) = self.pending.take() {
            return Some(d);
        }
        if self.data.is_empty() {
            return None;
        }
        let n = self.chunk_len;
        if self.data.len() > n {
            // Two chunks left: the second may be short, and then `digest_pair` hashes them
            // one by one.
            let (a, rest) = self.data.split_at(n);
            let (b, rest) = rest.split_at(n.min(rest.len()));
            self.data = rest;
            let (x, y) = digest_pair(a, b);
            self.pending = Some(y);
            return Some(x);
        }
        let last = std::mem::take(&mut self.data);
        Some(one(last))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len().div_ceil(self.chunk_len) + usize::from(self.pending.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for Chunks<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn pairs_match_sha2_at_every_padding_boundary() {
        // Lengths around the one- and two-block tails (55, 56, 63, 64 ...) and the leaf size.
        let lens = (0..=200).chain([1000, 4096, 16383, 16384, 16385, 65536]);
        for len in lens {
            let (a, b) = (pattern(len, 1), pattern(len, 2));
            assert_eq!(digest_pair(&a, &b), (one(&a), one(&b)), "length {len}");
        }
    }

    #[test]
    fn known_answer() {
        // FIPS 180-2 "abc", both lanes.
        let want: Digest32 = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(digest_pair(b"abc", b"abc"), (want, want));
    }

    #[test]
    fn chunks_count_and_order() {
        let data = pattern(5 * 16384 + 3, 9);
        let got: Vec<_> = digest_chunks(&data, 16384).collect();
        let want: Vec<_> = data.chunks(16384).map(one).collect();
        assert_eq!(got, want);
        assert_eq!(digest_chunks(&data, 16384).len(), 6);
        assert_eq!(digest_chunks(&[], 16384).count(), 0);
    }

    proptest! {
        #[test]
        fn chunks_match_sha2(len in 0usize..5000, chunk in 1usize..300, seed: u32) {
            let data = pattern(len, seed);
            let got: Vec<_> = digest_chunks(&data, chunk).collect();
            let want: Vec<_> = data.chunks(chunk).map(one).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn pair_matches_sha2(a in proptest::collection::vec(any::<u8>(), 0..300),
                             b in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(digest_pair(&a, &b), (one(&a), one(&b)));
        }

        #[test]
        fn equal_length_pair_matches_sha2(a in proptest::collection::vec(any::<u8>(), 0..600), x: u8) {
            let b: Vec<u8> = a.iter().rev().map(|v| v ^ x).collect();
            prop_assert_eq!(digest_pair(&a, &b), (one(&a), one(&b)));
        }
    }
}
