//! Streaming SHA-256 merkle tree over 16 KiB blocks, the [BEP 52] layout.
//!
//! Leaves are SHA-256 of each 16 KiB block (the last one may be shorter); the
//! tree is padded to a power of two with zero leaf hashes. The root is a v2
//! "pieces root". Memory is O(log n): one running block hash plus one hash
//! per tree level. This belongs with metainfo's merkle helpers once that crate
//! has them.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use sha2::{Digest as _, Sha256};

/// Leaf block size fixed by BEP 52.
pub const BLOCK_SIZE: usize = 16 * 1024;

/// A v2 pieces root (SHA-256 merkle root of one file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PiecesRoot(pub [u8; 32]);

impl PiecesRoot {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Incremental BEP 52 merkle root builder.
#[derive(Clone, Default)]
pub struct MerkleBuilder {
    block: Sha256,
    block_len: usize,
    len: u64,
    // Completed subtrees, strictly decreasing height from bottom to top.
    stack: Vec<(u32, [u8; 32])>,
}

impl std::fmt::Debug for MerkleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleBuilder").field("len", &self.len).finish()
    }
}

fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

fn zero_subtree(height: u32) -> [u8; 32] {
    let mut z = [0u8; 32];
    for _ in 0..height {
        z = hash_pair(&z, &z);
    }
    z
}

impl MerkleBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            let (now, rest) = data.split_at(take);
            self.block.update(now);
            self.block_len += take;
            self.len += take as u64;
            data = rest;
            if self.block_len == BLOCK_SIZE {
                let leaf: [u8; 32] = std::mem::take(&mut self.block).finalize().into();
                self.block_len = 0;
                self.push(0, leaf);
            }
        }
    }

    fn push(&mut self, mut height: u32, mut hash: [u8; 32]) {
        while let Some(&(h, top)) = self.stack.last() {
            if h != height {
                break;
            }
            self.stack.pop();
            hash = hash_pair(&top, &hash);
            height += 1;
        }
        self.stack.push((height, hash));
    }

    /// The pieces root of everything fed; `None` for an empty file (BEP 52
    /// gives empty files no root).
    pub fn finish(&self) -> Option<PiecesRoot> {
        let mut stack = self.stack.clone();
        if self.block_len > 0 {
            let leaf: [u8; 32] = self.block.clone().finalize().into();
            stack.push((0, leaf));
        }
        // Fold from the smallest subtree upwards, padding each with zero
        // subtrees until it is as tall as its left neighbour.
        let (mut height, mut acc) = stack.pop()?;
        while let Some((h, left)) = stack.pop() {
            while height < h {
                acc = hash_pair(&acc, &zero_subtree(height));
                height += 1;
            }
            acc = hash_pair(&left, &acc);
            height += 1;
        }
        Some(PiecesRoot(acc))
    }
}

/// Naive oracle: the pieces root of `data` computed layer by layer.
pub fn pieces_root_of(data: &[u8]) -> Option<PiecesRoot> {
    if data.is_empty() {
        return None;
    }
    let mut layer: Vec<[u8; 32]> = data.chunks(BLOCK_SIZE).map(|c| Sha256::digest(c).into()).collect();
    let width = layer.len().next_power_of_two();
    layer.resize(width, [0u8; 32]);
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
    }
    layer.first().copied().map(PiecesRoot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_block_root_is_its_hash() {
        let data = vec![7u8; 100];
        let root = pieces_root_of(&data).unwrap();
        assert_eq!(root.0, <[u8; 32]>::from(Sha256::digest(&data)));
        let mut b = MerkleBuilder::new();
        b.update(&data);
        assert_eq!(b.finish(), Some(root));
        assert_eq!(MerkleBuilder::new().finish(), None);
    }

    #[test]
    fn three_blocks_pad_with_zero_leaf() {
        let data = vec![1u8; 2 * BLOCK_SIZE + 5];
        let l0: [u8; 32] = Sha256::digest(&data[..BLOCK_SIZE]).into();
        let l2: [u8; 32] = Sha256::digest(&data[2 * BLOCK_SIZE..]).into();
        let want = hash_pair(&hash_pair(&l0, &l0), &hash_pair(&l2, &[0u8; 32]));
        let mut b = MerkleBuilder::new();
        b.update(&data);
        assert_eq!(b.finish().unwrap().0, want);
    }

    #[test]
    fn streaming_matches_oracle_at_block_edges() {
        for blocks in [1usize, 2, 3, 4, 5, 7, 8, 9, 17] {
            for extra in [0usize, 1] {
                let len = blocks * BLOCK_SIZE - 1 + extra;
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut b = MerkleBuilder::new();
                for c in data.chunks(5000) {
                    b.update(c);
                }
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
