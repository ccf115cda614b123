//! Info-hash newtypes ([BEP 3], [BEP 52]) with hex and base32 forms.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use core::fmt;
use core::str::FromStr;

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::Error;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex.
pub(crate) fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        f.write_char(char::from(HEX[usize::from(b >> 4)]))?;
        f.write_char(char::from(HEX[usize::from(b & 15)]))?;
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    // Writing into a String cannot fail.
    let _ = write_hex(&mut s, bytes);
    s
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes of hex (either case).
pub(crate) fn parse_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
}

/// Decodes exactly `N` bytes of RFC 4648 base32 (either case, no padding needed).
pub(crate) fn parse_base32<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != data_encoding::BASE32_NOPAD.encode_len(N) {
        return None;
    }
    let upper: Vec<u8> = s.iter().map(u8::to_ascii_uppercase).collect();
    let mut out = [0u8; N];
    let n = data_encoding::BASE32_NOPAD.decode_mut(&upper, &mut out).ok()?;
    (n == N).then_some(out)
}

/// A v1 info-hash: SHA-1 of the raw bencoded info dictionary ([BEP 3]).
///
/// Displays as 40 lowercase hex digits; parses from 40 hex digits or 32 base32 characters
/// (the two forms magnet links use, [BEP 9]).
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
/// [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHashV1([u8; 20]);

/// A v2 info-hash: SHA-256 of the raw bencoded info dictionary ([BEP 52]).
///
/// Trackers and the peer handshake use the first 20 bytes: see [`InfoHashV2::truncated`].
///
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHashV2([u8; 32]);

impl InfoHashV1 {
    /// Wraps 20 bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
    /// Hashes raw info-dictionary bytes (the exact bencode span, never a re-encoding).
    pub fn of_info_bytes(raw_info: &[u8]) -> Self {
        Self(Sha1::digest(raw_info).into())
    }
    /// Wraps a slice, if it is exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
    /// The 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
    /// 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
    /// 32 uppercase base32 characters.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }
    /// Parses 40 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        parse_hex(s.as_bytes()).map(Self).ok_or(Error::InvalidHash { what: "v1 info-hash (hex)" })
    }
    /// Parses 32 base32 characters (either case).
    pub fn from_base32(s: &str) -> Result<Self, Error> {
        parse_base32(s.as_bytes()).map(Self).ok_or(Error::InvalidHash { what: "v1 info-hash (base32)" })
    }
}

impl InfoHashV2 {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// Hashes raw info-dictionary bytes (the exact bencode span, never a re-encoding).
    pub fn of_info_bytes(raw_info: &[u8]) -> Self {
        Self(Sha256::digest(raw_info).into())
    }
    /// Wraps a slice, if it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first 20 bytes, as trackers, the DHT and the peer handshake use them ([BEP 52]).
    ///
    /// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
    pub fn truncated(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        out
    }
    /// The truncated hash as an id of the same shape as a v1 hash (for swarm lookups).
    pub fn truncated_id(&self) -> InfoHashV1 {
        InfoHashV1(self.truncated())
    }
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
    /// 52 uppercase base32 characters.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        parse_hex(s.as_bytes()).map(Self).ok_or(Error::InvalidHash { what: "v2 info-hash (hex)" })
    }
    /// Parses 52 base32 characters (either case).
    pub fn from_base32(s: &str) -> Result<Self, Error> {
        parse_base32(s.as_bytes()).map(Self).ok_or(Error::InvalidHash { what: "v2 info-hash (base32)" })
    }
    /// The multihash form magnet links use (`1220` + 64 hex digits, [BEP 9]).
    ///
    /// [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
    pub fn to_multihash_hex(&self) -> String {
        format!("1220{}", self.to_hex())
    }
}

impl FromStr for InfoHashV1 {
    type Err = Error;
    /// 40 hex digits or 32 base32 characters.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.len() {
            40 => Self::from_hex(s),
            32 => Self::from_base32(s),
            _ => Err(Error::InvalidHash { what: "v1 info-hash (40 hex or 32 base32)" }),
        }
    }
}

