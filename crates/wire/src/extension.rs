//! Extension-protocol payloads: the [BEP 10] handshake, [BEP 9] `ut_metadata` and [BEP 11]
//! `ut_pex`.
//!
//! Each type decodes from the payload [`Bytes`] of a [`Message::Extended`] (byte strings it
//! keeps share that buffer) and encodes into any [`BufMut`]. Decoding is strict by default
//! (canonical bencode); pass [`DecodeOptions::lenient`] to the `decode_with` forms for peers
//! that send unsorted keys.
//!
//! [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
//! [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
//! [BEP 11]: https://www.bittorrent.org/beps/bep_0011.html

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::{BufMut, Bytes};
use piecework_bencode::{DecodeOptions, DictNode, Encoder, Node};

use crate::limits::METADATA_PIECE_LEN;
use crate::message::Extended;
use crate::{Error, Message};

/// Deepest nesting accepted in an extension payload: `m` is the only nested value any of them
/// has, so anything deeper is hostile.
const MAX_DEPTH: usize = 8;

fn options(base: &DecodeOptions) -> DecodeOptions {
    base.max_depth(base.depth_limit().min(MAX_DEPTH))
}

fn enc_err(field: &'static str) -> impl Fn(piecework_bencode::Error) -> Error {
    move |_| Error::Encode { field }
}

fn root_dict<'d, 'a>(
    doc: &'d piecework_bencode::Document<'a>,
    message: &'static str,
) -> Result<DictNode<'d, 'a>, Error> {
    doc.root().as_dict().ok_or(Error::Extension { message, field: "payload" })
}

fn node_int(n: Node<'_, '_>, field: &'static str, message: &'static str) -> Result<i64, Error> {
    n.as_int().ok_or(Error::Extension { message, field })
}

fn node_int_in<T: TryFrom<i64>>(
    n: Node<'_, '_>,
    field: &'static str,
    message: &'static str,
) -> Result<T, Error> {
    T::try_from(node_int(n, field, message)?).map_err(|_| Error::Extension { message, field })
}

fn node_bytes<'a>(n: Node<'_, 'a>, field: &'static str, message: &'static str) -> Result<&'a [u8], Error> {
    n.as_bytes().ok_or(Error::Extension { message, field })
}

fn int(d: &DictNode<'_, '_>, key: &'static str, message: &'static str) -> Result<Option<i64>, Error> {
    d.get(key.as_bytes()).map(|n| node_int(n, key, message)).transpose()
}

fn int_in<T: TryFrom<i64>>(
    d: &DictNode<'_, '_>,
    key: &'static str,
    message: &'static str,
) -> Result<Option<T>, Error> {
    d.get(key.as_bytes()).map(|n| node_int_in(n, key, message)).transpose()
}

fn bytes_field<'a>(
    d: &DictNode<'_, 'a>,
    key: &'static str,
    message: &'static str,
) -> Result<Option<&'a [u8]>, Error> {
    d.get(key.as_bytes()).map(|n| node_bytes(n, key, message)).transpose()
}

