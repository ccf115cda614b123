//! [`Layout`]: where each piece's bytes live on disk.
//!
//! Pieces are numbered over a "piece space": for v1 and hybrid torrents the concatenation of
//! all files, pad files included ([BEP 3], [BEP 47]); for v2-only torrents the same with every
//! file starting on a piece boundary ([BEP 52]), so piece `i` always starts at byte
//! `i * piece_length` of that space. A range of a piece maps onto one or more [`Segment`]s.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 47]: https://www.bittorrent.org/beps/bep_0047.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use core::ops::Range;

use piecework_metainfo::merkle::MerkleHash;
use piecework_metainfo::{BLOCK_SIZE, Metainfo, PieceIndex, SafePath, Version};

use crate::Error;

/// One file of the torrent as storage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    path: SafePath,
    offset: u64,
    length: u64,
    pad: bool,
    symlink: bool,
    pieces_root: Option<MerkleHash>,
}

impl FileSpec {
    /// The sanitized path, relative to the download folder.
    pub fn path(&self) -> &SafePath {
        &self.path
    }
    /// Offset of the file's first byte in the piece space.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// A pad file: never written to disk, read as zeros.
    pub fn is_pad(&self) -> bool {
        self.pad
    }
    /// A symbolic link: no data, not created by storage.
    pub fn is_symlink(&self) -> bool {
        self.symlink
    }
    /// Whether the file has a place on disk (not a pad file, not a symlink).
    pub fn is_stored(&self) -> bool {
        !self.pad && !self.symlink
    }
}

/// A contiguous run of a piece range inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index into [`Layout::files`].
    pub file: usize,
    /// Byte offset inside the file.
    pub file_offset: u64,
    /// Length in bytes (never zero).
    pub len: usize,
    /// The file is a pad file: read zeros, write nothing.
    pub pad: bool,
}

/// What v2 verification of one piece needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct V2Piece<'l> {
    /// Bytes of the piece that belong to the file (the rest, in hybrid torrents, is padding).
    pub data_len: u32,
    /// The expected hash: the piece-layer entry, or the file's root for one-piece files.
    pub expected: &'l MerkleHash,
    /// Leaves the expected hash covers: `blocks per piece` for a layer entry, `1` (next power
    /// of two of the leaves) for a root.
    pub min_width: u64,
}

/// The file layout and piece hashes of one torrent: everything storage needs from the metainfo.
///
/// Memory is proportional to the metainfo (file list, piece hashes, piece layers).
#[derive(Clone, Debug)]
pub struct Layout {
    version: Version,
    piece_length: u32,
    piece_count: u32,
    end: u64,
    files: Vec<FileSpec>,
    /// Indices of files with bytes in the piece space, by offset.
    spanning: Vec<u32>,
    v1_hashes: Option<Vec<u8>>,
    /// Per file: the piece layer of a v2 file longer than one piece.
    v2_layers: Vec<Option<Vec<MerkleHash>>>,
    info_hash: Vec<u8>,
}