impl FromStr for InfoHashV2 {
    type Err = Error;
    /// 64 hex digits, or 68 with the `1220` multihash prefix.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.len() {
            64 => Self::from_hex(s),
            68 if s.starts_with("1220") => Self::from_hex(&s[4..]),
            _ => Err(Error::InvalidHash { what: "v2 info-hash (64 hex)" }),
        }
    }
}

macro_rules! hex_fmt {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "("))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }
        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}
hex_fmt!(InfoHashV1);
hex_fmt!(InfoHashV2);

/// The info-hashes of a torrent: v1, v2, or both for a hybrid ([BEP 52]).
///
/// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InfoHashes {
    /// A v1-only torrent.
    V1(InfoHashV1),
    /// A v2-only torrent.
    V2(InfoHashV2),
    /// A hybrid torrent: both hashes describe the same info dictionary.
    Hybrid(InfoHashV1, InfoHashV2),
}

impl InfoHashes {
    /// Builds from optional parts; `None` when both are missing.
    pub fn from_parts(v1: Option<InfoHashV1>, v2: Option<InfoHashV2>) -> Option<Self> {
        match (v1, v2) {
            (Some(a), Some(b)) => Some(Self::Hybrid(a, b)),
            (Some(a), None) => Some(Self::V1(a)),
            (None, Some(b)) => Some(Self::V2(b)),
            (None, None) => None,
        }
    }
    /// The v1 hash, if any.
    pub fn v1(&self) -> Option<InfoHashV1> {
        match *self {
            Self::V1(a) | Self::Hybrid(a, _) => Some(a),
            Self::V2(_) => None,
        }
    }
    /// The v2 hash, if any.
    pub fn v2(&self) -> Option<InfoHashV2> {
        match *self {
            Self::V2(b) | Self::Hybrid(_, b) => Some(b),
            Self::V1(_) => None,
        }
    }
    /// The 20-byte id to announce and handshake with: the v1 hash if present, else the truncated v2 hash.
    pub fn best_v1_sized(&self) -> InfoHashV1 {
        match *self {
            Self::V1(a) | Self::Hybrid(a, _) => a,
            Self::V2(b) => b.truncated_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sha1_of_empty_dict() {
        // SHA-1("de") computed independently.
        let h = InfoHashV1::of_info_bytes(b"de");
        assert_eq!(h.to_hex().len(), 40);
        assert_eq!(h, InfoHashV1::from_hex(&h.to_hex()).unwrap());
    }

    #[test]
    fn known_hex_and_base32() {
        let h: InfoHashV1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a".parse().unwrap();
        assert_eq!(h.to_base32(), "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK");
        assert_eq!("yex6dqdlxisuvhoj6um3gnnkpqjwpkek".parse::<InfoHashV1>().unwrap(), h);
        assert_eq!(h.to_string(), "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
        assert!("c12fe1c06bba254a9dc9f519b335aa7c1367a88".parse::<InfoHashV1>().is_err());
        assert!("g12fe1c06bba254a9dc9f519b335aa7c1367a88a".parse::<InfoHashV1>().is_err());
    }

    #[test]
    fn v2_truncation_and_multihash() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let h = InfoHashV2::from_bytes(b);
        assert_eq!(h.truncated()[..], b[..20]);
        let mh = h.to_multihash_hex();
        assert!(mh.starts_with("1220"));
        assert_eq!(mh.parse::<InfoHashV2>().unwrap(), h);
        assert_eq!(InfoHashes::V2(h).best_v1_sized().as_bytes()[..], b[..20]);
    }

    proptest! {
        #[test]
        fn roundtrip_v1(b in any::<[u8; 20]>()) {
            let h = InfoHashV1::from_bytes(b);
            prop_assert_eq!(InfoHashV1::from_hex(&h.to_hex()).unwrap(), h);
            prop_assert_eq!(InfoHashV1::from_base32(&h.to_base32()).unwrap(), h);
        }
        #[test]
        fn roundtrip_v2(b in any::<[u8; 32]>()) {
            let h = InfoHashV2::from_bytes(b);
            prop_assert_eq!(h.to_hex().parse::<InfoHashV2>().unwrap(), h);
            prop_assert_eq!(InfoHashV2::from_base32(&h.to_base32()).unwrap(), h);
        }
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<InfoHashV1>();
            let _ = s.parse::<InfoHashV2>();
        }
    }
}
