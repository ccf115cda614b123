//! [`Storage`]: blocks in, verified pieces out.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use piecework_interleaved_sha::Sha1;

use piecework_metainfo::merkle::{MerkleHash, root_from_nodes};
use piecework_metainfo::{BLOCK_SIZE, Bitfield, PieceIndex};

use crate::backend::Backend;
use crate::resume::ResumeData;
use crate::verify::{Check, Known, check_piece, check_piece_from, leaves_of, read_range};
use crate::{Error, Layout, Settings};

/// What [`Storage::write_block`] did with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// Written; the piece still misses blocks.
    Stored,
    /// Written, and it was the piece's last missing block: the piece is queued for hashing and
    /// its [`PieceResult`] will arrive through [`Storage::poll_result`].
    PieceComplete,
    /// Not written: the piece is already verified or being hashed, or the block was already
    /// written (or is being written by another thread).
    Duplicate,
}

/// The verdict on one completed piece.
#[derive(Debug)]
#[non_exhaustive]
pub enum PieceVerdict {
    /// Every hash matched; the piece is now in [`Storage::have`].
    Verified,
    /// A hash did not match. The named blocks (indices of 16 KiB blocks inside the piece) were
    /// discarded and must be downloaded again. For v1 pieces that is every block. For v2
    /// pieces it is the blocks whose leaf hash differs from the ones given with
    /// [`Storage::add_block_hashes`], or every block when none were given.
    Failed {
        /// The discarded blocks.
        bad_blocks: Vec<u32>,
    },
    /// The piece could not be read back; every block was discarded.
    Unreadable(Error),
}

/// The result of verifying one piece.
#[derive(Debug)]
pub struct PieceResult {
    /// The piece.
    pub piece: PieceIndex,
    /// What happened.
    pub verdict: PieceVerdict,
}

/// Progress of a recheck, reported after each piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecheckProgress {
    /// Pieces hashed so far.
    pub pieces_done: u32,
    /// Pieces to hash in total.
    pub pieces_total: u32,
    /// Of those hashed, how many matched.
    pub pieces_good: u32,
    /// Bytes hashed so far.
    pub bytes_done: u64,
}

/// What [`Storage::load_resume`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ResumeReport {
    /// Pieces taken from the resume data without hashing.
    pub trusted: u32,
    /// Pieces re-hashed (in changed files, or spot checks).
    pub rechecked: u32,
    /// Of those, how many failed and were dropped.
    pub failed: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BlockState {
    Missing,
    Writing,
    Written,
}

struct Partial {
    /// Tells this piece's entry from a later one after a recheck or resume load reset it.
    id: u64,
    blocks: Vec<BlockState>,
    written: u32,
    hashing: bool,
    /// The piece's SHA-1 over its first `sha1_pos` bytes, fed from the blocks as they are
    /// written (`None` for v2-only pieces, and while a writer is feeding it).
    sha1: Option<Sha1>,
    sha1_pos: u32,
    /// v2 leaf hashes of the blocks written so far (empty for v1-only pieces).
    leaves: Vec<Option<MerkleHash>>,
}

impl core::fmt::Debug for Partial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Partial")
            .field("blocks", &self.blocks)
            .field("written", &self.written)
            .field("hashing", &self.hashing)
            .field("sha1_pos", &self.sha1_pos)
            .finish_non_exhaustive()
    }
}

impl Partial {
    fn new(layout: &Layout, piece: PieceIndex, blocks: usize, id: u64) -> Self {
        let mut p = Self {
            id,
            blocks: vec![BlockState::Missing; blocks],
            written: 0,
            hashing: false,
            sha1: None,
            sha1_pos: 0,
            leaves: Vec::new(),
        };
        p.reset_hashes(layout, piece);
        p
    }

