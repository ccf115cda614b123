//! The vocabulary shared by the HTTP and UDP protocols: what we announce, what comes back, and
//! the limits applied to what comes back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use piecework_metainfo::{InfoHashV1, PeerId};

/// Why we announce ([BEP 3] `event`, [BEP 15] `event`).
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
/// [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular re-announce (no `event` parameter; UDP value 0).
    #[default]
    None,
    /// The download finished (UDP value 1).
    Completed,
    /// The first announce of a session (UDP value 2).
    Started,
    /// We are leaving the swarm (UDP value 3).
    Stopped,
}

impl Event {
    /// The HTTP `event` parameter value, or `None` for a regular announce.
    pub const fn as_http(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Completed => Some("completed"),
            Event::Started => Some("started"),
            Event::Stopped => Some("stopped"),
        }
    }
    /// The UDP `event` field value (BEP 15).
    pub const fn as_udp(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
    /// The event for a UDP `event` field value, if it is one of the four defined.
    pub const fn from_udp(value: u32) -> Option<Self> {
        match value {
            0 => Some(Event::None),
            1 => Some(Event::Completed),
            2 => Some(Event::Started),
            3 => Some(Event::Stopped),
            _ => None,
        }
    }
}

/// One announce: the parameters of [BEP 3]'s tracker GET request, also used for [BEP 15].
///
/// For a v2 or hybrid torrent, announce each 20-byte hash the swarm uses: the v1 hash and/or
/// [`InfoHashV2::truncated_id`](piecework_metainfo::InfoHashV2::truncated_id).
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
/// [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Announce {
    /// The (possibly truncated) info-hash.
    pub info_hash: InfoHashV1,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peer connections on.
    pub port: u16,
    /// Bytes uploaded since the `started` event.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` event.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Why we announce.
    pub event: Event,
    /// How many peers we would like (`numwant`); `None` lets the tracker choose.
    pub num_want: Option<u32>,
    /// A random value that stays the same for the session, so the tracker can recognise us when
    /// our address changes (`key`).
    pub key: Option<u32>,
    /// The `tracker id` a previous HTTP response asked us to send back (HTTP only).
    pub tracker_id: Option<Vec<u8>>,
}

impl Announce {
    /// An announce with zero counters, no event and the tracker's default peer count.
    pub fn new(info_hash: InfoHashV1, peer_id: PeerId, port: u16) -> Self {
        Self {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            num_want: None,
            key: None,
            tracker_id: None,
        }
    }
}

/// What a tracker answers to an announce (HTTP or UDP).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AnnounceResponse {
    /// Seconds to wait before the next regular announce.
    pub interval: u32,
    /// Seconds the tracker wants at least between announces (HTTP `min interval`).
    pub min_interval: Option<u32>,
    /// A value to send back as `trackerid` in later announces (HTTP `tracker id`).
    pub tracker_id: Option<Vec<u8>>,
    /// A non-fatal message from the tracker (HTTP `warning message`), lossily decoded.
    pub warning: Option<String>,
    /// Seeders in the swarm (HTTP `complete`, UDP `seeders`).
    pub complete: Option<u32>,
    /// Leechers in the swarm (HTTP `incomplete`, UDP `leechers`).
    pub incomplete: Option<u32>,
    /// Peer addresses, IPv4 and IPv6, in the order received, at most [`Limits::max_peers`].
    pub peers: Vec<SocketAddr>,
    /// Whether peers beyond [`Limits::max_peers`] were dropped.
    pub peers_truncated: bool,
}

/// One torrent's counters in a scrape response ([BEP 48], [BEP 15]).
///
/// [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html
/// [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads so far.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Limits applied to tracker responses. Every one has a safe default; raise them explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_response_bytes: usize,
    max_peers: usize,
    max_scrape_files: usize,
}

