//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in storage.
///
/// Caller misuse (a block outside the torrent, a bad setting) and environment faults (disk
/// full, permission denied, a file that grew) are separate variants, so a swarm can tell "this
/// peer sent nonsense" from "stop downloading, the disk is full".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A piece index at or past the piece count.
    #[error("piece {piece} is out of range (the torrent has {piece_count} pieces)")]
    PieceOutOfRange {
        /// The index given.
        piece: u32,
        /// Number of pieces in the torrent.
        piece_count: u32,
    },
    /// A block whose offset is not a multiple of 16 KiB.
    #[error("block at offset {offset} of piece {piece} is not aligned to 16 KiB")]
    MisalignedBlock {
        /// The piece.
        piece: u32,
        /// The offset given.
        offset: u32,
    },
    /// A block longer than 16 KiB.
    #[error("block of {length} bytes in piece {piece} is larger than 16 KiB")]
    OversizedBlock {
        /// The piece.
        piece: u32,
        /// The length given.
        length: usize,
    },
    /// A block or range that does not fit inside its piece, or a block whose length is not the
    /// one the geometry gives (only the last block of the last piece of a file may be short).
    #[error("range {offset}+{length} does not fit piece {piece} of {piece_size} bytes")]
    RangeOutOfPiece {
        /// The piece.
        piece: u32,
        /// Offset inside the piece.
        offset: u32,
        /// Length given.
        length: usize,
        /// Size of the piece.
        piece_size: u32,
    },
    /// A read of a piece this storage does not have (verified).
    #[error("piece {piece} is not verified")]
    PieceNotAvailable {
        /// The piece.
        piece: u32,
    },
    /// A file on disk is larger than the torrent says; it is left untouched.
    #[error("{path}: file is {found} bytes, the torrent says {expected}")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Length in the torrent.
        expected: u64,
        /// Length on disk.
        found: u64,
    },
    /// The disk is full (`ENOSPC`, or `EFBIG`/`EDQUOT`: the write could not be stored).
    #[error("{path}: no space left")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// The file or directory may not be created, read or written (`EACCES`, `EPERM`,
    /// `EROFS`).
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// A component of the path is a regular file, not a directory (`ENOTDIR`, or a file where
    /// a directory must be created).
    #[error("{path}: a path component is not a directory")]
    NotADirectory {
        /// The file whose path is blocked.
        path: PathBuf,
    },
    /// A file this storage needs to read does not exist (yet).
    #[error("{path}: file missing")]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// Any other I/O error.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The torrent cannot be stored (piece length too large, a v2 file without its piece
    /// layer, too many files for the settings, ...).
    #[error("unsupported torrent: {reason}")]
    UnsupportedTorrent {
        /// Why.
        reason: &'static str,
    },
    /// A setting is out of its allowed range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The field.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Block hashes given for a piece do not hash up to its piece-layer entry.
    #[error("block hashes for piece {piece} do not match the piece layer")]
    BlockHashesMismatch {
        /// The piece.
        piece: u32,
    },
    /// A resume file that is not well formed (bad bencode, missing or mistyped field, too big).
    #[error("invalid resume data: {reason}")]
    InvalidResume {
        /// What is wrong.
        reason: &'static str,
    },
    /// A well-formed resume file for another torrent or another version of this format.
    #[error("resume data does not fit this torrent: {reason}")]
    ResumeMismatch {
        /// What differs.
        reason: &'static str,
    },
    /// The hashing workers have stopped (a worker panicked); the storage must be rebuilt.
    #[error("hashing workers have stopped")]
    WorkersGone,
}

impl Error {
    /// Maps an I/O error to the typed variants (disk full, permission denied, not a
    /// directory, missing file) or [`Error::Io`].
    pub(crate) fn from_io(path: &std::path::Path, op: &'static str, e: io::Error) -> Self {
        let path = path.to_path_buf();
        match e.raw_os_error() {
            Some(c) if c == rustix::io::Errno::NOSPC.raw_os_error() => return Self::DiskFull { path },
            Some(c) if c == rustix::io::Errno::FBIG.raw_os_error() => return Self::DiskFull { path },
            Some(c) if c == rustix::io::Errno::DQUOT.raw_os_error() => return Self::DiskFull { path },
            Some(c) if c == rustix::io::Errno::ROFS.raw_os_error() => {
                return Self::PermissionDenied { path };
            }
            Some(c) if c == rustix::io::Errno::NOTDIR.raw_os_error() => {
                return Self::NotADirectory { path };
            }
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            io::ErrorKind::NotFound => Self::MissingFile { path },
            _ => Self::Io { path, op, source: e },
        }
    }

    /// Whether this is a fault of the disk or the environment (full, denied, I/O error)
    /// rather than bad input: a swarm should pause the torrent, not punish the peer.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            Self::DiskFull { .. }
                | Self::PermissionDenied { .. }
                | Self::NotADirectory { .. }
                | Self::Io { .. }
                | Self::FileTooLarge { .. }
        )
    }
}
