//! UDP tracker protocol packets ([BEP 15]): connect, announce, scrape and error, both directions.
//!
//! All integers are big-endian. Requests are encoded by clients and decoded by trackers (and
//! fuzzers); responses the other way round. Decoders never read past the input and never trust a
//! length: the number of peers or scrape entries comes from the packet size.
//!
//! [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html

use std::net::SocketAddr;

use piecework_metainfo::InfoHashV1;

use crate::announce::{encode_compact_peer, push_compact_peers};
use crate::{Error, Event, PeerId, ScrapeStats};

/// The magic `connection_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Action: connect.
pub const ACTION_CONNECT: u32 = 0;
/// Action: announce.
pub const ACTION_ANNOUNCE: u32 = 1;
/// Action: scrape.
pub const ACTION_SCRAPE: u32 = 2;
/// Action: error (responses only).
pub const ACTION_ERROR: u32 = 3;
/// Most info-hashes in one scrape request, so the request fits in a common MTU-sized datagram.
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Size of an announce request without extensions.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

/// The fields of a UDP announce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// From the connect response.
    pub connection_id: u64,
    /// Chosen by the client, echoed by the tracker.
    pub transaction_id: u32,
    /// The (possibly truncated) info-hash.
    pub info_hash: InfoHashV1,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// The event.
    pub event: Event,
    /// Our IPv4 address, or 0 to let the tracker use the packet's source address.
    pub ip: u32,
    /// The session key.
    pub key: u32,
    /// Peers wanted; -1 for the tracker's default.
    pub num_want: i32,
    /// Our peer port.
    pub port: u16,
}

/// A packet a client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ask for a connection id.
    Connect {
        /// Chosen by the client.
        transaction_id: u32,
    },
    /// Announce.
    Announce(AnnounceRequest),
    /// Scrape up to [`MAX_SCRAPE_HASHES`] torrents.
    Scrape {
        /// From the connect response.
        connection_id: u64,
        /// Chosen by the client.
        transaction_id: u32,
        /// The torrents.
        info_hashes: Vec<InfoHashV1>,
    },
}

/// The address family of the socket a response came in on: it decides whether the announce
/// response's peers are 6-byte IPv4 or 18-byte IPv6 records (BEP 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// The request went over IPv4.
    V4,
    /// The request went over IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Self {
        if addr.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

/// A packet a tracker sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The connection id to use for the next minute.
    Connect {
        /// Echoed.
        transaction_id: u32,
        /// The id.
        connection_id: u64,
    },
    /// Peers for an announce.
    Announce {
        /// Echoed.
        transaction_id: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeders.
        seeders: u32,
        /// Peers (all of the request's family).
        peers: Vec<SocketAddr>,
    },
    /// Counters for a scrape, in request order.
    Scrape {
        /// Echoed.
        transaction_id: u32,
        /// One entry per requested info-hash.
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refused the request.
    Error {
        /// Echoed.
        transaction_id: u32,
        /// The message (not NUL-terminated).
        message: Vec<u8>,
    },
}

impl Response {
    /// The transaction id the packet answers.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|r| r.first_chunk::<N>())
            .ok_or(Error::MalformedPacket { offset: self.buf.len() })?;
        self.pos += N;
        Ok(*bytes)
    }
    fn u16(&mut self) -> Result<u16, Error> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, Error> {
        self.take().map(u64::from_be_bytes)
    }
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