/// Default [`Limits::max_response_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Default [`Limits::max_peers`].
pub const DEFAULT_MAX_PEERS: usize = 2000;
/// Default [`Limits::max_scrape_files`].
pub const DEFAULT_MAX_SCRAPE_FILES: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    /// The defaults: 1 MiB responses, 2000 peers, 1000 scrape entries.
    pub const fn new() -> Self {
        Self {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_peers: DEFAULT_MAX_PEERS,
            max_scrape_files: DEFAULT_MAX_SCRAPE_FILES,
        }
    }
    /// Largest HTTP response body (or bencode document) accepted; bigger is
    /// [`Error::TooLarge`](crate::Error::TooLarge).
    pub const fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }
    /// Most peers kept from one announce response; the rest are dropped and
    /// [`AnnounceResponse::peers_truncated`] is set.
    pub const fn max_peers(mut self, peers: usize) -> Self {
        self.max_peers = peers;
        self
    }
    /// Most torrents kept from one scrape response; more is a
    /// [`Error::TooLarge`](crate::Error::TooLarge) for HTTP and truncated for UDP.
    pub const fn max_scrape_files(mut self, files: usize) -> Self {
        self.max_scrape_files = files;
        self
    }
    /// See [`Limits::max_response_bytes`].
    pub const fn response_bytes_limit(&self) -> usize {
        self.max_response_bytes
    }
    /// See [`Limits::max_peers`].
    pub const fn peers_limit(&self) -> usize {
        self.max_peers
    }
    /// See [`Limits::max_scrape_files`].
    pub const fn scrape_files_limit(&self) -> usize {
        self.max_scrape_files
    }
}

/// Appends compact peers ([BEP 23] 6-byte IPv4, [BEP 7] 18-byte IPv6 records) to `out`, up to
/// `max` entries in total. Returns `true` if some were dropped. A trailing partial record is
/// ignored.
///
/// [BEP 23]: https://www.bittorrent.org/beps/bep_0023.html
/// [BEP 7]: https://www.bittorrent.org/beps/bep_0007.html
pub(crate) fn push_compact_peers(bytes: &[u8], v6: bool, max: usize, out: &mut Vec<SocketAddr>) -> bool {
    let size = if v6 { 18 } else { 6 };
    let mut truncated = false;
    for rec in bytes.chunks_exact(size) {
        if out.len() >= max {
            truncated = true;
            break;
        }
        out.push(compact_peer(rec));
    }
    truncated
}

/// Decodes one 6- or 18-byte compact record; any other length is treated by its first bytes as
/// IPv4 (callers pass exact chunks).
fn compact_peer(rec: &[u8]) -> SocketAddr {
    if let Ok(r) = <&[u8; 18]>::try_from(rec) {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&r[..16]);
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), u16::from_be_bytes([r[16], r[17]]), 0, 0))
    } else {
        let mut r = [0u8; 6];
        let n = rec.len().min(6);
        r[..n].copy_from_slice(&rec[..n]);
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(r[0], r[1], r[2], r[3]),
            u16::from_be_bytes([r[4], r[5]]),
        ))
    }
}

/// Appends the compact form of `addr` (6 bytes for IPv4, 18 for IPv6).
pub(crate) fn encode_compact_peer(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ipv4_bep23_vector() {
        // 10.0.0.1:6881 and 127.0.0.1:80, 6 bytes each, network order.
        let bytes = [10, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 1, 0, 80, 9];
        let mut out = Vec::new();
        assert!(!push_compact_peers(&bytes, false, 10, &mut out));
        assert_eq!(out, vec!["10.0.0.1:6881".parse().unwrap(), "127.0.0.1:80".parse().unwrap()]);
        let mut re = Vec::new();
        out.iter().for_each(|a| encode_compact_peer(a, &mut re));
        assert_eq!(re, bytes[..12]);
    }

    #[test]
    fn compact_ipv6_bep7_vector() {
        let mut bytes = vec![0u8; 16];
        bytes[15] = 1;
        bytes.extend_from_slice(&6881u16.to_be_bytes());
        let mut out = Vec::new();
        push_compact_peers(&bytes, true, 10, &mut out);
        assert_eq!(out, vec!["[::1]:6881".parse().unwrap()]);
    }

    #[test]
    fn compact_peers_capped() {
        let bytes = [1u8; 60];
        let mut out = Vec::new();
        assert!(push_compact_peers(&bytes, false, 3, &mut out));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn event_values() {
        for e in [Event::None, Event::Completed, Event::Started, Event::Stopped] {
            assert_eq!(Event::from_udp(e.as_udp()), Some(e));
        }
        assert_eq!(Event::from_udp(4), None);
        assert_eq!(Event::Started.as_http(), Some("started"));
        assert_eq!(Event::None.as_http(), None);
    }
}
