//! # piecework
//!
//! Building blocks for peer-to-peer and large-file transfer, as one facade over the workspace's
//! crates. Each crate is re-exported as a module behind a default-on feature, so
//! `piecework::bencode` is `piecework-bencode`.
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`bencode`] | `piecework-bencode` | zero-copy, strict-by-default bencode with raw spans and limits |
//!
//! ```
//! let doc = piecework::bencode::decode(b"d4:spaml1:a1:bee")?;
//! assert_eq!(doc.root().as_dict().unwrap().get(b"spam").unwrap().as_list().unwrap().len(), 2);
//! # Ok::<(), piecework::bencode::Error>(())
//! ```
//!
//! ## Feature flags
//! - `bencode` (default): re-export `piecework-bencode`.
//! - `serde`: serde support in the re-exported crates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "bencode")]
#[doc(inline)]
pub use piecework_bencode as bencode;
