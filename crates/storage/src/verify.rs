//! Hashing one piece from the backend: SHA-1 for v1, merkle for v2 ([BEP 52]), both for
//! hybrid.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use piecework_interleaved_sha::Sha1;
use piecework_metainfo::merkle::{MerkleHash, leaf_hash, leaf_hash_pair, root_from_nodes};
use piecework_metainfo::{BLOCK_SIZE, PieceIndex};

use crate::backend::Backend;
use crate::{Error, Layout};

/// The outcome of hashing a piece.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every hash the torrent has for the piece matches.
    Good,
    /// A hash differs. `leaves` are the v2 block hashes of the data read (empty for v1-only).
    Bad { leaves: Vec<MerkleHash> },
}

/// What is already known of a piece's hashes, taken from its blocks as they were written:
/// the SHA-1 of its first `sha1_pos` bytes, and the v2 leaves of some blocks.
#[derive(Debug, Default)]
pub(crate) struct Known {
    pub(crate) sha1: Option<(Sha1, u32)>,
    pub(crate) leaves: Vec<Option<MerkleHash>>,
}

/// Reads a piece (pad files as zeros) in chunks of `buf`'s capacity and hashes it.
///
/// Memory: `buf` plus one 32-byte leaf per block of a v2 piece.
pub(crate) fn check_piece<B: Backend + ?Sized>(
    layout: &Layout,
    backend: &B,
    piece: PieceIndex,
    buf: &mut [u8],
) -> Result<Check, Error> {
    check_piece_from(layout, backend, piece, buf, Known::default())
}

/// [`check_piece`], reading back only what `known` does not cover: nothing when the blocks
/// were hashed as they arrived, in order.
pub(crate) fn check_piece_from<B: Backend + ?Sized>(
    layout: &Layout,
    backend: &B,
    piece: PieceIndex,
    buf: &mut [u8],
    known: Known,
) -> Result<Check, Error> {
    let size = layout.piece_size(piece)?;
    let v1 = layout.v1_hash(piece);
    let v2 = layout.v2_piece(piece);
    // Positions are block-aligned (or the piece's end), so whole blocks are fed below.
    let (mut sha1, sha1_pos) = match (v1, known.sha1) {
        (None, _) => (None, size),
        (Some(_), Some((h, pos))) if (pos < size && pos.is_multiple_of(BLOCK_SIZE)) || pos == size => {
            (Some(h), pos)
        }
        (Some(_), _) => (Some(Sha1::new()), 0),
    };
    let v2_len = v2.as_ref().map_or(0, |v| v.data_len);
    let mut leaves = if v2.is_some() { known.leaves } else { Vec::new() };
    leaves.resize(v2_len.div_ceil(BLOCK_SIZE) as usize, None);
    let first_missing = leaves.iter().position(Option::is_none).map_or(size, |i| i as u32 * BLOCK_SIZE);
    // `buf` is a multiple of the block size (Settings::validate), so blocks never straddle reads.
    let chunk = buf.len().max(BLOCK_SIZE as usize) as u32;
    let mut pos = sha1_pos.min(first_missing);
    while pos < size {
        let n = chunk.min(size - pos);
        let data = buf.get_mut(..n as usize).ok_or(Error::InvalidSetting {
            name: "read_chunk_size",
            reason: "hash buffer smaller than a block",
        })?;
        read_range(layout, backend, piece, pos, data)?;
        let mut at = pos;
        let mut wanted = Vec::new();
        for block in data.chunks(BLOCK_SIZE as usize) {
            let slot = (at / BLOCK_SIZE) as usize;
            let leaf_wanted = at < v2_len && matches!(leaves.get(slot), Some(None));
            if let Some(h) = &mut sha1
                && at >= sha1_pos
            {
                if leaf_wanted && block.len() as u32 <= v2_len - at {
                    // Both hashes over the same bytes: computed together.
                    leaves[slot] = Some(h.update_with_leaf(block));
                    at += block.len() as u32;
                    continue;
                }
                h.update(block);
            }
            if leaf_wanted {
                wanted.push((slot, &block[..(v2_len - at).min(block.len() as u32) as usize]));
            }
            at += block.len() as u32;
        }
        leaves_of(wanted, |slot, leaf| leaves[slot] = Some(leaf));
        pos += n;
    }
    // Every slot from `first_missing` on was filled by the reads above.
    let leaves: Vec<MerkleHash> = leaves.into_iter().map(Option::unwrap_or_default).collect();
    let v1_ok = match (sha1, v1) {
        (Some(h), Some(want)) => h.finalize().as_slice() == want,
        _ => true,
    };
    let v2_ok = match &v2 {
        Some(v) => root_from_nodes(&leaves, 0, v.min_width) == *v.expected,
        None => true,
    };
    if v1.is_none() && v2.is_none() {
        // Nothing to check against (cannot happen for a layout built from a metainfo).
        return Ok(Check::Bad { leaves });
    }
    Ok(if v1_ok && v2_ok { Check::Good } else { Check::Bad { leaves } })
}

/// Hashes the leaves of `(slot, block)` pairs, two at a time where neighbours have the same
/// length (twice the rate with the x86 SHA extensions).
pub(crate) fn leaves_of<'a>(
    blocks: impl IntoIterator<Item = (usize, &'a [u8])>,
    mut put: impl FnMut(usize, MerkleHash),
) {
    let mut pending: Option<(usize, &[u8])> = None;
    for (i, b) in blocks {
        match pending.take() {
            Some((j, a)) if a.len() == b.len() => {
                let (x, y) = leaf_hash_pair(a, b);
                put(j, x);
                put(i, y);
            }
            Some((j, a)) => {
                put(j, leaf_hash(a));
                pending = Some((i, b));
            }
            None => pending = Some((i, b)),
        }
    }
    if let Some((j, a)) = pending {
        put(j, leaf_hash(a));
    }
}

/// Reads `[offset, offset + buf.len())` of a piece, pad files as zeros.
pub(crate) fn read_range<B: Backend + ?Sized>(
    layout: &Layout,
    backend: &B,
    piece: PieceIndex,
    offset: u32,
    buf: &mut [u8],
) -> Result<(), Error> {
    let mut o = 0usize;
    for seg in layout.segments(piece, offset, buf.len())? {
        let part = &mut buf[o..o + seg.len];
        if seg.pad {
            part.fill(0);
        } else {
            backend.read_at(seg.file, seg.file_offset, part)?;
        }
        o += seg.len;
    }
    // Segments cover the whole range except in a v2 gap, which segments() refuses.
    buf[o..].fill(0);
    Ok(())
}
