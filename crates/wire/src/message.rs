//! Length-prefixed messages ([BEP 3], [BEP 5], [BEP 6], [BEP 10], [BEP 52]): the [`Message`]
//! type, the incremental [`Decoder`] and the encoders.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 5]: https://www.bittorrent.org/beps/bep_0005.html
//! [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
//! [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use bytes::{Buf, BufMut, Bytes, BytesMut};
use piecework_metainfo::{Bitfield, BlockRef, PieceIndex};

use crate::{Error, Limits};

/// Message ids (the byte after the length prefix).
pub mod id {
    /// `choke` ([BEP 3](https://www.bittorrent.org/beps/bep_0003.html)).
    pub const CHOKE: u8 = 0;
    /// `unchoke` (BEP 3).
    pub const UNCHOKE: u8 = 1;
    /// `interested` (BEP 3).
    pub const INTERESTED: u8 = 2;
    /// `not interested` (BEP 3).
    pub const NOT_INTERESTED: u8 = 3;
    /// `have` (BEP 3).
    pub const HAVE: u8 = 4;
    /// `bitfield` (BEP 3).
    pub const BITFIELD: u8 = 5;
    /// `request` (BEP 3).
    pub const REQUEST: u8 = 6;
    /// `piece` (BEP 3).
    pub const PIECE: u8 = 7;
    /// `cancel` (BEP 3).
    pub const CANCEL: u8 = 8;
    /// `port` ([BEP 5](https://www.bittorrent.org/beps/bep_0005.html)).
    pub const PORT: u8 = 9;
    /// `suggest piece` ([BEP 6](https://www.bittorrent.org/beps/bep_0006.html)).
    pub const SUGGEST: u8 = 0x0d;
    /// `have all` (BEP 6).
    pub const HAVE_ALL: u8 = 0x0e;
    /// `have none` (BEP 6).
    pub const HAVE_NONE: u8 = 0x0f;
    /// `reject request` (BEP 6).
    pub const REJECT: u8 = 0x10;
    /// `allowed fast` (BEP 6).
    pub const ALLOWED_FAST: u8 = 0x11;
    /// `extended` ([BEP 10](https://www.bittorrent.org/beps/bep_0010.html)).
    pub const EXTENDED: u8 = 20;
    /// `hash request` ([BEP 52](https://www.bittorrent.org/beps/bep_0052.html)).
    pub const HASH_REQUEST: u8 = 21;
    /// `hashes` (BEP 52).
    pub const HASHES: u8 = 22;
    /// `hash reject` (BEP 52).
    pub const HASH_REJECT: u8 = 23;
}

/// A block of piece data: the `piece` message ([BEP 3]).
///
/// `data` shares the read buffer it was decoded from; nothing is copied.
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Piece {
    /// The piece.
    pub index: PieceIndex,
    /// Byte offset of the block within the piece.
    pub begin: u32,
    /// The block.
    pub data: Bytes,
}

impl Piece {
    /// Length of the header in front of the block: prefix, id, index, begin.
    pub const HEADER_LEN: usize = 13;

    /// The 13-byte header; send it followed by [`data`](Self::data) (for example with a
    /// vectored write) to put a block on the wire without copying it. `None` if the block is
    /// too large for a length prefix.
    pub fn header(&self) -> Option<[u8; Self::HEADER_LEN]> {
        let len = u32::try_from(self.data.len()).ok()?.checked_add(9)?;
        let mut h = [0u8; Self::HEADER_LEN];
        h[..4].copy_from_slice(&len.to_be_bytes());
        h[4] = id::PIECE;
        h[5..9].copy_from_slice(&self.index.get().to_be_bytes());
        h[9..13].copy_from_slice(&self.begin.to_be_bytes());
        Some(h)
    }

    /// The block this message answers (piece, offset, length).
    pub fn block(&self) -> Option<BlockRef> {
        Some(BlockRef { piece: self.index, offset: self.begin, length: u32::try_from(self.data.len()).ok()? })
    }
}