    /// Forgets the hashes taken so far (the blocks still written are read back instead).
    fn reset_hashes(&mut self, layout: &Layout, piece: PieceIndex) {
        self.sha1 = layout.v1_hash(piece).map(|_| Sha1::new());
        self.sha1_pos = 0;
        let n = layout.v2_piece(piece).map_or(0, |v| v.data_len.div_ceil(BLOCK_SIZE) as usize);
        self.leaves = vec![None; n];
    }
}

#[derive(Debug)]
struct State {
    have: Bitfield,
    partial: HashMap<u32, Partial>,
    block_hashes: HashMap<u32, Vec<MerkleHash>>,
    pending: usize,
    next_partial: u64,
}

struct Shared<B> {
    layout: Layout,
    backend: B,
    state: Mutex<State>,
    idle: Condvar,
    chunk: usize,
    alive: AtomicUsize,
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it: the state itself is only ever
        // updated in single assignments, so it is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Piece storage for one torrent: writes blocks through a [`Backend`], verifies completed
/// pieces on a pool of hashing threads, and keeps the bitfield of verified pieces.
///
/// All methods take `&self`; share it between threads with an `Arc`. Dropping it stops the
/// hashing threads (pieces queued but not hashed are simply not verified).
pub struct Storage<B: Backend + 'static> {
    shared: Arc<Shared<B>>,
    jobs: Option<mpsc::Sender<u32>>,
    results: Mutex<mpsc::Receiver<PieceResult>>,
    workers: Vec<JoinHandle<()>>,
    settings: Settings,
}

impl<B: Backend + 'static> core::fmt::Debug for Storage<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Storage")
            .field("pieces", &self.shared.layout.piece_count())
            .field("have", &self.shared.lock().have)
            .finish_non_exhaustive()
    }
}

