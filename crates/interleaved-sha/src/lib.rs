//! SHA-1 and SHA-256 two streams at a time, for torrents' piece and leaf hashes.
//!
//! One hash stream on the x86 SHA extensions waits on the latency of the round
//! instructions most of the time. Two independent streams interleaved fill those waits, so
//! two hashes cost little more than one. Measured on AMD Zen 4: two SHA-256 streams run at
//! 1.9x one stream's rate, and SHA-1 plus SHA-256 over the same bytes (a hybrid torrent's
//! piece hash and [BEP 52] leaf) at 1.65x the rate of the two one after the other.
//!
//! What it does:
//! - [`digest_pair`] hashes two messages with SHA-256, [`digest_chunks`] the consecutive
//!   chunks of a buffer (the 16 KiB leaves of a v2 file) two at a time.
//! - [`digest_pair_copy`] and [`digest_chunks_copy`] also copy what they hash to a buffer of
//!   the caller's, in the same pass: received bytes hashed on their way into a write buffer.
//! - [`Sha1`] is an incremental SHA-1 whose [`Sha1::update_with_leaf`] also returns the
//!   SHA-256 of the bytes it absorbs, the two computed together.
//!
//! Results are plain SHA-1 and SHA-256, identical to the `sha1` and `sha2` crates'. Where
//! the CPU lacks the SHA extensions (or on other architectures), or two messages differ in
//! length, the work goes through those crates one stream at a time.
//!
//! ```
//! use sha2::{Digest, Sha256};
//!
//! let data = vec![7u8; 3 * 16384 + 100];
//! let leaves: Vec<[u8; 32]> = piecework_interleaved_sha::digest_chunks(&data, 16384).collect();
//! assert_eq!(leaves.len(), 4);
//! assert_eq!(leaves[3], <[u8; 32]>::from(Sha256::digest(&data[3 * 16384..])));
//!
//! let (a, b) = piecework_interleaved_sha::digest_pair(b"left", b"rite");
//! assert_eq!(a, <[u8; 32]>::from(Sha256::digest(b"left")));
//! assert_eq!(b, <[u8; 32]>::from(Sha256::digest(b"rite")));
//! ```
//!
//! Unsafe code: three calls, each into a `target_feature` function right after run-time
//! detection has confirmed the CPU features it is compiled for. The intrinsics themselves
//! are safe to call inside those functions. CI runs the tests under miri twice: on the
//! portable path, and with the SHA features forced on, which takes the SHA-256 path (miri
//! does not interpret the SHA-1 intrinsics).
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
        && let Some(r) = x86::digest_pair(a, b, None)
    {
        return r;
    }
    (one(a), one(b))
}

/// [`digest_pair`] that also copies `a` to `out_a` and `b` to `out_b` in the same pass:
/// each 64-byte block is stored while the rounds that read it run, which costs far less
/// than hashing and then copying (a second pass over bytes no longer in the nearest cache).
///
/// # Panics
/// If an output's length differs from its input's, like [`slice::copy_from_slice`].
pub fn digest_pair_copy(a: &[u8], b: &[u8], out_a: &mut [u8], out_b: &mut [u8]) -> (Digest32, Digest32) {
    assert!(out_a.len() == a.len() && out_b.len() == b.len(), "output lengths must match the inputs");
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len()
        && let Some(r) = x86::digest_pair(a, b, Some((&mut *out_a, &mut *out_b)))
    {
        return r;
    }
    out_a.copy_from_slice(a);
    out_b.copy_from_slice(b);
    (one(a), one(b))
}

/// An incremental SHA-1 that can hash the SHA-256 of what it absorbs at the same time.
///
/// ```
/// use sha2::{Digest, Sha256};
///
/// let block = [1u8; 16384];
/// let mut h = piecework_interleaved_sha::Sha1::new();
/// h.update(b"earlier bytes, any length: ");
/// let leaf = h.update_with_leaf(&block);
/// assert_eq!(leaf, <[u8; 32]>::from(Sha256::digest(block)));
/// let mut want = sha1::Sha1::new();
/// want.update(b"earlier bytes, any length: ");
/// want.update(block);
/// assert_eq!(h.finalize(), <[u8; 20]>::from(want.finalize()));
/// ```
#[derive(Clone)]
pub struct Sha1 {
    state: [u32; 5],
    buf: [u8; 64],
    buf_len: usize,
    len: u64,
}