/// A BEP 52 `hash request` or `hash reject`: a range of hashes from one layer of a file's
/// merkle tree, plus the uncle hashes needed to prove them ([BEP 52]).
///
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// Root of the file's merkle tree (`pieces root` in the file tree).
    pub pieces_root: [u8; 32],
    /// Layer of the requested hashes: 0 is the 16 KiB block layer.
    pub base_layer: u32,
    /// Offset of the first hash within the layer.
    pub index: u32,
    /// Number of hashes requested.
    pub length: u32,
    /// Number of ancestor layers for which uncle hashes are wanted.
    pub proof_layers: u32,
}

impl HashRequest {
    /// Bytes of a request on the wire after the id.
    pub const LEN: usize = 48;

    fn parse(p: &[u8]) -> Option<Self> {
        let pieces_root: [u8; 32] = p.get(..32)?.try_into().ok()?;
        Some(HashRequest {
            pieces_root,
            base_layer: be32(p, 32)?,
            index: be32(p, 36)?,
            length: be32(p, 40)?,
            proof_layers: be32(p, 44)?,
        })
    }

    fn put<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_slice(&self.pieces_root);
        buf.put_u32(self.base_layer);
        buf.put_u32(self.index);
        buf.put_u32(self.length);
        buf.put_u32(self.proof_layers);
    }
}

/// A BEP 52 `hashes` message: the request it answers and the hashes, base layer first, then the
/// uncle hashes from the bottom up ([BEP 52]).
///
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hashes {
    /// The request this answers.
    pub request: HashRequest,
    /// The hashes, 32 bytes each (shares the read buffer).
    pub hashes: Bytes,
}

impl Hashes {
    /// The hashes one by one. A trailing partial hash (only possible in a value built by hand)
    /// is skipped.
    pub fn iter(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.hashes.chunks_exact(32).filter_map(|c| c.try_into().ok())
    }

    /// Number of whole hashes.
    pub fn count(&self) -> usize {
        self.hashes.len() / 32
    }
}

/// A BEP 10 `extended` message: the extension id and its raw payload (shares the read buffer).
///
/// Id 0 is the extension handshake ([`ExtendedHandshake`]); other ids are the ones the
/// *receiver* announced in its handshake's `m` dictionary. Parse the payload with
/// [`ExtendedHandshake::decode`], [`MetadataMessage::decode`] or [`PexMessage::decode`].
///
/// [`ExtendedHandshake`]: crate::ExtendedHandshake
/// [`ExtendedHandshake::decode`]: crate::ExtendedHandshake::decode
/// [`MetadataMessage::decode`]: crate::MetadataMessage::decode
/// [`PexMessage::decode`]: crate::PexMessage::decode
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Extended {
    /// Extension message id (0: handshake).
    pub id: u8,
    /// The bencoded payload (and for `ut_metadata` data, the raw piece after it).
    pub payload: Bytes,
}

/// One peer-wire message.
///
/// Payload-carrying variants hold [`Bytes`] that share the decoder's read buffer; the fixed-size
/// ones are plain values, so decoding them allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Message {
    /// A zero-length message ([BEP 3](https://www.bittorrent.org/beps/bep_0003.html)).
    KeepAlive,
    /// `choke` (id 0).
    Choke,
    /// `unchoke` (id 1).
    Unchoke,
    /// `interested` (id 2).
    Interested,
    /// `not interested` (id 3).
    NotInterested,
    /// `have` (id 4).
    Have(PieceIndex),
    /// `bitfield` (id 5), in wire form (bit 0 is the high bit of byte 0). Once the decoder
    /// knows the piece count it is exactly `ceil(pieces / 8)` bytes with spare bits zero; see
    /// [`Message::to_bitfield`].
    Bitfield(Bytes),
    /// `request` (id 6).
    Request(BlockRef),
    /// `piece` (id 7).
    Piece(Piece),
    /// `cancel` (id 8).
    Cancel(BlockRef),
    /// `port` (id 9, [BEP 5](https://www.bittorrent.org/beps/bep_0005.html)): the sender's DHT
    /// port.
    Port(u16),
    /// `suggest piece` (id 0x0D, [BEP 6](https://www.bittorrent.org/beps/bep_0006.html)).
    Suggest(PieceIndex),
    /// `have all` (id 0x0E, BEP 6).
    HaveAll,
    /// `have none` (id 0x0F, BEP 6).
    HaveNone,
    /// `reject request` (id 0x10, BEP 6).
    Reject(BlockRef),
    /// `allowed fast` (id 0x11, BEP 6).
    AllowedFast(PieceIndex),
    /// `extended` (id 20, [BEP 10](https://www.bittorrent.org/beps/bep_0010.html)).
    Extended(Extended),
    /// `hash request` (id 21, [BEP 52](https://www.bittorrent.org/beps/bep_0052.html)).
    HashRequest(HashRequest),
    /// `hashes` (id 22, BEP 52).
    Hashes(Hashes),
    /// `hash reject` (id 23, BEP 52).
    HashReject(HashRequest),
    /// A message id this crate does not know, kept whole (only with
    /// [`Limits::accept_unknown`]).
    Unknown {
        /// The message id.
        id: u8,
        /// Everything after the id.
        payload: Bytes,
    },
}