/// The BEP 10 extension handshake (extended message id 0).
///
/// Every key BEP 10 lists, plus `metadata_size` ([BEP 9]) and `upload_only` ([BEP 21]); any
/// other key is kept raw in [`unknown`](Self::unknown) and written back on encode.
///
/// ```
/// use bytes::Bytes;
/// use piecework_wire::ExtendedHandshake;
///
/// let mut hs = ExtendedHandshake::default();
/// hs.extensions.push((Bytes::from_static(b"ut_metadata"), 3));
/// hs.client = Some(Bytes::from_static(b"piecework 0.1"));
/// hs.metadata_size = Some(31_235);
/// let mut buf = Vec::new();
/// hs.encode(&mut buf)?;
/// assert_eq!(buf, b"d1:md11:ut_metadatai3ee13:metadata_sizei31235e1:v13:piecework 0.1e");
/// let back = ExtendedHandshake::decode(&Bytes::from(buf))?;
/// assert_eq!(back.extension_id(b"ut_metadata"), Some(3));
/// assert_eq!(back, hs);
/// # Ok::<(), piecework_wire::Error>(())
/// ```
///
/// [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
/// [BEP 21]: https://www.bittorrent.org/beps/bep_0021.html
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ExtendedHandshake {
    /// `m`: extension name to the id the sender wants to *receive* it under (0 = disabled),
    /// in the order received.
    pub extensions: Vec<(Bytes, u8)>,
    /// `p`: the sender's listen port.
    pub port: Option<u16>,
    /// `v`: client name and version (usually UTF-8).
    pub client: Option<Bytes>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `ipv4`: the sender's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: the sender's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender queues.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary in bytes.
    pub metadata_size: Option<u64>,
    /// `upload_only` (BEP 21): non-zero when the sender only uploads (a seed or a partial
    /// seed). Kept as sent so it re-encodes exactly; see [`is_upload_only`](Self::is_upload_only).
    pub upload_only: Option<i64>,
    /// Every other key, with its raw bencoded value, written back verbatim on encode (so a
    /// value accepted by lenient decoding, such as `i007e`, stays as it was).
    pub unknown: Vec<(Bytes, Bytes)>,
    /// The peer sent an empty `m`; kept so the handshake re-encodes exactly.
    empty_m: bool,
}

const HS: &str = "handshake";

impl ExtendedHandshake {
    /// The id the sender assigned to extension `name`, if enabled (non-zero).
    pub fn extension_id(&self, name: &[u8]) -> Option<u8> {
        self.extensions.iter().find(|(n, _)| n == name).map(|(_, id)| *id).filter(|id| *id != 0)
    }

    /// Whether `upload_only` is present and non-zero.
    pub fn is_upload_only(&self) -> bool {
        self.upload_only.is_some_and(|u| u != 0)
    }

    /// `v` as text, if it is UTF-8.
    pub fn client_str(&self) -> Option<&str> {
        self.client.as_deref().and_then(|v| core::str::from_utf8(v).ok())
    }

    /// Decodes a handshake payload strictly.
    pub fn decode(payload: &Bytes) -> Result<Self, Error> {
        Self::decode_with(payload, &DecodeOptions::new())
    }

    /// Decodes a handshake payload with the given bencode options (limits, leniency).
    pub fn decode_with(payload: &Bytes, opts: &DecodeOptions) -> Result<Self, Error> {
        let doc = options(opts).decode(payload).map_err(|source| Error::Bencode { message: HS, source })?;
        let d = root_dict(&doc, HS)?;
        let mut hs = ExtendedHandshake::default();
        let bad = |field| Error::Extension { message: HS, field };
        let mut seen = FirstWins::new(d);
        for (key, node) in d.iter() {
            if !seen.first(key) {
                continue;
            }
            match key {
                b"m" => {
                    let m = node.as_dict().ok_or_else(|| bad("m"))?;
                    hs.empty_m = m.is_empty();
                    let mut names = FirstWins::new(m);
                    for (name, id) in m.iter() {
                        let id = id.as_int().and_then(|i| u8::try_from(i).ok()).ok_or_else(|| bad("m"))?;
                        if names.first(name) {
                            hs.extensions.push((payload.slice_ref(name), id));
                        }
                    }
                }
                b"p" => hs.port = Some(node_int_in(node, "p", HS)?),
                b"v" => hs.client = Some(payload.slice_ref(node_bytes(node, "v", HS)?)),
                b"yourip" => {
                    hs.your_ip = Some(ip_from(node_bytes(node, "yourip", HS)?).ok_or_else(|| bad("yourip"))?)
                }
                b"ipv4" => {
                    let b = <[u8; 4]>::try_from(node_bytes(node, "ipv4", HS)?).map_err(|_| bad("ipv4"))?;
                    hs.ipv4 = Some(Ipv4Addr::from(b));
                }
                b"ipv6" => {
                    let b = <[u8; 16]>::try_from(node_bytes(node, "ipv6", HS)?).map_err(|_| bad("ipv6"))?;
                    hs.ipv6 = Some(Ipv6Addr::from(b));
                }
                b"reqq" => hs.reqq = Some(node_int_in(node, "reqq", HS)?),
                b"metadata_size" => hs.metadata_size = Some(node_int_in(node, "metadata_size", HS)?),
                b"upload_only" => hs.upload_only = Some(node_int(node, "upload_only", HS)?),
                _ => hs.unknown.push((payload.slice_ref(key), payload.slice_ref(node.raw()))),
            }
        }
        Ok(hs)
    }

