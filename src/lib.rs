//! # piecework
//!
//! Building blocks for peer-to-peer and large-file transfer, as one facade over the workspace's
//! crates. Each crate is re-exported as a module behind a default-on feature, so
//! `piecework::bencode` is `piecework-bencode`, `piecework::metainfo` is `piecework-metainfo`,
//! and so on. Depend on the member crates directly to pull in less.
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`bencode`] | `piecework-bencode` | zero-copy, strict-by-default bencode with raw spans and limits |
//! | [`metainfo`] | `piecework-metainfo` | .torrent v1, v2 and hybrid; info-hashes; magnet links; creation |
//! | [`wire`] | `piecework-wire` | the peer-wire protocol codec (BEP 3/5/6/9/10/11/52), sans-IO |
//! | [`storage`] | `piecework-storage` | pieces on disk: file mapping, verification, resume, recheck |
//! | [`tracker`] | `piecework-tracker` | HTTP and UDP tracker clients (BEP 3/7/15/23/48) |
//! | [`swarm`] | `piecework-swarm` | the tokio engine that seeds and downloads |
//! | [`upload`] | `piecework-upload` | resumable chunked uploads (tus 1.0), share links |
//!
//! ```
//! let doc = piecework::bencode::decode(b"d4:spaml1:a1:bee")?;
//! assert_eq!(doc.root().as_dict().unwrap().get(b"spam").unwrap().as_list().unwrap().len(), 2);
//! # Ok::<(), piecework::bencode::Error>(())
//! ```
//!
//! ## Feature flags
//! - `bencode`, `metainfo`, `wire`, `storage`, `tracker`, `swarm`, `upload` (all default): re-export the
//!   crate of that name.
//! - `serde`: serde support in the re-exported crates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "bencode")]
#[doc(inline)]
pub use piecework_bencode as bencode;
#[cfg(feature = "metainfo")]
#[doc(inline)]
pub use piecework_metainfo as metainfo;
#[cfg(feature = "storage")]
#[doc(inline)]
pub use piecework_storage as storage;
#[cfg(feature = "swarm")]
#[doc(inline)]
pub use piecework_swarm as swarm;
#[cfg(feature = "tracker")]
#[doc(inline)]
pub use piecework_tracker as tracker;
#[cfg(feature = "upload")]
#[doc(inline)]
pub use piecework_upload as upload;
#[cfg(feature = "wire")]
#[doc(inline)]
pub use piecework_wire as wire;