#[inline]
fn be32(p: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = p.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[inline]
fn block_at(p: &[u8], at: usize) -> Option<BlockRef> {
    Some(BlockRef {
        piece: PieceIndex::new(be32(p, at)?),
        offset: be32(p, at + 4)?,
        length: be32(p, at + 8)?,
    })
}

impl Message {
    /// The message id, `None` for a keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece(_) => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::Suggest(_) => id::SUGGEST,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::Reject(_) => id::REJECT,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended(_) => id::EXTENDED,
            Message::HashRequest(_) => id::HASH_REQUEST,
            Message::Hashes(_) => id::HASHES,
            Message::HashReject(_) => id::HASH_REJECT,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// A `bitfield` message for `bits` (spare bits are always zero in a [`Bitfield`]).
    pub fn bitfield(bits: &Bitfield) -> Message {
        Message::Bitfield(Bytes::from(bits.to_bytes()))
    }

    /// For a `bitfield` message, the [`Bitfield`] of `pieces` bits it describes; `None` for
    /// other messages, an error if the size or spare bits are wrong.
    pub fn to_bitfield(&self, pieces: u32) -> Option<Result<Bitfield, Error>> {
        let Message::Bitfield(b) = self else { return None };
        Some(
            Bitfield::from_bytes(b, pieces)
                .map_err(|_| Error::InvalidBitfield { len: b.len(), expected: pieces.div_ceil(8) as usize }),
        )
    }

    /// Bytes this message takes on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Piece(p) => 9 + p.data.len(),
            Message::Extended(e) => 2 + e.payload.len(),
            Message::HashRequest(_) | Message::HashReject(_) => 1 + HashRequest::LEN,
            Message::Hashes(h) => 1 + HashRequest::LEN + h.hashes.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Appends the message to `buf`. Copies a piece's block: to send blocks without copying
    /// use [`Piece::header`] and a vectored write (as the `futures` adapter does).
    ///
    /// Fails only on caller misuse: a payload too large for a 32-bit length prefix, or a
    /// `hashes` list that is not a whole number of hashes.
    #[inline]
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) -> Result<(), Error> {
        // The frequent fixed-size messages as one slice (one capacity check instead of five),
        // inlined so that a caller that built a known message skips the dispatch.
        match self {
            Message::Have(i) => {
                let mut f = [0, 0, 0, 5, id::HAVE, 0, 0, 0, 0];
                f[5..].copy_from_slice(&i.get().to_be_bytes());
                buf.put_slice(&f);
                Ok(())
            }
            Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => {
                let mut f = [0u8; 17];
                f[3] = 13;
                f[4] = self.id().unwrap_or_default();
                f[5..9].copy_from_slice(&b.piece.get().to_be_bytes());
                f[9..13].copy_from_slice(&b.offset.to_be_bytes());
                f[13..].copy_from_slice(&b.length.to_be_bytes());
                buf.put_slice(&f);
                Ok(())
            }
            _ => self.encode_general(buf),
        }
    }

    /// [`encode`](Self::encode) for every message.
    fn encode_general<B: BufMut + ?Sized>(&self, buf: &mut B) -> Result<(), Error> {
        let len = u32::try_from(self.encoded_len() - 4).map_err(|_| Error::Encode { field: "length" })?;
        if let Message::Hashes(h) = self
            && h.hashes.len() % 32 != 0
        {
            return Err(Error::Encode { field: "hashes" });
        }
        buf.put_u32(len);
        let Some(id) = self.id() else { return Ok(()) };
        buf.put_u8(id);
        match self {
            Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => buf.put_u32(i.get()),
            Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => {
                buf.put_u32(b.piece.get());
                buf.put_u32(b.offset);
                buf.put_u32(b.length);
            }
            Message::Port(p) => buf.put_u16(*p),
            Message::Bitfield(b) => buf.put_slice(b),
            Message::Piece(p) => {
                buf.put_u32(p.index.get());
                buf.put_u32(p.begin);
                buf.put_slice(&p.data);
            }
            Message::Extended(e) => {
                buf.put_u8(e.id);
                buf.put_slice(&e.payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => r.put(buf),
            Message::Hashes(h) => {
                h.request.put(buf);
                buf.put_slice(&h.hashes);
            }
            Message::Unknown { payload, .. } => buf.put_slice(payload),
            _ => {}
        }
        Ok(())
    }
}

/// The incremental message decoder: call [`decode`](Self::decode) whenever bytes arrive.
///
/// Feed it the bytes after the [`Handshake`](crate::Handshake). It keeps only its settings
/// (and the piece count, once known), so the same read buffer can be handed to it again and
/// again.
///
/// ```
/// use bytes::BytesMut;
/// use piecework_wire::{Decoder, Message, PieceIndex};
///
/// let mut d = Decoder::new();
/// let mut buf = BytesMut::from(&b"\0\0\0\x05\x04\0\0"[..]);
/// assert_eq!(d.decode(&mut buf)?, None); // need more bytes
/// buf.extend_from_slice(b"\x01\x00\0\0\0\x01\x01");
/// assert_eq!(d.decode(&mut buf)?, Some(Message::Have(PieceIndex::new(256))));
/// assert_eq!(d.decode(&mut buf)?, Some(Message::Unchoke));
/// assert!(buf.is_empty());
/// # Ok::<(), piecework_wire::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    largest: u32,
    piece_count: Option<u32>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::new())
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Decoder { limits, largest: limits.largest_message(), piece_count: None }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sets the torrent's piece count once it is known (from the metainfo, or after a magnet
    /// link's metadata arrived). From then on a `bitfield` must be exactly `ceil(pieces / 8)`
    /// bytes with spare bits zero, and piece indices must be below `pieces`.
    pub fn set_piece_count(&mut self, pieces: Option<u32>) {
        self.piece_count = pieces;
    }

    /// The piece count in force.
    pub fn piece_count(&self) -> Option<u32> {
        self.piece_count
    }

    /// Decodes one message from the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed (nothing was consumed). `Ok(Some(m))`: the message's
    /// bytes were removed from `buf`. `Err`: the peer sent something invalid; close the
    /// connection (`buf` is left as it was). A length prefix over the limits fails as soon as
    /// the prefix (and the id byte, where the limit depends on it) is readable.
    #[inline(always)]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        let mut total = 0;
        if let Some(m) = self.fast(buf, &mut total) {
            buf.advance(total);
            return Ok(Some(m));
        }
        Ok(match self.step(buf)? {
            None => None,
            Some(Step::Whole(m, total)) => {
                buf.advance(total);
                Some(m)
            }
            Some(Step::Split(p, total)) => Some(p.split_off(buf, total)),
        })
    }

    /// Decodes every whole message at the front of `buf`, in order.
    ///
    /// The same messages and errors as calling [`decode`](Self::decode) until it returns
    /// `None`, but the buffer is trimmed once when the iterator is dropped (and before each
    /// message with a payload, which is split off it), not after every small message: a read
    /// that brought hundreds of `have` and `request` messages costs one trim. After the first
    /// error the iterator ends and the bad message stays in `buf`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use piecework_wire::{Decoder, Message, PieceIndex};
    ///
    /// let mut d = Decoder::new();
    /// let mut buf = BytesMut::from(&b"\0\0\0\x05\x04\0\0\x01\x00\0\0\0\x01\x01\0\0"[..]);
    /// let got: Vec<Message> = d.drain(&mut buf).collect::<Result<_, _>>()?;
    /// assert_eq!(got, [Message::Have(PieceIndex::new(256)), Message::Unchoke]);
    /// assert_eq!(&buf[..], b"\0\0"); // the start of the next message stays
    /// # Ok::<(), piecework_wire::Error>(())
    /// ```
    pub fn drain<'a>(&'a mut self, buf: &'a mut BytesMut) -> Drain<'a> {
        Drain { decoder: self, buf, consumed: 0, failed: false }
    }

    /// The steady state of a download is `have` and `request` (and their answers): decode them
    /// straight off a whole frame, with no second look at the message, setting `total` to the
    /// frame length. `None`: not one of them, not valid, or too few bytes buffered to tell at
    /// a glance; [`step`](Self::step) decides (and builds any error, off this path).
    #[inline(always)]
    fn fast(&self, buf: &[u8], total: &mut usize) -> Option<Message> {
        let &[0, 0, 0, len, id, ref rest @ ..] = buf.get(..17)? else { return None };
        let field = |at: usize| u32::from_be_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let in_range = |i: u32| self.piece_count.is_none_or(|n| i < n);
        *total = 4 + usize::from(len);
        Some(match (len, id) {
            (5, id::HAVE) if in_range(field(0)) => Message::Have(PieceIndex::new(field(0))),
            (13, id::REQUEST) if in_range(field(0)) && field(8) <= self.limits.block_length_limit() => {
                Message::Request(BlockRef {
                    piece: PieceIndex::new(field(0)),
                    offset: field(4),
                    length: field(8),
                })
            }
            (1, id::CHOKE) => Message::Choke,
            (1, id::UNCHOKE) => Message::Unchoke,
            (1, id::INTERESTED) => Message::Interested,
            (1, id::NOT_INTERESTED) => Message::NotInterested,
            _ => return None,
        })
    }

    /// Reads the message at the front of `buf` without consuming it: a payload-free message
    /// and its frame length, or where the payload to split off starts.
    #[inline(always)]
    fn step(&self, buf: &[u8]) -> Result<Option<Step>, Error> {
        let Some(len) = be32(buf, 0) else { return Ok(None) };
        if len == 0 {
            return Ok(Some(Step::Whole(Message::KeepAlive, 4)));
        }
        if len > self.largest {
            return Err(Error::MessageTooLong { id: buf.get(4).copied(), len, limit: self.largest });
        }
        let Some(&msg_id) = buf.get(4) else { return Ok(None) };
        self.check_length(msg_id, len)?;
        // `len` passed a u32 limit, so this cannot overflow usize on 32- or 64-bit targets.
        let total = 4 + len as usize;
        let Some(frame) = buf.get(..total) else { return Ok(None) };
        let p = frame.get(5..).unwrap_or_default();
        let bad = || Error::BadLength { id: msg_id, len, expected: len };
        let whole = |m| Ok(Some(Step::Whole(m, total)));
        let split = |p| Ok(Some(Step::Split(p, total)));
        match msg_id {
            id::CHOKE => whole(Message::Choke),
            id::UNCHOKE => whole(Message::Unchoke),
            id::INTERESTED => whole(Message::Interested),
            id::NOT_INTERESTED => whole(Message::NotInterested),
            id::HAVE_ALL => whole(Message::HaveAll),
            id::HAVE_NONE => whole(Message::HaveNone),
            id::HAVE | id::SUGGEST | id::ALLOWED_FAST => {
                let i = self.index(msg_id, be32(p, 0).ok_or_else(bad)?)?;
                whole(match msg_id {
                    id::HAVE => Message::Have(i),
                    id::SUGGEST => Message::Suggest(i),
                    _ => Message::AllowedFast(i),
                })
            }
            id::REQUEST | id::CANCEL | id::REJECT => {
                let b = block_at(p, 0).ok_or_else(bad)?;
                self.index(msg_id, b.piece.get())?;
                if b.length > self.limits.block_length_limit() {
                    return Err(Error::FieldTooLarge {
                        id: msg_id,
                        field: "length",
                        value: b.length.into(),
                        limit: self.limits.block_length_limit().into(),
                    });
                }
                whole(match msg_id {
                    id::REQUEST => Message::Request(b),
                    id::CANCEL => Message::Cancel(b),
                    _ => Message::Reject(b),
                })
            }
            id::PORT => {
                let b: [u8; 2] = p.get(..2).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
                whole(Message::Port(u16::from_be_bytes(b)))
            }
            id::HASH_REQUEST | id::HASH_REJECT => {
                let r = HashRequest::parse(p).ok_or_else(bad)?;
                whole(if msg_id == id::HASH_REQUEST {
                    Message::HashRequest(r)
                } else {
                    Message::HashReject(r)
                })
            }
            id::BITFIELD => {
                if let Some(n) = self.piece_count
                    && n % 8 != 0
                    && p.last().is_some_and(|last| last & (0xff >> (n % 8)) != 0)
                {
                    return Err(Error::InvalidBitfield { len: p.len(), expected: n.div_ceil(8) as usize });
                }
                split(Payload::Bitfield)
            }
            id::PIECE => {
                let index = self.index(msg_id, be32(p, 0).ok_or_else(bad)?)?;
                let begin = be32(p, 4).ok_or_else(bad)?;
                split(Payload::Piece { index, begin })
            }
            id::EXTENDED => split(Payload::Extended { id: *p.first().ok_or_else(bad)? }),
            id::HASHES => split(Payload::Hashes { request: HashRequest::parse(p).ok_or_else(bad)? }),
            other => split(Payload::Unknown { id: other }),
        }
    }

    #[inline]
    fn index(&self, msg_id: u8, i: u32) -> Result<PieceIndex, Error> {
        match self.piece_count {
            Some(n) if i >= n => {
                Err(Error::FieldTooLarge { id: msg_id, field: "index", value: i.into(), limit: n.into() })
            }
            _ => Ok(PieceIndex::new(i)),
        }
    }

    /// Checks a length prefix against the message's fixed size or limit.
    #[inline]
    fn check_length(&self, msg_id: u8, len: u32) -> Result<(), Error> {
        let exact = |expected: u32| {
            if len == expected { Ok(()) } else { Err(Error::BadLength { id: msg_id, len, expected }) }
        };
        let at_most = |limit: u32| {
            if len <= limit { Ok(()) } else { Err(Error::MessageTooLong { id: Some(msg_id), len, limit }) }
        };
        let l = &self.limits;
        match msg_id {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED | id::HAVE_ALL | id::HAVE_NONE => {
                exact(1)
            }
            id::HAVE | id::SUGGEST | id::ALLOWED_FAST => exact(5),
            id::REQUEST | id::CANCEL | id::REJECT => exact(13),
            id::PORT => exact(3),
            id::HASH_REQUEST | id::HASH_REJECT => exact(1 + HashRequest::LEN as u32),
            id::PIECE => {
                if len < 9 {
                    return Err(Error::BadLength { id: msg_id, len, expected: 9 });
                }
                at_most(9u32.saturating_add(l.block_length_limit()))
            }
            id::BITFIELD => match self.piece_count {
                Some(n) => {
                    let expected = n.div_ceil(8);
                    if len - 1 != expected {
                        return Err(Error::InvalidBitfield {
                            len: len as usize - 1,
                            expected: expected as usize,
                        });
                    }
                    Ok(())
                }
                None => at_most(1 + l.bitfield_pieces_limit().div_ceil(8)),
            },
            id::EXTENDED => {
                if len < 2 {
                    return Err(Error::BadLength { id: msg_id, len, expected: 2 });
                }
                at_most(2u32.saturating_add(l.extended_length_limit()))
            }
            id::HASHES => {
                let Some(hash_bytes) = len.checked_sub(1 + HashRequest::LEN as u32) else {
                    return Err(Error::BadLength { id: msg_id, len, expected: 1 + HashRequest::LEN as u32 });
                };
                if hash_bytes % 32 != 0 {
                    return Err(Error::MisalignedHashes { len: hash_bytes as usize });
                }
                if hash_bytes / 32 > l.hashes_limit() {
                    return Err(Error::FieldTooLarge {
                        id: msg_id,
                        field: "hashes",
                        value: (hash_bytes / 32).into(),
                        limit: l.hashes_limit().into(),
                    });
                }
                Ok(())
            }
            _ if l.accepts_unknown() => at_most(1u32.saturating_add(l.extended_length_limit())),
            other => Err(Error::UnknownMessage { id: other }),
        }
    }
}

