//! The per-peer protocol logic as a sans-IO state machine.
//!
//! [`Peer`] does no I/O and reads no clock. The engine (or a test) feeds it what the socket
//! delivered ([`Peer::handle_handshake`], [`Peer::handle_message`]) and the passing of time
//! ([`Peer::handle_timeout`] at [`Peer::poll_timeout`]), tells it what the torrent decided
//! ([`Peer::set_choking`], [`Peer::set_interested`], [`Peer::request`], [`Peer::we_have`]),
//! and drains [`Peer::poll_transmit`] (bytes for the socket) and [`Peer::poll_event`] (things
//! the torrent must act on).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use piecework_metainfo::{BLOCK_SIZE, Bitfield, BlockRef, InfoHashV1, PieceIndex};
use piecework_wire::{
    Extended, ExtendedHandshake, Feature, Handshake, HashRequest, Hashes, Message, MetadataMessage, PeerId,
    Reserved, allowed_fast_set,
};

use crate::{Error, PeerSettings};

/// The id under which we want to receive `ut_metadata` messages (BEP 10 `m` dictionary).
pub const UT_METADATA_ID: u8 = 1;

/// What the state machine wants written to the socket, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Our 68-byte handshake.
    Handshake(Handshake),
    /// A message.
    Message(Message),
}

/// Something the torrent has to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The handshake completed.
    Connected {
        /// The peer's id.
        peer_id: PeerId,
    },
    /// The peer's extension handshake arrived (BEP 10); the metadata size and ids are in
    /// [`Peer::metadata_size`] and friends.
    ExtensionHandshake,
    /// The peer's piece set is known as a whole ([`Peer::peer_has`]): after `bitfield`,
    /// `have all`, `have none`, or once the piece count became known.
    Bitfield,
    /// The peer completed a piece.
    Have(PieceIndex),
    /// The peer became interested (true) or not (false) in our pieces.
    Interest(bool),
    /// The peer unchoked us: requests may be sent.
    Unchoked,
    /// The peer choked us. Without the fast extension our outstanding requests are gone
    /// (they come in [`PeerEvent::RequestsLost`]).
    Choked,
    /// A block we requested.
    Block {
        /// Which block.
        block: BlockRef,
        /// Its payload, sharing the read buffer.
        data: Bytes,
    },
    /// Requests that will not be answered (rejected, cancelled by a choke, or timed out):
    /// give them back to the picker.
    RequestsLost(Vec<BlockRef>),
    /// The peer's request was accepted: read the block and send it as a `piece` message.
    Serve(BlockRef),
    /// A BEP 9 `ut_metadata` message.
    Metadata(MetadataMessage),
    /// A BEP 52 hash request.
    HashRequest(HashRequest),
    /// BEP 52 hashes.
    Hashes(Hashes),
    /// A BEP 52 hash reject.
    HashReject(HashRequest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Active,
}

/// Bytes per second measured over one-second windows, smoothed.
#[derive(Debug, Clone, Copy)]
struct RateMeter {
    window_start: Instant,
    window_bytes: u64,
    rate: f64,
    total: u64,
}

impl RateMeter {
    fn new(now: Instant) -> Self {
        Self { window_start: now, window_bytes: 0, rate: 0.0, total: 0 }
    }

    fn add(&mut self, now: Instant, bytes: u64) {
        self.roll(now);
        self.window_bytes += bytes;
        self.total += bytes;
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            let sample = self.window_bytes as f64 / elapsed.as_secs_f64();
            self.rate = if self.rate == 0.0 { sample } else { 0.5 * self.rate + 0.5 * sample };
            self.window_start = now;
            self.window_bytes = 0;
        }
    }

    /// The rate, including the current partial window once it is long enough to mean
    /// something (so the pipeline grows during the first second).
    fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start).as_secs_f64();
        if elapsed >= 0.05 { self.rate.max(self.window_bytes as f64 / elapsed) } else { self.rate }
    }
}

/// What the peer told us about its pieces before we knew the piece count (magnet links).
#[derive(Debug, Clone, Default)]
enum EarlyHave {
    #[default]
    Nothing,
    All,
    Raw(Bytes),
}

/// One peer connection's protocol state.
#[derive(Debug)]
pub struct Peer {
    settings: PeerSettings,
    phase: Phase,
    ours: Handshake,
    peer_ip: Option<Ipv4Addr>,
    outgoing: bool,
    fast: bool,
    extended: bool,
    piece_count: Option<u32>,
    our_have: Option<Bitfield>,
    peer_has: Option<Bitfield>,
    early: EarlyHave,
    early_haves: Vec<u32>,
    got_bitfield: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    inflight: VecDeque<(BlockRef, Instant)>,
    allowed_fast_in: Vec<PieceIndex>,
    allowed_fast_out: Vec<PieceIndex>,
    uploads_queued: usize,
    transmit: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
    created: Instant,
    last_recv: Instant,
    last_send: Instant,
    down: RateMeter,
    up: RateMeter,
    snubbed: bool,
    peer_id: Option<PeerId>,
    ext: Option<ExtendedHandshake>,
    our_metadata_size: Option<u64>,
    upgrade_to: Option<InfoHashV1>,
}

