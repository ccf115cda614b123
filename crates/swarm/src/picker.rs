//! Piece picking: which blocks to request from which peer.
//!
//! Partly downloaded pieces are finished first (fewer pieces in flight means pieces verify
//! and can be shared sooner); new pieces are chosen at random until a few are complete (so
//! there is something to trade early), then rarest first; when every missing block is
//! already requested, end game requests the stragglers from more peers.

use std::collections::HashMap;

use piecework_metainfo::{BLOCK_SIZE, Bitfield, BlockRef, PieceIndex};

/// An engine-assigned id for one connection.
pub type PeerKey = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Free,
    Requested(Vec<PeerKey>),
    Received(PeerKey),
}

#[derive(Debug, Clone)]
struct Partial {
    blocks: Vec<Slot>,
    received: u32,
}

/// What [`Picker::received`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Other peers that had the same block requested (end game): cancel it there.
    pub cancel: Vec<PeerKey>,
}

/// Small, fast, non-cryptographic generator for tie breaks (xorshift64*).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The torrent-wide picker state. See the module docs for the strategy.
#[derive(Debug)]
pub struct Picker {
    sizes: Vec<u32>,
    have: Bitfield,
    availability: Vec<u16>,
    partial: HashMap<u32, Partial>,
    rng: Rng,
    random_first: u32,
    endgame_duplicates: usize,
}

impl Picker {
    /// A picker for pieces of the given sizes (bytes), with `have` already verified.
    ///
    /// `random_first` and `endgame_duplicates` are
    /// [`Settings::random_first_pieces`](crate::Settings::random_first_pieces) and
    /// [`Settings::endgame_duplicates`](crate::Settings::endgame_duplicates).
    pub fn new(
        sizes: Vec<u32>,
        have: Bitfield,
        seed: u64,
        random_first: u32,
        endgame_duplicates: usize,
    ) -> Self {
        let n = sizes.len();
        Picker {
            sizes,
            have,
            availability: vec![0; n],
            partial: HashMap::new(),
            rng: Rng::new(seed),
            random_first,
            endgame_duplicates: endgame_duplicates.max(1),
        }
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.have.len()
    }

