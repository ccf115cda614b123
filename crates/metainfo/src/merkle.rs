//! v2 merkle trees ([BEP 52]): SHA-256 over 16 KiB leaves, zero-hash padding, piece layers,
//! roots and proofs.
//!
//! Heights count up from the leaves: height 0 is a 16 KiB block's hash, height `h` is the root
//! of `2^h` blocks. A tree is padded to a power of two of leaves with zero leaves (32 zero
//! bytes); a padding subtree of height `h` hashes to [`zero_hash`]`(h)`.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

use crate::piece::BLOCK_SIZE;

/// A SHA-256 node of a v2 merkle tree.
pub type MerkleHash = [u8; 32];

/// Why a piece layer does not fit its file ([BEP 52] `piece layers`).
///
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum LayerProblem {
    /// The layer's byte length is not a multiple of 32.
    NotMultipleOf32,
    /// The layer holds the wrong number of hashes for the file size.
    WrongCount {
        /// Hashes the file needs.
        expected: u64,
        /// Hashes found.
        found: u64,
    },
    /// The layer does not hash up to the file's pieces root.
    RootMismatch,
    /// The key of the entry is not the pieces root of any file that needs a layer.
    UnknownRoot,
    /// The entry is not a byte string.
    NotBytes,
    /// The piece length is not a power of two of at least 16 KiB.
    BadPieceLength,
}

impl core::fmt::Display for LayerProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotMultipleOf32 => f.write_str("length is not a multiple of 32"),
            Self::WrongCount { expected, found } => {
                write!(f, "{found} hashes where the file needs {expected}")
            }
            Self::RootMismatch => f.write_str("layer does not hash to the pieces root"),
            Self::UnknownRoot => f.write_str("key is not the pieces root of a file in the tree"),
            Self::NotBytes => f.write_str("value is not a byte string"),
            Self::BadPieceLength => f.write_str("piece length is not a power of two >= 16 KiB"),
        }
    }
}

const MAX_HEIGHT: usize = 64;

/// The root of an all-zero subtree of the given height (height 0 is 32 zero bytes).
pub fn zero_hash(height: u32) -> MerkleHash {
    static TABLE: OnceLock<[MerkleHash; MAX_HEIGHT]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [[0u8; 32]; MAX_HEIGHT];
        for h in 1..MAX_HEIGHT {
            t[h] = hash_pair(&t[h - 1], &t[h - 1]);
        }
        t
    });
    // Heights past 63 would need more than 2^63 leaves: no file reaches them.
    t[(height as usize).min(MAX_HEIGHT - 1)]
}