impl<B: Backend + 'static> Storage<B> {
    /// Storage for `layout` on `backend`, with nothing verified yet.
    ///
    /// Creates the torrent's zero-length files and starts the hashing threads.
    pub fn new(layout: Layout, backend: B, settings: Settings) -> Result<Self, Error> {
        settings.validate()?;
        for (i, f) in layout.files().iter().enumerate() {
            if f.is_stored() && f.length() == 0 {
                backend.create_empty(i)?;
            }
        }
        let n = layout.piece_count();
        let shared = Arc::new(Shared {
            layout,
            backend,
            state: Mutex::new(State {
                have: Bitfield::new(n),
                partial: HashMap::new(),
                block_hashes: HashMap::new(),
                pending: 0,
                next_partial: 0,
            }),
            idle: Condvar::new(),
            chunk: settings.read_chunk_size,
            alive: AtomicUsize::new(0),
        });
        let (job_tx, job_rx) = mpsc::channel::<u32>();
        let (res_tx, res_rx) = mpsc::channel::<PieceResult>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::new();
        for i in 0..settings.effective_hash_threads() {
            let shared = shared.clone();
            let job_rx = job_rx.clone();
            let res_tx = res_tx.clone();
            shared.alive.fetch_add(1, Ordering::SeqCst);
            let h = std::thread::Builder::new()
                .name(format!("piecework-hash-{i}"))
                .spawn(move || worker(&shared, &job_rx, &res_tx))
                .map_err(|e| Error::Io { path: "hash thread".into(), op: "spawn", source: e })?;
            workers.push(h);
        }
        Ok(Self { shared, jobs: Some(job_tx), results: Mutex::new(res_rx), workers, settings })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.shared.layout
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A copy of the bitfield of verified pieces.
    pub fn have(&self) -> Bitfield {
        self.shared.lock().have.clone()
    }

    /// Whether a piece is verified.
    pub fn has_piece(&self, piece: PieceIndex) -> bool {
        self.shared.lock().have.get(piece)
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.shared.lock().have.is_full()
    }

    /// Writes one block of a piece (a BEP 3 `piece` message's payload).
    ///
    /// The block must be one the geometry gives: `offset` a multiple of 16 KiB inside the piece,
    /// `data` exactly 16 KiB or the rest of the piece if shorter. Blocks may arrive in any order
    /// and from any thread. When the last one is written the piece is queued for hashing; the
    /// piece is marked verified only after all its data is written and hashed.
    ///
    /// Errors: [`Error::PieceOutOfRange`], [`Error::MisalignedBlock`], [`Error::OversizedBlock`],
    /// [`Error::RangeOutOfPiece`] for bad input (nothing is written); environment errors
    /// ([`Error::DiskFull`], [`Error::PermissionDenied`], ...) from the backend, after which
    /// the block counts as missing.
    pub fn write_block(&self, piece: PieceIndex, offset: u32, data: &[u8]) -> Result<WriteOutcome, Error> {
        self.write_blocks(piece, offset, &[data])
    }

    /// Writes consecutive blocks of one piece, the first at `offset`, with as few write calls
    /// as the files allow (one `pwritev` per file touched).
    ///
    /// Each block follows the rules of [`write_block`](Self::write_block) and the errors are
    /// the same; a bad block refuses the whole call before anything is written. Blocks already
    /// written are skipped. The outcome is [`WriteOutcome::PieceComplete`] if this call wrote
    /// the piece's last missing block, else `Stored` if it wrote any, else `Duplicate`. After a
    /// backend error none of the blocks count as written.
    ///
    /// With [`Settings::hash_on_write`], blocks are hashed here while they are in the CPU
    /// cache (the SHA-1 while they arrive in order), so the piece's verification need not read
    /// them back.
    pub fn write_blocks(
        &self,
        piece: PieceIndex,
        offset: u32,
        blocks: &[&[u8]],
    ) -> Result<WriteOutcome, Error> {
        let layout = &self.shared.layout;
        let size = layout.piece_size(piece)?;
        if !offset.is_multiple_of(BLOCK_SIZE) {
            return Err(Error::MisalignedBlock { piece: piece.get(), offset });
        }
        let mut at = offset;
        for data in blocks {
            if data.len() > BLOCK_SIZE as usize {
                return Err(Error::OversizedBlock { piece: piece.get(), length: data.len() });
            }
            let want = size.saturating_sub(at).min(BLOCK_SIZE);
            if at >= size || data.len() != want as usize {
                return Err(Error::RangeOutOfPiece {
                    piece: piece.get(),
                    offset: at,
                    length: data.len(),
                    piece_size: size,
                });
            }
            // at < size, so at + want <= size.
            at += want;
        }
        let first = (offset / BLOCK_SIZE) as usize;
        let count = size.div_ceil(BLOCK_SIZE) as usize;
        let on_write = self.settings().hash_on_write;
        let (mine, id, mut sha1) = {
            let mut guard = self.shared.lock();
            let st = &mut *guard;
            if st.have.get(piece) {
                return Ok(WriteOutcome::Duplicate);
            }
            let next = &mut st.next_partial;
            let p = st.partial.entry(piece.get()).or_insert_with(|| {
                *next += 1;
                Partial::new(layout, piece, count, *next)
            });
            if p.hashing {
                return Ok(WriteOutcome::Duplicate);
            }
            // The blocks this call writes; the others are written or being written already.
            let mine: Vec<bool> = (first..first + blocks.len())
                .map(|b| match p.blocks.get_mut(b) {
                    Some(s @ BlockState::Missing) => {
                        *s = BlockState::Writing;
                        true
                    }
                    _ => false,
                })
                .collect();
            let Some(lead) = mine.iter().position(|&m| m) else { return Ok(WriteOutcome::Duplicate) };
            // The running SHA-1 comes along if this call's first block is the one it waits for.
            let sha1 = if on_write && p.sha1_pos == offset + lead as u32 * BLOCK_SIZE {
                p.sha1.take()
            } else {
                None
            };
            (mine, p.id, sha1)
        };
        let mut written = Ok(());
        let mut i = 0;
        while i < blocks.len() {
            if !mine[i] {
                i += 1;
                continue;
            }
            let run = mine[i..].iter().take_while(|&&m| m).count();
            written = self.write_segments(piece, offset + i as u32 * BLOCK_SIZE, &blocks[i..i + run]);
            if written.is_err() {
                break;
            }
            i += run;
        }
        // Hashed after the write succeeded, so the hashes always describe what is on disk.
        let mut sha1_pos = 0;
        let mut leaves = Vec::new();
        if written.is_ok() && on_write {
            let v2_len = layout.v2_piece(piece).map_or(0, |v| v.data_len);
            let mut at = offset;
            sha1_pos = offset + mine.iter().take_while(|&&m| !m).count() as u32 * BLOCK_SIZE;
            let mut wanted = Vec::with_capacity(blocks.len());
            for (data, &m) in blocks.iter().zip(&mine) {
                if m {
                    let in_v2 = at < v2_len;
                    if let Some(h) = &mut sha1
                        && at == sha1_pos
                        && in_v2
                        && data.len() as u32 <= v2_len - at
                    {
                        // A block of file data (no pad) both hashes want: both at once.
                        leaves.push(((at / BLOCK_SIZE) as usize, h.update_with_leaf(data)));
                        sha1_pos += data.len() as u32;
                        at += data.len() as u32;
                        continue;
                    }
                    if let Some(h) = &mut sha1
                        && at == sha1_pos
                    {
                        if self.hash_v1(h, piece, at, data) {
                            sha1_pos += data.len() as u32;
                        } else {
                            // Verification starts the SHA-1 over from the disk.
                            sha1 = None;
                        }
                    }
                    if in_v2 {
                        wanted.push((
                            (at / BLOCK_SIZE) as usize,
                            &data[..(v2_len - at).min(data.len() as u32) as usize],
                        ));
                    }
                }
                at += data.len() as u32;
            }
            leaves_of(wanted, |slot, leaf| leaves.push((slot, leaf)));
        }
        let mut st = self.shared.lock();
        let Some(p) = st.partial.get_mut(&piece.get()).filter(|p| p.id == id) else {
            // A recheck or resume load reset the piece meanwhile; the data is on disk but
            // not accounted for, which is safe.
            written?;
            return Ok(WriteOutcome::Duplicate);
        };
        let blocks_mine = mine.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| first + i);
        if let Err(e) = written {
            for b in blocks_mine {
                if let Some(s) = p.blocks.get_mut(b) {
                    *s = BlockState::Missing;
                }
            }
            if sha1.is_some() {
                p.sha1 = sha1;
            }
            return Err(e);
        }
        for b in blocks_mine {
            if let Some(s) = p.blocks.get_mut(b) {
                *s = BlockState::Written;
                p.written += 1;
            }
        }
        if sha1.is_some() {
            p.sha1 = sha1;
            p.sha1_pos = sha1_pos;
        }
        for (b, leaf) in leaves {
            if let Some(l) = p.leaves.get_mut(b) {
                *l = Some(leaf);
            }
        }
        if p.written as usize != p.blocks.len() {
            return Ok(WriteOutcome::Stored);
        }
        p.hashing = true;
        st.pending += 1;
        drop(st);
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(piece.get()).is_ok());
        if !sent || self.shared.alive.load(Ordering::SeqCst) == 0 {
            let mut st = self.shared.lock();
            st.pending -= 1;
            st.partial.remove(&piece.get());
            return Err(Error::WorkersGone);
        }
        Ok(WriteOutcome::PieceComplete)
    }

    /// Feeds a block to a piece's SHA-1 as it will read back: pad-file bytes as zeros.
    /// `false` (and `h` unusable) if the range is not in the piece, which the caller checked.
    fn hash_v1(&self, h: &mut Sha1, piece: PieceIndex, offset: u32, data: &[u8]) -> bool {
        const ZEROS: [u8; 4096] = [0; 4096];
        let Ok(segs) = self.shared.layout.segments(piece, offset, data.len()) else { return false };
        let mut o = 0usize;
        for seg in segs {
            if seg.pad {
                let mut left = seg.len;
                while left > 0 {
                    let n = left.min(ZEROS.len());
                    h.update(&ZEROS[..n]);
                    left -= n;
                }
            } else {
                h.update(&data[o..o + seg.len]);
            }
            o += seg.len;
        }
        true
    }

    /// Writes consecutive blocks starting at `offset`: one vectored write per file segment.
    fn write_segments(&self, piece: PieceIndex, offset: u32, blocks: &[&[u8]]) -> Result<(), Error> {
        let total: usize = blocks.iter().map(|b| b.len()).sum();
        let (mut bi, mut bo) = (0usize, 0usize);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(blocks.len() + 1);
        for seg in self.shared.layout.segments(piece, offset, total)? {
            // Gather the slices of `blocks` covering this segment.
            parts.clear();
            let mut left = seg.len;
            while left > 0 {
                let Some(b) = blocks.get(bi) else { break };
                let n = (b.len() - bo).min(left);
                parts.push(&b[bo..bo + n]);
                left -= n;
                bo += n;
                if bo == b.len() {
                    bi += 1;
                    bo = 0;
                }
            }
            if !seg.pad {
                match parts.as_slice() {
                    [one] => self.shared.backend.write_at(seg.file, seg.file_offset, one)?,
                    _ => self.shared.backend.write_vectored_at(seg.file, seg.file_offset, &parts)?,
                }
            }
        }
        Ok(())
    }

    /// Reads part of a verified piece (to serve a peer's `request`).
    ///
    /// Fails with [`Error::PieceNotAvailable`] if the piece is not verified, and with the range
    /// errors of [`write_block`](Self::write_block) for a range outside the piece.
    pub fn read_block(&self, piece: PieceIndex, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        self.shared.layout.check_piece(piece)?;
        if !self.has_piece(piece) {
            return Err(Error::PieceNotAvailable { piece: piece.get() });
        }
        read_range(&self.shared.layout, &self.shared.backend, piece, offset, buf)
    }

    /// Gives the v2 leaf hashes of a piece's blocks (from a BEP 52 `hashes` message, already
    /// checked against the piece layer by the caller or not), so that a failed piece names its
    /// bad blocks instead of discarding all of them.
    ///
    /// The hashes are checked against the piece layer here; a mismatch is
    /// [`Error::BlockHashesMismatch`] and nothing is stored. They are dropped once the piece
    /// verifies. For v1 pieces, and v2 pieces without a layer, this is a no-op.
    pub fn add_block_hashes(&self, piece: PieceIndex, leaves: &[MerkleHash]) -> Result<(), Error> {
        let layout = &self.shared.layout;
        layout.check_piece(piece)?;
        let Some(v) = layout.v2_piece(piece) else { return Ok(()) };
        let want = v.data_len.div_ceil(BLOCK_SIZE) as usize;
        if leaves.len() != want || root_from_nodes(leaves, 0, v.min_width) != *v.expected {
            return Err(Error::BlockHashesMismatch { piece: piece.get() });
        }
        self.shared.lock().block_hashes.insert(piece.get(), leaves.to_vec());
        Ok(())
    }

    /// The next verification result, if one is ready.
    ///
    /// Results queue up until taken (one small entry per completed piece); poll regularly.
    pub fn poll_result(&self) -> Option<PieceResult> {
        self.results.lock().ok()?.try_recv().ok()
    }

    /// Waits up to `timeout` for the next verification result.
    pub fn wait_result(&self, timeout: Duration) -> Option<PieceResult> {
        self.results.lock().ok()?.recv_timeout(timeout).ok()
    }

    /// Waits up to `timeout` until no piece is queued or being hashed; `true` if idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.pending > 0 {
            let now = Instant::now();
            if now >= deadline || self.shared.alive.load(Ordering::SeqCst) == 0 {
                return false;
            }
            st = match self.shared.idle.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Re-hashes every piece from the backend on [`Settings::hash_threads`] threads and makes
    /// the result the new bitfield, which it returns. `progress` is called on this thread
    /// after each piece.
    ///
    /// Partially written pieces are forgotten (their blocks must be written again); call it
    /// when no other thread is writing. Unreadable pieces (missing files, short files) count
    /// as missing.
    pub fn recheck(&self, progress: &mut dyn FnMut(&RecheckProgress)) -> Result<Bitfield, Error> {
        let all: Vec<u32> = (0..self.shared.layout.piece_count()).collect();
        self.wait_idle(Duration::from_secs(3600));
        let good = hash_pieces(&self.shared.layout, &self.shared.backend, &self.settings, &all, progress)?;
        let mut st = self.shared.lock();
        st.partial.clear();
        st.have = good.clone();
        Ok(good)
    }

    /// Resume data for the current state: the verified pieces and each file's size and mtime.
    ///
    /// Syncs the backend first, so the data never claims a piece that a power cut could lose.
    pub fn resume_data(&self) -> Result<ResumeData, Error> {
        // Take the bitfield before syncing: every piece in it was written before it was
        // verified, so the sync covers it.
        let have = self.have();
        self.shared.backend.sync()?;
        let mut files = Vec::with_capacity(self.shared.layout.files().len());
        for (i, f) in self.shared.layout.files().iter().enumerate() {
            files.push(if f.is_stored() { self.shared.backend.metadata(i)? } else { None });
        }
        Ok(ResumeData { info_hash: self.shared.layout.info_hash().to_vec(), have, files })
    }

    /// Saves [`resume_data`](Self::resume_data) to `path` atomically (temporary file, fsync,
    /// rename).
    pub fn save_resume_file(&self, path: &Path) -> Result<(), Error> {
        ResumeData::write_file(path, &self.resume_data()?.encode())
    }

    /// Loads resume data and makes its bitfield the current one, after re-hashing the pieces
    /// of every file whose size or modification time changed and
    /// [`Settings::spot_checks`] random other pieces. Partially written pieces are forgotten.
    ///
    /// Errors: [`Error::InvalidResume`] for malformed data, [`Error::ResumeMismatch`] for data
    /// of another torrent or format version. On error the state is unchanged.
    pub fn load_resume(&self, bytes: &[u8]) -> Result<ResumeReport, Error> {
        let layout = &self.shared.layout;
        let data = ResumeData::decode(bytes, self.settings.max_resume_size)?;
        if data.info_hash != layout.info_hash() {
            return Err(Error::ResumeMismatch { reason: "info-hash differs" });
        }
        if data.have.len() != layout.piece_count() {
            return Err(Error::ResumeMismatch { reason: "piece count differs" });
        }
        if data.files.len() != layout.files().len() {
            return Err(Error::ResumeMismatch { reason: "file count differs" });
        }
        let mut have = data.have;
        let mut suspect = Bitfield::new(layout.piece_count());
        for (i, f) in layout.files().iter().enumerate() {
            if !f.is_stored() || f.length() == 0 {
                continue;
            }
            let now = self.shared.backend.metadata(i)?;
            let saved = data.files.get(i).copied().flatten();
            if now != saved || now.is_none_or(|m| m.size != f.length()) {
                for p in layout.pieces_of_file(i) {
                    if have.get(PieceIndex::new(p)) {
                        suspect.set(PieceIndex::new(p));
                    }
                }
            }
        }
        let candidates: Vec<u32> =
            have.iter_ones().filter(|p| !suspect.get(*p)).map(PieceIndex::get).collect();
        let mut rng = Rng::seeded();
        let n = (self.settings.spot_checks as usize).min(candidates.len());
        let mut picked = candidates;
        for i in 0..n {
            // Partial Fisher-Yates: the first n entries become a uniform sample.
            let j = i + rng.below(picked.len() - i);
            picked.swap(i, j);
            suspect.set(PieceIndex::new(picked[i]));
        }
        let to_check: Vec<u32> = suspect.iter_ones().map(PieceIndex::get).collect();
        self.wait_idle(Duration::from_secs(3600));
        let good =
            hash_pieces(&self.shared.layout, &self.shared.backend, &self.settings, &to_check, &mut |_| {})?;
        let mut report = ResumeReport::default();
        for &p in &to_check {
            report.rechecked += 1;
            if !good.get(PieceIndex::new(p)) {
                report.failed += 1;
                have.clear(PieceIndex::new(p));
            }
        }
        report.trusted = have.count_ones() - (report.rechecked - report.failed);
        let mut st = self.shared.lock();
        st.partial.clear();
        st.have = have;
        Ok(report)
    }
}