    /// Appends the bencoded payload (keys sorted, unknown keys merged back in) to `buf`.
    ///
    /// Fails if an unknown key repeats a known one or another unknown key, or if two
    /// extensions share a name.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), Error> {
        enum V<'a> {
            Int(i64),
            Str(&'a [u8]),
            Raw(&'a [u8]),
            M,
        }
        let ip4 = self.ipv4.map(|a| a.octets());
        let ip6 = self.ipv6.map(|a| a.octets());
        let mut your = [0u8; 16];
        let mut items: Vec<(&[u8], V<'_>)> = Vec::with_capacity(10 + self.unknown.len());
        if !self.extensions.is_empty() || self.empty_m {
            items.push((b"m", V::M));
        }
        if let Some(p) = self.port {
            items.push((b"p", V::Int(p.into())));
        }
        if let Some(v) = &self.client {
            items.push((b"v", V::Str(v)));
        }
        if let Some(ip) = self.your_ip {
            let n = match ip {
                IpAddr::V4(a) => {
                    your[..4].copy_from_slice(&a.octets());
                    4
                }
                IpAddr::V6(a) => {
                    your.copy_from_slice(&a.octets());
                    16
                }
            };
            items.push((b"yourip", V::Str(&your[..n])));
        }
        if let Some(a) = &ip4 {
            items.push((b"ipv4", V::Str(a)));
        }
        if let Some(a) = &ip6 {
            items.push((b"ipv6", V::Str(a)));
        }
        if let Some(q) = self.reqq {
            items.push((b"reqq", V::Int(q.into())));
        }
        if let Some(s) = self.metadata_size {
            items.push((
                b"metadata_size",
                V::Int(i64::try_from(s).map_err(|_| Error::Encode { field: "metadata_size" })?),
            ));
        }
        if let Some(u) = self.upload_only {
            items.push((b"upload_only", V::Int(u)));
        }
        for (k, v) in &self.unknown {
            items.push((k, V::Raw(v)));
        }
        items.sort_by(|a, b| a.0.cmp(b.0));
        let mut e = Encoder::new(buf);
        e.begin_dict().map_err(enc_err("payload"))?;
        for (k, v) in items {
            e.key(k).map_err(enc_err("unknown"))?;
            match v {
                V::Int(i) => e.int(i),
                V::Str(s) => e.bytes(s),
                V::Raw(r) => e.raw(r),
                V::M => {
                    let mut m: Vec<&(Bytes, u8)> = self.extensions.iter().collect();
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    e.begin_dict().map_err(enc_err("m"))?;
                    for (name, id) in m {
                        e.key(name).map_err(enc_err("m"))?;
                        e.int((*id).into()).map_err(enc_err("m"))?;
                    }
                    e.end()
                }
            }
            .map_err(enc_err("payload"))?;
        }
        e.end().map_err(enc_err("payload"))?;
        Ok(())
    }

    /// The whole `extended` message (extension id 0).
    pub fn to_message(&self) -> Result<Message, Error> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(Message::Extended(Extended { id: 0, payload: Bytes::from(v) }))
    }
}

