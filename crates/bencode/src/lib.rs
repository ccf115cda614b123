//! Zero-copy, strict-by-default [bencode] with raw spans and hard limits.
//!
//! Bencode is BitTorrent's serialization format ([BEP 3]): integers `i42e`, byte strings
//! `4:spam`, lists `l...e` and dictionaries `d...e` with sorted byte-string keys. This crate
//! decodes it in one pass into a flat token array (one allocation for the whole document, no
//! recursion), hands out byte strings as slices of the input, and can give back the exact input
//! bytes of any value: the info-hash of a torrent is the SHA-1 of the raw `info` dictionary, never
//! of a re-encoding.
//!
//! What it does:
//! - **Strict by default**: canonical integers (no leading zeros, no `-0`, no `+`, within `i64`),
//!   strictly ascending dictionary keys, no trailing bytes. [`DecodeOptions::lenient`] accepts
//!   the mistakes found in the wild while still exposing the original bytes.
//! - **Limits** ([`DecodeOptions`]): nesting depth, number of values, input size, each with a
//!   safe default. Nothing is ever allocated from a declared length.
//! - **Prefix decoding** ([`decode_prefix`]): stop after one value and report where it ended
//!   (BEP 9 metadata messages carry raw bytes after the dictionary).
//! - **Encoding**: [`Value`] trees encode canonically; [`Encoder`] streams into any
//!   [`bytes::BufMut`] and refuses out-of-order keys.
//! - **serde** (feature `serde`): [`from_bytes`] with borrowed `&[u8]`/`&str` fields, [`RawValue`]
//!   to capture a field's original bytes, and [`to_vec`] with sorted keys.
//!
//! What it does not do: I/O. Read the bytes yourself (or from a socket buffer) and pass a slice.
//!
//! ```
//! use piecework_bencode::{decode, Kind};
//!
//! let torrent = b"d8:announce20:http://t.example/ann4:infod6:lengthi3e4:name5:a.txtee";
//! let doc = decode(torrent)?;
//! let root = doc.root().as_dict().expect("a dictionary");
//! let info = root.get(b"info").expect("has info");
//! assert_eq!(info.kind(), Kind::Dict);
//! // The exact bytes the info-hash is computed over:
//! assert_eq!(info.raw(), b"d6:lengthi3e4:name5:a.txte");
//! assert_eq!(info.as_dict().and_then(|d| d.get(b"name")).and_then(|n| n.as_str()), Some("a.txt"));
//! # Ok::<(), piecework_bencode::Error>(())
//! ```
//!
//! ## Feature flags
//! - `serde`: serde `Serializer`/`Deserializer` ([`from_bytes`], [`to_vec`], [`RawValue`]).
//!
//! [bencode]: https://www.bittorrent.org/beps/bep_0003.html#bencoding
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decode;
mod encode;
mod error;
#[cfg(feature = "serde")]
mod serde_impl;
mod value;

pub use decode::{
    Children, DEFAULT_MAX_DEPTH, DEFAULT_MAX_INPUT_LEN, DEFAULT_MAX_TOKENS, DecodeOptions, Decoder, DictNode,
    Document, Entries, Kind, ListNode, MAX_INPUT_LEN, Node, SharedDocument, decode, decode_prefix, validate,
};
pub use encode::Encoder;
pub use error::Error;
#[cfg(feature = "serde")]
pub use serde_impl::{Deserializer, RawValue, Serializer, from_bytes, from_bytes_with, to_vec, to_writer};
pub use value::{Dictionary, IntoKey, Value};