/// Re-hashes every piece of `layout` from `backend` on [`Settings::hash_threads`] threads and
/// returns the bitfield of pieces that match, without a [`Storage`]: nothing is written or
/// created (this is what `piecework verify` runs). `progress` is called on this thread as
/// pieces finish. Unreadable pieces (missing or short files) count as missing.
///
/// ```
/// use piecework_storage::{Layout, MemoryBackend, Settings};
/// # let bytes = piecework_metainfo::TorrentBuilder::new(piecework_metainfo::Version::V1)
/// #     .creation_date(None)
/// #     .build_iter("t", [(vec!["a".to_owned()], 3, std::io::Cursor::new(vec![1, 2, 3]))], &mut |_, _| {})?;
/// let meta = piecework_metainfo::Metainfo::parse(&bytes)?;
/// let layout = Layout::from_metainfo(&meta)?;
/// let backend = MemoryBackend::new(&layout);
/// let have = piecework_storage::recheck(&layout, &backend, &Settings::default(), &mut |_| {})?;
/// assert_eq!(have.count_ones(), 0); // the memory backend starts out as zeros
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn recheck<B: Backend + Sync + ?Sized>(
    layout: &Layout,
    backend: &B,
    settings: &Settings,
    progress: &mut dyn FnMut(&RecheckProgress),
) -> Result<Bitfield, Error> {
    settings.validate()?;
    let all: Vec<u32> = (0..layout.piece_count()).collect();
    hash_pieces(layout, backend, settings, &all, progress)
}

