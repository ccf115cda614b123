//! Peer ids ([BEP 3]) and the client styles they follow: shared by the wire handshake and
//! tracker announces.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html

use core::fmt;

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
    /// use piecework_metainfo::{ClientId, PeerId};
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

#[cfg(test)]
mod tests {
    use super::*;

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
