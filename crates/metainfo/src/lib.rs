//! BitTorrent metainfo for piecework: parse, validate and create v1, v2 and hybrid torrents.
//!
//! What it does:
//! - **Parses** `.torrent` files ([`Metainfo::parse`]) of every kind: v1 ([BEP 3]), v2 and
//!   hybrid ([BEP 52]), with trackers ([BEP 12]), web seeds ([BEP 19], [BEP 17]), private flag
//!   ([BEP 27]), pad files and attributes ([BEP 47]), `similar`/`collections` ([BEP 38]).
//!   It validates what libtorrent validates, `piece layers` included, and keeps the bytes:
//!   the info-hash is the hash of the raw info dictionary, and [`Metainfo::to_bytes`]
//!   re-encodes without loss.
//! - **Makes paths safe** ([`SafePath`]): nothing a torrent says can name a file outside the
//!   download folder.
//! - **Shared vocabulary** for the other crates: [`InfoHashV1`], [`InfoHashV2`],
//!   [`InfoHashes`], [`PieceIndex`], [`Geometry`], [`Bitfield`] and the v2 [`merkle`] helpers.
//! - **Magnet links** ([`Magnet`], [BEP 9], [BEP 53]).
//! - **Creates** torrents (`create`, feature `create`), hashing on all cores with bounded
//!   memory.
//!
//! What it does not do: network I/O, or disk I/O outside the `create` module (which reads
//! the files it is asked to hash).
//!
//! Every bound on untrusted input is a field of [`Limits`] with a safe default.
//!
//! ```
//! use piecework_metainfo::{Metainfo, Version};
//!
//! let torrent = b"d8:announce20:http://t.example/ann4:infod6:lengthi5e4:name5:a.txt\
//!12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
//! let m = Metainfo::parse(torrent)?;
//! assert_eq!(m.version(), Version::V1);
//! assert_eq!(m.files()[0].path().to_string(), "a.txt");
//! assert_eq!(m.trackers()[0][0], "http://t.example/ann");
//! // The info-hash is the SHA-1 of the exact info bytes.
//! let v1 = m.info_hashes().v1().unwrap();
//! assert_eq!(v1, piecework_metainfo::InfoHashV1::of_info_bytes(m.info_bytes()));
//! assert_eq!(m.to_bytes(), torrent);
//! # Ok::<(), piecework_metainfo::Error>(())
//! ```
//!
//! ## Feature flags
//! - `create` (default): [`TorrentBuilder`] and the `create` module, which read files from disk.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
//! [BEP 12]: https://www.bittorrent.org/beps/bep_0012.html
//! [BEP 17]: https://www.bittorrent.org/beps/bep_0017.html
//! [BEP 19]: https://www.bittorrent.org/beps/bep_0019.html
//! [BEP 27]: https://www.bittorrent.org/beps/bep_0027.html
//! [BEP 38]: https://www.bittorrent.org/beps/bep_0038.html
//! [BEP 47]: https://www.bittorrent.org/beps/bep_0047.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
//! [BEP 53]: https://www.bittorrent.org/beps/bep_0053.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bitfield;
#[cfg(feature = "create")]
pub mod create;
mod error;
mod hash;
mod limits;
mod magnet;
pub mod merkle;
mod path;
mod peer_id;
mod piece;
mod torrent;

pub use bitfield::Bitfield;
#[cfg(feature = "create")]
pub use create::{FileOrder, InputFile, TorrentBuilder};
pub use error::Error;
pub use hash::{InfoHashV1, InfoHashV2, InfoHashes, to_hex};
pub use limits::{Limits, MAX_FILE_BLOCKS, MAX_PIECE_LENGTH};
pub use magnet::{MAX_MAGNET_LENGTH, Magnet};
pub use path::SafePath;
pub use peer_id::{ClientId, PeerId};
pub use piece::{BLOCK_SIZE, BlockRef, Geometry, PieceIndex};
pub use torrent::{FileAttributes, FileEntry, Metainfo, Version};
