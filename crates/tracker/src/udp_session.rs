//! A sans-IO state machine for one UDP tracker ([BEP 15]): connection ids, transaction ids,
//! retransmission and timeouts. Time is passed in; the caller owns the socket.
//!
//! Driving it:
//! 1. [`UdpSession::start`] an announce or a scrape.
//! 2. Send every datagram [`UdpSession::poll_transmit`] returns.
//! 3. Wait until a datagram arrives (pass it to [`UdpSession::handle_datagram`]) or until
//!    [`UdpSession::poll_timeout`] (then call [`UdpSession::handle_timeout`]).
//! 4. [`UdpSession::poll_event`] gives the outcome; repeat from 2 until it does.
//!
//! The session keeps its connection id for [`UdpSettings::connection_id_lifetime`] (one minute
//! by default, as BEP 15 allows clients) and reuses it for later operations.
//!
//! [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html

use std::time::{Duration, Instant};

use piecework_metainfo::InfoHashV1;

use crate::udp::{self, Family, MAX_SCRAPE_HASHES, Request, Response};
use crate::{Announce, AnnounceResponse, Error, Limits, ScrapeResponse};

/// Timing and limits for a [`UdpSession`]. The defaults are the spec's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpSettings {
    base_timeout: Duration,
    max_retransmits: u32,
    connection_id_lifetime: Duration,
    limits: Limits,
}

impl Default for UdpSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl UdpSettings {
    /// BEP 15's values: wait `15 * 2^n` seconds for an answer, `n` from 0 up to 8 (the last wait is
    /// 3840 s), and reuse a connection id for one minute.
    pub const fn new() -> Self {
        Self {
            base_timeout: Duration::from_secs(15),
            max_retransmits: 8,
            connection_id_lifetime: Duration::from_secs(60),
            limits: Limits::new(),
        }
    }
    /// The first wait (`15 s`); attempt `n` waits `base * 2^n`.
    pub const fn base_timeout(mut self, base: Duration) -> Self {
        self.base_timeout = base;
        self
    }
    /// The largest `n` (8): after the wait of attempt `n = max`, the operation fails with
    /// [`Error::Timeout`]. At most 30.
    pub const fn max_retransmits(mut self, n: u32) -> Self {
        self.max_retransmits = if n > 30 { 30 } else { n };
        self
    }
    /// How long a connection id is used after it was received (60 s).
    pub const fn connection_id_lifetime(mut self, lifetime: Duration) -> Self {
        self.connection_id_lifetime = lifetime;
        self
    }
    /// Limits on peers and scrape entries.
    pub const fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// The wait after attempt `n` (0-based): `base * 2^n`.
    pub fn timeout_for(&self, n: u32) -> Duration {
        self.base_timeout.saturating_mul(1u32 << n.min(30))
    }
}

/// What to ask the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// An announce.
    Announce(Announce),
    /// A scrape of up to [`MAX_SCRAPE_HASHES`] torrents.
    Scrape(Vec<InfoHashV1>),
}

/// The outcome of an operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// The announce succeeded.
    Announced(AnnounceResponse),
    /// The scrape succeeded; entries are in request order.
    Scraped(ScrapeResponse),
    /// The tracker refused ([`Error::TrackerFailure`]) or never answered ([`Error::Timeout`]).
    Failed(Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting,
}

#[derive(Debug)]
struct InFlight {
    op: Operation,
    phase: Phase,
    transaction_id: u32,
    attempt: u32,
    deadline: Instant,
    /// Whether the connection id was obtained during this operation (else it came from the cache).
    connected_here: bool,
}

/// One tracker's UDP protocol state. See the [module docs](self) for how to drive it.
#[derive(Debug)]
pub struct UdpSession {
    settings: UdpSettings,
    family: Family,
    rng: u64,
    connection: Option<(u64, Instant)>,
    in_flight: Option<InFlight>,
    transmit: Option<Vec<u8>>,
    output: Option<Output>,
}

