//! Piece storage for BitTorrent: map blocks onto a torrent's files, verify completed pieces,
//! resume and recheck.
//!
//! What it does:
//! - **Layout** ([`Layout`]): maps `(piece, offset, length)` onto the torrent's files, across
//!   file boundaries, with v2's per-file piece alignment ([BEP 52]), pad files (never written,
//!   read as zeros, [BEP 47]) and zero-length files (created). Only the sanitized paths from
//!   `piecework-metainfo` are used, so nothing lands outside the download folder.
//! - **Backends** ([`Backend`]): a synchronous, positional trait (`read_at`/`write_at`,
//!   vectored forms) with a [`FileBackend`] (`pread`/`pwrite`, files opened lazily through a
//!   bounded descriptor cache, sparse or preallocated, directories created as needed) and a
//!   [`MemoryBackend`]. Custom backends (a middleware that counts bytes, an object store, ...)
//!   implement the trait; see `examples/storage_custom_backend.rs`.
//! - **Verification** ([`Storage`]): 16 KiB blocks arrive in any order; a complete piece is
//!   checked on a pool of worker threads: SHA-1 for v1 ([BEP 3]), the merkle tree against the
//!   piece layer for v2, both for hybrid torrents. With [`Settings::hash_on_write`], blocks
//!   are hashed by the thread that writes them (the v2 leaf of every block, the running SHA-1
//!   while they come in order), so a piece that arrived in order is verified without reading
//!   it back. A piece is marked verified only after its data is written and hashed; a failed
//!   piece's blocks are discarded and named in the [`PieceVerdict`].
//! - **Resume** ([`ResumeData`]): a versioned bencoded file with the bitfield and each file's
//!   size and mtime, written atomically. On load, pieces of changed files are re-hashed, plus
//!   optional random spot checks.
//! - **Recheck** ([`Storage::recheck`]): parallel re-hash of the data on disk with progress.
//!
//! What it does not do: networking, piece picking, or deciding what to download. It does not
//! use `mmap` (memory stays bounded by the settings, whatever the torrent's size) and it
//! does not depend on the wire crate.
//!
//! Every limit is a field of [`Settings`] with a safe default. Bad input (a block outside the
//! torrent, malformed resume data) is a typed [`Error`], never a panic.
//!
//! ```
//! use piecework_metainfo::{InputFile, Metainfo, PieceIndex, TorrentBuilder, Version, BLOCK_SIZE};
//! use piecework_storage::{Layout, MemoryBackend, PieceVerdict, Settings, Storage};
//! use std::time::Duration;
//!
//! // A torrent of two files; the first piece spans both.
//! let a: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
//! let b = vec![7u8; 5_000];
//! let files = vec![
//!     InputFile::from_reader(vec!["a".into()], a.len() as u64, std::io::Cursor::new(a.clone())),
//!     InputFile::from_reader(vec!["b".into()], b.len() as u64, std::io::Cursor::new(b.clone())),
//! ];
//! let bytes = TorrentBuilder::new(Version::V1)
//!     .piece_length(Some(32_768))
//!     .build_files("demo", files, &mut |_, _| {})?;
//! let meta = Metainfo::parse(&bytes)?;
//!
//! let layout = Layout::from_metainfo(&meta)?;
//! let backend = MemoryBackend::new(&layout);
//! let storage = Storage::new(layout, backend, Settings::default())?;
//!
//! // v1 pieces run over the concatenated files.
//! let payload = [a, b].concat();
//! for (p, piece) in payload.chunks(32_768).enumerate() {
//!     for (n, block) in piece.chunks(BLOCK_SIZE as usize).enumerate().rev() {
//!         storage.write_block(PieceIndex::new(p as u32), n as u32 * BLOCK_SIZE, block)?;
//!     }
//! }
//! assert!(storage.wait_idle(Duration::from_secs(30)));
//! while let Some(r) = storage.poll_result() {
//!     assert!(matches!(r.verdict, PieceVerdict::Verified));
//! }
//! assert!(storage.is_complete());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Feature flags
//! None.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 47]: https://www.bittorrent.org/beps/bep_0047.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod error;
mod file;
mod layout;
mod resume;
mod settings;
mod storage;
mod verify;

pub use backend::{Backend, FileMeta, MemoryBackend};
pub use error::Error;
pub use file::FileBackend;
pub use layout::{FileSpec, Layout, Segment, Segments};
pub use resume::{RESUME_VERSION, ResumeData};
pub use settings::{MAX_FD_CACHE_SIZE, MAX_HASH_THREADS, MAX_READ_CHUNK_SIZE, Settings};
pub use storage::{PieceResult, PieceVerdict, RecheckProgress, ResumeReport, Storage, WriteOutcome, recheck};

#[cfg(test)]
mod tests;
