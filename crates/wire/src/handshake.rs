//! The 68-byte handshake ([BEP 3]), its reserved bits ([BEP 5], [BEP 6], [BEP 10], [BEP 52])
//! and the [`PeerId`].
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 5]: https://www.bittorrent.org/beps/bep_0005.html
//! [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
//! [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use core::fmt;

use bytes::{Buf, BufMut, BytesMut};
use piecework_metainfo::InfoHashV1;

use crate::Error;

/// The protocol string, with its length byte in front.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
/// Length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 68;

/// One capability bit of the handshake's reserved bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// DHT, [BEP 5]: `reserved[7] & 0x01`. The peer will send a `port` message.
    ///
    /// [BEP 5]: https://www.bittorrent.org/beps/bep_0005.html
    Dht,
    /// Fast extension, [BEP 6]: `reserved[7] & 0x04`. Active only if both sides set it.
    ///
    /// [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
    Fast,
    /// Upgrade to the v2 protocol, [BEP 52]: `reserved[7] & 0x10`. Set by a peer that has a
    /// hybrid torrent's v2 info, when the handshake carries the v1 hash.
    ///
    /// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
    V2Upgrade,
    /// Extension protocol, [BEP 10]: `reserved[5] & 0x10`.
    ///
    /// [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
    Extension,
}

impl Feature {
    /// Every feature this crate knows.
    pub const ALL: [Feature; 4] = [Feature::Dht, Feature::Fast, Feature::V2Upgrade, Feature::Extension];

    const fn position(self) -> (usize, u8) {
        match self {
            Feature::Dht => (7, 0x01),
            Feature::Fast => (7, 0x04),
            Feature::V2Upgrade => (7, 0x10),
            Feature::Extension => (5, 0x10),
        }
    }
}

/// The eight reserved bytes: a typed set of [`Feature`]s that also keeps every bit it does not
/// know, so a handshake re-encodes exactly as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved([u8; 8]);

impl Reserved {
    /// No bits set.
    pub const NONE: Reserved = Reserved([0; 8]);

    /// Wraps the raw bytes (unknown bits included).
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Reserved(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// The set with `feature` added.
    pub const fn with(mut self, feature: Feature) -> Self {
        let (byte, mask) = feature.position();
        self.0[byte] |= mask;
        self
    }

    /// The set with `feature` removed.
    pub const fn without(mut self, feature: Feature) -> Self {
        let (byte, mask) = feature.position();
        self.0[byte] &= !mask;
        self
    }

    /// Whether `feature`'s bit is set.
    pub const fn contains(&self, feature: Feature) -> bool {
        let (byte, mask) = feature.position();
        self.0[byte] & mask != 0
    }

    /// The known features that are set, in [`Feature::ALL`] order.
    pub fn features(&self) -> impl Iterator<Item = Feature> + '_ {
        Feature::ALL.into_iter().filter(|f| self.contains(*f))
    }

    /// The bits this crate does not interpret (all known feature bits cleared).
    pub fn unknown_bits(&self) -> [u8; 8] {
        let mut r = *self;
        for f in Feature::ALL {
            r = r.without(f);
        }
        r.0
    }

    /// The bits both sides set: a feature is in use only when both handshakes carry it.
    pub fn intersect(&self, other: &Reserved) -> Reserved {
        let mut out = [0u8; 8];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a & b;
        }
        Reserved(out)
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_struct("Reserved");
        for feature in self.features() {
            l.field(&format!("{feature:?}"), &true);
        }
        if self.unknown_bits() != [0; 8] {
            l.field("unknown", &format_args!("{:02x?}", self.unknown_bits()));
        }
        l.finish()
    }
}

/// A 20-byte peer id ([BEP 3]).
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId([u8; 20]);

impl PeerId {
    /// The prefix this crate suggests for piecework peers (Azureus style, `PW` 0.1.0.0).
    pub const PIECEWORK_PREFIX: &'static [u8; 8] = b"-PW0100-";