impl Request {
    /// Appends the packet to `out`.
    ///
    /// A scrape with more than [`MAX_SCRAPE_HASHES`] hashes is encoded as given; the state
    /// machine and clients refuse such requests before they get here.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(a.info_hash.as_bytes());
                out.extend_from_slice(a.peer_id.as_bytes());
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                out.extend_from_slice(&a.event.as_udp().to_be_bytes());
                out.extend_from_slice(&a.ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Request::Scrape { connection_id, transaction_id, info_hashes } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(h.as_bytes());
                }
            }
        }
    }

    /// Decodes a request (what a tracker receives). Bytes after an announce request (BEP 41
    /// options) are ignored; a scrape's hash count comes from the packet size, at most
    /// [`MAX_SCRAPE_HASHES`], and a trailing partial hash is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { buf, pos: 0 };
        let connection_id = r.u64()?;
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT => {
                if connection_id != PROTOCOL_ID {
                    return Err(Error::MalformedPacket { offset: 0 });
                }
                Ok(Request::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                let info_hash = InfoHashV1::from_bytes(r.take()?);
                let peer_id = PeerId::from_bytes(r.take()?);
                let downloaded = r.u64()?;
                let left = r.u64()?;
                let uploaded = r.u64()?;
                let event_pos = r.pos;
                let event = Event::from_udp(r.u32()?).ok_or(Error::MalformedPacket { offset: event_pos })?;
                let ip = r.u32()?;
                let key = r.u32()?;
                let num_want = i32::from_be_bytes(r.take()?);
                let port = r.u16()?;
                Ok(Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash,
                    peer_id,
                    downloaded,
                    left,
                    uploaded,
                    event,
                    ip,
                    key,
                    num_want,
                    port,
                }))
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if !rest.len().is_multiple_of(20) || rest.len() / 20 > MAX_SCRAPE_HASHES {
                    return Err(Error::MalformedPacket { offset: 16 + rest.len() - rest.len() % 20 });
                }
                let info_hashes = rest.chunks_exact(20).filter_map(InfoHashV1::from_slice).collect();
                Ok(Request::Scrape { connection_id, transaction_id, info_hashes })
            }
            _ => Err(Error::MalformedPacket { offset: 8 }),
        }
    }
}