    /// Size of a piece in bytes (0 for an index out of range).
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        self.sizes.get(piece.as_usize()).copied().unwrap_or(0)
    }

    fn blocks_of(&self, piece: u32) -> u32 {
        self.sizes.get(piece as usize).map_or(0, |s| s.div_ceil(BLOCK_SIZE))
    }

    fn block_ref(&self, piece: u32, n: u32) -> BlockRef {
        let size = self.sizes.get(piece as usize).copied().unwrap_or(0);
        let offset = n * BLOCK_SIZE;
        BlockRef {
            piece: PieceIndex::new(piece),
            offset,
            length: size.saturating_sub(offset).min(BLOCK_SIZE),
        }
    }

    /// A peer with these pieces joined.
    pub fn add_peer(&mut self, has: &Bitfield) {
        for p in has.iter_ones() {
            if let Some(a) = self.availability.get_mut(p.as_usize()) {
                *a = a.saturating_add(1);
            }
        }
    }

    /// A peer with these pieces left.
    pub fn remove_peer(&mut self, has: &Bitfield) {
        for p in has.iter_ones() {
            if let Some(a) = self.availability.get_mut(p.as_usize()) {
                *a = a.saturating_sub(1);
            }
        }
    }

    /// A peer announced a piece.
    pub fn add_have(&mut self, piece: PieceIndex) {
        if let Some(a) = self.availability.get_mut(piece.as_usize()) {
            *a = a.saturating_add(1);
        }
    }

    /// How many connected peers have `piece`.
    pub fn availability(&self, piece: PieceIndex) -> u16 {
        self.availability.get(piece.as_usize()).copied().unwrap_or(0)
    }

    /// Whether a peer with `has` has anything we lack.
    pub fn interesting(&self, has: &Bitfield) -> bool {
        self.have.wants_any_from(has)
    }

    /// Up to `max` blocks to request from `peer`, which has `has`; `allowed` filters pieces
    /// (the allowed-fast set while choked). Marks them requested.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        has: &Bitfield,
        allowed: &dyn Fn(PieceIndex) -> bool,
        max: usize,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        // 1. Free blocks of pieces in progress.
        let mut started: Vec<u32> = self
            .partial
            .iter()
            .filter(|(p, part)| {
                has.get(PieceIndex::new(**p))
                    && allowed(PieceIndex::new(**p))
                    && part.blocks.contains(&Slot::Free)
            })
            .map(|(p, _)| *p)
            .collect();
        started.sort_unstable();
        for p in started {
            self.take_free(peer, p, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        // 2. New pieces: random first, then rarest first with random tie breaks.
        let complete = self.have.count_ones();
        let mut candidates: Vec<(u16, u64, u32)> = has
            .iter_ones()
            .filter(|p| !self.have.get(*p) && !self.partial.contains_key(&p.get()) && allowed(*p))
            .map(|p| (self.availability(p), 0, p.get()))
            .collect();
        for c in &mut candidates {
            c.1 = self.rng.next();
            if complete < self.random_first {
                c.0 = 0;
            }
        }
        // Each piece gives at least one block, so at most `max` of them are used: only those
        // are sorted (a full sort per call cost more than the rest of picking).
        if candidates.len() > max {
            candidates.select_nth_unstable(max);
            candidates.truncate(max);
        }
        candidates.sort_unstable();
        for (_, _, p) in candidates {
            let n = self.blocks_of(p);
            self.partial.insert(p, Partial { blocks: vec![Slot::Free; n as usize], received: 0 });
            self.take_free(peer, p, max, &mut out);
            if out.len() >= max {
                return out;
            }
        }
        if !out.is_empty() {
            return out;
        }
        // 3. End game: blocks requested from others, not yet received.
        let dups = self.endgame_duplicates;
        let mut pieces: Vec<u32> = self.partial.keys().copied().collect();
        pieces.sort_unstable();
        for p in pieces {
            if !has.get(PieceIndex::new(p)) || !allowed(PieceIndex::new(p)) {
                continue;
            }
            let Some(part) = self.partial.get_mut(&p) else { continue };
            let mut got = Vec::new();
            for (n, slot) in part.blocks.iter_mut().enumerate() {
                if let Slot::Requested(peers) = slot
                    && peers.len() < dups
                    && !peers.contains(&peer)
                {
                    peers.push(peer);
                    got.push(n as u32);
                    if out.len() + got.len() >= max {
                        break;
                    }
                }
            }
            for n in got {
                out.push(self.block_ref(p, n));
            }
            if out.len() >= max {
                break;
            }
        }
        out
    }

    fn take_free(&mut self, peer: PeerKey, p: u32, max: usize, out: &mut Vec<BlockRef>) {
        let Some(part) = self.partial.get_mut(&p) else { return };
        let mut got = Vec::new();
        for (n, slot) in part.blocks.iter_mut().enumerate() {
            if out.len() + got.len() >= max {
                break;
            }
            if *slot == Slot::Free {
                *slot = Slot::Requested(vec![peer]);
                got.push(n as u32);
            }
        }
        for n in got {
            out.push(self.block_ref(p, n));
        }
    }

    fn slot(&mut self, b: BlockRef) -> Option<(&mut Partial, usize)> {
        if !b.offset.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let part = self.partial.get_mut(&b.piece.get())?;
        let n = (b.offset / BLOCK_SIZE) as usize;
        if n >= part.blocks.len() {
            return None;
        }
        Some((part, n))
    }

    /// `peer` delivered block `b`. `None` if the block was not wanted (already received,
    /// or its piece is not in progress): do not write it.
    pub fn received(&mut self, peer: PeerKey, b: BlockRef) -> Option<Received> {
        let (part, n) = self.slot(b)?;
        let cancel = match std::mem::replace(&mut part.blocks[n], Slot::Received(peer)) {
            Slot::Requested(peers) => peers.into_iter().filter(|p| *p != peer).collect(),
            Slot::Free => Vec::new(),
            prev @ Slot::Received(_) => {
                part.blocks[n] = prev;
                return None;
            }
        };
        part.received += 1;
        Some(Received { cancel })
    }

    /// A request of `peer` for `b` will not be answered.
    pub fn lost(&mut self, peer: PeerKey, b: BlockRef) {
        let Some((part, n)) = self.slot(b) else { return };
        if let Slot::Requested(peers) = &mut part.blocks[n] {
            peers.retain(|p| *p != peer);
            if peers.is_empty() {
                part.blocks[n] = Slot::Free;
            }
        }
    }

    /// A block could not be stored (disk error): fetch it again.
    pub fn unreceive(&mut self, b: BlockRef) {
        if let Some((part, n)) = self.slot(b)
            && matches!(part.blocks[n], Slot::Received(_))
        {
            part.blocks[n] = Slot::Free;
            part.received = part.received.saturating_sub(1);
        }
    }

    /// A piece passed verification.
    pub fn verified(&mut self, piece: PieceIndex) {
        self.partial.remove(&piece.get());
        self.have.set(piece);
    }

    /// A piece failed verification; `bad_blocks` names the blocks that were wrong (v2) or is
    /// `None` (v1: all of them). Returns the peers that sent the bad blocks, once per block,
    /// and makes those blocks free again.
    pub fn failed(&mut self, piece: PieceIndex, bad_blocks: Option<&[u32]>) -> Vec<PeerKey> {
        let mut blame = Vec::new();
        let Some(part) = self.partial.get_mut(&piece.get()) else { return blame };
        for (n, slot) in part.blocks.iter_mut().enumerate() {
            let bad = bad_blocks.is_none_or(|b| b.contains(&(n as u32)));
            if !bad {
                continue;
            }
            if let Slot::Received(p) = slot {
                blame.push(*p);
                part.received = part.received.saturating_sub(1);
            }
            *slot = Slot::Free;
        }
        blame
    }

    /// Whether every block of `piece` has been received (it is being verified or is done).
    pub fn is_piece_received(&self, piece: PieceIndex) -> bool {
        self.have.get(piece)
            || self.partial.get(&piece.get()).is_some_and(|p| p.received as usize == p.blocks.len())
    }

    /// Pieces being downloaded.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: PieceIndex) -> bool {
        true
    }

    fn picker(pieces: u32, piece_size: u32) -> Picker {
        Picker::new(vec![piece_size; pieces as usize], Bitfield::new(pieces), 42, 0, 2)
    }

    #[test]
    fn rarest_first_after_random_first() {
        let mut p = picker(8, BLOCK_SIZE);
        let full = Bitfield::full(8);
        p.add_peer(&full);
        p.add_peer(&full);
        let mut rare = Bitfield::new(8);
        rare.set(PieceIndex::new(5));
        p.add_peer(&rare);
        // Piece 5 is on three peers, the rest on two: any of the others is rarer.
        let got = p.pick(1, &full, &all, 1);
        assert_ne!(got[0].piece, PieceIndex::new(5));
        assert_eq!(p.availability(PieceIndex::new(5)), 3);
        // Only piece 5 left untouched and wanted last.
        let mut picked = vec![got[0].piece];
        for _ in 0..6 {
            picked.push(p.pick(1, &full, &all, 1)[0].piece);
        }
        assert!(!picked.contains(&PieceIndex::new(5)));
        assert_eq!(p.pick(1, &full, &all, 1)[0].piece, PieceIndex::new(5));
    }

    #[test]
    fn partial_pieces_are_finished_first_and_last_block_is_short() {
        let mut p = picker(4, BLOCK_SIZE * 2 + 100);
        let full = Bitfield::full(4);
        let first = p.pick(1, &full, &all, 2);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].piece, first[1].piece);
        let next = p.pick(2, &full, &all, 1);
        assert_eq!(next[0].piece, first[0].piece, "same piece, its third block");
        assert_eq!(next[0].length, 100);
    }

    #[test]
    fn endgame_duplicates_and_cancels() {
        let mut p = picker(1, BLOCK_SIZE * 2);
        let full = Bitfield::full(1);
        assert_eq!(p.pick(1, &full, &all, 10).len(), 2);
        // Nothing free: peer 2 gets the same blocks (end game), peer 3 too many duplicates.
        let dup = p.pick(2, &full, &all, 10);
        assert_eq!(dup.len(), 2);
        assert!(p.pick(3, &full, &all, 10).is_empty());
        let r = p.received(2, dup[0]).unwrap();
        assert_eq!(r.cancel, [1]);
        assert!(p.received(1, dup[0]).is_none(), "second copy is a duplicate");
        p.received(1, dup[1]).unwrap();
        assert!(p.is_piece_received(PieceIndex::new(0)));
    }

    #[test]
    fn failed_piece_blames_senders_and_frees_blocks() {
        let mut p = picker(2, BLOCK_SIZE * 3);
        let full = Bitfield::full(2);
        let a = p.pick(1, &full, &all, 2);
        let b = p.pick(2, &full, &all, 1);
        assert_eq!(a[0].piece, b[0].piece);
        p.received(1, a[0]).unwrap();
        p.received(1, a[1]).unwrap();
        p.received(2, b[0]).unwrap();
        let piece = a[0].piece;
        let mut blame = p.failed(piece, Some(&[2]));
        assert_eq!(blame, [2]);
        // Only the bad block is fetched again.
        let again = p.pick(3, &full, &all, 10);
        assert_eq!(again[0], b[0]);
        p.received(3, again[0]).unwrap();
        blame = p.failed(piece, None);
        blame.sort_unstable();
        assert_eq!(blame, [1, 1, 3]);
        p.verified(piece);
        assert!(p.have().get(piece));
    }

    #[test]
    fn lost_requests_become_free_and_allowed_filter_applies() {
        let mut p = picker(3, BLOCK_SIZE);
        let full = Bitfield::full(3);
        let only1 = |i: PieceIndex| i.get() == 1;
        let got = p.pick(1, &full, &only1, 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].piece, PieceIndex::new(1));
        p.lost(1, got[0]);
        assert_eq!(p.pick(2, &full, &only1, 5), got);
        // Pieces the peer lacks are never picked.
        let none = Bitfield::new(3);
        assert!(p.pick(3, &none, &all, 5).is_empty());
        assert!(!p.interesting(&none));
        assert!(p.interesting(&full));
    }
}