impl Layout {
    /// The layout of a parsed torrent.
    ///
    /// Fails with [`Error::UnsupportedTorrent`] when a v2-only torrent lacks the piece layer of
    /// a file longer than one piece (a torrent from a magnet link before the layers arrived).
    /// In a hybrid torrent such files are verified by SHA-1 only.
    pub fn from_metainfo(m: &Metainfo<'_>) -> Result<Self, Error> {
        let piece_length = u32::try_from(m.piece_length())
            .map_err(|_| Error::UnsupportedTorrent { reason: "piece length does not fit 32 bits" })?;
        if piece_length == 0 {
            return Err(Error::UnsupportedTorrent { reason: "zero piece length" });
        }
        let piece_count = u32::try_from(m.piece_count())
            .map_err(|_| Error::UnsupportedTorrent { reason: "more than 2^32 pieces" })?;
        let version = m.version();
        let pl = u64::from(piece_length);
        let mut files = Vec::with_capacity(m.files().len());
        let mut v2_layers = Vec::with_capacity(m.files().len());
        for f in m.files() {
            let a = f.attributes();
            let root = if version == Version::V1 { None } else { f.pieces_root().copied() };
            let mut layer = None;
            if let Some(r) = &root
                && f.length() > pl
            {
                match m.piece_layer(r) {
                    Some(bytes) => {
                        layer = Some(
                            bytes
                                .chunks_exact(32)
                                .map(|c| {
                                    let mut h = [0u8; 32];
                                    h.copy_from_slice(c);
                                    h
                                })
                                .collect::<Vec<_>>(),
                        );
                    }
                    None if version == Version::V2 => {
                        return Err(Error::UnsupportedTorrent { reason: "a v2 file has no piece layer" });
                    }
                    None => {}
                }
            }
            files.push(FileSpec {
                path: f.path().clone(),
                offset: f.offset(),
                length: if a.symlink { 0 } else { f.length() },
                pad: a.pad,
                symlink: a.symlink,
                pieces_root: if layer.is_some() || f.length() <= pl { root } else { None },
            });
            v2_layers.push(layer);
        }
        let v1_hashes = match version {
            Version::V2 => None,
            _ => {
                let mut v = Vec::with_capacity(piece_count as usize * 20);
                for i in 0..piece_count {
                    let h = m
                        .piece_hash_v1(PieceIndex::new(i))
                        .ok_or(Error::UnsupportedTorrent { reason: "missing v1 piece hash" })?;
                    v.extend_from_slice(&h);
                }
                Some(v)
            }
        };
        let hashes = m.info_hashes();
        let info_hash = match hashes.v2() {
            Some(h) => h.as_bytes().to_vec(),
            None => hashes.best_v1_sized().as_bytes().to_vec(),
        };
        Self::build(version, piece_length, piece_count, files, v1_hashes, v2_layers, info_hash)
    }

    fn build(
        version: Version,
        piece_length: u32,
        piece_count: u32,
        files: Vec<FileSpec>,
        v1_hashes: Option<Vec<u8>>,
        v2_layers: Vec<Option<Vec<MerkleHash>>>,
        info_hash: Vec<u8>,
    ) -> Result<Self, Error> {
        let mut spanning: Vec<u32> = Vec::new();
        let mut end = 0u64;
        for (i, f) in files.iter().enumerate() {
            if f.length == 0 {
                continue;
            }
            let i = u32::try_from(i).map_err(|_| Error::UnsupportedTorrent { reason: "too many files" })?;
            if f.offset < end {
                return Err(Error::UnsupportedTorrent { reason: "files overlap" });
            }
            end = f
                .offset
                .checked_add(f.length)
                .ok_or(Error::UnsupportedTorrent { reason: "file offset overflows" })?;
            spanning.push(i);
        }
        let pl = u64::from(piece_length);
        let needed = match version {
            Version::V2 => files.iter().map(|f| f.length.div_ceil(pl)).sum::<u64>(),
            _ => end.div_ceil(pl),
        };
        if needed != u64::from(piece_count) {
            return Err(Error::UnsupportedTorrent { reason: "piece count does not match the files" });
        }
        Ok(Self { version, piece_length, piece_count, end, files, spanning, v1_hashes, v2_layers, info_hash })
    }

    /// The torrent's format.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Nominal piece length.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }
    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// The files, in torrent order (pad files and symlinks included).
    pub fn files(&self) -> &[FileSpec] {
        &self.files
    }
    /// The info-hash resume data is tied to (the v2 hash when there is one, else v1).
    pub fn info_hash(&self) -> &[u8] {
        &self.info_hash
    }

    /// Checks a piece index.
    pub fn check_piece(&self, piece: PieceIndex) -> Result<(), Error> {
        if piece.get() >= self.piece_count {
            return Err(Error::PieceOutOfRange { piece: piece.get(), piece_count: self.piece_count });
        }
        Ok(())
    }

    /// Length of a piece: the last piece of the torrent (v1) or of each file (v2) may be short.
    pub fn piece_size(&self, piece: PieceIndex) -> Result<u32, Error> {
        self.check_piece(piece)?;
        let start = u64::from(piece.get()) * u64::from(self.piece_length);
        let limit = match self.version {
            Version::V2 => {
                // The file holding the piece's first byte ends the piece.
                let f =
                    self.file_at(start).ok_or(Error::UnsupportedTorrent { reason: "piece outside files" })?;
                f.offset + f.length
            }
            _ => self.end,
        };
        let rest = limit.saturating_sub(start);
        // min with a u32 fits u32.
        Ok(rest.min(u64::from(self.piece_length)) as u32)
    }