    /// Wraps 20 bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        PeerId(bytes)
    }

    /// Wraps a slice, if it is exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(PeerId)
    }

    /// An Azureus-style id: the 8-byte `prefix` (such as [`Self::PIECEWORK_PREFIX`]) followed by
    /// 12 bytes the caller draws at random (this crate has no random source: it is sans-IO).
    pub fn with_prefix(prefix: &[u8; 8], random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(prefix);
        id[8..].copy_from_slice(&random);
        PeerId(id)
    }

    /// The 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Recognises the common client-id styles; `None` if the id follows none of them.
    ///
    /// ```
    /// use piecework_wire::{ClientId, PeerId};
    /// let id = PeerId::from_bytes(*b"-qB4630-abcdefghijkl");
    /// let ClientId::Azureus { client, version } = id.client().unwrap() else { panic!() };
    /// assert_eq!((&client, &version), (b"qB", b"4630"));
    /// assert_eq!(id.client().unwrap().name(), Some("qBittorrent"));
    /// ```
    pub fn client(&self) -> Option<ClientId> {
        let id = &self.0;
        // Azureus style: `-XXVVVV-`.
        if id[0] == b'-' && id[7] == b'-' && id[1..3].iter().all(|b| b.is_ascii_alphanumeric()) {
            let version: [u8; 4] = [id[3], id[4], id[5], id[6]];
            if version.iter().all(|b| b.is_ascii_alphanumeric()) {
                return Some(ClientId::Azureus { client: [id[1], id[2]], version });
            }
        }
        // Mainline style: `M1-2-3--` (letter, then digits separated by dashes).
        if let Some(c) = mainline(id) {
            return Some(c);
        }
        // Shadow style: letter, up to five version characters, then `-` padding.
        if id[0].is_ascii_alphabetic() {
            let dashes = id[1..6].iter().position(|b| *b == b'-').unwrap_or(5);
            let version = &id[1..1 + dashes];
            if !version.is_empty()
                && version.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.')
                && id[6..9] == *b"---"
            {
                let mut v = [0u8; 5];
                v[..version.len()].copy_from_slice(version);
                return Some(ClientId::Shadow {
                    client: id[0],
                    version: v,
                    version_len: version.len() as u8,
                });
            }
        }
        None
    }
}

fn mainline(id: &[u8; 20]) -> Option<ClientId> {
    if !id[0].is_ascii_uppercase() || !id[1].is_ascii_digit() {
        return None;
    }
    let head = &id[1..];
    let end = head.windows(2).position(|w| w == b"--")?;
    let version = head.get(..end)?;
    let ok = version.iter().all(|b| b.is_ascii_digit() || *b == b'-')
        && version.iter().filter(|b| **b == b'-').count() == 2
        && version.len() <= 8;
    if !ok {
        return None;
    }
    let mut v = [0u8; 8];
    v.get_mut(..version.len())?.copy_from_slice(version);
    Some(ClientId::Mainline { client: id[0], version: v, version_len: version.len() as u8 })
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// A client and version read from a [`PeerId`] (see [`PeerId::client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientId {
    /// `-XXVVVV-...`: two-letter client code and four version characters.
    Azureus {
        /// Client code, such as `lt`, `LT`, `qB`, `TR`, `UT`.
        client: [u8; 2],
        /// Version characters as sent.
        version: [u8; 4],
    },
    /// `XVVVVV---...`: one-letter client code and up to five version characters.
    Shadow {
        /// Client code, such as `T` (BitTornado) or `A` (ABC).
        client: u8,
        /// Version characters (the first `version_len` bytes).
        version: [u8; 5],
        /// How many bytes of `version` are used.
        version_len: u8,
    },
    /// `M7-4-3--...`: mainline BitTorrent style.
    Mainline {
        /// Client letter (`M` for mainline, `Q` for Queen Bee).
        client: u8,
        /// The version digits and dashes (the first `version_len` bytes).
        version: [u8; 8],
        /// How many bytes of `version` are used.
        version_len: u8,
    },
}

impl ClientId {
    /// A human name for well-known client codes.
    pub fn name(&self) -> Option<&'static str> {
        Some(match self {
            ClientId::Azureus { client, .. } => match client {
                b"AZ" => "Vuze",
                b"BC" => "BitComet",
                b"BT" => "BitTorrent",
                b"DE" => "Deluge",
                b"lt" => "libtorrent (rakshasa)",
                b"LT" => "libtorrent (rasterbar)",
                b"PW" => "piecework",
                b"qB" => "qBittorrent",
                b"rQ" | b"RQ" => "rqbit",
                b"TR" => "Transmission",
                b"UT" => "uTorrent",
                b"UW" => "uTorrent Web",
                b"WW" => "WebTorrent",
                b"A2" => "aria2",
                _ => return None,
            },
            ClientId::Shadow { client, .. } => match client {
                b'A' => "ABC",
                b'O' => "Osprey Permaseed",
                b'Q' => "BTQueue",
                b'R' => "Tribler",
                b'S' => "Shadow",
                b'T' => "BitTornado",
                b'U' => "UPnP NAT Bit Torrent",
                _ => return None,
            },
            ClientId::Mainline { client, .. } => match client {
                b'M' => "BitTorrent (mainline)",
                b'Q' => "Queen Bee",
                _ => return None,
            },
        })
    }
}