impl Response {
    /// Appends the packet to `out`. Announce peers are written in their own family; a tracker
    /// sends only the family of the request.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect { transaction_id, connection_id } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce { transaction_id, interval, leechers, seeders, peers } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                for p in peers {
                    encode_compact_peer(p, out);
                }
            }
            Response::Scrape { transaction_id, stats } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for s in stats {
                    out.extend_from_slice(&s.complete.to_be_bytes());
                    out.extend_from_slice(&s.downloaded.to_be_bytes());
                    out.extend_from_slice(&s.incomplete.to_be_bytes());
                }
            }
            Response::Error { transaction_id, message } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message);
            }
        }
    }

    /// Decodes a response received on a socket of `family`.
    ///
    /// Sizes follow the packet: announce peers are `(len - 20) / record` (a trailing partial
    /// record is ignored, as BEP 15 asks clients not to expect exact sizes), at most `max_peers`;
    /// scrape entries `(len - 8) / 12`, at most `max_entries`. A packet shorter than its fixed
    /// header is an error.
    pub fn decode(buf: &[u8], family: Family, max_peers: usize, max_entries: usize) -> Result<Self, Error> {
        let mut r = Reader { buf, pos: 0 };
        let action = r.u32()?;
        let transaction_id = r.u32()?;
        match action {
            ACTION_CONNECT => Ok(Response::Connect { transaction_id, connection_id: r.u64()? }),
            ACTION_ANNOUNCE => {
                let interval = r.u32()?;
                let leechers = r.u32()?;
                let seeders = r.u32()?;
                let mut peers = Vec::new();
                push_compact_peers(r.rest(), family == Family::V6, max_peers, &mut peers);
                Ok(Response::Announce { transaction_id, interval, leechers, seeders, peers })
            }
            ACTION_SCRAPE => {
                let mut stats = Vec::new();
                for c in r.rest().chunks_exact(12).take(max_entries) {
                    let mut e = Reader { buf: c, pos: 0 };
                    stats.push(ScrapeStats {
                        complete: e.u32()?,
                        downloaded: e.u32()?,
                        incomplete: e.u32()?,
                    });
                }
                Ok(Response::Scrape { transaction_id, stats })
            }
            ACTION_ERROR => Ok(Response::Error { transaction_id, message: r.rest().to_vec() }),
            _ => Err(Error::UnexpectedAction { action }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_golden() {
        let mut out = Vec::new();
        Request::Connect { transaction_id: 0x0102_0304 }.encode(&mut out);
        assert_eq!(out, [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]);
        let resp = [0, 0, 0, 0, 1, 2, 3, 4, 9, 8, 7, 6, 5, 4, 3, 2];
        assert_eq!(
            Response::decode(&resp, Family::V4, 10, 10).unwrap(),
            Response::Connect { transaction_id: 0x0102_0304, connection_id: 0x0908_0706_0504_0302 }
        );
        // Every truncation is an error, never a panic.
        for i in 0..resp.len() {
            assert!(matches!(
                Response::decode(&resp[..i], Family::V4, 10, 10),
                Err(Error::MalformedPacket { offset }) if offset == i
            ));
        }
    }

    #[test]
    fn announce_golden() {
        let a = AnnounceRequest {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 7,
            info_hash: InfoHashV1::from_bytes([0xab; 20]),
            peer_id: PeerId::from_bytes([b'p'; 20]),
            downloaded: 1,
            left: 2,
            uploaded: 3,
            event: Event::Started,
            ip: 0,
            key: 0xdead_beef,
            num_want: -1,
            port: 6881,
        };
        let mut out = Vec::new();
        Request::Announce(a.clone()).encode(&mut out);
        assert_eq!(out.len(), ANNOUNCE_REQUEST_LEN);
        assert_eq!(&out[8..16], &[0, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&out[80..84], &[0, 0, 0, 2]);
        assert_eq!(&out[92..98], &[0xff, 0xff, 0xff, 0xff, 0x1a, 0xe1]);
        assert_eq!(Request::decode(&out).unwrap(), Request::Announce(a));
        for i in 0..out.len() {
            assert!(Request::decode(&out[..i]).is_err(), "prefix {i}");
        }

        let resp = [
            0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 7, 8, 0, 0, 0, 2, 0, 0, 0, 3, 127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0,
            1, 0, 80, 0xee,
        ];
        assert_eq!(
            Response::decode(&resp, Family::V4, 10, 10).unwrap(),
            Response::Announce {
                transaction_id: 7,
                interval: 1800,
                leechers: 2,
                seeders: 3,
                peers: vec!["127.0.0.1:6881".parse().unwrap(), "10.0.0.1:80".parse().unwrap()],
            }
        );
        // Over IPv6 the same 12 peer bytes are not even one 18-byte record.
        match Response::decode(&resp, Family::V6, 10, 10).unwrap() {
            Response::Announce { peers, .. } => assert!(peers.is_empty()),
            other => panic!("{other:?}"),
        }
        match Response::decode(&resp, Family::V4, 1, 10).unwrap() {
            Response::Announce { peers, .. } => assert_eq!(peers.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrape_and_error_golden() {
        let resp = [0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(
            Response::decode(&resp, Family::V4, 10, 10).unwrap(),
            Response::Scrape {
                transaction_id: 9,
                stats: vec![ScrapeStats { complete: 1, downloaded: 2, incomplete: 3 }]
            }
        );
        let err = b"\x00\x00\x00\x03\x00\x00\x00\x09not authorized";
        assert_eq!(
            Response::decode(err, Family::V4, 10, 10).unwrap(),
            Response::Error { transaction_id: 9, message: b"not authorized".to_vec() }
        );
        assert!(matches!(
            Response::decode(&[0, 0, 0, 4, 0, 0, 0, 0], Family::V4, 1, 1),
            Err(Error::UnexpectedAction { action: 4 })
        ));
        let mut too_many = vec![0u8; 16];
        too_many[..8].copy_from_slice(&1u64.to_be_bytes());
        too_many[11] = 2;
        too_many.extend(std::iter::repeat_n(0u8, 20 * (MAX_SCRAPE_HASHES + 1)));
        assert!(Request::decode(&too_many).is_err());
        too_many.truncate(16 + 20 * 2 + 3);
        assert!(Request::decode(&too_many).is_err());
        too_many.truncate(16 + 20 * 2);
        assert!(
            matches!(Request::decode(&too_many), Ok(Request::Scrape { info_hashes, .. }) if info_hashes.len() == 2)
        );
    }

    fn peer(family: Family) -> impl Strategy<Value = SocketAddr> {
        match family {
            Family::V4 => {
                (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))).boxed()
            }
            Family::V6 => {
                (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))).boxed()
            }
        }
    }

    fn request() -> impl Strategy<Value = Request> {
        let hash = any::<[u8; 20]>().prop_map(InfoHashV1::from_bytes);
        prop_oneof![
            any::<u32>().prop_map(|transaction_id| Request::Connect { transaction_id }),
            (
                any::<(u64, u32, [u8; 20], [u8; 20], u64, u64, u64)>(),
                (0u32..4, any::<u32>(), any::<u32>(), any::<i32>(), any::<u16>())
            )
                .prop_map(|((c, t, h, p, d, l, u), (e, ip, key, num_want, port))| {
                    Request::Announce(AnnounceRequest {
                        connection_id: c,
                        transaction_id: t,
                        info_hash: InfoHashV1::from_bytes(h),
                        peer_id: PeerId::from_bytes(p),
                        downloaded: d,
                        left: l,
                        uploaded: u,
                        event: Event::from_udp(e).unwrap_or_default(),
                        ip,
                        key,
                        num_want,
                        port,
                    })
                }),
            (any::<u64>(), any::<u32>(), prop::collection::vec(hash, 0..=MAX_SCRAPE_HASHES)).prop_map(
                |(connection_id, transaction_id, info_hashes)| Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes
                }
            ),
        ]
    }

    fn response(family: Family) -> impl Strategy<Value = Response> {
        let stats = any::<(u32, u32, u32)>().prop_map(|(complete, downloaded, incomplete)| ScrapeStats {
            complete,
            downloaded,
            incomplete,
        });
        prop_oneof![
            any::<(u32, u64)>().prop_map(|(transaction_id, connection_id)| Response::Connect {
                transaction_id,
                connection_id
            }),
            (any::<(u32, u32, u32, u32)>(), prop::collection::vec(peer(family), 0..50)).prop_map(
                |((transaction_id, interval, leechers, seeders), peers)| Response::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers
                }
            ),
            (any::<u32>(), prop::collection::vec(stats, 0..80))
                .prop_map(|(transaction_id, stats)| Response::Scrape { transaction_id, stats }),
            (any::<u32>(), prop::collection::vec(any::<u8>(), 0..100))
                .prop_map(|(transaction_id, message)| Response::Error { transaction_id, message }),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip(req in request()) {
            let mut out = Vec::new();
            req.encode(&mut out);
            prop_assert_eq!(Request::decode(&out).unwrap(), req);
        }

        #[test]
        fn response_round_trip_v4(resp in response(Family::V4)) {
            let mut out = Vec::new();
            resp.encode(&mut out);
            prop_assert_eq!(Response::decode(&out, Family::V4, 1000, 1000).unwrap(), resp);
        }

        #[test]
        fn response_round_trip_v6(resp in response(Family::V6)) {
            let mut out = Vec::new();
            resp.encode(&mut out);
            prop_assert_eq!(Response::decode(&out, Family::V6, 1000, 1000).unwrap(), resp);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(&bytes);
            if let Ok(r) = Response::decode(&bytes, Family::V4, 1000, 1000) {
                let mut out = Vec::new();
                r.encode(&mut out);
                prop_assert_eq!(Response::decode(&out, Family::V4, 1000, 1000).unwrap(), r);
                prop_assert!(out.len() <= bytes.len());
            }
        }
    }
}