    /// Number of 16 KiB blocks in a piece.
    pub fn blocks_in_piece(&self, piece: PieceIndex) -> Result<u32, Error> {
        Ok(self.piece_size(piece)?.div_ceil(BLOCK_SIZE))
    }

    /// The file whose bytes include piece-space offset `pos`.
    fn file_at(&self, pos: u64) -> Option<&FileSpec> {
        let i = self.spanning.partition_point(|&i| {
            let f = &self.files[i as usize];
            f.offset + f.length <= pos
        });
        let f = &self.files[*self.spanning.get(i)? as usize];
        (f.offset <= pos).then_some(f)
    }

    /// The segments `[offset, offset + len)` of a piece covers, in order.
    ///
    /// Checks the piece and that the range fits inside it.
    pub fn segments(&self, piece: PieceIndex, offset: u32, len: usize) -> Result<Segments<'_>, Error> {
        let size = self.piece_size(piece)?;
        if u64::from(offset) + len as u64 > u64::from(size) {
            return Err(Error::RangeOutOfPiece { piece: piece.get(), offset, length: len, piece_size: size });
        }
        let pos = u64::from(piece.get()) * u64::from(self.piece_length) + u64::from(offset);
        let idx = self.spanning.partition_point(|&i| {
            let f = &self.files[i as usize];
            f.offset + f.length <= pos
        });
        Ok(Segments { layout: self, idx, pos, remaining: len as u64 })
    }

    /// The pieces holding bytes of file `file` (empty for zero-length files, pad files and
    /// symlinks).
    pub fn pieces_of_file(&self, file: usize) -> Range<u32> {
        let Some(f) = self.files.get(file) else { return 0..0 };
        if f.length == 0 || f.pad {
            return 0..0;
        }
        let pl = u64::from(self.piece_length);
        // Both ends are <= piece_count, which fits u32.
        (f.offset / pl) as u32..(f.offset + f.length).div_ceil(pl).min(u64::from(self.piece_count)) as u32
    }

    /// Expected SHA-1 of a piece (v1 and hybrid).
    pub(crate) fn v1_hash(&self, piece: PieceIndex) -> Option<&[u8]> {
        let h = self.v1_hashes.as_ref()?;
        let s = piece.as_usize() * 20;
        h.get(s..s + 20)
    }

    /// What v2 verification of a piece needs; `None` for v1 torrents and for pieces whose file
    /// has no piece layer (hybrid only).
    pub(crate) fn v2_piece(&self, piece: PieceIndex) -> Option<V2Piece<'_>> {
        if self.version == Version::V1 {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let start = u64::from(piece.get()) * pl;
        let i = self.spanning.partition_point(|&i| {
            let f = &self.files[i as usize];
            f.offset + f.length <= start
        });
        let fi = *self.spanning.get(i)? as usize;
        let f = &self.files[fi];
        if f.offset > start || f.pad {
            return None;
        }
        let data_len = (f.offset + f.length - start).min(pl) as u32;
        if f.length <= pl {
            return Some(V2Piece { data_len, expected: f.pieces_root.as_ref()?, min_width: 1 });
        }
        let k = usize::try_from((start - f.offset) / pl).ok()?;
        let layer = self.v2_layers.get(fi)?.as_ref()?;
        Some(V2Piece { data_len, expected: layer.get(k)?, min_width: pl / u64::from(BLOCK_SIZE) })
    }
}

/// Iterator over the [`Segment`]s of a range (see [`Layout::segments`]).
#[derive(Clone, Debug)]
pub struct Segments<'l> {
    layout: &'l Layout,
    idx: usize,
    pos: u64,
    remaining: u64,
}