impl UdpSession {
    /// A session for a tracker reached over `family`. `seed` feeds the transaction-id generator:
    /// pass fresh randomness (ids must be unpredictable to off-path spoofers).
    pub fn new(settings: UdpSettings, family: Family, seed: u64) -> Self {
        Self { settings, family, rng: seed, connection: None, in_flight: None, transmit: None, output: None }
    }

    /// The cached connection id and when it was received.
    pub fn connection_id(&self) -> Option<(u64, Instant)> {
        self.connection
    }

    /// Seeds the cache with a connection id received at `received` (e.g. by an earlier session).
    pub fn set_connection_id(&mut self, id: u64, received: Instant) {
        self.connection = Some((id, received));
    }

    /// Whether an operation is running.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts an operation. Fails with [`Error::InvalidState`] if one is running (or its output has
    /// not been taken), and with [`Error::TooManyInfoHashes`] for an oversized scrape.
    pub fn start(&mut self, now: Instant, op: Operation) -> Result<(), Error> {
        if self.in_flight.is_some() || self.output.is_some() {
            return Err(Error::InvalidState);
        }
        if let Operation::Scrape(h) = &op
            && h.len() > MAX_SCRAPE_HASHES
        {
            return Err(Error::TooManyInfoHashes { count: h.len(), max: MAX_SCRAPE_HASHES });
        }
        let mut f = InFlight {
            op,
            phase: Phase::Connecting,
            transaction_id: 0,
            attempt: 0,
            deadline: now,
            connected_here: false,
        };
        self.send(now, &mut f, true);
        self.in_flight = Some(f);
        Ok(())
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// When to call [`UdpSession::handle_timeout`], if an operation is waiting for an answer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|f| f.deadline)
    }

    /// The outcome of the operation, once it has one.
    pub fn poll_event(&mut self) -> Option<Output> {
        self.output.take()
    }