/// The handshake both peers send first ([BEP 3]).
///
/// The info-hash field is 20 bytes: a v1 hash, or for v2 torrents the first 20 bytes of the v2
/// hash ([`InfoHashV2::truncated_id`](piecework_metainfo::InfoHashV2::truncated_id), [BEP 52]).
///
/// ```
/// use bytes::BytesMut;
/// use piecework_wire::{Feature, Handshake, InfoHashV1, PeerId, Reserved};
///
/// let hs = Handshake {
///     reserved: Reserved::NONE.with(Feature::Extension).with(Feature::Fast),
///     info_hash: InfoHashV1::from_bytes([0xaa; 20]),
///     peer_id: PeerId::with_prefix(PeerId::PIECEWORK_PREFIX, *b"0123456789ab"),
/// };
/// let mut buf = BytesMut::new();
/// hs.encode(&mut buf);
/// assert_eq!(buf.len(), 68);
/// assert_eq!(Handshake::decode(&mut buf)?, Some(hs));
/// assert!(buf.is_empty());
/// # Ok::<(), piecework_wire::Error>(())
/// ```
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Capability bits.
    pub reserved: Reserved,
    /// The torrent (v1 hash, or truncated v2 hash).
    pub info_hash: InfoHashV1,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Decodes a handshake from the front of `buf`: `Ok(None)` until all 68 bytes are there,
    /// an error as soon as the protocol string is wrong (checked byte by byte as it arrives).
    /// Consumes exactly 68 bytes on success; messages after it stay in `buf`.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Handshake>, Error> {
        let have = buf.len().min(PROTOCOL.len());
        if let (Some(got), Some(want)) = (buf.get(..have), PROTOCOL.get(..have))
            && got != want
        {
            let field = if buf.first() != Some(&PROTOCOL[0]) { "pstrlen" } else { "pstr" };
            return Err(Error::InvalidHandshake { field });
        }
        let Some(frame) = buf.get(..HANDSHAKE_LEN) else {
            return Ok(None);
        };
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&frame[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&frame[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&frame[48..68]);
        buf.advance(HANDSHAKE_LEN);
        Ok(Some(Handshake {
            reserved: Reserved(reserved),
            info_hash: InfoHashV1::from_bytes(info_hash),
            peer_id: PeerId(peer_id),
        }))
    }

    /// Appends the 68-byte handshake to `buf`.
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_slice(PROTOCOL);
        buf.put_slice(&self.reserved.0);
        buf.put_slice(self.info_hash.as_bytes());
        buf.put_slice(&self.peer_id.0);
    }

    /// The 68 bytes as an array.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        self.encode(&mut &mut out[..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bits_match_the_beps() {
        let r = Reserved::NONE.with(Feature::Extension);
        assert_eq!(r.as_bytes(), &[0, 0, 0, 0, 0, 0x10, 0, 0]);
        let r = Reserved::NONE.with(Feature::Dht).with(Feature::Fast).with(Feature::V2Upgrade);
        assert_eq!(r.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 0x15]);
    }

    #[test]
    fn unknown_reserved_bits_are_kept() {
        let r = Reserved::from_bytes([0x80, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert!(r.contains(Feature::Extension) && r.contains(Feature::Fast) && r.contains(Feature::Dht));
        assert!(!r.contains(Feature::V2Upgrade));
        assert_eq!(r.unknown_bits(), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.features().collect::<Vec<_>>(), [Feature::Dht, Feature::Fast, Feature::Extension]);
        let a = Reserved::NONE.with(Feature::Fast).with(Feature::Extension);
        assert_eq!(r.intersect(&a), a);
    }

    #[test]
    fn wrong_protocol_string_fails_on_the_first_bad_byte() {
        let mut b = BytesMut::from(&b"\x13BitTorrent protocoX"[..]);
        assert!(matches!(Handshake::decode(&mut b), Err(Error::InvalidHandshake { field: "pstr" })));
        let mut b = BytesMut::from(&b"GET / HTTP/1.1"[..]);
        assert!(matches!(Handshake::decode(&mut b), Err(Error::InvalidHandshake { field: "pstrlen" })));
        let mut b = BytesMut::from(&b"\x13Bit"[..]);
        assert!(matches!(Handshake::decode(&mut b), Ok(None)));
    }

    #[test]
    fn client_id_styles() {
        let c = PeerId::from_bytes(*b"-LT2080-abcdefghijkl").client().unwrap();
        assert_eq!(c, ClientId::Azureus { client: *b"LT", version: *b"2080" });
        assert_eq!(c.name(), Some("libtorrent (rasterbar)"));
        let c = PeerId::from_bytes(*b"T03I-----abcdefghijk").client().unwrap();
        assert_eq!(c, ClientId::Shadow { client: b'T', version: *b"03I\0\0", version_len: 3 });
        assert_eq!(c.name(), Some("BitTornado"));
        let c = PeerId::from_bytes(*b"M4-3-6--abcdefghijkl").client().unwrap();
        assert_eq!(c, ClientId::Mainline { client: b'M', version: *b"4-3-6\0\0\0", version_len: 5 });
        assert_eq!(PeerId::from_bytes([0; 20]).client(), None);
        assert_eq!(PeerId::from_bytes([0xff; 20]).client(), None);
        let pw = PeerId::with_prefix(PeerId::PIECEWORK_PREFIX, [b'x'; 12]);
        assert_eq!(pw.client().and_then(|c| c.name()), Some("piecework"));
    }
}