/// Which dictionary keys to act on when a lenient decode lets a key repeat: the first
/// occurrence wins, as in lookups. Keys in ascending order (always, when decoding strictly)
/// cannot repeat, so a set of the keys seen is only built once one arrives out of order.
struct FirstWins<'d, 'a> {
    dict: DictNode<'d, 'a>,
    /// Keys checked so far.
    count: usize,
    last: Option<&'a [u8]>,
    seen: Option<std::collections::HashSet<&'a [u8]>>,
}

impl<'d, 'a> FirstWins<'d, 'a> {
    fn new(dict: DictNode<'d, 'a>) -> Self {
        FirstWins { dict, count: 0, last: None, seen: None }
    }

    /// Whether `key`, the next key of the dictionary, is the first of its name.
    fn first(&mut self, key: &'a [u8]) -> bool {
        let count = self.count;
        self.count += 1;
        if self.seen.is_none() {
            if self.last.is_none_or(|prev| prev < key) {
                self.last = Some(key);
                return true;
            }
            self.seen = Some(self.dict.iter().take(count).map(|(k, _)| k).collect());
        }
        self.seen.as_mut().is_some_and(|seen| seen.insert(key))
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(a)));
    }
    <[u8; 16]>::try_from(b).ok().map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

const MD: &str = "ut_metadata";

/// A BEP 9 `ut_metadata` message: how peers send each other the info dictionary in 16 KiB
/// pieces ([BEP 9]).
///
/// ```
/// use bytes::Bytes;
/// use piecework_wire::MetadataMessage;
///
/// let wire = Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei3eexyz");
/// let m = MetadataMessage::decode(&wire)?;
/// assert_eq!(m, MetadataMessage::Data { piece: 0, total_size: 3, data: Bytes::from_static(b"xyz") });
/// let mut back = Vec::new();
/// m.encode(&mut back)?;
/// assert_eq!(back, &wire[..]);
/// # Ok::<(), piecework_wire::Error>(())
/// ```
///
/// [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataMessage {
    /// `msg_type` 0: asks for a piece.
    Request {
        /// Piece number (16 KiB each).
        piece: u32,
    },
    /// `msg_type` 1: a piece; `data` is the raw metadata after the dictionary (shares the
    /// payload buffer). Its length is checked against `total_size`: 16 KiB for every piece
    /// but the last.
    Data {
        /// Piece number.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece.
        data: Bytes,
    },
    /// `msg_type` 2: the peer will not send the piece.
    Reject {
        /// Piece number.
        piece: u32,
    },
    /// A `msg_type` this crate does not know: BEP 9 says to ignore it.
    Other {
        /// The message type.
        msg_type: i64,
    },
}

impl MetadataMessage {
    /// Number of 16 KiB pieces in metadata of `total_size` bytes.
    pub fn piece_count(total_size: u64) -> u64 {
        total_size.div_ceil(METADATA_PIECE_LEN as u64)
    }

    /// Decodes a `ut_metadata` payload strictly.
    pub fn decode(payload: &Bytes) -> Result<Self, Error> {
        Self::decode_with(payload, &DecodeOptions::new())
    }

    /// Decodes a `ut_metadata` payload with the given bencode options.
    pub fn decode_with(payload: &Bytes, opts: &DecodeOptions) -> Result<Self, Error> {
        let (doc, end) =
            options(opts).decode_prefix(payload).map_err(|source| Error::Bencode { message: MD, source })?;
        let d = root_dict(&doc, MD)?;
        let msg_type = int(&d, "msg_type", MD)?.ok_or(Error::Extension { message: MD, field: "msg_type" })?;
        if !(0..=2).contains(&msg_type) {
            return Ok(MetadataMessage::Other { msg_type });
        }
        let piece: u32 = int_in(&d, "piece", MD)?.ok_or(Error::Extension { message: MD, field: "piece" })?;
        let trailing = end != payload.len();
        Ok(match msg_type {
            0 if !trailing => MetadataMessage::Request { piece },
            2 if !trailing => MetadataMessage::Reject { piece },
            1 => {
                let total_size: u64 = int_in(&d, "total_size", MD)?
                    .ok_or(Error::Extension { message: MD, field: "total_size" })?;
                let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
                if start >= total_size {
                    return Err(Error::Extension { message: MD, field: "piece" });
                }
                let expected = (total_size - start).min(METADATA_PIECE_LEN as u64);
                let data = payload.slice(end..);
                if data.len() as u64 != expected {
                    return Err(Error::Extension { message: MD, field: "data" });
                }
                MetadataMessage::Data { piece, total_size, data }
            }
            _ => return Err(Error::Extension { message: MD, field: "payload" }),
        })
    }