    /// Call when [`UdpSession::poll_timeout`] has passed: retransmits (re-connecting first if the
    /// connection id has expired) or, after the last attempt, fails with [`Error::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(mut f) = self.in_flight.take() else { return };
        if now < f.deadline {
            self.in_flight = Some(f);
            return;
        }
        if f.attempt >= self.settings.max_retransmits {
            self.output = Some(Output::Failed(Error::Timeout));
            return;
        }
        f.attempt += 1;
        self.send(now, &mut f, false);
        self.in_flight = Some(f);
    }

    /// Call with every datagram received from the tracker.
    ///
    /// A packet that does not decode or answers another transaction is dropped (the error says
    /// why) and the operation keeps waiting: anyone can send UDP packets to our port.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let Some(f) = self.in_flight.as_mut() else { return Err(Error::InvalidState) };
        let limits = self.settings.limits;
        let max_peers = limits.peers_limit().saturating_add(1);
        let resp = Response::decode(datagram, self.family, max_peers, limits.scrape_files_limit())?;
        if resp.transaction_id() != f.transaction_id {
            return Err(Error::TransactionMismatch {
                expected: f.transaction_id,
                got: resp.transaction_id(),
            });
        }
        let output = match (f.phase, resp) {
            (Phase::Requesting, Response::Error { .. }) if !f.connected_here => {
                // The cached connection id may be stale (e.g. the tracker restarted and says
                // "connection ID mismatch"): get a fresh one and ask once more.
                self.connection = None;
                let Some(mut f) = self.in_flight.take() else { return Err(Error::InvalidState) };
                f.attempt = 0;
                self.send(now, &mut f, true);
                self.in_flight = Some(f);
                return Ok(());
            }
            (_, Response::Error { message, .. }) => {
                Output::Failed(Error::TrackerFailure { reason: error_text(&message) })
            }
            (Phase::Connecting, Response::Connect { connection_id, .. }) => {
                self.connection = Some((connection_id, now));
                let Some(mut f) = self.in_flight.take() else { return Err(Error::InvalidState) };
                f.attempt = 0;
                f.connected_here = true;
                self.send(now, &mut f, true);
                self.in_flight = Some(f);
                return Ok(());
            }
            (Phase::Requesting, Response::Announce { interval, leechers, seeders, mut peers, .. })
                if matches!(f.op, Operation::Announce(_)) =>
            {
                let truncated = peers.len() > limits.peers_limit();
                peers.truncate(limits.peers_limit());
                Output::Announced(AnnounceResponse {
                    interval,
                    complete: Some(seeders),
                    incomplete: Some(leechers),
                    peers,
                    peers_truncated: truncated,
                    ..AnnounceResponse::default()
                })
            }
            (Phase::Requesting, Response::Scrape { stats, .. }) => match &f.op {
                Operation::Scrape(hashes) => {
                    Output::Scraped(ScrapeResponse { files: hashes.iter().copied().zip(stats).collect() })
                }
                Operation::Announce(_) => return Err(Error::UnexpectedAction { action: udp::ACTION_SCRAPE }),
            },
            (_, other) => {
                let action = match other {
                    Response::Connect { .. } => udp::ACTION_CONNECT,
                    Response::Announce { .. } => udp::ACTION_ANNOUNCE,
                    Response::Scrape { .. } => udp::ACTION_SCRAPE,
                    Response::Error { .. } => udp::ACTION_ERROR,
                };
                return Err(Error::UnexpectedAction { action });
            }
        };
        self.in_flight = None;
        self.output = Some(output);
        Ok(())
    }

    fn next_id(&mut self) -> u32 {
        // splitmix64: cheap, and unpredictable enough given a random seed.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// Queues the datagram for `f`'s current attempt. A fresh transaction id is drawn when the
    /// phase changes (or `fresh`); a retransmission in the same phase keeps it, so a late answer to
    /// the previous copy is still accepted.
    fn send(&mut self, now: Instant, f: &mut InFlight, fresh: bool) {
        let connected = self
            .connection
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.settings.connection_id_lifetime);
        let phase = if connected.is_some() { Phase::Requesting } else { Phase::Connecting };
        if fresh || phase != f.phase {
            f.transaction_id = self.next_id();
        }
        f.phase = phase;
        f.deadline = now + self.settings.timeout_for(f.attempt);
        let transaction_id = f.transaction_id;
        let req = match (connected, &f.op) {
            (None, _) => Request::Connect { transaction_id },
            (Some((connection_id, _)), Operation::Announce(a)) => Request::Announce(udp::AnnounceRequest {
                connection_id,
                transaction_id,
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                downloaded: a.downloaded,
                left: a.left,
                uploaded: a.uploaded,
                event: a.event,
                ip: 0,
                key: a.key.unwrap_or(0),
                num_want: a.num_want.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                port: a.port,
            }),
            (Some((connection_id, _)), Operation::Scrape(h)) => {
                Request::Scrape { connection_id, transaction_id, info_hashes: h.clone() }
            }
        };
        let mut out = Vec::with_capacity(udp::ANNOUNCE_REQUEST_LEN);
        req.encode(&mut out);
        self.transmit = Some(out);
    }
}