impl Iterator for Segments<'_> {
    type Item = Segment;
    fn next(&mut self) -> Option<Segment> {
        if self.remaining == 0 {
            return None;
        }
        let fi = *self.layout.spanning.get(self.idx)? as usize;
        let f = &self.layout.files[fi];
        // Gaps exist only between v2 files, and pieces never cross them.
        let file_offset = self.pos.checked_sub(f.offset)?;
        let len = (f.length - file_offset).min(self.remaining);
        self.pos += len;
        self.remaining -= len;
        self.idx += 1;
        if self.remaining > 0 {
            // The next spanning file must start right here; otherwise the rest is a gap.
            let next = self.layout.spanning.get(self.idx).map(|&n| self.layout.files[n as usize].offset);
            if next != Some(self.pos) {
                self.remaining = 0;
            }
        }
        // len <= remaining, which came from a usize.
        Some(Segment { file: fi, file_offset, len: len as usize, pad: f.pad })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec(path: &str, offset: u64, length: u64, pad: bool) -> FileSpec {
        FileSpec {
            path: SafePath::sanitize(path.split('/').map(str::as_bytes)),
            offset,
            length,
            pad,
            symlink: false,
            pieces_root: None,
        }
    }

    /// A v1 layout from (name, length, pad) triples, with dummy hashes.
    pub(crate) fn v1_layout(piece_length: u32, files: &[(&str, u64, bool)]) -> Layout {
        let mut off = 0;
        let mut specs = Vec::new();
        for (n, l, p) in files {
            specs.push(spec(n, off, *l, *p));
            off += l;
        }
        let count = off.div_ceil(u64::from(piece_length)) as u32;
        let n = specs.len();
        Layout::build(
            Version::V1,
            piece_length,
            count,
            specs,
            Some(vec![0; count as usize * 20]),
            vec![None; n],
            vec![0; 20],
        )
        .unwrap()
    }

    #[test]
    fn pieces_span_file_boundaries() {
        let l = v1_layout(32768, &[("t/a", 20_000, false), ("t/empty", 0, false), ("t/b", 50_000, false)]);
        assert_eq!(l.piece_count(), 3);
        let segs: Vec<_> = l.segments(PieceIndex::new(0), 0, 32768).unwrap().collect();
        assert_eq!(
            segs,
            vec![
                Segment { file: 0, file_offset: 0, len: 20_000, pad: false },
                Segment { file: 2, file_offset: 0, len: 12_768, pad: false },
            ]
        );
        let segs: Vec<_> = l.segments(PieceIndex::new(2), 0, 4_464).unwrap().collect();
        assert_eq!(segs, vec![Segment { file: 2, file_offset: 45_536, len: 4_464, pad: false }]);
        assert_eq!(l.piece_size(PieceIndex::new(2)).unwrap(), 70_000 - 65_536);
        assert!(matches!(l.piece_size(PieceIndex::new(3)), Err(Error::PieceOutOfRange { piece: 3, .. })));
        assert!(matches!(
            l.segments(PieceIndex::new(2), 0, 4_465),
            Err(Error::RangeOutOfPiece { piece: 2, .. })
        ));
        assert_eq!(l.pieces_of_file(0), 0..1);
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(2), 0..3);
    }

    #[test]
    fn pad_files_are_marked() {
        let l = v1_layout(16384, &[("t/a", 1000, false), ("t/.pad/15384", 15384, true), ("t/b", 10, false)]);
        let segs: Vec<_> = l.segments(PieceIndex::new(0), 500, 15884).unwrap().collect();
        assert_eq!(segs.len(), 2);
        assert!(segs[1].pad);
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(2), 1..2);
    }

    #[test]
    fn v2_pieces_align_to_files() {
        // Two files, v2 layout: b starts on the next piece boundary.
        let mut a = spec("t/a", 0, 40_000, false);
        a.pieces_root = None;
        let b = spec("t/b", 65_536, 10, false);
        let l =
            Layout::build(Version::V2, 32768, 3, vec![a, b], None, vec![None, None], vec![0; 32]).unwrap();
        assert_eq!(l.piece_size(PieceIndex::new(0)).unwrap(), 32768);
        assert_eq!(l.piece_size(PieceIndex::new(1)).unwrap(), 40_000 - 32768);
        assert_eq!(l.piece_size(PieceIndex::new(2)).unwrap(), 10);
        let segs: Vec<_> = l.segments(PieceIndex::new(2), 0, 10).unwrap().collect();
        assert_eq!(segs, vec![Segment { file: 1, file_offset: 0, len: 10, pad: false }]);
        assert!(l.segments(PieceIndex::new(1), 0, 32768).is_err());
        assert_eq!(l.pieces_of_file(1), 2..3);
    }
}
