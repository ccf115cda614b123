//! The [BEP 52] pieces root of an upload, built while the bytes stream in.
//!
//! The tree itself (16 KiB SHA-256 leaves, zero-hash padding) is
//! `piecework-metainfo`'s [`FileHasher`]; this module only fixes the piece
//! length it groups leaves by, gives the root a type, and lets a running
//! upload read its prefix root without ending the hash.
//!
//! Memory per upload in flight: two 16 KiB blocks, up to one piece's leaf
//! hashes (32 KiB) and one hash per finished 16 MiB piece (2 KiB per GiB).
//! The piece length does not change the root.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use piecework_metainfo::merkle::{FileHasher, leaf_hash, root_from_leaves};

/// Leaf block size fixed by BEP 52.
pub const BLOCK_SIZE: usize = piecework_metainfo::BLOCK_SIZE as usize;

/// Leaves are grouped into pieces of this size: the square-root point where
/// the pending leaves and the finished piece hashes both stay small. It is also the
/// granularity of the checkpoints ([`MerkleBuilder::piece_roots`]).
pub const PIECE_LENGTH: u64 = 16 << 20;

/// A v2 pieces root (SHA-256 merkle root of one file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PiecesRoot(pub [u8; 32]);

impl PiecesRoot {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Incremental BEP 52 pieces root of one upload.
#[derive(Clone, Default)]
pub struct MerkleBuilder {
    // Made on the first byte: idle and finished uploads hold no buffers.
    hasher: Option<FileHasher>,
}

impl std::fmt::Debug for MerkleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleBuilder").field("len", &self.len()).finish()
    }
}

impl MerkleBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder as if the bytes of `piece_roots.len()` whole [`PIECE_LENGTH`] pieces had
    /// been fed, their roots being what [`MerkleBuilder::piece_roots`] returned then.
    pub fn resume(piece_roots: Vec<[u8; 32]>) -> Self {
        if piece_roots.is_empty() {
            return Self::new();
        }
        Self { hasher: FileHasher::resume(PIECE_LENGTH, piece_roots) }
    }

    /// Roots of the whole [`PIECE_LENGTH`] pieces fed so far: a checkpoint that
    /// [`MerkleBuilder::resume`] picks up from.
    pub fn piece_roots(&self) -> &[[u8; 32]] {
        self.hasher.as_ref().map_or(&[], FileHasher::piece_roots)
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.as_ref().map_or(0, FileHasher::length)
    }

    /// True if nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = self.hasher_for(data) {
            h.update(data);
        }
    }

    /// Feeds the next bytes of the file and copies them to `out` in the same pass, for
    /// bytes on their way into a write buffer ([`FileHasher::update_copy`]).
    ///
    /// # Panics
    /// If `out` is not as long as `data`.
    pub fn update_copy(&mut self, data: &[u8], out: &mut [u8]) {
        match self.hasher_for(data) {
            Some(h) => h.update_copy(data, out),
            None => out.copy_from_slice(data),
        }
    }

    fn hasher_for(&mut self, data: &[u8]) -> Option<&mut FileHasher> {
        if data.is_empty() {
            return None;
        }
        if self.hasher.is_none() {
            self.hasher = FileHasher::new(PIECE_LENGTH);
        }
        // `new` takes any power of two >= 16 KiB, so the hasher is there.
        self.hasher.as_mut()
    }

    /// The pieces root of everything fed so far (the builder can go on);
    /// `None` for an empty file (BEP 52 gives empty files no root).
    pub fn finish(&self) -> Option<PiecesRoot> {
        let (root, _layer) = self.hasher.clone()?.finish();
        root.map(PiecesRoot)
    }
}

/// The pieces root of `data` in one go, leaf by leaf (an oracle for tests and
/// small inputs).
pub fn pieces_root_of(data: &[u8]) -> Option<PiecesRoot> {
    if data.is_empty() {
        return None;
    }
    let leaves: Vec<_> = data.chunks(BLOCK_SIZE).map(leaf_hash).collect();
    Some(PiecesRoot(root_from_leaves(&leaves)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn streaming_matches_oracle_at_block_and_piece_edges() {
        assert_eq!(MerkleBuilder::new().finish(), None);
        let piece_blocks = (PIECE_LENGTH as usize) / BLOCK_SIZE;
        for blocks in [1usize, 2, 3, 5, 8, 9, piece_blocks, piece_blocks + 1, 2 * piece_blocks + 3] {
            for extra in [0usize, 1] {
                let len = blocks * BLOCK_SIZE - 1 + extra;
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut b = MerkleBuilder::new();
                for c in data.chunks(100_003) {
                    b.update(c);
                    // The prefix root does not disturb the running hash.
                    let _ = b.finish();
                }
                assert_eq!(b.len(), len as u64);
                assert_eq!(b.finish(), pieces_root_of(&data), "len {len}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_split_matches_oracle(len in 1usize..(9 * BLOCK_SIZE), split in 1usize..40_000) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let mut b = MerkleBuilder::new();
            for c in data.chunks(split) { b.update(c); }
            prop_assert_eq!(b.finish(), pieces_root_of(&data));
        }
    }
}
