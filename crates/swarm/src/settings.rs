//! Every limit and timer of the engine, with safe defaults.

use std::net::SocketAddr;
use std::time::Duration;

use piecework_wire::Limits;

/// Per-connection settings used by the sans-IO [`Peer`](crate::Peer) state machine.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct PeerSettings {
    /// Wire decoder limits (largest block, bitfield, extended message).
    pub wire_limits: Limits,
    /// Close the connection if the handshake has not completed within this time.
    pub handshake_timeout: Duration,
    /// Close the connection after this long without receiving anything (BEP 3 suggests two
    /// minutes; peers send keep-alives more often than that).
    pub inactivity_timeout: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// A request unanswered for this long is given back to the picker and the peer is
    /// treated as snubbing us.
    pub request_timeout: Duration,
    /// Fewest outstanding requests kept at a peer that has unchoked us.
    pub min_pipeline: usize,
    /// Most outstanding requests kept at one peer (also capped by the peer's `reqq`).
    pub max_pipeline: usize,
    /// The pipeline holds this many seconds' worth of the peer's measured rate.
    pub pipeline_seconds: f64,
    /// Most requests from the peer queued for upload; further ones are rejected.
    pub max_peer_requests: usize,
    /// How many allowed-fast pieces (BEP 6) we grant a peer.
    pub allowed_fast: usize,
    /// Most allowed-fast pieces we remember from a peer.
    pub max_allowed_fast_in: usize,
    /// Largest metadata (info dictionary) we accept through BEP 9.
    pub max_metadata_size: u64,
    /// Most hashes a peer may ask for in one BEP 52 hash request; larger requests are
    /// rejected (libtorrent's limit: 8192 piece hashes).
    pub max_hash_request: u32,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            wire_limits: Limits::new(),
            handshake_timeout: Duration::from_secs(10),
            inactivity_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(20),
            min_pipeline: 16,
            max_pipeline: 1024,
            pipeline_seconds: 1.0,
            max_peer_requests: 2048,
            allowed_fast: 10,
            max_allowed_fast_in: 64,
            max_metadata_size: 16 << 20,
            max_hash_request: 8192,
        }
    }
}

/// Settings of a [`Session`](crate::Session).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// Address of the incoming listener; `None` listens nowhere. The default is
    /// `127.0.0.1:0` (any free port on loopback): listening on every interface is an
    /// explicit choice.
    pub listen: Option<SocketAddr>,
    /// Per-connection settings.
    pub peer: PeerSettings,
    /// Most connections per torrent (incoming and outgoing).
    pub max_peers_per_torrent: usize,
    /// Most peers uploaded to at a time, besides the optimistic unchoke.
    pub unchoke_slots: usize,
    /// How often the choker re-evaluates (BEP 3 clients use 10 s).
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke rotates.
    pub optimistic_interval: Duration,
    /// Outgoing connection attempt timeout.
    pub connect_timeout: Duration,
    /// Wait between redials of a given peer address that failed or closed.
    pub reconnect_interval: Duration,
    /// Give up on an address after this many failed connection attempts in a row.
    pub max_connect_failures: u32,
    /// The first pieces are picked at random (not rarest first) until this many are complete,
    /// so that there is something to trade early.
    pub random_first_pieces: u32,
    /// In end game a block may be requested from this many peers at once.
    pub endgame_duplicates: usize,
    /// A peer that contributed to this many failed pieces is banned even when it was not the
    /// only contributor.
    pub ban_strikes: u32,
    /// Bytes read from a socket at a time.
    pub read_buffer: usize,
    /// Storage settings (hashing threads, file descriptors, ...). Unlike storage's own
    /// default, files are preallocated ([`preallocate`](piecework_storage::Settings::preallocate)):
    /// on ext4, writing into allocated blocks took a third of the kernel time of filling a
    /// sparse file, and a full disk shows up before the download starts. Blocks are hashed by
    /// the disk threads that write them ([`hash_on_write`](piecework_storage::Settings::hash_on_write)).
    pub storage: piecework_storage::Settings,
    /// Save resume data every this often while downloading (and at shutdown).
    pub resume_interval: Duration,
    /// Announce to trackers (if the torrent lists any).
    pub trackers: bool,
    /// Fallback tracker announce interval when the tracker gives none.
    pub tracker_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            peer: PeerSettings::default(),
            max_peers_per_torrent: 64,
            unchoke_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_interval: Duration::from_secs(1),
            max_connect_failures: 30,
            random_first_pieces: 4,
            endgame_duplicates: 2,
            ban_strikes: 3,
            read_buffer: 256 * 1024,
            storage: {
                let mut s = piecework_storage::Settings::default();
                s.preallocate = true;
                s.hash_on_write = true;
                s
            },
            resume_interval: Duration::from_secs(30),
            trackers: true,
            tracker_interval: Duration::from_secs(1800),
        }
    }
}