/// What [`Decoder::step`] found at the front of the buffer.
enum Step {
    /// A message with nothing to split off, and its frame length.
    Whole(Message, usize),
    /// A message whose payload is split off the buffer, and its frame length.
    Split(Payload, usize),
}

/// A message with a payload, its fixed fields parsed.
enum Payload {
    Bitfield,
    Piece { index: PieceIndex, begin: u32 },
    Extended { id: u8 },
    Hashes { request: HashRequest },
    Unknown { id: u8 },
}

impl Payload {
    /// Takes the whole frame off the front of `buf` and builds the message around its payload,
    /// which shares the buffer's memory.
    fn split_off(self, buf: &mut BytesMut, total: usize) -> Message {
        let frame = buf.split_to(total).freeze();
        let payload = |skip: usize| frame.slice(skip.min(total)..);
        match self {
            Payload::Bitfield => Message::Bitfield(payload(5)),
            Payload::Piece { index, begin } => Message::Piece(Piece { index, begin, data: payload(13) }),
            Payload::Extended { id } => Message::Extended(Extended { id, payload: payload(6) }),
            Payload::Hashes { request } => {
                Message::Hashes(Hashes { request, hashes: payload(5 + HashRequest::LEN) })
            }
            Payload::Unknown { id } => Message::Unknown { id, payload: payload(5) },
        }
    }
}

