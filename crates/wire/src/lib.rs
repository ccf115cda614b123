//! The BitTorrent peer-wire protocol as a sans-IO, zero-copy codec.
//!
//! What it does:
//! - **Handshake** ([`Handshake`], [BEP 3]): reserved bits as a typed set ([`Reserved`],
//!   [`Feature`]: DHT [BEP 5], fast [BEP 6], extension protocol [BEP 10], v2 upgrade [BEP 52];
//!   unknown bits kept), the 20-byte info-hash (v1, or a v2 hash truncated) and the
//!   [`PeerId`] with a client-style recogniser ([`PeerId::client`]).
//! - **Messages** ([`Message`]): every BEP 3 message, BEP 5 `port`, the BEP 6 fast set
//!   (suggest, have all/none, reject, allowed fast) and the BEP 52 hash messages; the BEP 6
//!   [`allowed_fast_set`] generator.
//! - **Extension protocol**: the BEP 10 [`ExtendedHandshake`], [BEP 9] `ut_metadata`
//!   ([`MetadataMessage`]) and [BEP 11] `ut_pex` ([`PexMessage`]).
//! - **Incremental decoding** ([`Decoder::decode`]): `Ok(None)` until a whole message is
//!   buffered; piece blocks and other payloads are [`bytes::Bytes`] split off the read buffer,
//!   never copied, and fixed-size messages decode without allocating. [`Decoder::drain`]
//!   iterates every whole message of a read at once and trims the buffer once.
//! - **Limits** ([`Limits`]): a length prefix over its message's limit is refused before
//!   anything is buffered; `bitfield` sizes and spare bits are checked once the piece count is
//!   known ([`Decoder::set_piece_count`]). Errors ([`Error`]) name the message id and field.
//! - **Encoding** into any [`bytes::BufMut`]; [`Piece::header`] gives the 13-byte header for a
//!   vectored write of a block without copying it.
//!
//! What it does not do: sockets, timers, choking or piece picking. The adapters below are
//! thin; the engine (`swarm`) owns the connection state machine.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use piecework_wire::{Decoder, Message, Piece, PieceIndex};
//!
//! // Whatever the socket delivered, in any split:
//! let mut wire = Vec::new();
//! Message::Interested.encode(&mut wire)?;
//! let block = Piece { index: PieceIndex::new(2), begin: 0, data: Bytes::from_static(b"data") };
//! Message::Piece(block.clone()).encode(&mut wire)?;
//!
//! let mut decoder = Decoder::new();
//! let mut read_buf = BytesMut::new();
//! let mut got = Vec::new();
//! for chunk in wire.chunks(3) {
//!     read_buf.extend_from_slice(chunk);
//!     while let Some(msg) = decoder.decode(&mut read_buf)? {
//!         got.push(msg);
//!     }
//! }
//! assert_eq!(got, [Message::Interested, Message::Piece(block)]);
//! # Ok::<(), piecework_wire::Error>(())
//! ```
//!
//! ## Feature flags
//! - `futures` (default): [`futures_io::PeerStream`] and [`futures_io::PeerSink`], a
//!   `Stream`/`Sink` of messages over `AsyncRead`/`AsyncWrite`; the sink writes piece blocks
//!   with vectored writes, without copying them.
//! - `tokio`: [`codec::MessageCodec`] and [`codec::HandshakeCodec`], tokio-util
//!   `Decoder`/`Encoder` implementations for `Framed`.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 5]: https://www.bittorrent.org/beps/bep_0005.html
//! [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
//! [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
//! [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
//! [BEP 11]: https://www.bittorrent.org/beps/bep_0011.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod codec;
mod error;
mod extension;
mod fast;
#[cfg(feature = "futures")]
pub mod futures_io;
mod handshake;
mod limits;
mod message;

pub use error::Error;
pub use extension::{ExtendedHandshake, MetadataMessage, PexFlags, PexMessage};
pub use fast::allowed_fast_set;
pub use handshake::{Feature, HANDSHAKE_LEN, Handshake, PROTOCOL, Reserved};
pub use limits::{
    DEFAULT_MAX_BITFIELD_PIECES, DEFAULT_MAX_BLOCK_LENGTH, DEFAULT_MAX_EXTENDED_LENGTH, DEFAULT_MAX_HASHES,
    Limits, METADATA_PIECE_LEN,
};
pub use message::{Decoder, Drain, Extended, HashRequest, Hashes, Message, Piece, id};
/// Shared vocabulary from `piecework-metainfo`, re-exported so users of the wire need not
/// depend on it directly.
pub use piecework_metainfo::{Bitfield, BlockRef, InfoHashV1, InfoHashV2, PieceIndex};
/// Peer ids live in `piecework-metainfo` (trackers use them too); re-exported for convenience.
pub use piecework_metainfo::{ClientId, PeerId};
