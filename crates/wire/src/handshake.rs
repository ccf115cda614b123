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
use piecework_metainfo::{InfoHashV1, PeerId};

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
            peer_id: PeerId::from_bytes(peer_id),
        }))
    }

    /// Appends the 68-byte handshake to `buf`.
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_slice(PROTOCOL);
        buf.put_slice(&self.reserved.0);
        buf.put_slice(self.info_hash.as_bytes());
        buf.put_slice(self.peer_id.as_bytes());
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
}