    /// Appends the payload (dictionary, then the raw piece for `Data`) to `buf`.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), Error> {
        let (msg_type, piece, total) = match self {
            MetadataMessage::Request { piece } => (0, Some(*piece), None),
            MetadataMessage::Data { piece, total_size, .. } => (1, Some(*piece), Some(*total_size)),
            MetadataMessage::Reject { piece } => (2, Some(*piece), None),
            MetadataMessage::Other { msg_type } => (*msg_type, None, None),
        };
        let mut e = Encoder::new(&mut *buf);
        let f = enc_err("payload");
        e.begin_dict().map_err(&f)?;
        e.key(b"msg_type").map_err(&f)?;
        e.int(msg_type).map_err(&f)?;
        if let Some(p) = piece {
            e.key(b"piece").map_err(&f)?;
            e.int(p.into()).map_err(&f)?;
        }
        if let Some(t) = total {
            e.key(b"total_size").map_err(&f)?;
            e.int(i64::try_from(t).map_err(|_| Error::Encode { field: "total_size" })?).map_err(&f)?;
        }
        e.end().map_err(&f)?;
        drop(e);
        if let MetadataMessage::Data { data, .. } = self {
            buf.put_slice(data);
        }
        Ok(())
    }

    /// The whole `extended` message, sent under the id the *receiver* assigned to
    /// `ut_metadata` in its handshake.
    pub fn to_message(&self, ext_id: u8) -> Result<Message, Error> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(Message::Extended(Extended { id: ext_id, payload: Bytes::from(v) }))
    }
}

/// Per-peer flags of BEP 11 `added.f` / `added6.f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// Prefers encryption.
    pub const ENCRYPTION: u8 = 0x01;
    /// Seed or upload only.
    pub const SEED: u8 = 0x02;
    /// Supports uTP.
    pub const UTP: u8 = 0x04;
    /// Supports `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// Reachable: the sender connected to it (outgoing connection).
    pub const REACHABLE: u8 = 0x10;

    /// Whether `flag` (one of the constants) is set.
    pub const fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

const PEX: &str = "ut_pex";

/// A BEP 11 `ut_pex` message: peers added and dropped since the last one ([BEP 11]).
///
/// ```
/// use std::net::SocketAddrV4;
/// use bytes::Bytes;
/// use piecework_wire::{PexFlags, PexMessage};
///
/// let wire = Bytes::from_static(b"d5:added6:\x7f\0\0\x01\x1a\xe17:added.f1:\x10e");
/// let pex = PexMessage::decode(&wire)?;
/// assert_eq!(pex.added, [("127.0.0.1:6881".parse::<SocketAddrV4>().unwrap(), PexFlags(PexFlags::REACHABLE))]);
/// # Ok::<(), piecework_wire::Error>(())
/// ```
///
/// [BEP 11]: https://www.bittorrent.org/beps/bep_0011.html
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PexMessage {
    /// `added` with `added.f` (flags are zero when `added.f` is absent).
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    /// `added6` with `added6.f`.
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    /// `dropped`.
    pub dropped: Vec<SocketAddrV4>,
    /// `dropped6`.
    pub dropped6: Vec<SocketAddrV6>,
}

