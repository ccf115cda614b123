//! The crate's one error type.

use crate::merkle::LayerProblem;

/// Everything that can go wrong in this crate.
///
/// Variants about the input carry the field path (`info.files[3].length`) or byte offset;
/// caller misuse (bad builder options) has its own variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bencode itself is malformed (nesting depth, unsorted keys, overlong integer, ...).
    #[error("invalid bencode: {0}")]
    Bencode(#[from] piecework_bencode::Error),
    /// The metainfo is larger than [`Limits::max_metainfo_size`](crate::Limits).
    #[error("metainfo is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The top level of the metainfo is not a dictionary.
    #[error("the metainfo is not a dictionary")]
    NotADictionary,
    /// A required field is missing or has the wrong type.
    #[error("missing or invalid field `{field}`")]
    MissingField {
        /// Field path.
        field: String,
    },
    /// `piece length` is missing, not positive, too large, or (v2) not a power of two >= 16 KiB.
    #[error("invalid piece length {length} at `info.piece length`")]
    InvalidPieceLength {
        /// The value found (-1 when missing or not an integer).
        length: i64,
    },
    /// `name` is missing, not a string, or empty.
    #[error("missing or invalid `info.name`")]
    InvalidName,
    /// A file length is missing, negative or too large, or the total is zero or overflows.
    #[error("invalid length at `{field}`")]
    InvalidLength {
        /// Field path.
        field: String,
    },
    /// A path list is missing, empty, or has a non-string element; or too deep.
    #[error("invalid path at `{field}`")]
    InvalidPath {
        /// Field path.
        field: String,
    },
    /// A symlink's path or target is invalid.
    #[error("invalid symlink at `{field}`")]
    InvalidSymlink {
        /// Field path.
        field: String,
    },
    /// `pieces` is missing (v1) or its length is not 20 times the piece count.
    #[error("invalid `info.pieces`: {len} bytes where {expected} are needed")]
    InvalidPieces {
        /// Bytes found (0 when missing).
        len: usize,
        /// Bytes needed.
        expected: u64,
    },
    /// More pieces than [`Limits::max_pieces`](crate::Limits).
    #[error("{count} pieces, more than the limit of {max}")]
    TooManyPieces {
        /// Pieces the torrent would have.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// More files than [`Limits::max_files`](crate::Limits).
    #[error("more than {max} files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// The torrent lists no files.
    #[error("the torrent has no files")]
    NoFiles,
    /// A `file tree` entry is malformed.
    #[error("invalid file tree entry at `{field}`")]
    InvalidFileTree {
        /// Field path.
        field: String,
    },
    /// A `file tree` entry has an empty name.
    #[error("empty file name in the file tree at `{field}`")]
    EmptyFileName {
        /// Field path.
        field: String,
    },
    /// A non-empty v2 file has no (or an all-zero, or a mis-sized) `pieces root`.
    #[error("missing or invalid pieces root at `{field}`")]
    MissingPiecesRoot {
        /// Field path.
        field: String,
    },
    /// A pad file where none may be (v2 file tree), or with a bad shape.
    #[error("invalid pad file at `{field}`")]
    InvalidPadFile {
        /// Field path.
        field: String,
    },
    /// A `piece layers` entry is invalid.
    #[error("invalid piece layer for root {root}: {problem}")]
    InvalidPieceLayer {
        /// Hex of the entry's key (the pieces root).
        root: String,
        /// What is wrong.
        problem: LayerProblem,
    },
    /// `piece layers` is not a dictionary.
    #[error("`piece layers` is not a dictionary")]
    InvalidPieceLayers,
    /// A hybrid's v1 file list and v2 file tree disagree.
    #[error("hybrid torrent: v1 and v2 file lists disagree at file {index}: {reason}")]
    HybridMismatch {
        /// Index of the first file that differs (in v2 order).
        index: usize,
        /// What differs.
        reason: &'static str,
    },
    /// `meta version` is not 1 or 2, or a `file tree` appears without it.
    #[error("unsupported `meta version` {version}")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// Too many duplicate file names to rename (see [`Limits::max_duplicate_names`](crate::Limits)).
    #[error("too many duplicate file names (limit {max})")]
    TooManyDuplicates {
        /// The limit.
        max: usize,
    },
    /// A hex or base32 hash string is malformed.
    #[error("invalid {what}")]
    InvalidHash {
        /// Which form was expected.
        what: &'static str,
    },
    /// A bitfield has the wrong byte length or a spare bit set.
    #[error("bitfield of {len} bytes where {expected} are needed, or spare bits set")]
    InvalidBitfield {
        /// Bytes found.
        len: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// Two bitfields of different lengths were combined (caller misuse).
    #[error("bitfield lengths differ: {left} and {right}")]
    BitfieldLengthMismatch {
        /// Left length.
        left: u32,
        /// Right length.
        right: u32,
    },
    /// A magnet link is malformed.
    #[error("invalid magnet link at byte {offset}: {reason}")]
    InvalidMagnet {
        /// Byte offset in the link.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A creation option is invalid (caller misuse).
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
    },
    /// Reading input data failed while creating a torrent.
    #[error("reading {path}: {source}")]
    Io {
        /// The file being read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