impl std::fmt::Debug for Sha1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha1").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Default for Sha1 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha1 {
    /// A hasher that has absorbed nothing.
    pub fn new() -> Self {
        Self {
            state: [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
            buf: [0; 64],
            buf_len: 0,
            len: 0,
        }
    }

    /// Bytes absorbed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing has been absorbed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absorbs `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = self.buf;
            compress_sha1(&mut self.state, &[block]);
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        compress_sha1(&mut self.state, blocks);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Absorbs `block` and returns its SHA-256, the two interleaved when the hasher sits on
    /// a 64-byte boundary and `block` is a whole number of 64-byte blocks (a 16 KiB leaf
    /// after whole leaves, say).
    pub fn update_with_leaf(&mut self, block: &[u8]) -> Digest32 {
        #[cfg(target_arch = "x86_64")]
        if self.buf_len == 0
            && !block.is_empty()
            && let (blocks, []) = block.as_chunks::<64>()
            && let Some(leaf) = x86::sha1_blocks_with_sha256(&mut self.state, blocks)
        {
            self.len = self.len.wrapping_add(block.len() as u64);
            return leaf;
        }
        self.update(block);
        one(block)
    }

    /// The SHA-1 of everything absorbed.
    pub fn finalize(mut self) -> [u8; 20] {
        let (tail, n) = padding(&self.buf[..self.buf_len], self.len);
        compress_sha1(&mut self.state, &tail[..n]);
        let mut out = [0u8; 20];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// The final blocks of a SHA-1 or SHA-256 message of `len` bytes whose last partial block
/// is `rest`: `rest`, the 0x80 marker, zeros and the bit length, in one block or two (the
/// count is returned).
fn padding(rest: &[u8], len: u64) -> ([[u8; 64]; 2], usize) {
    let mut t = [[0u8; 64]; 2];
    t[0][..rest.len()].copy_from_slice(rest);
    t[0][rest.len()] = 0x80;
    let n = if rest.len() < 56 { 1 } else { 2 };
    t[n - 1][56..].copy_from_slice(&len.wrapping_mul(8).to_be_bytes());
    (t, n)
}

fn compress_sha1(state: &mut [u32; 5], blocks: &[[u8; 64]]) {
    #[cfg(target_arch = "x86_64")]
    if x86::sha1_blocks(state, blocks) {
        return;
    }
    for b in blocks {
        sha1::compress(state, std::slice::from_ref(sha1::digest::generic_array::GenericArray::from_slice(b)));
    }
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
        next_chunk_digest(&mut self.data, self.chunk_len, &mut self.pending, None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = chunks_left(self.data, self.chunk_len, &self.pending);
        (n, Some(n))
    }
}

/// The step of [`Chunks`] and [`ChunksCopy`]: the digest held from the last pair, or the
/// next chunk's, hashed together with the one after it (and both copied to `out`, if given,
/// which then advances past them).
fn next_chunk_digest(
    data: &mut &[u8],
    chunk_len: usize,
    pending: &mut Option<Digest32>,
    out: Option<&mut &mut [u8]>,
) -> Option<Digest32> {
    if let Some(d) = pending.take() {
        return Some(d);
    }
    if data.is_empty() {
        return None;
    }
    // The second chunk may be short (then `digest_pair` hashes the two one by one) or
    // empty (the last chunk on its own).
    let n = chunk_len.min(data.len());
    let m = chunk_len.min(data.len() - n);
    let (a, rest) = data.split_at(n);
    let (b, rest) = rest.split_at(m);
    *data = rest;
    let (x, y) = match out {
        Some(out) => {
            let (oa, rest) = std::mem::take(out).split_at_mut(n);
            let (ob, rest) = rest.split_at_mut(m);
            *out = rest;
            if m == 0 {
                oa.copy_from_slice(a);
                return Some(one(a));
            }
            digest_pair_copy(a, b, oa, ob)
        }
        None if m == 0 => return Some(one(a)),
        None => digest_pair(a, b),
    };
    *pending = Some(y);
    Some(x)
}

fn chunks_left(data: &[u8], chunk_len: usize, pending: &Option<Digest32>) -> usize {
    data.len().div_ceil(chunk_len) + usize::from(pending.is_some())
}

impl ExactSizeIterator for Chunks<'_> {}

/// [`digest_chunks`] that also copies `data` into `out` as it hashes (see
/// [`digest_pair_copy`]): a received buffer's leaves hashed on its way into the buffer it
/// is written from. The copy is complete once the iterator is exhausted.
///
/// # Panics
/// If `chunk_len` is 0, or `out` is not as long as `data`.
pub fn digest_chunks_copy<'a>(data: &'a [u8], chunk_len: usize, out: &'a mut [u8]) -> ChunksCopy<'a> {
    assert!(chunk_len > 0, "chunk length must be non-zero");
    assert_eq!(out.len(), data.len(), "output length must match the input");
    ChunksCopy { data, out, chunk_len, pending: None }
}

/// Iterator returned by [`digest_chunks_copy`].
#[derive(Debug)]
pub struct ChunksCopy<'a> {
    data: &'a [u8],
    out: &'a mut [u8],
    chunk_len: usize,
    pending: Option<Digest32>,
}

impl Iterator for ChunksCopy<'_> {
    type Item = Digest32;

    fn next(&mut self) -> Option<Digest32> {
        next_chunk_digest(&mut self.data, self.chunk_len, &mut self.pending, Some(&mut self.out))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = chunks_left(self.data, self.chunk_len, &self.pending);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ChunksCopy<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn pairs_match_sha2_at_every_padding_boundary() {
        // Lengths around the one- and two-block tails (55, 56, 63, 64 ...) and the leaf size
        // (a few of them under miri, which interprets every round).
        let lens: Vec<usize> = if cfg!(miri) {
            vec![0, 1, 55, 56, 63, 64, 65, 119, 120, 128]
        } else {
            (0..=200).chain([1000, 4096, 16383, 16384, 16385, 65536]).collect()
        };
        for len in lens {
            let (a, b) = (pattern(len, 1), pattern(len, 2));
            assert_eq!(digest_pair(&a, &b), (one(&a), one(&b)), "length {len}");
            let (mut oa, mut ob) = (vec![0u8; len], vec![0xFFu8; len]);
            assert_eq!(digest_pair_copy(&a, &b, &mut oa, &mut ob), (one(&a), one(&b)), "length {len}");
            assert!(oa == a && ob == b, "copy of length {len}");
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
    #[cfg_attr(miri, ignore = "16 KiB leaves take minutes under miri")]
    fn chunks_count_and_order() {
        let data = pattern(5 * 16384 + 3, 9);
        let got: Vec<_> = digest_chunks(&data, 16384).collect();
        let want: Vec<_> = data.chunks(16384).map(one).collect();
        assert_eq!(got, want);
        assert_eq!(digest_chunks(&data, 16384).len(), 6);
        assert_eq!(digest_chunks(&[], 16384).count(), 0);
    }

    fn sha1_ref(parts: &[&[u8]]) -> [u8; 20] {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn sha1_known_answers() {
        assert_eq!(Sha1::new().finalize(), sha1_ref(&[]));
        let mut h = Sha1::new();
        h.update(b"abc");
        // FIPS 180-1 "abc".
        assert_eq!(
            h.finalize(),
            [
                0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50, 0xc2,
                0x6c, 0x9c, 0xd0, 0xd8, 0x9d
            ]
        );
        for len in if cfg!(miri) { 50..=70 } else { 0..=200 } {
            let data = pattern(len, 5);
            let mut h = Sha1::new();
            h.update(&data);
            assert_eq!(h.finalize(), sha1_ref(&[&data]), "length {len}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "16 KiB leaves take minutes under miri")]
    fn leaves_along_a_piece_match_both_hashes() {
        // A 256 KiB piece as 16 KiB leaves, then a short last leaf: the fused path, then the
        // fallback for the short leaf and for a hasher off its 64-byte boundary.
        let piece = pattern(16 * 16384 + 1000, 3);
        let mut h = Sha1::new();
        for leaf in piece.chunks(16384) {
            assert_eq!(h.update_with_leaf(leaf), one(leaf));
        }
        assert_eq!(h.len(), piece.len() as u64);
        let mut off = Sha1::new();
        off.update(&piece[..7]);
        assert_eq!(off.update_with_leaf(&piece[7..7 + 16384]), one(&piece[7..7 + 16384]));
        assert_eq!(off.finalize(), sha1_ref(&[&piece[..7 + 16384]]));
        assert_eq!(h.finalize(), sha1_ref(&[&piece]));
    }

    #[test]
    #[cfg_attr(miri, ignore = "16 KiB leaves take minutes under miri")]
    #[cfg(target_arch = "x86_64")]
    fn portable_path_gives_the_same_hashes() {
        // Other tests running meanwhile take the portable path too: both paths must agree,
        // so they still pass.
        let data = pattern(3 * 16384 + 77, 11);
        let fast: Vec<_> = digest_chunks(&data, 16384).collect();
        let mut h = Sha1::new();
        let fast_leaves: Vec<_> = data.chunks(16384).map(|l| h.update_with_leaf(l)).collect();
        let fast_sha1 = h.finalize();
        x86::PORTABLE.store(true, std::sync::atomic::Ordering::Relaxed);
        let slow: Vec<_> = digest_chunks(&data, 16384).collect();
        let mut copy = vec![0u8; data.len()];
        let slow_copying: Vec<_> = digest_chunks_copy(&data, 16384, &mut copy).collect();
        let mut h = Sha1::new();
        let slow_leaves: Vec<_> = data.chunks(16384).map(|l| h.update_with_leaf(l)).collect();
        let slow_sha1 = h.finalize();
        x86::PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(fast, slow);
        assert_eq!(slow_copying, slow);
        assert_eq!(copy, data);
        assert_eq!(fast_leaves, slow_leaves);
        assert_eq!(fast_sha1, slow_sha1);
        assert_eq!(slow_sha1, sha1_ref(&[&data]));
    }

    proptest! {
        #[test]
        fn sha1_matches_in_any_split(data in proptest::collection::vec(any::<u8>(), 0..1000),
                                     cuts in proptest::collection::vec(0usize..1000, 0..6),
                                     leaf_at in proptest::option::of(0usize..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut h = Sha1::new();
            let mut from = 0;
            for (i, &c) in cuts.iter().chain([&data.len()]).enumerate() {
                let part = &data[from..c];
                if leaf_at == Some(i) {
                    prop_assert_eq!(h.update_with_leaf(part), one(part));
                } else {
                    h.update(part);
                }
                from = c;
            }
            prop_assert_eq!(h.finalize(), sha1_ref(&[&data]));
        }

        #[test]
        fn chunks_match_sha2(len in 0usize..if cfg!(miri) { 300 } else { 5000 }, chunk in 1usize..300, seed: u32) {
            let data = pattern(len, seed);
            let got: Vec<_> = digest_chunks(&data, chunk).collect();
            let want: Vec<_> = data.chunks(chunk).map(one).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn copying_chunks_match_and_copy(len in 0usize..if cfg!(miri) { 300 } else { 5000 }, chunk in 1usize..300, seed: u32) {
            let data = pattern(len, seed);
            let mut out = vec![0xAAu8; len];
            let got: Vec<_> = digest_chunks_copy(&data, chunk, &mut out).collect();
            let want: Vec<_> = data.chunks(chunk).map(one).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(out, data);
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