/// An error packet's message as text. opentracker terminates it with a NUL, which is not part of
/// the message.
fn error_text(message: &[u8]) -> String {
    let end = message.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(message.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, PeerId, ScrapeStats};

    fn announce() -> Announce {
        let mut a = Announce::new(InfoHashV1::from_bytes([1; 20]), PeerId::from_bytes([2; 20]), 6881);
        a.event = Event::Started;
        a.num_want = Some(10);
        a.key = Some(42);
        a
    }

    fn respond(r: Response) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    fn tid_of(pkt: &[u8]) -> u32 {
        u32::from_be_bytes(pkt[12..16].try_into().unwrap())
    }

    #[test]
    fn connect_then_announce_then_reuse() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new(), Family::V4, 1);
        s.start(t0, Operation::Announce(announce())).unwrap();
        assert!(matches!(s.start(t0, Operation::Scrape(vec![])), Err(Error::InvalidState)));
        let pkt = s.poll_transmit().unwrap();
        assert!(matches!(Request::decode(&pkt), Ok(Request::Connect { .. })));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));
        let tid = tid_of(&pkt);

        // A spoofed answer with another transaction id is dropped.
        let spoof = respond(Response::Connect { transaction_id: tid ^ 1, connection_id: 666 });
        assert!(matches!(s.handle_datagram(t0, &spoof), Err(Error::TransactionMismatch { .. })));
        assert!(s.handle_datagram(t0, b"junk").is_err());
        assert!(s.poll_event().is_none());

        s.handle_datagram(t0, &respond(Response::Connect { transaction_id: tid, connection_id: 77 }))
            .unwrap();
        let pkt = s.poll_transmit().unwrap();
        let Ok(Request::Announce(a)) = Request::decode(&pkt) else { panic!() };
        assert_eq!((a.connection_id, a.event, a.num_want, a.key, a.port), (77, Event::Started, 10, 42, 6881));
        let peers = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.2:2".parse().unwrap()];
        let r = Response::Announce {
            transaction_id: a.transaction_id,
            interval: 60,
            leechers: 1,
            seeders: 2,
            peers: peers.clone(),
        };
        s.handle_datagram(t0, &respond(r)).unwrap();
        let Some(Output::Announced(r)) = s.poll_event() else { panic!() };
        assert_eq!((r.interval, r.complete, r.incomplete, r.peers), (60, Some(2), Some(1), peers));
        assert!(s.poll_timeout().is_none());

        // Within the minute the connection id is reused: the scrape goes out directly.
        let t1 = t0 + Duration::from_secs(59);
        let hashes = vec![InfoHashV1::from_bytes([1; 20]), InfoHashV1::from_bytes([3; 20])];
        s.start(t1, Operation::Scrape(hashes.clone())).unwrap();
        let pkt = s.poll_transmit().unwrap();
        let Ok(Request::Scrape { connection_id: 77, transaction_id, info_hashes }) = Request::decode(&pkt)
        else {
            panic!()
        };
        assert_eq!(info_hashes, hashes);
        let st = ScrapeStats { complete: 1, downloaded: 2, incomplete: 3 };
        s.handle_datagram(t1, &respond(Response::Scrape { transaction_id, stats: vec![st, st] })).unwrap();
        let Some(Output::Scraped(r)) = s.poll_event() else { panic!() };
        assert_eq!(r.get(&hashes[1]), Some(st));

        // After the minute it connects again.
        let t2 = t0 + Duration::from_secs(61);
        s.start(t2, Operation::Announce(announce())).unwrap();
        assert!(matches!(Request::decode(&s.poll_transmit().unwrap()), Ok(Request::Connect { .. })));
    }

    #[test]
    fn retransmits_with_spec_backoff_then_times_out() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new(), Family::V4, 7);
        s.start(t0, Operation::Announce(announce())).unwrap();
        let first = s.poll_transmit().unwrap();
        let mut now = t0;
        let mut waits = Vec::new();
        while let Some(deadline) = s.poll_timeout() {
            waits.push((deadline - now).as_secs());
            // Too early: nothing happens.
            s.handle_timeout(deadline - Duration::from_millis(1));
            assert!(s.poll_transmit().is_none());
            now = deadline;
            s.handle_timeout(now);
            if let Some(pkt) = s.poll_transmit() {
                // Same phase, same transaction: a retransmission of the same bytes.
                assert_eq!(pkt, first);
            }
        }
        assert_eq!(waits, [15, 30, 60, 120, 240, 480, 960, 1920, 3840]);
        assert!(matches!(s.poll_event(), Some(Output::Failed(Error::Timeout))));
    }

    #[test]
    fn connection_expiring_during_retries_reconnects() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new(), Family::V4, 3);
        s.set_connection_id(5, t0);
        s.start(t0, Operation::Announce(announce())).unwrap();
        assert!(matches!(Request::decode(&s.poll_transmit().unwrap()), Ok(Request::Announce(_))));
        s.handle_timeout(t0 + Duration::from_secs(15));
        assert!(matches!(Request::decode(&s.poll_transmit().unwrap()), Ok(Request::Announce(_))));
        s.handle_timeout(t0 + Duration::from_secs(45));
        assert!(matches!(Request::decode(&s.poll_transmit().unwrap()), Ok(Request::Announce(_))));
        s.handle_timeout(t0 + Duration::from_secs(105));
        assert!(matches!(Request::decode(&s.poll_transmit().unwrap()), Ok(Request::Connect { .. })));
    }

    #[test]
    fn stale_cached_connection_id_reconnects_once() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new(), Family::V4, 11);
        s.set_connection_id(12345, t0);
        s.start(t0, Operation::Scrape(vec![InfoHashV1::default()])).unwrap();
        let pkt = s.poll_transmit().unwrap();
        assert!(matches!(Request::decode(&pkt), Ok(Request::Scrape { connection_id: 12345, .. })));
        // opentracker's answer to an unknown connection id, NUL included.
        let mismatch = b"Connection ID missmatch.\0".to_vec();
        let err = respond(Response::Error { transaction_id: tid_of(&pkt), message: mismatch.clone() });
        s.handle_datagram(t0, &err).unwrap();
        let pkt = s.poll_transmit().unwrap();
        assert!(matches!(Request::decode(&pkt), Ok(Request::Connect { .. })));
        s.handle_datagram(t0, &respond(Response::Connect { transaction_id: tid_of(&pkt), connection_id: 6 }))
            .unwrap();
        let pkt = s.poll_transmit().unwrap();
        assert!(matches!(Request::decode(&pkt), Ok(Request::Scrape { connection_id: 6, .. })));
        // With a fresh id, an error is final.
        let err = respond(Response::Error { transaction_id: tid_of(&pkt), message: mismatch });
        s.handle_datagram(t0, &err).unwrap();
        assert!(matches!(
            s.poll_event(),
            Some(Output::Failed(Error::TrackerFailure { reason })) if reason == "Connection ID missmatch."
        ));
    }

    #[test]
    fn error_packet_fails_the_operation() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new(), Family::V4, 9);
        s.start(t0, Operation::Announce(announce())).unwrap();
        let tid = tid_of(&s.poll_transmit().unwrap());
        let err = respond(Response::Error { transaction_id: tid, message: b"not authorized".to_vec() });
        s.handle_datagram(t0, &err).unwrap();
        assert!(
            matches!(s.poll_event(), Some(Output::Failed(Error::TrackerFailure { reason })) if reason == "not authorized")
        );
        assert!(!s.is_busy());
        // A wrong action with the right id is dropped, not fatal.
        s.start(t0, Operation::Announce(announce())).unwrap();
        let tid = tid_of(&s.poll_transmit().unwrap());
        let wrong = respond(Response::Scrape { transaction_id: tid, stats: vec![] });
        assert!(matches!(s.handle_datagram(t0, &wrong), Err(Error::UnexpectedAction { action: 2 })));
        assert!(s.is_busy());
    }

    #[test]
    fn limits_and_oversized_scrape() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpSettings::new().limits(Limits::new().max_peers(1)), Family::V4, 9);
        assert!(matches!(
            s.start(t0, Operation::Scrape(vec![InfoHashV1::default(); 75])),
            Err(Error::TooManyInfoHashes { count: 75, max: 74 })
        ));
        s.set_connection_id(1, t0);
        s.start(t0, Operation::Announce(announce())).unwrap();
        let Ok(Request::Announce(a)) = Request::decode(&s.poll_transmit().unwrap()) else { panic!() };
        let peers = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.2:2".parse().unwrap()];
        let r = Response::Announce {
            transaction_id: a.transaction_id,
            interval: 1,
            leechers: 0,
            seeders: 0,
            peers,
        };
        s.handle_datagram(t0, &respond(r)).unwrap();
        let Some(Output::Announced(r)) = s.poll_event() else { panic!() };
        assert_eq!(r.peers.len(), 1);
        assert!(r.peers_truncated);
    }
}