impl Peer {
    /// A new connection for the torrent with handshake `ours` (our reserved bits, the
    /// info-hash to announce, our peer id).
    ///
    /// `outgoing` connections send their handshake at once; incoming ones answer the peer's.
    /// `peer_ip` (IPv4 only) is used for the BEP 6 allowed-fast set. `our_have` is `None`
    /// while the torrent's metadata is unknown (magnet links); `metadata_size` is the size of
    /// the info dictionary we can serve with BEP 9, if any.
    pub fn new(
        now: Instant,
        settings: PeerSettings,
        ours: Handshake,
        outgoing: bool,
        peer_ip: Option<Ipv4Addr>,
        our_have: Option<Bitfield>,
        metadata_size: Option<u64>,
    ) -> Self {
        let mut p = Peer {
            settings,
            phase: Phase::Handshake,
            ours,
            peer_ip,
            outgoing,
            fast: false,
            extended: false,
            piece_count: our_have.as_ref().map(Bitfield::len),
            peer_has: None,
            our_have,
            early: EarlyHave::Nothing,
            early_haves: Vec::new(),
            got_bitfield: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            inflight: VecDeque::new(),
            allowed_fast_in: Vec::new(),
            allowed_fast_out: Vec::new(),
            uploads_queued: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            created: now,
            last_recv: now,
            last_send: now,
            down: RateMeter::new(now),
            up: RateMeter::new(now),
            snubbed: false,
            peer_id: None,
            ext: None,
            our_metadata_size: metadata_size,
            upgrade_to: None,
        };
        if outgoing {
            p.transmit.push_back(Transmit::Handshake(ours));
        }
        p
    }

    /// Allows the [BEP 52] upgrade of a hybrid torrent's connection from its v1 info-hash to
    /// `v2` (the truncated v2 info-hash). Call before the handshake, on a machine whose
    /// handshake names the v1 hash (with [`Feature::V2Upgrade`] set when outgoing).
    ///
    /// Outgoing, the peer may answer with `v2`; incoming, a peer that sets the upgrade bit is
    /// answered with `v2`. Either way [`info_hash`](Self::info_hash) becomes `v2`: the
    /// connection speaks v2 (hash requests), as libtorrent does.
    ///
    /// [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
    pub fn allow_v2_upgrade(&mut self, v2: InfoHashV1) {
        self.upgrade_to = Some(v2);
    }

    /// The peer's handshake arrived (68 bytes, [BEP 3]).
    ///
    /// Fails (close the connection) on a different info-hash or our own peer id.
    ///
    /// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
    pub fn handle_handshake(&mut self, now: Instant, theirs: &Handshake) -> Result<(), Error> {
        if self.phase != Phase::Handshake {
            return Err(Error::Protocol { rule: "second handshake" });
        }
        let upgrade = self.upgrade_to.filter(|v2| {
            *v2 != self.ours.info_hash
                && if self.outgoing {
                    theirs.info_hash == *v2
                } else {
                    theirs.info_hash == self.ours.info_hash && theirs.reserved.contains(Feature::V2Upgrade)
                }
        });
        if let Some(v2) = upgrade {
            self.ours.info_hash = v2;
            // The upgrade is done; libtorrent sets the bit only on connections still on v1.
            self.ours.reserved = self.ours.reserved.without(Feature::V2Upgrade);
        } else if theirs.info_hash != self.ours.info_hash {
            return Err(Error::UnknownInfoHash);
        }
        if theirs.peer_id == self.ours.peer_id {
            return Err(Error::SelfConnection);
        }
        self.last_recv = now;
        self.phase = Phase::Active;
        self.peer_id = Some(theirs.peer_id);
        let both = theirs.reserved.intersect(&self.ours.reserved);
        self.fast = both.contains(Feature::Fast);
        self.extended = both.contains(Feature::Extension);
        if !self.outgoing {
            self.transmit.push_back(Transmit::Handshake(self.ours));
        }
        if self.extended {
            let mut ext = ExtendedHandshake::default();
            ext.extensions.push((Bytes::from_static(b"ut_metadata"), UT_METADATA_ID));
            ext.client =
                Some(Bytes::from_static(concat!("piecework ", env!("CARGO_PKG_VERSION")).as_bytes()));
            ext.reqq = u32::try_from(self.settings.max_peer_requests).ok();
            ext.metadata_size = self.our_metadata_size;
            ext.upload_only = self.our_have.as_ref().filter(|h| h.is_full()).map(|_| 1);
            if let Ok(m) = ext.to_message() {
                self.send(m);
            }
        }
        self.send_our_pieces();
        self.events.push_back(PeerEvent::Connected { peer_id: theirs.peer_id });
        Ok(())
    }

    fn send_our_pieces(&mut self) {
        let msg = match (&self.our_have, self.fast) {
            (Some(h), true) if h.is_full() => Some(Message::HaveAll),
            (Some(h), true) if h.is_clear() => Some(Message::HaveNone),
            (None, true) => Some(Message::HaveNone),
            (Some(h), _) if !h.is_clear() => Some(Message::bitfield(h)),
            _ => None,
        };
        if let Some(m) = msg {
            self.send(m);
        }
        // BEP 6: grant a few pieces the peer may request while choked, unless we are a seed
        // (a seed unchokes whoever it wants anyway) or the peer is not on IPv4.
        if let (true, Some(ip), Some(n)) = (self.fast, self.peer_ip, self.piece_count)
            && self.settings.allowed_fast > 0
        {
            let set = allowed_fast_set(ip, &self.ours.info_hash, n, self.settings.allowed_fast);
            for p in &set {
                if self.our_have.as_ref().is_some_and(|h| h.get(*p)) {
                    self.send(Message::AllowedFast(*p));
                }
            }
            self.allowed_fast_out = set;
        }
    }