/// The iterator [`Decoder::drain`] returns: every whole message at the front of a buffer.
///
/// Dropping it removes the messages it returned from the buffer.
#[derive(Debug)]
pub struct Drain<'a> {
    decoder: &'a mut Decoder,
    buf: &'a mut BytesMut,
    /// Bytes at the front of `buf` that were returned as messages but not yet trimmed.
    consumed: usize,
    failed: bool,
}

impl Iterator for Drain<'_> {
    type Item = Result<Message, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.consumed..).unwrap_or_default();
        let mut total = 0;
        if let Some(m) = self.decoder.fast(rest, &mut total) {
            self.consumed += total;
            return Some(Ok(m));
        }
        match self.decoder.step(rest) {
            Ok(None) => None,
            Ok(Some(Step::Whole(m, total))) => {
                self.consumed += total;
                Some(Ok(m))
            }
            Ok(Some(Step::Split(p, total))) => {
                self.buf.advance(std::mem::take(&mut self.consumed));
                Some(Ok(p.split_off(self.buf, total)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        self.buf.advance(self.consumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path (a whole small frame with more bytes behind it) decodes and refuses
    /// exactly as the general path does when the frame is alone in the buffer.
    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let msgs = [
            Message::Have(PieceIndex::new(7)),
            Message::Request(BlockRef { piece: PieceIndex::new(3), offset: 16384, length: 16384 }),
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(PieceIndex::new(99)), // out of range once the piece count is 10
            Message::Request(BlockRef { piece: PieceIndex::new(1), offset: 0, length: 1 << 20 }), // too long
        ];
        let filler = [0u8, 0, 0, 0].repeat(8); // keep-alives keep 17+ bytes in the buffer
        for m in &msgs {
            let mut frame = Vec::new();
            m.encode(&mut frame).unwrap();
            for piece_count in [None, Some(10)] {
                let mut alone = BytesMut::from(&frame[..]);
                let mut followed = BytesMut::from(&[&frame[..], &filler[..]].concat()[..]);
                let mut d = Decoder::new();
                d.set_piece_count(piece_count);
                let a = d.decode(&mut alone);
                let b = d.decode(&mut followed);
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{m:?} {piece_count:?}");
                if a.is_err() {
                    assert_eq!(followed.len(), frame.len() + filler.len(), "an error consumes nothing");
                } else {
                    assert_eq!(followed.len(), filler.len());
                }
            }
        }
    }

    #[test]
    fn default_decoder_has_the_default_limits() {
        // Regression: a derived `Default` once left the frame limit at 0, refusing everything.
        let mut b = BytesMut::from(&b"\0\0\0\x01\x0e"[..]);
        assert_eq!(Decoder::default().decode(&mut b).unwrap(), Some(Message::HaveAll));
        assert_eq!(Decoder::default().limits(), &Limits::default());
    }

    #[test]
    fn oversized_prefix_fails_before_buffering() {
        let mut d = Decoder::new();
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(d.decode(&mut b), Err(Error::MessageTooLong { id: None, .. })));
        // A piece one byte over the block limit, with only the header present.
        let mut b = BytesMut::new();
        b.put_u32(9 + 16 * 1024 + 1);
        b.put_u8(id::PIECE);
        assert!(matches!(d.decode(&mut b), Err(Error::MessageTooLong { id: Some(7), .. })));
        // Extended messages are bounded by their own limit.
        let mut b = BytesMut::new();
        b.put_u32(2 + 64 * 1024 + 1);
        b.put_u8(id::EXTENDED);
        assert!(matches!(d.decode(&mut b), Err(Error::MessageTooLong { id: Some(20), .. })));
    }

    #[test]
    fn fixed_sizes_are_exact() {
        let mut d = Decoder::new();
        let mut b = BytesMut::from(&b"\0\0\0\x02\x00\x00"[..]);
        assert!(matches!(d.decode(&mut b), Err(Error::BadLength { id: 0, len: 2, expected: 1 })));
        let mut b = BytesMut::from(&b"\0\0\0\x04\x04\0\0\0"[..]);
        assert!(matches!(d.decode(&mut b), Err(Error::BadLength { id: 4, len: 4, expected: 5 })));
    }

    #[test]
    fn bitfield_size_and_spare_bits_once_piece_count_is_known() {
        let mut d = Decoder::new();
        d.set_piece_count(Some(10));
        let mut b = BytesMut::from(&b"\0\0\0\x03\x05\xff\xc0"[..]);
        assert_eq!(d.decode(&mut b).unwrap(), Some(Message::Bitfield(Bytes::from_static(b"\xff\xc0"))));
        let mut b = BytesMut::from(&b"\0\0\0\x03\x05\xff\xe0"[..]);
        assert!(matches!(d.decode(&mut b), Err(Error::InvalidBitfield { len: 2, expected: 2 })));
        let mut b = BytesMut::from(&b"\0\0\0\x04\x05"[..]);
        assert!(matches!(d.decode(&mut b), Err(Error::InvalidBitfield { len: 3, expected: 2 })));
        let mut b = BytesMut::from(&b"\0\0\0\x05\x04\0\0\0\x0a"[..]);
        assert!(matches!(d.decode(&mut b), Err(Error::FieldTooLarge { id: 4, field: "index", .. })));
    }

    #[test]
    fn request_length_cap() {
        let mut d = Decoder::new();
        let mut b = BytesMut::new();
        Message::Request(BlockRef { piece: PieceIndex::new(0), offset: 0, length: 16 * 1024 + 1 })
            .encode(&mut b)
            .unwrap();
        assert!(matches!(d.decode(&mut b), Err(Error::FieldTooLarge { id: 6, field: "length", .. })));
        let mut d = Decoder::with_limits(Limits::new().max_block_length(32 * 1024));
        assert!(matches!(d.decode(&mut b), Ok(Some(Message::Request(_)))));
    }

    #[test]
    fn unknown_ids_are_strict_by_default() {
        let mut b = BytesMut::from(&b"\0\0\0\x02\x63\x01"[..]);
        assert!(matches!(Decoder::new().decode(&mut b), Err(Error::UnknownMessage { id: 0x63 })));
        let mut d = Decoder::with_limits(Limits::new().accept_unknown(true));
        assert_eq!(
            d.decode(&mut b).unwrap(),
            Some(Message::Unknown { id: 0x63, payload: Bytes::from_static(b"\x01") })
        );
    }

    #[test]
    fn piece_payload_shares_the_read_buffer() {
        let mut b = BytesMut::new();
        let data = Bytes::from(vec![7u8; 16 * 1024]);
        Message::Piece(Piece { index: PieceIndex::new(1), begin: 0, data: data.clone() })
            .encode(&mut b)
            .unwrap();
        let start = b.as_ptr() as usize;
        let Some(Message::Piece(p)) = Decoder::new().decode(&mut b).unwrap() else { panic!("not a piece") };
        assert_eq!(p.data, data);
        assert_eq!(p.data.as_ptr() as usize, start + 13, "the block must point into the read buffer");
    }

    #[test]
    fn vectored_header_matches_the_encoding() {
        let p = Piece { index: PieceIndex::new(3), begin: 16384, data: Bytes::from_static(b"abc") };
        let mut b = Vec::new();
        Message::Piece(p.clone()).encode(&mut b).unwrap();
        let mut v = p.header().unwrap().to_vec();
        v.extend_from_slice(&p.data);
        assert_eq!(b, v);
    }
}
