//! Piece and block geometry: [`PieceIndex`], [`BlockRef`], [`Geometry`].
//!
//! Pieces are the unit of hashing ([BEP 3]); blocks of [`BLOCK_SIZE`] bytes are the unit of
//! transfer and the v2 merkle leaves ([BEP 52]).
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use core::fmt;

/// Size of a block: the unit of `request`/`piece` messages and of v2 merkle leaves (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// Index of a piece within a torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PieceIndex(u32);

impl PieceIndex {
    /// Wraps an index.
    pub const fn new(index: u32) -> Self {
        Self(index)
    }
    /// The index as `u32` (the wire form).
    pub const fn get(self) -> u32 {
        self.0
    }
    /// The index as `usize`, for indexing local tables.
    pub fn as_usize(self) -> usize {
        // u32 always fits in usize on the 32- and 64-bit targets we build for.
        self.0 as usize
    }
}

impl fmt::Debug for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PieceIndex({})", self.0)
    }
}
impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl From<u32> for PieceIndex {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

/// One block of one piece: what a `request` message names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockRef {
    /// The piece.
    pub piece: PieceIndex,
    /// Byte offset inside the piece.
    pub offset: u32,
    /// Length in bytes (at most [`BLOCK_SIZE`]).
    pub length: u32,
}

/// How a torrent's payload splits into pieces and blocks.
///
/// Built with checked arithmetic, so every accessor is total: an index past the end gives `None`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Geometry {
    total_length: u64,
    piece_length: u32,
    piece_count: u32,
}

impl Geometry {
    /// Geometry for `total_length` bytes cut into `piece_length`-byte pieces.
    ///
    /// `None` if `piece_length` is zero or the piece count does not fit in `u32`.
    pub fn new(total_length: u64, piece_length: u32) -> Option<Self> {
        if piece_length == 0 {
            return None;
        }
        let count = total_length.div_ceil(u64::from(piece_length));
        let piece_count = u32::try_from(count).ok()?;
        Some(Self { total_length, piece_length, piece_count })
    }
    /// Total payload bytes.
    pub const fn total_length(&self) -> u64 {
        self.total_length
    }
    /// Nominal piece length.
    pub const fn piece_length(&self) -> u32 {
        self.piece_length
    }
    /// Number of pieces.
    pub const fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// Byte offset of a piece in the payload.
    pub fn piece_offset(&self, piece: PieceIndex) -> Option<u64> {
        (piece.get() < self.piece_count).then(|| u64::from(piece.get()) * u64::from(self.piece_length))
    }
    /// Length of a piece (the last one may be short).
    pub fn piece_size(&self, piece: PieceIndex) -> Option<u32> {
        let off = self.piece_offset(piece)?;
        let rest = self.total_length - off;
        // rest <= total and the min with piece_length fits u32.
        Some(rest.min(u64::from(self.piece_length)) as u32)
    }
    /// Number of blocks in a piece.
    pub fn blocks_in_piece(&self, piece: PieceIndex) -> Option<u32> {
        Some(self.piece_size(piece)?.div_ceil(BLOCK_SIZE))
    }
    /// The `n`th block of a piece.
    pub fn block(&self, piece: PieceIndex, n: u32) -> Option<BlockRef> {
        let size = self.piece_size(piece)?;
        let offset = n.checked_mul(BLOCK_SIZE)?;
        if offset >= size {
            return None;
        }
        Some(BlockRef { piece, offset, length: (size - offset).min(BLOCK_SIZE) })
    }
    /// Whether a block reference is one this geometry produces (what a peer may request).
    pub fn is_valid_block(&self, b: BlockRef) -> bool {
        b.offset.is_multiple_of(BLOCK_SIZE) && self.block(b.piece, b.offset / BLOCK_SIZE) == Some(b)
    }
    /// The pieces overlapping the byte range `[offset, offset + len)`.
    pub fn pieces_for_range(&self, offset: u64, len: u64) -> core::ops::Range<u32> {
        if len == 0 || offset >= self.total_length {
            return 0..0;
        }
        let end = offset.saturating_add(len).min(self.total_length);
        let pl = u64::from(self.piece_length);
        // Both quotients are <= piece_count, which fits u32.
        (offset / pl) as u32..end.div_ceil(pl) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_block_are_short() {
        let g = Geometry::new(100_000, 32_768).unwrap();
        assert_eq!(g.piece_count(), 4);
        assert_eq!(g.piece_size(PieceIndex::new(3)), Some(100_000 - 3 * 32_768));
        assert_eq!(g.piece_size(PieceIndex::new(4)), None);
        assert_eq!(g.blocks_in_piece(PieceIndex::new(0)), Some(2));
        let last = g.block(PieceIndex::new(3), 0).unwrap();
        assert_eq!(last.length, 1_696);
        assert!(g.block(PieceIndex::new(3), 1).is_none());
        assert!(g.is_valid_block(last));
        assert!(!g.is_valid_block(BlockRef { length: 16_384, ..last }));
        assert_eq!(g.pieces_for_range(32_767, 2), 0..2);
        assert_eq!(g.pieces_for_range(99_999, 100), 3..4);
    }

    #[test]
    fn rejects_impossible_geometry() {
        assert!(Geometry::new(1, 0).is_none());
        assert!(Geometry::new(u64::MAX, 1).is_none());
        let g = Geometry::new(0, 16_384).unwrap();
        assert_eq!(g.piece_count(), 0);
        assert!(g.block(PieceIndex::new(0), 0).is_none());
    }
}