/// Bytes of consecutive pieces a hashing thread claims at once, so it reads long stretches.
const CLAIM_BYTES: u64 = 1 << 20;

/// Bytes a hashing thread hashes between reports: a message per piece would wake the
/// collecting thread thousands of times, each wake-up interrupting a hashing core.
const REPORT_BYTES: u64 = 16 << 20;

/// Hashes `pieces` in parallel; returns a bitfield with the ones that match set.
fn hash_pieces<B: Backend + Sync + ?Sized>(
    layout: &Layout,
    backend: &B,
    settings: &Settings,
    pieces: &[u32],
    progress: &mut dyn FnMut(&RecheckProgress),
) -> Result<Bitfield, Error> {
    let total = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    let mut good = Bitfield::new(layout.piece_count());
    let threads = settings.effective_hash_threads().min(pieces.len()).max(1);
    let batch = (CLAIM_BYTES / u64::from(layout.piece_length()).max(1)).max(1) as usize;
    let next = AtomicUsize::new(0);
    // (piece, matched, size)
    let (tx, rx) = mpsc::channel::<Vec<(u32, bool, u32)>>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                let mut buf = vec![0u8; settings.read_chunk_size];
                let (mut bundle, mut bundled) = (Vec::new(), 0u64);
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    let Some(run) = pieces.get(first..(first + batch).min(pieces.len())) else { break };
                    for &p in run {
                        let piece = PieceIndex::new(p);
                        let ok = matches!(check_piece(layout, backend, piece, &mut buf), Ok(Check::Good));
                        let size = layout.piece_size(piece).unwrap_or(0);
                        bundle.push((p, ok, size));
                        bundled += u64::from(size);
                    }
                    if bundled >= REPORT_BYTES {
                        if tx.send(core::mem::take(&mut bundle)).is_err() {
                            return;
                        }
                        bundled = 0;
                    }
                }
                let _ = tx.send(bundle);
            });
        }
        drop(tx);
        let mut prog = RecheckProgress { pieces_done: 0, pieces_total: total, pieces_good: 0, bytes_done: 0 };
        for bundle in rx {
            for (p, ok, size) in bundle {
                prog.pieces_done += 1;
                prog.bytes_done += u64::from(size);
                if ok {
                    prog.pieces_good += 1;
                    good.set(PieceIndex::new(p));
                }
            }
            progress(&prog);
        }
    });
    Ok(good)
}