fn v4(c: &[u8]) -> Option<SocketAddrV4> {
    let ip: [u8; 4] = c.get(..4)?.try_into().ok()?;
    let port: [u8; 2] = c.get(4..6)?.try_into().ok()?;
    Some(SocketAddrV4::new(ip.into(), u16::from_be_bytes(port)))
}

fn v6(c: &[u8]) -> Option<SocketAddrV6> {
    let ip: [u8; 16] = c.get(..16)?.try_into().ok()?;
    let port: [u8; 2] = c.get(16..18)?.try_into().ok()?;
    Some(SocketAddrV6::new(ip.into(), u16::from_be_bytes(port), 0, 0))
}

fn compact<T>(
    d: &DictNode<'_, '_>,
    key: &'static str,
    size: usize,
    parse: fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, Error> {
    let Some(b) = bytes_field(d, key, PEX)? else { return Ok(Vec::new()) };
    if b.len() % size != 0 {
        return Err(Error::Extension { message: PEX, field: key });
    }
    b.chunks_exact(size).map(|c| parse(c).ok_or(Error::Extension { message: PEX, field: key })).collect()
}

fn flags(d: &DictNode<'_, '_>, key: &'static str, n: usize) -> Result<Vec<PexFlags>, Error> {
    match bytes_field(d, key, PEX)? {
        None => Ok(vec![PexFlags(0); n]),
        Some(f) if f.len() == n => Ok(f.iter().map(|b| PexFlags(*b)).collect()),
        Some(_) => Err(Error::Extension { message: PEX, field: key }),
    }
}

impl PexMessage {
    /// Decodes a `ut_pex` payload strictly. The number of peers is bounded by the payload
    /// size, itself bounded by [`Limits::max_extended_length`](crate::Limits::max_extended_length).
    pub fn decode(payload: &Bytes) -> Result<Self, Error> {
        Self::decode_with(payload, &DecodeOptions::new())
    }

    /// Decodes a `ut_pex` payload with the given bencode options.
    pub fn decode_with(payload: &Bytes, opts: &DecodeOptions) -> Result<Self, Error> {
        let doc = options(opts).decode(payload).map_err(|source| Error::Bencode { message: PEX, source })?;
        let d = root_dict(&doc, PEX)?;
        let added = compact(&d, "added", 6, v4)?;
        let added_f = flags(&d, "added.f", added.len())?;
        let added6 = compact(&d, "added6", 18, v6)?;
        let added6_f = flags(&d, "added6.f", added6.len())?;
        Ok(PexMessage {
            added: added.into_iter().zip(added_f).collect(),
            added6: added6.into_iter().zip(added6_f).collect(),
            dropped: compact(&d, "dropped", 6, v4)?,
            dropped6: compact(&d, "dropped6", 18, v6)?,
        })
    }

    /// Appends the bencoded payload to `buf`; empty lists are left out.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), Error> {
        fn put4(out: &mut Vec<u8>, a: &SocketAddrV4) {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        fn put6(out: &mut Vec<u8>, a: &SocketAddrV6) {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        let f = enc_err("payload");
        let mut e = Encoder::new(buf);
        e.begin_dict().map_err(&f)?;
        let mut scratch = Vec::new();
        if !self.added.is_empty() {
            self.added.iter().for_each(|(a, _)| put4(&mut scratch, a));
            e.key(b"added").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
            scratch.clear();
            scratch.extend(self.added.iter().map(|(_, fl)| fl.0));
            e.key(b"added.f").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
            scratch.clear();
        }
        if !self.added6.is_empty() {
            self.added6.iter().for_each(|(a, _)| put6(&mut scratch, a));
            e.key(b"added6").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
            scratch.clear();
            scratch.extend(self.added6.iter().map(|(_, fl)| fl.0));
            e.key(b"added6.f").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
            scratch.clear();
        }
        if !self.dropped.is_empty() {
            self.dropped.iter().for_each(|a| put4(&mut scratch, a));
            e.key(b"dropped").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
            scratch.clear();
        }
        if !self.dropped6.is_empty() {
            self.dropped6.iter().for_each(|a| put6(&mut scratch, a));
            e.key(b"dropped6").map_err(&f)?;
            e.bytes(&scratch).map_err(&f)?;
        }
        e.end().map_err(&f)?;
        Ok(())
    }

    /// The whole `extended` message under the receiver's id for `ut_pex`.
    pub fn to_message(&self, ext_id: u8) -> Result<Message, Error> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(Message::Extended(Extended { id: ext_id, payload: Bytes::from(v) }))
    }
}

impl Extended {
    /// Whether this is the extension handshake (id 0).
    pub fn is_handshake(&self) -> bool {
        self.id == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_keeps_unknown_keys_and_reencodes_exactly() {
        let wire = Bytes::from_static(
            b"d12:complete_agoi-1e1:md11:ut_metadatai2e6:ut_pexi0ee13:metadata_sizei1000e1:pi6881e4:reqqi500e11:upload_onlyi1e1:v14:libtorrent/2.06:yourip4:\x7f\0\0\x01e",
        );
        let hs = ExtendedHandshake::decode(&wire).unwrap();
        assert_eq!(hs.extension_id(b"ut_metadata"), Some(2));
        assert_eq!(hs.extension_id(b"ut_pex"), None, "0 means disabled");
        assert_eq!(hs.port, Some(6881));
        assert_eq!(hs.reqq, Some(500));
        assert_eq!(hs.metadata_size, Some(1000));
        assert_eq!(hs.upload_only, Some(1));
        assert!(hs.is_upload_only());
        assert_eq!(hs.client_str(), Some("libtorrent/2.0"));
        assert_eq!(hs.your_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(hs.unknown, [(Bytes::from_static(b"complete_ago"), Bytes::from_static(b"i-1e"))]);
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        assert_eq!(out, &wire[..]);
    }

    #[test]
    fn lenient_repeated_keys_keep_the_first_and_still_encode() {
        // Regression (fuzz): repeated `m` names or top-level keys made encode fail.
        let wire = Bytes::from_static(b"d1:pi2e1:md1:bi2e1:ai1e1:ai9ee1:pi1e3:zzzi1e3:zzzi2ee");
        let hs = ExtendedHandshake::decode_with(&wire, &DecodeOptions::lenient()).unwrap();
        assert_eq!(hs.port, Some(2));
        assert_eq!(hs.extension_id(b"a"), Some(1));
        assert_eq!(hs.unknown.len(), 1);
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        assert_eq!(out, b"d1:md1:ai1e1:bi2ee1:pi2e3:zzzi1ee");
        // A repeat that comes after keys in order, and one right after its first.
        let wire = Bytes::from_static(b"d1:md1:ai1e1:bi2e1:ai3e1:bi4ee1:pi1e1:v1:x1:pi2e1:v1:ye");
        let hs = ExtendedHandshake::decode_with(&wire, &DecodeOptions::lenient()).unwrap();
        assert_eq!((hs.extension_id(b"a"), hs.extension_id(b"b"), hs.port), (Some(1), Some(2), Some(1)));
        assert_eq!(hs.client_str(), Some("x"));
        assert_eq!(hs.extensions.len(), 2);
    }

    #[test]
    fn leniently_accepted_unknown_values_are_written_back_verbatim() {
        // Regression (fuzz): a non-canonical value (`03:abc`) accepted leniently is kept as
        // received, so the re-encoding decodes again under the same (lenient) options.
        let wire = Bytes::from_static(b"d1:x03:abce");
        assert!(ExtendedHandshake::decode(&wire).is_err());
        let hs = ExtendedHandshake::decode_with(&wire, &DecodeOptions::lenient()).unwrap();
        assert_eq!(hs.unknown, [(Bytes::from_static(b"x"), Bytes::from_static(b"03:abc"))]);
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        assert_eq!(out, &wire[..]);
    }

    #[test]
    fn an_empty_m_is_kept() {
        // Regression (fuzz): `1:mde` was dropped on re-encode.
        let wire = Bytes::from_static(b"d1:mde1:pi1ee");
        let hs = ExtendedHandshake::decode(&wire).unwrap();
        assert!(hs.extensions.is_empty());
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        assert_eq!(out, &wire[..]);
    }

    #[test]
    fn upload_only_keeps_its_value() {
        // Regression (fuzz): `upload_only` was stored as a bool, so `i11e` re-encoded as `i1e`.
        let wire = Bytes::from_static(b"d11:upload_onlyi11ee");
        let hs = ExtendedHandshake::decode(&wire).unwrap();
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        assert_eq!(out, &wire[..]);
    }

    #[test]
    fn handshake_field_errors_name_the_field() {
        let e = ExtendedHandshake::decode(&Bytes::from_static(b"d1:pi70000ee")).unwrap_err();
        assert!(matches!(e, Error::Extension { message: "handshake", field: "p" }));
        let e = ExtendedHandshake::decode(&Bytes::from_static(b"d1:md1:xi300eee")).unwrap_err();
        assert!(matches!(e, Error::Extension { field: "m", .. }));
        let e = ExtendedHandshake::decode(&Bytes::from_static(b"d6:yourip3:abce")).unwrap_err();
        assert!(matches!(e, Error::Extension { field: "yourip", .. }));
        let e = ExtendedHandshake::decode(&Bytes::from_static(b"li1ee")).unwrap_err();
        assert!(matches!(e, Error::Extension { field: "payload", .. }));
        let e = ExtendedHandshake::decode(&Bytes::from_static(b"d1:v1:xe1:")).unwrap_err();
        assert!(matches!(e, Error::Bencode { message: "handshake", .. }));
    }

    #[test]
    fn metadata_data_length_must_match_total_size() {
        let e = MetadataMessage::decode(&Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei4eexyz"));
        assert!(matches!(e, Err(Error::Extension { field: "data", .. })));
        let e = MetadataMessage::decode(&Bytes::from_static(b"d8:msg_typei1e5:piecei1e10:total_sizei4eexyz"));
        assert!(matches!(e, Err(Error::Extension { field: "piece", .. })));
        let big = [&b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee"[..], &[0u8; 16 * 1024 + 1][..]].concat();
        let e = MetadataMessage::decode(&Bytes::from(big));
        assert!(matches!(e, Err(Error::Extension { field: "data", .. })));
        let e = MetadataMessage::decode(&Bytes::from_static(b"d8:msg_typei0e5:piecei0eeX"));
        assert!(matches!(e, Err(Error::Extension { field: "payload", .. })));
        let m = MetadataMessage::decode(&Bytes::from_static(b"d8:msg_typei7ee")).unwrap();
        assert_eq!(m, MetadataMessage::Other { msg_type: 7 });
    }

    #[test]
    fn pex_flags_must_match_peers() {
        let e =
            PexMessage::decode(&Bytes::from_static(b"d5:added6:\x7f\0\0\x01\x1a\xe17:added.f2:\x10\x10e"));
        assert!(matches!(e, Err(Error::Extension { field: "added.f", .. })));
        let e = PexMessage::decode(&Bytes::from_static(b"d5:added5:\x7f\0\0\x01\x1ae"));
        assert!(matches!(e, Err(Error::Extension { field: "added", .. })));
        let p = PexMessage::decode(&Bytes::from_static(b"d7:dropped6:\x7f\0\0\x01\x1a\xe1e")).unwrap();
        assert_eq!(p.dropped, ["127.0.0.1:6881".parse::<SocketAddrV4>().unwrap()]);
    }
}