/// SHA-256 of two concatenated child hashes.
pub fn hash_pair(left: &MerkleHash, right: &MerkleHash) -> MerkleHash {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf hash of one block: SHA-256 of its bytes (the last block of a file is hashed over
/// its real, short length).
pub fn leaf_hash(block: &[u8]) -> MerkleHash {
    Sha256::digest(block).into()
}

/// The leaf hashes of consecutive blocks (the last one may be short), two at a time: with
/// the x86 SHA extensions that runs at about twice [`leaf_hash`]'s rate
/// ([`piecework_interleaved_sha`]).
pub fn leaf_hashes(data: &[u8]) -> piecework_interleaved_sha::Chunks<'_> {
    piecework_interleaved_sha::digest_chunks(data, BLOCK_SIZE as usize)
}

/// The leaf hashes of two blocks of the same length, computed together (see [`leaf_hashes`]).
pub fn leaf_hash_pair(a: &[u8], b: &[u8]) -> (MerkleHash, MerkleHash) {
    piecework_interleaved_sha::digest_pair(a, b)
}

/// Number of 16 KiB blocks in a file.
pub fn blocks_in(file_length: u64) -> u64 {
    file_length.div_ceil(u64::from(BLOCK_SIZE))
}

/// Blocks per piece, and its log2, for a valid v2 piece length (power of two, >= 16 KiB).
pub fn blocks_per_piece(piece_length: u64) -> Option<(u64, u32)> {
    if piece_length < u64::from(BLOCK_SIZE) || !piece_length.is_power_of_two() {
        return None;
    }
    let bpp = piece_length / u64::from(BLOCK_SIZE);
    Some((bpp, bpp.trailing_zeros()))
}

/// Root over `nodes` of height `height`, padded with zero subtrees to a power of two that is
/// at least `min_width` nodes wide.
pub fn root_from_nodes(nodes: &[MerkleHash], height: u32, min_width: u64) -> MerkleHash {
    let mut width = (nodes.len() as u64).max(min_width).max(1).next_power_of_two();
    let mut h = height;
    if nodes.is_empty() {
        return zero_hash(h + width.trailing_zeros());
    }
    let mut cur: Vec<MerkleHash> = nodes.to_vec();
    while width > 1 {
        let pad = zero_hash(h);
        let n = cur.len().div_ceil(2);
        for i in 0..n {
            let l = cur[2 * i];
            let r = cur.get(2 * i + 1).copied().unwrap_or(pad);
            cur[i] = hash_pair(&l, &r);
        }
        cur.truncate(n);
        width /= 2;
        h += 1;
    }
    cur[0]
}

/// The pieces root of a file from its leaf hashes.
pub fn root_from_leaves(leaves: &[MerkleHash]) -> MerkleHash {
    root_from_nodes(leaves, 0, 1)
}

/// The piece layer of a file from its leaf hashes: one hash per piece, each the root of that
/// piece's blocks padded with zero leaves to a full piece.
pub fn piece_layer_from_leaves(leaves: &[MerkleHash], piece_length: u64) -> Option<Vec<MerkleHash>> {
    let (bpp, _) = blocks_per_piece(piece_length)?;
    let chunk = usize::try_from(bpp).ok()?;
    Some(leaves.chunks(chunk).map(|c| root_from_nodes(c, 0, bpp)).collect())
}

/// The pieces root of a file from its piece layer.
pub fn root_from_piece_layer(layer: &[MerkleHash], piece_length: u64) -> Option<MerkleHash> {
    let (_, log) = blocks_per_piece(piece_length)?;
    Some(root_from_nodes(layer, log, 1))
}

/// Checks a `piece layers` value (concatenated hashes) against a file's length and pieces root.
///
/// Only files longer than one piece have a layer; call this for those.
pub fn verify_piece_layer(
    layer: &[u8],
    file_length: u64,
    piece_length: u64,
    root: &MerkleHash,
) -> Result<(), LayerProblem> {
    if blocks_per_piece(piece_length).is_none() {
        return Err(LayerProblem::BadPieceLength);
    }
    if !layer.len().is_multiple_of(32) {
        return Err(LayerProblem::NotMultipleOf32);
    }
    let expected = file_length.div_ceil(piece_length);
    let found = (layer.len() / 32) as u64;
    if expected != found {
        return Err(LayerProblem::WrongCount { expected, found });
    }
    let hashes: Vec<MerkleHash> = layer
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    match root_from_piece_layer(&hashes, piece_length) {
        Some(r) if &r == root => Ok(()),
        _ => Err(LayerProblem::RootMismatch),
    }
}

/// The sibling hashes from `nodes[index]` up to the root (the "uncle" path of a BEP 52 `hashes`
/// message), for a layer of height `height` padded as in [`root_from_nodes`].
pub fn proof(nodes: &[MerkleHash], height: u32, min_width: u64, index: usize) -> Option<Vec<MerkleHash>> {
    if index >= nodes.len() {
        return None;
    }
    let mut width = (nodes.len() as u64).max(min_width).next_power_of_two();
    let mut cur = nodes.to_vec();
    let mut idx = index;
    let mut h = height;
    let mut out = Vec::with_capacity(width.trailing_zeros() as usize);
    while width > 1 {
        let pad = zero_hash(h);
        out.push(cur.get(idx ^ 1).copied().unwrap_or(pad));
        let n = cur.len().div_ceil(2);
        for i in 0..n {
            let l = cur[2 * i];
            let r = cur.get(2 * i + 1).copied().unwrap_or(pad);
            cur[i] = hash_pair(&l, &r);
        }
        cur.truncate(n);
        idx /= 2;
        width /= 2;
        h += 1;
    }
    Some(out)
}

/// Checks that `node` at position `index` climbs through `proof` to `root`.
pub fn verify_proof(node: &MerkleHash, index: u64, proof: &[MerkleHash], root: &MerkleHash) -> bool {
    let mut acc = *node;
    let mut idx = index;
    for sib in proof {
        acc = if idx & 1 == 0 { hash_pair(&acc, sib) } else { hash_pair(sib, &acc) };
        idx >>= 1;
    }
    idx == 0 && &acc == root
}

/// Streaming v2 hasher for one file: feed bytes in any chunking, get the pieces root and the
/// piece layer. Memory is two blocks plus one piece's leaves plus the layer.
#[derive(Clone)]
pub struct FileHasher {
    piece_length: u64,
    bpp: u64,
    block: Vec<u8>,
    leaves: Vec<MerkleHash>,
    layer: Vec<MerkleHash>,
    length: u64,
}

impl FileHasher {
    /// A hasher for a v2 piece length; `None` if it is not a power of two >= 16 KiB.
    pub fn new(piece_length: u64) -> Option<Self> {
        let (bpp, _) = blocks_per_piece(piece_length)?;
        Some(Self {
            piece_length,
            bpp,
            block: Vec::with_capacity(2 * BLOCK_SIZE as usize),
            leaves: Vec::new(),
            layer: Vec::new(),
            length: 0,
        })
    }
    /// A hasher that goes on after `piece_roots.len()` whole pieces, as if their bytes had been
    /// fed: `piece_roots` are what [`FileHasher::piece_roots`] returned at that point (a
    /// checkpoint, so a restart does not hash those pieces again). `None` if the piece length
    /// is not a power of two >= 16 KiB.
    pub fn resume(piece_length: u64, piece_roots: Vec<MerkleHash>) -> Option<Self> {
        let mut h = Self::new(piece_length)?;
        h.length = u64::try_from(piece_roots.len()).ok()?.checked_mul(piece_length)?;
        h.layer = piece_roots;
        Some(h)
    }

    /// The roots of the pieces finished so far (whole pieces only), in order.
    pub fn piece_roots(&self) -> &[MerkleHash] {
        &self.layer
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        self.absorb(data, &mut []);
    }

    /// Feeds the next bytes of the file and copies them to `out` in the same pass (see
    /// [`piecework_interleaved_sha::digest_pair_copy`]): for bytes on their way into a
    /// write buffer, the copy then costs little more than the hash alone.
    ///
    /// # Panics
    /// If `out` is not as long as `data`.
    pub fn update_copy(&mut self, data: &[u8], out: &mut [u8]) {
        assert_eq!(out.len(), data.len(), "output length must match the input");
        self.absorb(data, out);
    }

    /// `update`, copying to `out` unless it is empty.
    fn absorb(&mut self, mut data: &[u8], mut out: &mut [u8]) {
        // Leaves are hashed in pairs (`leaf_hash_pair`); up to two blocks wait in `block`,
        // and a whole block waiting there pairs with the next one in place.
        const B: usize = BLOCK_SIZE as usize;
        let copying = !out.is_empty();
        self.length += data.len() as u64;
        while !data.is_empty() {
            let held = self.block.len();
            let take = if held == 0 && data.len() >= 2 * B {
                let n = data.len() - data.len() % (2 * B);
                if copying {
                    let dst = out.get_mut(..n).unwrap_or_default();
                    for leaf in piecework_interleaved_sha::digest_chunks_copy(&data[..n], B, dst) {
                        self.push_leaf(leaf);
                    }
                } else {
                    for leaf in leaf_hashes(&data[..n]) {
                        self.push_leaf(leaf);
                    }
                }
                data = &data[n..];
                n
            } else if held == B && data.len() >= B {
                let (x, y) = leaf_hash_pair(&self.block, &data[..B]);
                self.block.clear();
                self.push_leaf(x);
                self.push_leaf(y);
                if copying {
                    out[..B].copy_from_slice(&data[..B]);
                }
                data = &data[B..];
                B
            } else {
                // Fill up to the next block boundary (or the pair's end).
                let goal = if held < B { B } else { 2 * B };
                let take = (goal - held).min(data.len());
                self.block.extend_from_slice(&data[..take]);
                if copying {
                    out[..take].copy_from_slice(&data[..take]);
                }
                data = &data[take..];
                if self.block.len() == 2 * B {
                    self.flush_block();
                }
                take
            };
            if copying {
                out = std::mem::take(&mut out).get_mut(take..).unwrap_or_default();
            }
        }
    }
    /// Hashes what waits in `block` (at most two blocks, the last maybe short).
    fn flush_block(&mut self) {
        let block = std::mem::take(&mut self.block);
        for leaf in leaf_hashes(&block) {
            self.push_leaf(leaf);
        }
        self.block = block;
        self.block.clear();
    }
    fn push_leaf(&mut self, h: MerkleHash) {
        self.leaves.push(h);
        if self.leaves.len() as u64 == self.bpp {
            self.layer.push(root_from_nodes(&self.leaves, 0, self.bpp));
            self.leaves.clear();
        }
    }
    /// Bytes fed so far.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// Finishes: `(pieces root, piece layer)`. An empty file has no root (`None`); a file of at
    /// most one piece has an empty layer (its root stands in for it).
    pub fn finish(mut self) -> (Option<MerkleHash>, Vec<MerkleHash>) {
        if !self.block.is_empty() {
            self.flush_block();
        }
        if self.length == 0 {
            return (None, Vec::new());
        }
        if self.length <= self.piece_length {
            // One piece: the root is over the real leaf count, padded to a power of two.
            let leaves = if self.layer.is_empty() { self.leaves } else { Vec::new() };
            let root = if leaves.is_empty() { self.layer[0] } else { root_from_leaves(&leaves) };
            return (Some(root), Vec::new());
        }
        if !self.leaves.is_empty() {
            self.layer.push(root_from_nodes(&self.leaves, 0, self.bpp));
        }
        let (_, log) = blocks_per_piece(self.piece_length).unwrap_or((1, 0));
        (Some(root_from_nodes(&self.layer, log, 1)), self.layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_root(data: &[u8]) -> MerkleHash {
        let mut leaves: Vec<MerkleHash> = data.chunks(BLOCK_SIZE as usize).map(leaf_hash).collect();
        let n = leaves.len().next_power_of_two();
        leaves.resize(n, [0u8; 32]);
        while leaves.len() > 1 {
            leaves = leaves.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        }
        leaves[0]
    }

    #[test]
    fn zero_hashes_chain() {
        assert_eq!(zero_hash(0), [0u8; 32]);
        assert_eq!(zero_hash(1), hash_pair(&[0u8; 32], &[0u8; 32]));
        assert_eq!(zero_hash(3), hash_pair(&zero_hash(2), &zero_hash(2)));
    }

    #[test]
    fn single_block_root_is_its_leaf() {
        let data = vec![7u8; 1000];
        let mut h = FileHasher::new(16384).unwrap();
        h.update(&data);
        assert_eq!(h.finish(), (Some(leaf_hash(&data)), vec![]));
    }

    #[test]
    fn resumed_from_piece_roots_matches_one_pass() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut whole = FileHasher::new(32768).unwrap();
        whole.update(&data);
        for pieces in [1usize, 3, 9] {
            let mut first = FileHasher::new(32768).unwrap();
            first.update(&data[..pieces * 32768]);
            let roots = first.piece_roots().to_vec();
            assert_eq!(roots.len(), pieces);
            let mut resumed = FileHasher::resume(32768, roots).unwrap();
            assert_eq!(resumed.length(), (pieces * 32768) as u64);
            resumed.update(&data[pieces * 32768..]);
            assert_eq!(resumed.finish(), whole.clone().finish(), "{pieces} pieces");
        }
        // Exactly one piece, nothing after it: the piece's root is the file's.
        let mut one = FileHasher::new(32768).unwrap();
        one.update(&data[..32768]);
        let resumed = FileHasher::resume(32768, one.piece_roots().to_vec()).unwrap();
        assert_eq!(resumed.finish(), one.finish());
        assert!(FileHasher::resume(1000, Vec::new()).is_none());
    }

    #[test]
    fn layer_verifies_and_tampering_is_caught() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = FileHasher::new(32768).unwrap();
        for c in data.chunks(7777) {
            h.update(c);
        }
        let (root, layer) = h.finish();
        let root = root.unwrap();
        assert_eq!(root, naive_root(&data));
        assert_eq!(layer.len(), 7);
        let flat: Vec<u8> = layer.iter().flatten().copied().collect();
        assert_eq!(verify_piece_layer(&flat, data.len() as u64, 32768, &root), Ok(()));
        let mut bad = flat.clone();
        bad[5] ^= 1;
        assert_eq!(
            verify_piece_layer(&bad, data.len() as u64, 32768, &root),
            Err(LayerProblem::RootMismatch)
        );
        assert_eq!(
            verify_piece_layer(&flat[..flat.len() - 1], data.len() as u64, 32768, &root),
            Err(LayerProblem::NotMultipleOf32)
        );
        assert!(matches!(
            verify_piece_layer(&flat[..32 * 6], data.len() as u64, 32768, &root),
            Err(LayerProblem::WrongCount { expected: 7, found: 6 })
        ));
    }

    #[test]
    fn proofs_climb_to_root() {
        let nodes: Vec<MerkleHash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let root = root_from_nodes(&nodes, 2, 1);
        for (i, n) in nodes.iter().enumerate() {
            let p = proof(&nodes, 2, 1, i).unwrap();
            assert_eq!(p.len(), 3);
            assert!(verify_proof(n, i as u64, &p, &root));
            assert!(!verify_proof(n, (i as u64) ^ 1, &p, &root));
        }
        assert!(proof(&nodes, 2, 1, 5).is_none());
    }

    proptest! {
        #[test]
        fn streaming_matches_naive(len in 1usize..150_000, chunk in 1usize..40_000, pl_log in 14u32..17) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let pl = 1u64 << pl_log;
            let mut h = FileHasher::new(pl).unwrap();
            for c in data.chunks(chunk) { h.update(c); }
            let (root, layer) = h.finish();
            prop_assert_eq!(root.unwrap(), naive_root(&data));
            // The copying form gives the same tree and copies every byte, in any chunking.
            let mut c = FileHasher::new(pl).unwrap();
            let mut copy = vec![0u8; len];
            for (src, dst) in data.chunks(chunk).zip(copy.chunks_mut(chunk)) { c.update_copy(src, dst); }
            prop_assert_eq!(c.finish(), (root, layer.clone()));
            prop_assert!(copy == data);
            if len as u64 > pl {
                prop_assert_eq!(root_from_piece_layer(&layer, pl).unwrap(), root.unwrap());
            } else {
                prop_assert!(layer.is_empty());
            }
        }
    }
}