impl<B: Backend + 'static> Drop for Storage<B> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker<B: Backend>(
    shared: &Shared<B>,
    jobs: &Mutex<mpsc::Receiver<u32>>,
    results: &mpsc::Sender<PieceResult>,
) {
    struct Alive<'a>(&'a AtomicUsize, &'a Condvar);
    impl Drop for Alive<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
            self.1.notify_all();
        }
    }
    let _alive = Alive(&shared.alive, &shared.idle);
    let mut buf = vec![0u8; shared.chunk];
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(p) = job else { return };
        let piece = PieceIndex::new(p);
        let known = match shared.lock().partial.get_mut(&p) {
            Some(q) => {
                Known { sha1: q.sha1.take().map(|h| (h, q.sha1_pos)), leaves: core::mem::take(&mut q.leaves) }
            }
            None => Known::default(),
        };
        let check = check_piece_from(&shared.layout, &shared.backend, piece, &mut buf, known);
        let mut st = shared.lock();
        let verdict = match check {
            Ok(Check::Good) => {
                st.have.set(piece);
                st.partial.remove(&p);
                st.block_hashes.remove(&p);
                PieceVerdict::Verified
            }
            Ok(Check::Bad { leaves }) => {
                let known = st.block_hashes.get(&p);
                let mut bad: Vec<u32> = match known {
                    Some(k) if k.len() == leaves.len() => {
                        (0..leaves.len()).filter(|&i| k[i] != leaves[i]).map(|i| i as u32).collect()
                    }
                    _ => Vec::new(),
                };
                let blocks = st.partial.get(&p).map_or(0, |q| q.blocks.len());
                if bad.is_empty() {
                    bad = (0..blocks as u32).collect();
                }
                if let Some(q) = st.partial.get_mut(&p) {
                    for &b in &bad {
                        if let Some(s) = q.blocks.get_mut(b as usize)
                            && *s == BlockState::Written
                        {
                            *s = BlockState::Missing;
                            q.written -= 1;
                        }
                    }
                    q.hashing = false;
                    q.reset_hashes(&shared.layout, piece);
                    if q.written == 0 {
                        st.partial.remove(&p);
                    }
                }
                PieceVerdict::Failed { bad_blocks: bad }
            }
            Err(e) => {
                st.partial.remove(&p);
                PieceVerdict::Unreadable(e)
            }
        };
        drop(st);
        // Send before counting the job done, so a caller that saw `wait_idle` return finds
        // every result already queued.
        let _ = results.send(PieceResult { piece, verdict });
        let mut st = shared.lock();
        st.pending = st.pending.saturating_sub(1);
        drop(st);
        shared.idle.notify_all();
    }
}

/// splitmix64, seeded from the clock: spot checks need unpredictability, not cryptography.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        Self(t ^ u64::from(std::process::id()).rotate_left(32))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}