    fn send(&mut self, m: Message) {
        self.transmit.push_back(Transmit::Message(m));
    }

    /// A message arrived. An `Err` means the peer broke the protocol: close the connection.
    pub fn handle_message(&mut self, now: Instant, msg: Message) -> Result<(), Error> {
        if self.phase != Phase::Active {
            return Err(Error::Protocol { rule: "message before handshake" });
        }
        self.last_recv = now;
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Suggest(_) | Message::Unknown { .. } => {}
            Message::Choke => {
                self.peer_choking = true;
                if !self.fast {
                    let lost: Vec<BlockRef> = self.inflight.drain(..).map(|(b, _)| b).collect();
                    if !lost.is_empty() {
                        self.events.push_back(PeerEvent::RequestsLost(lost));
                    }
                }
                self.events.push_back(PeerEvent::Choked);
            }
            Message::Unchoke => {
                self.peer_choking = false;
                self.events.push_back(PeerEvent::Unchoked);
            }
            Message::Interested | Message::NotInterested => {
                let now_interested = matches!(msg, Message::Interested);
                if self.peer_interested != now_interested {
                    self.peer_interested = now_interested;
                    self.events.push_back(PeerEvent::Interest(now_interested));
                }
            }
            Message::Have(i) => self.on_have(i)?,
            Message::Bitfield(raw) => {
                if self.got_bitfield {
                    return self.merge_bitfield(&raw);
                }
                self.got_bitfield = true;
                match self.piece_count {
                    Some(n) => {
                        let b = Bitfield::from_bytes(&raw, n)
                            .map_err(|_| Error::Protocol { rule: "bitfield size or spare bits" })?;
                        self.set_peer_has(b);
                    }
                    None => self.early = EarlyHave::Raw(raw),
                }
            }
            Message::HaveAll | Message::HaveNone => {
                if !self.fast {
                    return Err(Error::Protocol { rule: "have all/none without the fast extension" });
                }
                let all = matches!(msg, Message::HaveAll);
                if self.got_bitfield {
                    // A late `have all` (a peer that finished) adds every piece.
                    if let (true, Some(n)) = (all, self.piece_count) {
                        return self.merge_bitfield(&Bitfield::full(n).to_bytes());
                    }
                    return Ok(());
                }
                self.got_bitfield = true;
                match self.piece_count {
                    Some(n) => self.set_peer_has(if all { Bitfield::full(n) } else { Bitfield::new(n) }),
                    None if all => self.early = EarlyHave::All,
                    None => {}
                }
            }
            Message::Request(b) => self.on_request(b)?,
            Message::Cancel(_) => {
                // Accepted requests are already queued for the writer; sending the block
                // anyway is allowed (BEP 6 wants a piece or a reject, and a piece is one).
            }
            Message::Piece(p) => {
                let Some(block) = p.block() else {
                    return Err(Error::Protocol { rule: "piece message too long" });
                };
                self.down.add(now, u64::from(block.length));
                if let Some(pos) = self.inflight.iter().position(|(b, _)| *b == block) {
                    self.inflight.remove(pos);
                    self.snubbed = false;
                    self.events.push_back(PeerEvent::Block { block, data: p.data });
                }
                // An unrequested block (cancelled in end game, or timed out) is dropped.
            }
            Message::Reject(b) => {
                if !self.fast {
                    return Err(Error::Protocol { rule: "reject without the fast extension" });
                }
                if let Some(pos) = self.inflight.iter().position(|(x, _)| *x == b) {
                    self.inflight.remove(pos);
                    self.events.push_back(PeerEvent::RequestsLost(vec![b]));
                }
            }
            Message::AllowedFast(i) => {
                if !self.fast {
                    return Err(Error::Protocol { rule: "allowed fast without the fast extension" });
                }
                if self.allowed_fast_in.len() < self.settings.max_allowed_fast_in
                    && !self.allowed_fast_in.contains(&i)
                {
                    self.allowed_fast_in.push(i);
                }
            }
            Message::Extended(e) => self.on_extended(e)?,
            Message::HashRequest(r) => self.events.push_back(PeerEvent::HashRequest(r)),
            Message::Hashes(h) => self.events.push_back(PeerEvent::Hashes(h)),
            Message::HashReject(r) => self.events.push_back(PeerEvent::HashReject(r)),
            _ => {}
        }
        Ok(())
    }

    /// A second `bitfield` is against BEP 3, but aria2 sends one after `have none` once it
    /// has pieces: treat its new bits as `have`s instead of dropping a working peer.
    fn merge_bitfield(&mut self, raw: &[u8]) -> Result<(), Error> {
        let Some(n) = self.piece_count else {
            self.early = EarlyHave::Raw(Bytes::copy_from_slice(raw));
            return Ok(());
        };
        let b = Bitfield::from_bytes(raw, n)
            .map_err(|_| Error::Protocol { rule: "bitfield size or spare bits" })?;
        for p in b.iter_ones() {
            self.on_have(p)?;
        }
        Ok(())
    }

    fn set_peer_has(&mut self, b: Bitfield) {
        let mut b = b;
        for h in self.early_haves.drain(..) {
            if h < b.len() {
                b.set(PieceIndex::new(h));
            }
        }
        self.peer_has = Some(b);
        self.events.push_back(PeerEvent::Bitfield);
    }

    fn on_have(&mut self, i: PieceIndex) -> Result<(), Error> {
        match (self.piece_count, self.peer_has.as_mut()) {
            (Some(_), Some(h)) => {
                if !h.get(i) {
                    h.set(i);
                    self.events.push_back(PeerEvent::Have(i));
                }
            }
            (Some(n), None) => {
                // `have` without a bitfield first: the peer started with nothing.
                self.got_bitfield = true;
                let mut b = Bitfield::new(n);
                b.set(i);
                self.peer_has = Some(b);
                self.events.push_back(PeerEvent::Bitfield);
            }
            (None, _) => {
                if self.early_haves.len() >= self.settings.wire_limits.bitfield_pieces_limit() as usize {
                    return Err(Error::Protocol { rule: "too many haves before metadata" });
                }
                self.early_haves.push(i.get());
            }
        }
        Ok(())
    }

    fn on_request(&mut self, b: BlockRef) -> Result<(), Error> {
        let valid = b.length > 0
            && b.length <= BLOCK_SIZE
            && b.offset.is_multiple_of(BLOCK_SIZE)
            && self.our_have.as_ref().is_some_and(|h| h.get(b.piece));
        let allowed = !self.am_choking || self.allowed_fast_out.contains(&b.piece);
        if valid && allowed && self.uploads_queued < self.settings.max_peer_requests {
            self.uploads_queued += 1;
            self.events.push_back(PeerEvent::Serve(b));
        } else if self.fast {
            self.send(Message::Reject(b));
        }
        // Without the fast extension there is no way to refuse: BEP 3 peers drop it.
        Ok(())
    }

    fn on_extended(&mut self, e: Extended) -> Result<(), Error> {
        if !self.extended {
            return Err(Error::Protocol { rule: "extended message without the extension bit" });
        }
        if e.id == 0 {
            let hs = ExtendedHandshake::decode(&e.payload)?;
            self.ext = Some(hs);
            self.events.push_back(PeerEvent::ExtensionHandshake);
        } else if e.id == UT_METADATA_ID {
            let m = MetadataMessage::decode(&e.payload)?;
            if let MetadataMessage::Data { total_size, .. } = &m
                && *total_size > self.settings.max_metadata_size
            {
                return Err(Error::Protocol { rule: "metadata larger than the limit" });
            }
            self.events.push_back(PeerEvent::Metadata(m));
        }
        // Other extension ids: we never advertised them.
        Ok(())
    }

    /// Time passed: call at (or after) [`poll_timeout`](Self::poll_timeout). Sends
    /// keep-alives, times out requests, and fails when the peer has gone silent.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.phase == Phase::Handshake {
            if now.saturating_duration_since(self.created) >= self.settings.handshake_timeout {
                return Err(Error::Timeout);
            }
            return Ok(());
        }
        if now.saturating_duration_since(self.last_recv) >= self.settings.inactivity_timeout {
            return Err(Error::Timeout);
        }
        if now.saturating_duration_since(self.last_send) >= self.settings.keepalive_interval {
            self.send(Message::KeepAlive);
            // The engine calls `sent` when it writes; count it now so the timer moves on even
            // if the caller only drains transmits later.
            self.last_send = now;
        }
        let timeout = self.settings.request_timeout;
        if self.inflight.front().is_some_and(|(_, at)| now.saturating_duration_since(*at) >= timeout) {
            // Snubbed: everything outstanding goes back to the picker, and the peer gets
            // one request at a time until it delivers again.
            self.snubbed = true;
            let lost: Vec<BlockRef> = self.inflight.drain(..).map(|(b, _)| b).collect();
            for b in &lost {
                if self.fast {
                    self.send(Message::Cancel(*b));
                }
            }
            self.events.push_back(PeerEvent::RequestsLost(lost));
        }
        self.down.roll(now);
        self.up.roll(now);
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to be called next.
    pub fn poll_timeout(&self) -> Instant {
        if self.phase == Phase::Handshake {
            return self.created + self.settings.handshake_timeout;
        }
        let mut t = (self.last_recv + self.settings.inactivity_timeout)
            .min(self.last_send + self.settings.keepalive_interval);
        if let Some((_, at)) = self.inflight.front() {
            t = t.min(*at + self.settings.request_timeout);
        }
        t
    }

    /// The next thing to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event for the torrent.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Tells the machine that `bytes` were written to the socket at `now` (`payload` of them
    /// piece data, for the upload rate).
    pub fn sent(&mut self, now: Instant, payload: u64) {
        self.last_send = now;
        if payload > 0 {
            self.up.add(now, payload);
        }
    }

    /// The engine finished serving `n` blocks from [`PeerEvent::Serve`].
    pub fn served(&mut self, n: usize) {
        self.uploads_queued = self.uploads_queued.saturating_sub(n);
    }

    /// The torrent's metadata became known (magnet links): the piece count and our pieces.
    /// Turns what the peer said before into a bitfield ([`PeerEvent::Bitfield`]).
    pub fn set_metadata(&mut self, our_have: Bitfield, metadata_size: u64) -> Result<(), Error> {
        let n = our_have.len();
        self.piece_count = Some(n);
        self.our_have = Some(our_have);
        self.our_metadata_size = Some(metadata_size);
        match std::mem::take(&mut self.early) {
            EarlyHave::All => self.set_peer_has(Bitfield::full(n)),
            EarlyHave::Raw(raw) => {
                let b =
                    Bitfield::from_bytes(&raw, n).map_err(|_| Error::Protocol { rule: "bitfield size" })?;
                self.set_peer_has(b);
            }
            EarlyHave::Nothing => {
                if self.got_bitfield || !self.early_haves.is_empty() {
                    self.set_peer_has(Bitfield::new(n));
                }
            }
        }
        Ok(())
    }

    /// We verified a piece: tells the peer with `have`.
    pub fn we_have(&mut self, piece: PieceIndex) {
        if let Some(h) = self.our_have.as_mut() {
            h.set(piece);
        }
        if self.phase == Phase::Active {
            self.send(Message::Have(piece));
        }
    }

    /// Chokes (true) or unchokes (false) the peer; sends the message if it changes anything.
    pub fn set_choking(&mut self, choke: bool) {
        if self.am_choking != choke {
            self.am_choking = choke;
            if self.phase == Phase::Active {
                self.send(if choke { Message::Choke } else { Message::Unchoke });
            }
        }
    }

    /// Declares interest (true) or its end; sends the message if it changes anything.
    pub fn set_interested(&mut self, interested: bool) {
        if self.am_interested != interested {
            self.am_interested = interested;
            if self.phase == Phase::Active {
                self.send(if interested { Message::Interested } else { Message::NotInterested });
            }
        }
    }

    /// How many more blocks to request now: the pipeline depth (adapted to the peer's rate)
    /// minus what is outstanding. Zero while choked, unless allowed-fast pieces exist.
    pub fn request_slots(&self, now: Instant) -> usize {
        if self.phase != Phase::Active || !self.am_interested {
            return 0;
        }
        if self.peer_choking && (!self.fast || self.allowed_fast_in.is_empty()) {
            return 0;
        }
        self.pipeline_depth(now).saturating_sub(self.inflight.len())
    }

    /// The current target of outstanding requests.
    pub fn pipeline_depth(&self, now: Instant) -> usize {
        if self.snubbed {
            return 1;
        }
        let s = &self.settings;
        let by_rate = (self.down.rate(now) * s.pipeline_seconds / f64::from(BLOCK_SIZE)) as usize;
        let cap = self.ext.as_ref().and_then(|e| e.reqq).map_or(250, |q| q as usize).clamp(1, s.max_pipeline);
        by_rate.clamp(s.min_pipeline, s.max_pipeline).min(cap)
    }

    /// Whether a request for `piece` may go out now (unchoked, or an allowed-fast piece).
    pub fn may_request(&self, piece: PieceIndex) -> bool {
        !self.peer_choking || (self.fast && self.allowed_fast_in.contains(&piece))
    }

    /// Sends a request for `block` (which the picker chose).
    pub fn request(&mut self, now: Instant, block: BlockRef) {
        self.inflight.push_back((block, now));
        self.send(Message::Request(block));
    }

    /// Cancels an outstanding request (end game: another peer delivered it).
    pub fn cancel(&mut self, block: BlockRef) {
        if let Some(pos) = self.inflight.iter().position(|(b, _)| *b == block) {
            self.inflight.remove(pos);
            self.send(Message::Cancel(block));
        }
    }

    /// Sends a BEP 9 `ut_metadata` message under the peer's id for it; false if the peer
    /// does not support it.
    pub fn send_metadata(&mut self, m: &MetadataMessage) -> bool {
        let Some(id) = self.peer_metadata_id() else { return false };
        match m.to_message(id) {
            Ok(msg) => {
                self.send(msg);
                true
            }
            Err(_) => false,
        }
    }

    /// Sends any message (BEP 52 hash messages, ...).
    pub fn send_message(&mut self, m: Message) {
        self.send(m);
    }

    /// Drops every outstanding request and returns them (the connection is closing).
    pub fn take_inflight(&mut self) -> Vec<BlockRef> {
        self.inflight.drain(..).map(|(b, _)| b).collect()
    }

    /// Outstanding requests.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// The peer's pieces, once known.
    pub fn peer_has(&self) -> Option<&Bitfield> {
        self.peer_has.as_ref()
    }

    /// The peer's id, after the handshake.
    pub fn peer_id(&self) -> Option<PeerId> {
        self.peer_id
    }

    /// The peer's `ut_metadata` id (BEP 9), if it supports it.
    pub fn peer_metadata_id(&self) -> Option<u8> {
        self.ext.as_ref().and_then(|e| e.extension_id(b"ut_metadata"))
    }

    /// The metadata size the peer announced (BEP 9).
    pub fn metadata_size(&self) -> Option<u64> {
        self.ext.as_ref().and_then(|e| e.metadata_size)
    }

    /// The peer's client name from its extension handshake.
    pub fn client(&self) -> Option<&str> {
        self.ext.as_ref().and_then(ExtendedHandshake::client_str)
    }

    /// Whether both sides support the fast extension (BEP 6).
    pub fn fast(&self) -> bool {
        self.fast
    }

    /// Whether both sides support the v2 upgrade bit (BEP 52).
    pub fn v2(&self, theirs: &Reserved) -> bool {
        theirs.intersect(&self.ours.reserved).contains(Feature::V2Upgrade)
    }

    /// Whether the peer is choking us.
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }

    /// Whether the peer is interested in us.
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }

    /// Whether we are choking the peer.
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }

    /// Whether we are interested in the peer.
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }

    /// Download rate from this peer in bytes per second.
    pub fn download_rate(&self, now: Instant) -> f64 {
        self.down.rate(now)
    }

    /// Upload rate to this peer in bytes per second.
    pub fn upload_rate(&self, now: Instant) -> f64 {
        self.up.rate(now)
    }

    /// Piece payload bytes received from the peer.
    pub fn downloaded(&self) -> u64 {
        self.down.total
    }

    /// Piece payload bytes sent to the peer.
    pub fn uploaded(&self) -> u64 {
        self.up.total
    }

    /// The info-hash of the connection: the one in our handshake, or the truncated v2 hash
    /// after a [v2 upgrade](Self::allow_v2_upgrade).
    pub fn info_hash(&self) -> InfoHashV1 {
        self.ours.info_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(id: u8) -> Handshake {
        Handshake {
            reserved: Reserved::NONE.with(Feature::Fast).with(Feature::Extension),
            info_hash: InfoHashV1::from_bytes([7; 20]),
            peer_id: PeerId::from_bytes([id; 20]),
        }
    }

    fn msgs(p: &mut Peer) -> Vec<Message> {
        let mut v = Vec::new();
        while let Some(t) = p.poll_transmit() {
            if let Transmit::Message(m) = t {
                v.push(m);
            }
        }
        v
    }

    fn events(p: &mut Peer) -> Vec<PeerEvent> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    fn block(piece: u32, n: u32) -> BlockRef {
        BlockRef { piece: PieceIndex::new(piece), offset: n * BLOCK_SIZE, length: BLOCK_SIZE }
    }

    fn connected(now: Instant, have: Bitfield, reserved: Reserved) -> Peer {
        let mut p =
            Peer::new(now, PeerSettings::default(), hs(1), true, Some(Ipv4Addr::LOCALHOST), Some(have), None);
        assert!(matches!(p.poll_transmit(), Some(Transmit::Handshake(_))));
        let mut theirs = hs(2);
        theirs.reserved = reserved;
        p.handle_handshake(now, &theirs).unwrap();
        p
    }

    #[test]
    fn seed_with_fast_sends_have_all_and_leecher_sends_have_none() {
        let now = Instant::now();
        let fast = Reserved::NONE.with(Feature::Fast).with(Feature::Extension);
        let mut seed = connected(now, Bitfield::full(100), fast);
        let out = msgs(&mut seed);
        assert!(matches!(out[0], Message::Extended(ref e) if e.id == 0));
        assert_eq!(out[1], Message::HaveAll);
        // BEP 6 allowed-fast set for our IP, all pieces we have.
        assert_eq!(out.iter().filter(|m| matches!(m, Message::AllowedFast(_))).count(), 10);
        let mut leech = connected(now, Bitfield::new(100), fast);
        assert!(msgs(&mut leech).contains(&Message::HaveNone));
        // Without the fast extension: a bitfield, and nothing at all when empty.
        let plain = Reserved::NONE;
        let mut partial = Bitfield::new(100);
        partial.set(PieceIndex::new(3));
        let mut p = connected(now, partial.clone(), plain);
        assert_eq!(msgs(&mut p), [Message::bitfield(&partial)]);
        let mut p = connected(now, Bitfield::new(100), plain);
        assert!(msgs(&mut p).is_empty());
    }

    #[test]
    fn wrong_info_hash_and_self_connection_fail() {
        let now = Instant::now();
        let mut p = Peer::new(now, PeerSettings::default(), hs(1), true, None, Some(Bitfield::new(4)), None);
        let mut other = hs(2);
        other.info_hash = InfoHashV1::from_bytes([8; 20]);
        assert!(matches!(p.handle_handshake(now, &other), Err(Error::UnknownInfoHash)));
        let mut p = Peer::new(now, PeerSettings::default(), hs(1), true, None, Some(Bitfield::new(4)), None);
        assert!(matches!(p.handle_handshake(now, &hs(1)), Err(Error::SelfConnection)));
    }

    #[test]
    fn requests_while_choking_are_rejected_except_allowed_fast() {
        let now = Instant::now();
        let fast = Reserved::NONE.with(Feature::Fast);
        let mut seed = connected(now, Bitfield::full(100), fast);
        let allowed: Vec<PieceIndex> = msgs(&mut seed)
            .into_iter()
            .filter_map(|m| if let Message::AllowedFast(p) = m { Some(p) } else { None })
            .collect();
        events(&mut seed);
        let not_allowed = (0..100).map(PieceIndex::new).find(|p| !allowed.contains(p)).unwrap();
        let b = BlockRef { piece: not_allowed, offset: 0, length: BLOCK_SIZE };
        seed.handle_message(now, Message::Request(b)).unwrap();
        assert_eq!(msgs(&mut seed), [Message::Reject(b)]);
        assert!(events(&mut seed).is_empty());
        let fast_block = BlockRef { piece: allowed[0], offset: 0, length: BLOCK_SIZE };
        seed.handle_message(now, Message::Request(fast_block)).unwrap();
        assert_eq!(events(&mut seed), [PeerEvent::Serve(fast_block)]);
        seed.set_choking(false);
        assert_eq!(msgs(&mut seed), [Message::Unchoke]);
        seed.handle_message(now, Message::Request(b)).unwrap();
        assert_eq!(events(&mut seed), [PeerEvent::Serve(b)]);
        // A misaligned request is rejected even when unchoked.
        let odd = BlockRef { piece: allowed[0], offset: 5, length: 10 };
        seed.handle_message(now, Message::Request(odd)).unwrap();
        assert_eq!(msgs(&mut seed), [Message::Reject(odd)]);
    }

    #[test]
    fn have_all_without_fast_is_a_protocol_error() {
        let now = Instant::now();
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        assert!(matches!(p.handle_message(now, Message::HaveAll), Err(Error::Protocol { .. })));
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        assert!(matches!(p.handle_message(now, Message::Reject(block(0, 0))), Err(Error::Protocol { .. })));
    }

    #[test]
    fn bad_bitfield_fails_and_second_bitfield_merges() {
        let now = Instant::now();
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        // 10 pieces: 2 bytes, the last 6 bits spare and zero.
        assert!(p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xff, 0xff]))).is_err());
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xff, 0xc0]))).unwrap();
        assert_eq!(p.peer_has().map(Bitfield::count_ones), Some(10));
        // A second bitfield (aria2 sends one) only adds pieces.
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0x80, 0x00]))).unwrap();
        events(&mut p);
        p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xc0, 0x00]))).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::Have(PieceIndex::new(1))]);
        assert!(p.handle_message(now, Message::Bitfield(Bytes::from_static(&[0xff, 0xff]))).is_err());
    }

    #[test]
    fn pipeline_grows_with_the_peer_rate() {
        let t0 = Instant::now();
        let mut p = connected(t0, Bitfield::new(10_000), Reserved::NONE);
        p.set_interested(true);
        assert_eq!(p.request_slots(t0), 0, "choked");
        p.handle_message(t0, Message::Unchoke).unwrap();
        let start = p.request_slots(t0);
        assert_eq!(start, PeerSettings::default().min_pipeline);
        // Simulated: 100 ms later, 1,000 blocks have arrived (about 160 MB/s).
        let mut now = t0;
        for i in 0..1000u32 {
            p.request(now, block(i / 16, i % 16));
            now = t0 + Duration::from_micros(100 * u64::from(i));
            p.handle_message(
                now,
                Message::Piece(piecework_wire::Piece {
                    index: PieceIndex::new(i / 16),
                    begin: (i % 16) * BLOCK_SIZE,
                    data: Bytes::from(vec![0; BLOCK_SIZE as usize]),
                }),
            )
            .unwrap();
        }
        let grown = p.pipeline_depth(now);
        assert!(grown > start * 4, "{grown}");
        // Capped by the peer's default reqq (250) when it sent no extension handshake.
        assert!(grown <= 250);
    }

    #[test]
    fn timeouts_snub_send_keepalives_and_close() {
        let t0 = Instant::now();
        let s = PeerSettings::default();
        let mut p = connected(t0, Bitfield::new(10), Reserved::NONE);
        msgs(&mut p);
        p.set_interested(true);
        p.handle_message(t0, Message::Unchoke).unwrap();
        p.request(t0, block(1, 0));
        p.request(t0, block(1, 1));
        msgs(&mut p);
        events(&mut p);
        assert_eq!(p.poll_timeout(), t0 + s.request_timeout);
        let t1 = t0 + s.request_timeout;
        p.handle_timeout(t1).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::RequestsLost(vec![block(1, 0), block(1, 1)])]);
        assert_eq!(p.pipeline_depth(t1), 1, "snubbed peers get one request");
        // Keep-alive after the interval with nothing sent.
        let t2 = t0 + s.keepalive_interval;
        p.handle_message(t2, Message::KeepAlive).unwrap();
        p.handle_timeout(t2).unwrap();
        assert!(msgs(&mut p).contains(&Message::KeepAlive));
        // Silence for the inactivity timeout closes the connection.
        let t3 = t2 + s.inactivity_timeout;
        assert!(p.poll_timeout() <= t3);
        assert!(matches!(p.handle_timeout(t3), Err(Error::Timeout)));
    }

    #[test]
    fn handshake_timeout() {
        let t0 = Instant::now();
        let s = PeerSettings::default();
        let mut p = Peer::new(t0, s, hs(1), true, None, Some(Bitfield::new(4)), None);
        assert_eq!(p.poll_timeout(), t0 + s.handshake_timeout);
        assert!(p.handle_timeout(t0 + Duration::from_secs(1)).is_ok());
        assert!(matches!(p.handle_timeout(t0 + s.handshake_timeout), Err(Error::Timeout)));
    }

    #[test]
    fn choke_without_fast_loses_requests_with_fast_keeps_them_until_rejected() {
        let now = Instant::now();
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        p.set_interested(true);
        p.handle_message(now, Message::Unchoke).unwrap();
        p.request(now, block(2, 0));
        events(&mut p);
        p.handle_message(now, Message::Choke).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::RequestsLost(vec![block(2, 0)]), PeerEvent::Choked]);

        let mut p = connected(now, Bitfield::new(10), Reserved::NONE.with(Feature::Fast));
        p.set_interested(true);
        p.handle_message(now, Message::Unchoke).unwrap();
        p.request(now, block(2, 0));
        events(&mut p);
        p.handle_message(now, Message::Choke).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::Choked]);
        assert_eq!(p.inflight(), 1);
        p.handle_message(now, Message::Reject(block(2, 0))).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::RequestsLost(vec![block(2, 0)])]);
        // Allowed-fast pieces may be requested while choked.
        p.handle_message(now, Message::AllowedFast(PieceIndex::new(4))).unwrap();
        assert!(p.may_request(PieceIndex::new(4)) && !p.may_request(PieceIndex::new(5)));
        assert!(p.request_slots(now) > 0);
    }

    #[test]
    fn unrequested_blocks_are_dropped() {
        let now = Instant::now();
        let mut p = connected(now, Bitfield::new(10), Reserved::NONE);
        events(&mut p);
        let piece =
            piecework_wire::Piece { index: PieceIndex::new(1), begin: 0, data: Bytes::from_static(b"x") };
        p.handle_message(now, Message::Piece(piece)).unwrap();
        assert!(events(&mut p).is_empty());
    }

    #[test]
    fn hybrid_connections_upgrade_to_v2() {
        let now = Instant::now();
        let v1 = InfoHashV1::from_bytes([7; 20]);
        let v2 = InfoHashV1::from_bytes([9; 20]);
        let offer = Reserved::NONE.with(Feature::Fast).with(Feature::Extension).with(Feature::V2Upgrade);
        let mut ours = hs(1);
        ours.reserved = offer;
        // Outgoing: we offer with the v1 hash, the peer answers with the v2 hash.
        let mut p = Peer::new(now, PeerSettings::default(), ours, true, None, Some(Bitfield::new(4)), None);
        p.allow_v2_upgrade(v2);
        let mut theirs = hs(2);
        theirs.info_hash = v2;
        p.handle_handshake(now, &theirs).unwrap();
        assert_eq!(p.info_hash(), v2);
        // Outgoing, the peer stays on v1.
        let mut p = Peer::new(now, PeerSettings::default(), ours, true, None, Some(Bitfield::new(4)), None);
        p.allow_v2_upgrade(v2);
        p.handle_handshake(now, &hs(2)).unwrap();
        assert_eq!(p.info_hash(), v1);
        // Incoming with the bit: answered with the v2 hash and without the bit.
        let mut p = Peer::new(now, PeerSettings::default(), ours, false, None, Some(Bitfield::new(4)), None);
        p.allow_v2_upgrade(v2);
        let mut theirs = hs(2);
        theirs.reserved = offer;
        p.handle_handshake(now, &theirs).unwrap();
        match p.poll_transmit() {
            Some(Transmit::Handshake(h)) => {
                assert_eq!(h.info_hash, v2);
                assert!(!h.reserved.contains(Feature::V2Upgrade));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.info_hash(), v2);
        // Incoming without the bit: stays v1. Another hash is refused as before.
        let mut p = Peer::new(now, PeerSettings::default(), ours, false, None, Some(Bitfield::new(4)), None);
        p.allow_v2_upgrade(v2);
        p.handle_handshake(now, &hs(2)).unwrap();
        assert_eq!(p.info_hash(), v1);
        let mut p = Peer::new(now, PeerSettings::default(), ours, true, None, Some(Bitfield::new(4)), None);
        p.allow_v2_upgrade(v2);
        let mut other = hs(2);
        other.info_hash = InfoHashV1::from_bytes([8; 20]);
        assert!(matches!(p.handle_handshake(now, &other), Err(Error::UnknownInfoHash)));
    }

    #[test]
    fn haves_before_metadata_become_a_bitfield() {
        let now = Instant::now();
        let mut p = Peer::new(now, PeerSettings::default(), hs(1), true, None, None, None);
        p.poll_transmit();
        let mut theirs = hs(2);
        theirs.reserved = Reserved::NONE.with(Feature::Fast).with(Feature::Extension);
        p.handle_handshake(now, &theirs).unwrap();
        assert!(msgs(&mut p).contains(&Message::HaveNone));
        p.handle_message(now, Message::HaveAll).unwrap();
        events(&mut p);
        p.set_metadata(Bitfield::new(12), 1000).unwrap();
        assert_eq!(events(&mut p), [PeerEvent::Bitfield]);
        assert!(p.peer_has().unwrap().is_full());
    }
}
