//! The tokio engine: sessions, torrents, connections.
//!
//! One task per connection reads the socket, runs the [`Peer`] state machine and hands
//! blocks (slices of the read buffer, no copy) to the torrent's disk threads, which write and
//! hash them (see `DiskWriter`); a writer task per connection sends
//! messages and serves blocks (read from storage just before they are written, header and
//! payload in one vectored write). A control task per torrent receives verification
//! results from storage's hashing threads, announces `have`s, chokes and unchokes, dials
//! peers and saves resume data.

use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use piecework_metainfo::merkle::MerkleHash;
use piecework_metainfo::{
    BLOCK_SIZE, Bitfield, BlockRef, InfoHashV1, InfoHashes, Magnet, Metainfo, PieceIndex, Version,
};
use piecework_storage::{FileBackend, Layout, PieceVerdict, Storage};
use piecework_wire::{Decoder, Feature, Handshake, Message, MetadataMessage, PeerId, Reserved};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::layers::{FileTree, LayerFetch, Received, hashes_message, torrent_with_layers};
use crate::peer::{Peer, PeerEvent, Transmit};
use crate::picker::{PeerKey, Picker, Rng};
use crate::{Error, Settings};

type Store = Storage<FileBackend>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; the state is still usable
    // because every update is a complete assignment.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Falls back to the clock if the OS has no randomness; only tie breaks depend on it.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64;
    }
    u64::from_le_bytes(b)
}

/// Where a torrent's metadata comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Source {
    /// The bytes of a .torrent file.
    Torrent(Vec<u8>),
    /// A magnet link: the metadata is fetched from peers (BEP 9).
    Magnet(Magnet),
}

/// What to add to a [`Session`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AddTorrent {
    /// The torrent.
    pub source: Source,
    /// Directory that holds (or will hold) the torrent's files.
    pub save_path: PathBuf,
    /// Peers to connect to (and keep reconnecting to until they or we finish).
    pub peers: Vec<SocketAddr>,
    /// Resume file: read at start if present, written while downloading and at stop.
    /// `None` checks existing data by hashing it instead.
    pub resume_file: Option<PathBuf>,
}

impl AddTorrent {
    /// A torrent from .torrent bytes, saved under `save_path`.
    pub fn torrent(bytes: Vec<u8>, save_path: impl Into<PathBuf>) -> Self {
        Self {
            source: Source::Torrent(bytes),
            save_path: save_path.into(),
            peers: Vec::new(),
            resume_file: None,
        }
    }

    /// A torrent from a magnet link, saved under `save_path`.
    pub fn magnet(magnet: Magnet, save_path: impl Into<PathBuf>) -> Self {
        Self {
            source: Source::Magnet(magnet),
            save_path: save_path.into(),
            peers: Vec::new(),
            resume_file: None,
        }
    }

    /// Adds a peer to connect to.
    pub fn peer(mut self, addr: SocketAddr) -> Self {
        self.peers.push(addr);
        self
    }

    /// Sets the resume file.
    pub fn resume_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume_file = Some(path.into());
        self
    }
}

/// A snapshot of a torrent's progress and statistics.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Whether the metadata is known (always, except for magnet links at first).
    pub has_metadata: bool,
    /// Pieces in the torrent (0 without metadata).
    pub pieces_total: u32,
    /// Pieces verified.
    pub pieces_have: u32,
    /// Payload bytes in the torrent.
    pub total_bytes: u64,
    /// Payload bytes verified.
    pub have_bytes: u64,
    /// Piece payload received from peers (including discarded data).
    pub downloaded: u64,
    /// Piece payload sent to peers.
    pub uploaded: u64,
    /// Download rate in bytes per second (smoothed).
    pub download_rate: f64,
    /// Upload rate in bytes per second (smoothed).
    pub upload_rate: f64,
    /// Connected peers.
    pub peers: usize,
    /// Most peers connected at once.
    pub peers_max: usize,
    /// Pieces that failed verification.
    pub hash_failures: u32,
    /// Peers banned for sending bad data.
    pub banned: usize,
    /// Whether every piece is verified.
    pub complete: bool,
    /// Tracker announces that succeeded.
    pub announces_ok: u32,
    /// Tracker announces that failed.
    pub announces_failed: u32,
}

#[derive(Debug)]
enum PeerCmd {
    Have(PieceIndex),
    Cancel(BlockRef),
    Choke(bool),
    Metadata,
    Refill,
    Close,
}

struct PeerEntry {
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<PeerCmd>,
    has: Option<Bitfield>,
    interested: bool,
    choked: bool,
    counters: Arc<PeerCounters>,
    last_down: u64,
    last_up: u64,
    down_rate: f64,
    up_rate: f64,
    seed: bool,
}

#[derive(Default)]
struct PeerCounters {
    down: AtomicU64,
    up: AtomicU64,
    served: AtomicUsize,
    /// Both sides speak BEP 6, so an unservable request is answered with `reject`.
    fast: AtomicBool,
}

struct MetaState {
    picker: Picker,
    storage: Arc<Store>,
    disk: Arc<DiskWriter>,
    info: Bytes,
    total_bytes: u64,
    /// Payload bytes of each piece (its size without pad-file bytes).
    payload: Vec<u32>,
}

struct MetadataFetch {
    size: u64,
    pieces: Vec<Option<Bytes>>,
    asked: Vec<Option<(PeerKey, Instant)>>,
}

#[derive(Default)]
struct DialState {
    connected: bool,
    failures: u32,
    next: Option<Instant>,
    finished: bool,
}

struct TorrentState {
    meta: Option<MetaState>,
    fetch: Option<MetadataFetch>,
    peers: HashMap<PeerKey, PeerEntry>,
    dial: HashMap<SocketAddr, DialState>,
    banned: HashSet<SocketAddr>,
    banned_ips: HashSet<IpAddr>,
    strikes: HashMap<SocketAddr, u32>,
    stats: Stats,
    optimistic: Option<PeerKey>,
    stopped: bool,
    /// Verified v2 trees by pieces root, for answering BEP 52 hash requests.
    trees: HashMap<MerkleHash, FileTree>,
    /// Piece layers still to fetch with hash requests.
    layer_fetch: Option<LayerFetch>,
    /// The info dictionary of a v2 torrent waiting for its piece layers (storage opens once
    /// they are in); `None` when the fetch only serves others (hybrid, verified by SHA-1).
    pending_info: Option<Bytes>,
}

impl TorrentState {
    fn is_banned(&self, addr: SocketAddr) -> bool {
        self.banned.contains(&addr) || self.banned_ips.contains(&addr.ip())
    }
}

enum Control {
    Verdict(piecework_storage::PieceResult),
    PeerClosed {
        key: PeerKey,
        addr: SocketAddr,
        outgoing: bool,
        error: Option<Error>,
    },
    Metadata(Bytes),
    /// A whole .torrent (info plus the fetched piece layers) for a v2 torrent.
    Layers(Vec<u8>),
}

pub(crate) struct TorrentShared {
    hashes: InfoHashes,
    pub(crate) handshake_hash: InfoHashV1,
    pub(crate) settings: Settings,
    pub(crate) peer_id: PeerId,
    pub(crate) trackers: Vec<String>,
    pub(crate) listen_port: u16,
    listen: Option<SocketAddr>,
    save_path: PathBuf,
    resume_file: Option<PathBuf>,
    state: Mutex<TorrentState>,
    control: mpsc::UnboundedSender<Control>,
    pub(crate) complete: watch::Sender<bool>,
    metadata_ready: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    pub(crate) downloaded: AtomicU64,
    pub(crate) uploaded: AtomicU64,
    next_key: AtomicU64,
    hash_thread_stop: Arc<AtomicBool>,
    fatal: Mutex<Option<String>>,
}

impl TorrentShared {
    fn storage(&self) -> Option<Arc<Store>> {
        lock(&self.state).meta.as_ref().map(|m| m.storage.clone())
    }

    fn disk(&self) -> Option<Arc<DiskWriter>> {
        lock(&self.state).meta.as_ref().map(|m| m.disk.clone())
    }

    fn reserved(&self) -> Reserved {
        Reserved::NONE.with(Feature::Fast).with(Feature::Extension)
    }

    /// Whether a connection speaks v2 (BEP 52): its handshake named the truncated v2
    /// info-hash. Hash messages are exchanged only on such connections (libtorrent drops a
    /// peer that sends them on a v1 connection).
    fn v2_connection(&self, peer: &Peer) -> bool {
        self.hashes.v2().is_some_and(|h| h.truncated_id() == peer.info_hash())
    }

    pub(crate) fn stats_now(&self) -> Stats {
        TorrentHandle::stats_of(self)
    }

    pub(crate) fn announced(&self, ok: bool) {
        let mut st = lock(&self.state);
        if ok {
            st.stats.announces_ok += 1;
        } else {
            st.stats.announces_failed += 1;
        }
    }

    pub(crate) fn add_peers(&self, peers: &[SocketAddr]) {
        let mut st = lock(&self.state);
        // Trackers list us too.
        for p in peers.iter().filter(|p| Some(**p) != self.listen) {
            st.dial.entry(*p).or_default();
        }
    }
}

struct SessionInner {
    settings: Settings,
    peer_id: PeerId,
    listen: Option<SocketAddr>,
    torrents: Mutex<HashMap<InfoHashV1, Arc<TorrentShared>>>,
    stop: watch::Sender<bool>,
}

/// A BitTorrent session: a listener and the torrents it serves.
///
/// Dropping the session does not stop its tasks; call [`Session::shutdown`].
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("listen", &self.inner.listen).finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session: binds the listener of [`Settings::listen`] (if any) and accepts
    /// connections for the torrents added later. Must run inside a tokio runtime.
    pub async fn new(settings: Settings) -> Result<Session, Error> {
        let mut random = [0u8; 12];
        random[..8].copy_from_slice(&random_u64().to_le_bytes());
        random[8..].copy_from_slice(&random_u64().to_le_bytes()[..4]);
        let peer_id = PeerId::with_prefix(PeerId::PIECEWORK_PREFIX, random);
        let (stop, _) = watch::channel(false);
        let listener = match settings.listen {
            Some(a) => Some(TcpListener::bind(a).await.map_err(Error::io("bind listener"))?),
            None => None,
        };
        let listen = match &listener {
            Some(l) => Some(l.local_addr().map_err(Error::io("listener address"))?),
            None => None,
        };
        let inner =
            Arc::new(SessionInner { settings, peer_id, listen, torrents: Mutex::new(HashMap::new()), stop });
        if let Some(l) = listener {
            tokio::spawn(accept_loop(inner.clone(), l));
        }
        Ok(Session { inner })
    }

    /// The listener's address (with the port the OS picked), if listening.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.listen
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// Adds a torrent: opens its storage, checks existing data (resume file, else a hash
    /// check of whatever files exist), and starts connecting to its peers.
    pub async fn add_torrent(&self, add: AddTorrent) -> Result<TorrentHandle, Error> {
        let settings = self.inner.settings.clone();
        let (hashes, meta_bytes, trackers) = match &add.source {
            Source::Torrent(b) => {
                let m = Metainfo::parse(b)?;
                (m.info_hashes(), Some(b.clone()), m.trackers().iter().flatten().cloned().collect())
            }
            Source::Magnet(m) => (m.info_hashes(), None, m.trackers().to_vec()),
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        let mut state = TorrentState {
            meta: None,
            fetch: None,
            peers: HashMap::new(),
            dial: HashMap::new(),
            banned: HashSet::new(),
            banned_ips: HashSet::new(),
            strikes: HashMap::new(),
            stats: Stats::default(),
            optimistic: None,
            stopped: false,
            trees: HashMap::new(),
            layer_fetch: None,
            pending_info: None,
        };
        for p in &add.peers {
            state.dial.insert(*p, DialState::default());
        }
        if let Source::Magnet(m) = &add.source {
            for p in m.peers() {
                if let Ok(a) = p.parse::<SocketAddr>() {
                    state.dial.entry(a).or_default();
                }
            }
        }
        let shared = Arc::new(TorrentShared {
            hashes,
            handshake_hash: hashes.best_v1_sized(),
            settings,
            peer_id: self.inner.peer_id,
            trackers,
            listen_port: self.inner.listen.map_or(0, |a| a.port()),
            listen: self.inner.listen,
            save_path: add.save_path.clone(),
            resume_file: add.resume_file.clone(),
            state: Mutex::new(state),
            control,
            complete: watch::channel(false).0,
            metadata_ready: watch::channel(false).0,
            stop: watch::channel(false).0,
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            next_key: AtomicU64::new(1),
            hash_thread_stop: Arc::new(AtomicBool::new(false)),
            fatal: Mutex::new(None),
        });
        if let Some(bytes) = meta_bytes {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || init_metadata(&s, &bytes))
                .await
                .map_err(|_| Error::Shutdown)??;
        }
        {
            let mut t = lock(&self.inner.torrents);
            if let Some(v1) = hashes.v1() {
                t.insert(v1, shared.clone());
            }
            if let Some(v2) = hashes.v2() {
                t.insert(v2.truncated_id(), shared.clone());
            }
        }
        tokio::spawn(control_loop(shared.clone(), control_rx, self.inner.stop.subscribe()));
        Ok(TorrentHandle { shared })
    }

    /// Stops every torrent (saving resume data) and the listener.
    pub async fn shutdown(&self) {
        let torrents: Vec<Arc<TorrentShared>> = {
            let mut t = lock(&self.inner.torrents);
            let mut seen = Vec::new();
            for (_, s) in t.drain() {
                if !seen.iter().any(|x: &Arc<TorrentShared>| Arc::ptr_eq(x, &s)) {
                    seen.push(s);
                }
            }
            seen
        };
        for t in torrents {
            TorrentHandle { shared: t }.stop().await;
        }
        self.inner.stop.send_replace(true);
    }
}

/// A torrent in a [`Session`].
#[derive(Clone)]
pub struct TorrentHandle {
    shared: Arc<TorrentShared>,
}

impl std::fmt::Debug for TorrentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentHandle").field("info_hashes", &self.shared.hashes).finish_non_exhaustive()
    }
}

impl TorrentHandle {
    /// The torrent's info-hashes.
    pub fn info_hashes(&self) -> InfoHashes {
        self.shared.hashes
    }

    /// Progress and statistics now.
    pub fn stats(&self) -> Stats {
        Self::stats_of(&self.shared)
    }

    fn stats_of(shared: &TorrentShared) -> Stats {
        let st = lock(&shared.state);
        let mut s = st.stats.clone();
        s.downloaded = shared.downloaded.load(Ordering::Relaxed);
        s.uploaded = shared.uploaded.load(Ordering::Relaxed);
        s.peers = st.peers.len();
        s.banned = st.banned.len() + st.banned_ips.len();
        if let Some(m) = &st.meta {
            s.has_metadata = true;
            s.pieces_total = m.picker.piece_count();
            s.pieces_have = m.picker.have().count_ones();
            s.total_bytes = m.total_bytes;
            s.have_bytes = m
                .picker
                .have()
                .iter_ones()
                .map(|p| u64::from(m.payload.get(p.as_usize()).copied().unwrap_or(0)))
                .sum();
            s.complete = m.picker.have().is_full();
        }
        s
    }

    /// Connects to `addr` (and reconnects while the torrent is incomplete on either side).
    pub fn add_peer(&self, addr: SocketAddr) {
        lock(&self.shared.state).dial.entry(addr).or_default();
    }

    /// The .torrent-style metadata (the raw info dictionary), once known.
    pub fn info_bytes(&self) -> Option<Bytes> {
        lock(&self.shared.state).meta.as_ref().map(|m| m.info.clone())
    }

    /// Waits until every piece is verified. Fails if the torrent stops first or hits a
    /// storage error.
    pub async fn wait_complete(&self) -> Result<(), Error> {
        let mut rx = self.shared.complete.subscribe();
        let mut stop = self.shared.stop.subscribe();
        loop {
            if *rx.borrow_and_update() {
                return Ok(());
            }
            if *stop.borrow_and_update() {
                return Err(self.fatal().unwrap_or(Error::Shutdown));
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(Error::Shutdown) },
                r = stop.changed() => if r.is_err() { return Err(Error::Shutdown) },
            }
        }
    }

    /// Waits until the metadata is known (immediately for .torrent files).
    pub async fn wait_metadata(&self) -> Result<(), Error> {
        let mut rx = self.shared.metadata_ready.subscribe();
        let mut stop = self.shared.stop.subscribe();
        loop {
            if *rx.borrow_and_update() {
                return Ok(());
            }
            if *stop.borrow_and_update() {
                return Err(Error::Shutdown);
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(Error::Shutdown) },
                r = stop.changed() => if r.is_err() { return Err(Error::Shutdown) },
            }
        }
    }

    fn fatal(&self) -> Option<Error> {
        lock(&self.shared.fatal).clone().map(|reason| Error::Stopped { reason })
    }

    /// Stops the torrent: closes its connections, waits for pending verification, saves
    /// resume data. Idempotent.
    pub async fn stop(&self) {
        let storage = {
            let mut st = lock(&self.shared.state);
            st.stopped = true;
            for p in st.peers.values() {
                let _ = p.tx.send(PeerCmd::Close);
            }
            st.meta.as_ref().map(|m| (m.storage.clone(), m.disk.clone()))
        };
        self.shared.stop.send_replace(true);
        if let Some((storage, disk)) = storage {
            // Blocks already received are written (and their pieces verified) before the
            // resume data is saved.
            disk.drain(Duration::from_secs(30)).await;
            let resume = self.shared.resume_file.clone();
            let _ = tokio::task::spawn_blocking(move || {
                storage.wait_idle(Duration::from_secs(30));
                if let Some(path) = resume
                    && let Err(e) = storage.save_resume_file(&path)
                {
                    warn!(error = %e, "saving resume data failed");
                }
            })
            .await;
        }
        // Give peer tasks a moment to close their sockets cleanly.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&self.shared.state).peers.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.hash_thread_stop.store(true, Ordering::Relaxed);
    }
}

/// Opens storage for the metadata in `torrent` (a whole .torrent file), checks existing
/// data, and makes the torrent downloadable. Runs on a blocking thread.
fn init_metadata(shared: &Arc<TorrentShared>, torrent: &[u8]) -> Result<(), Error> {
    if lock(&shared.state).meta.is_some() {
        // A second copy of the metadata (two peers finished BEP 9 at once) changes nothing.
        return Ok(());
    }
    let meta = Metainfo::parse(torrent)?;
    let pl = meta.piece_length();
    let mut trees = HashMap::new();
    let mut missing = Vec::new();
    if meta.version() != Version::V1 {
        for f in meta.files() {
            let Some(root) = f.pieces_root() else { continue };
            if f.length() <= pl || trees.contains_key(root) {
                continue;
            }
            let layer: Option<Vec<MerkleHash>> = meta
                .piece_layer(root)
                .map(|b| b.chunks_exact(32).filter_map(|c| <MerkleHash>::try_from(c).ok()).collect());
            match layer.and_then(|l| FileTree::new(*root, f.length(), pl, l)) {
                Some(t) => {
                    trees.insert(*root, t);
                }
                None => missing.push((*root, f.length())),
            }
        }
    }
    // A fetch with nothing to ask for cannot come from a torrent that parsed; if it did, storage
    // below refuses the torrent instead of waiting forever.
    let fetch =
        Some(LayerFetch::new(missing, pl, HASH_REQUESTS_PER_PEER, shared.settings.peer.request_timeout))
            .filter(|f| !f.is_complete());
    if fetch.is_some() && meta.version() == Version::V2 {
        // Without the layers v2 pieces cannot be verified: storage opens once they are in.
        info!("piece layers missing: fetching them from peers (BEP 52 hash requests)");
        let mut st = lock(&shared.state);
        st.trees = trees;
        st.layer_fetch = fetch;
        st.pending_info = Some(Bytes::copy_from_slice(meta.info_bytes()));
        st.fetch = None;
        return Ok(());
    }
    let layout = Layout::from_metainfo(&meta)?;
    let backend = FileBackend::new(&shared.save_path, &layout, &shared.settings.storage)?;
    let storage = Arc::new(Storage::new(layout, backend, shared.settings.storage.clone())?);
    let mut checked = false;
    if let Some(path) = &shared.resume_file
        && let Ok(bytes) =
            piecework_storage::ResumeData::read_file(path, shared.settings.storage.max_resume_size)
    {
        match storage.load_resume(&bytes) {
            Ok(r) => {
                info!(trusted = r.trusted, rechecked = r.rechecked, failed = r.failed, "resumed");
                checked = true;
            }
            Err(e) => warn!(error = %e, "resume data ignored"),
        }
    }
    if !checked
        && storage
            .layout()
            .files()
            .iter()
            .any(|f| f.is_stored() && shared.save_path.join(f.path().to_path_buf()).exists())
    {
        storage.recheck(&mut |_| {})?;
    }
    let n = storage.layout().piece_count();
    let sizes: Vec<u32> =
        (0..n).map(|p| storage.layout().piece_size(PieceIndex::new(p)).unwrap_or(0)).collect();
    // Pad files (hybrid torrents) are not payload: count what lands in real files.
    let payload: Vec<u32> = (0..n)
        .map(|p| {
            let piece = PieceIndex::new(p);
            let size = storage.layout().piece_size(piece).unwrap_or(0);
            storage
                .layout()
                .segments(piece, 0, size as usize)
                .map_or(size, |segs| segs.filter(|s| !s.pad).map(|s| s.len as u32).sum())
        })
        .collect();
    let total_bytes = payload.iter().map(|s| u64::from(*s)).sum();
    let have = storage.have();
    let complete = have.is_full();
    let s = &shared.settings;
    let picker = Picker::new(sizes, have, random_u64(), s.random_first_pieces, s.endgame_duplicates);
    let info = Bytes::copy_from_slice(meta.info_bytes());
    // Hashing results come back on a thread of their own, so the socket tasks never wait.
    {
        let storage = storage.clone();
        let control = shared.control.clone();
        let stop = shared.hash_thread_stop.clone();
        std::thread::Builder::new()
            .name("piecework-verdicts".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(r) = storage.wait_result(Duration::from_millis(100))
                        && control.send(Control::Verdict(r)).is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(Error::io("spawn verdict thread"))?;
    }
    let disk = DiskWriter::start(storage.clone(), Arc::downgrade(shared))?;
    let mut st = lock(&shared.state);
    st.meta = Some(MetaState { picker, storage, disk, info, total_bytes, payload });
    st.fetch = None;
    st.trees.extend(trees);
    st.pending_info = None;
    // A hybrid verifies by SHA-1; its layers are still fetched so v2 peers can be served.
    st.layer_fetch = fetch;
    drop(st);
    shared.metadata_ready.send_replace(true);
    if complete {
        shared.complete.send_replace(true);
    }
    Ok(())
}

async fn accept_loop(session: Arc<SessionInner>, listener: TcpListener) {
    let mut stop = session.stop.subscribe();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok((sock, addr)) => {
                    let session = session.clone();
                    tokio::spawn(async move {
                        if let Err(e) = incoming(session, sock, addr).await {
                            debug!(%addr, error = %e, "incoming connection refused");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn read_handshake(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<Handshake, Error> {
    let fut = async {
        loop {
            if let Some(h) = Handshake::decode(buf)? {
                return Ok(h);
            }
            if sock.read_buf(buf).await.map_err(Error::io("read handshake"))? == 0 {
                return Err(Error::Io {
                    op: "read handshake",
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| Error::Timeout)?
}

async fn incoming(session: Arc<SessionInner>, mut sock: TcpStream, addr: SocketAddr) -> Result<(), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    let hs = read_handshake(&mut sock, &mut buf, session.settings.peer.handshake_timeout).await?;
    let torrent = lock(&session.torrents).get(&hs.info_hash).cloned().ok_or(Error::UnknownInfoHash)?;
    {
        let st = lock(&torrent.state);
        if st.is_banned(addr) {
            return Err(Error::Banned(addr));
        }
        if st.stopped || st.peers.len() >= torrent.settings.max_peers_per_torrent {
            return Err(Error::Shutdown);
        }
    }
    run_peer(torrent, sock, addr, false, Some((hs, buf))).await;
    Ok(())
}

async fn connect(torrent: Arc<TorrentShared>, addr: SocketAddr) {
    let t = torrent.settings.connect_timeout;
    let r = tokio::time::timeout(t, TcpStream::connect(addr)).await;
    match r {
        Ok(Ok(sock)) => run_peer(torrent, sock, addr, true, None).await,
        Ok(Err(e)) => {
            let _ = torrent.control.send(Control::PeerClosed {
                key: 0,
                addr,
                outgoing: true,
                error: Some(Error::Io { op: "connect", source: e }),
            });
        }
        Err(_) => {
            let _ = torrent.control.send(Control::PeerClosed {
                key: 0,
                addr,
                outgoing: true,
                error: Some(Error::Timeout),
            });
        }
    }
}

enum Out {
    Frame(Bytes),
    Block(BlockRef),
}

/// Writes frames and serves blocks. Blocks are read from storage here, just before they go
/// out, so a long request queue costs no memory.
async fn writer(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    storage: Arc<TorrentShared>,
    counters: Arc<PeerCounters>,
) {
    const BATCH: usize = 64;
    let mut items: Vec<Out> = Vec::with_capacity(BATCH);
    let mut bufs: Vec<Bytes> = Vec::with_capacity(BATCH * 2);
    // Blocks are read into this one buffer, reused batch after batch: a fresh allocation per
    // read costs page faults (large ones are fresh mappings) on every block served.
    let mut pool = BytesMut::new();
    loop {
        items.clear();
        if rx.recv_many(&mut items, BATCH).await == 0 {
            break;
        }
        bufs.clear();
        // The previous batch's blocks are written and dropped, so this takes the buffer back
        // instead of allocating when it is large enough.
        let wanted: usize =
            items.iter().map(|it| if let Out::Block(b) = it { b.length as usize + ALIGN } else { 0 }).sum();
        pool.reserve(wanted);
        let mut payload = 0u64;
        let mut served = 0usize;
        let store = storage.storage();
        let mut i = 0;
        while i < items.len() {
            let b = match &items[i] {
                Out::Frame(f) => {
                    bufs.push(f.clone());
                    i += 1;
                    continue;
                }
                Out::Block(b) => *b,
            };
            let Some(store) = &store else {
                served += 1;
                i += 1;
                continue;
            };
            // Requests for consecutive blocks of one piece are read with one `pread` and
            // split into per-block slices of the same buffer.
            let mut run = 1;
            let mut len = b.length;
            let real = store.layout().piece_size(b.piece).unwrap_or(0);
            while let Some(Out::Block(n)) = items.get(i + run) {
                if n.piece != b.piece
                    || n.offset != b.offset.saturating_add(len)
                    || n.offset.saturating_add(n.length) > real
                {
                    break;
                }
                len += n.length;
                run += 1;
            }
            if run > 1 && b.offset.saturating_add(len) <= real {
                let mut data = carve(&mut pool, len as usize);
                if store.read_block(b.piece, b.offset, &mut data).is_ok() {
                    let data = data.freeze();
                    let mut at = 0usize;
                    for it in &items[i..i + run] {
                        let Out::Block(blk) = it else { continue };
                        let piece = piecework_wire::Piece {
                            index: blk.piece,
                            begin: blk.offset,
                            data: data.slice(at..at + blk.length as usize),
                        };
                        at += blk.length as usize;
                        if let Some(h) = piece.header() {
                            payload += u64::from(blk.length);
                            bufs.push(Bytes::copy_from_slice(&h));
                            bufs.push(piece.data);
                        }
                    }
                    served += run;
                    i += run;
                    continue;
                }
            }
            served += 1;
            i += 1;
            let mut data = carve(&mut pool, b.length as usize);
            if let Err(e) = read_block_padded(store, b, &mut data) {
                debug!(error = %e, "cannot serve a block");
                if counters.fast.load(Ordering::Relaxed) {
                    let mut f = BytesMut::new();
                    if Message::Reject(b).encode(&mut f).is_ok() {
                        bufs.push(f.freeze());
                    }
                }
                continue;
            }
            let piece = piecework_wire::Piece { index: b.piece, begin: b.offset, data: data.freeze() };
            let Some(h) = piece.header() else { continue };
            payload += u64::from(b.length);
            bufs.push(Bytes::copy_from_slice(&h));
            bufs.push(piece.data);
        }
        items.clear();
        if write_all_vectored(&mut w, &mut bufs).await.is_err() {
            break;
        }
        counters.up.fetch_add(payload, Ordering::Relaxed);
        storage.uploaded.fetch_add(payload, Ordering::Relaxed);
        counters.served.fetch_add(served, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

/// Reads a block to serve. v2 pieces end with their file, but libtorrent treats the rest
/// of the last piece as padding and requests it: those bytes are zeros.
fn read_block_padded(store: &Store, b: BlockRef, buf: &mut [u8]) -> Result<(), piecework_storage::Error> {
    let layout = store.layout();
    let size = layout.piece_size(b.piece)?;
    let end = u64::from(b.offset) + u64::from(b.length);
    if layout.version() != piecework_metainfo::Version::V1
        && end > u64::from(size)
        && end <= u64::from(layout.piece_length())
    {
        let real = size.saturating_sub(b.offset) as usize;
        buf[real..].fill(0);
        if real == 0 {
            return if store.has_piece(b.piece) {
                Ok(())
            } else {
                Err(piecework_storage::Error::PieceNotAvailable { piece: b.piece.get() })
            };
        }
        return store.read_block(b.piece, b.offset, &mut buf[..real]);
    }
    store.read_block(b.piece, b.offset, buf)
}

/// Alignment of the buffers blocks are read into.
const ALIGN: usize = 64;

/// A zeroed `len`-byte buffer taken from the front of `pool`'s spare room, starting on a
/// cache line: the kernel's copy out of the page cache runs markedly slower into memory that is
/// not cache-line aligned (and the allocator's large blocks start 16 bytes past a page).
fn carve(pool: &mut BytesMut, len: usize) -> BytesMut {
    pool.reserve(len + ALIGN);
    let skip = pool.as_ptr().wrapping_add(pool.len()).align_offset(ALIGN).min(ALIGN);
    let start = pool.len() + skip;
    pool.resize(start + len, 0);
    let mut out = pool.split_to(start + len);
    out.advance(start);
    out
}

async fn write_all_vectored(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    bufs: &mut [Bytes],
) -> std::io::Result<()> {
    let mut i = 0;
    let mut off = 0usize;
    while i < bufs.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&bufs[i][off..])
            .chain(bufs[i + 1..].iter().map(|b| &b[..]))
            .take(64)
            .map(IoSlice::new)
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < bufs.len() {
            let left = bufs[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
        while i < bufs.len() && bufs[i].len() == off {
            i += 1;
            off = 0;
        }
    }
    Ok(())
}

fn peer_ip4(addr: SocketAddr) -> Option<std::net::Ipv4Addr> {
    match addr.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

/// Runs one connection until it closes; reports the close to the control task.
async fn run_peer(
    torrent: Arc<TorrentShared>,
    sock: TcpStream,
    addr: SocketAddr,
    outgoing: bool,
    incoming: Option<(Handshake, BytesMut)>,
) {
    let key = torrent.next_key.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(PeerCounters::default());
    {
        let mut st = lock(&torrent.state);
        st.peers.insert(
            key,
            PeerEntry {
                addr,
                tx,
                has: None,
                interested: false,
                choked: true,
                counters: counters.clone(),
                last_down: 0,
                last_up: 0,
                down_rate: 0.0,
                up_rate: 0.0,
                seed: false,
            },
        );
        let n = st.peers.len();
        st.stats.peers_max = st.stats.peers_max.max(n);
    }
    let r = peer_loop(&torrent, sock, addr, outgoing, incoming, key, rx, counters).await;
    if let Err(e) = &r {
        debug!(%addr, error = %e, "peer closed");
    }
    let _ = torrent.control.send(Control::PeerClosed { key, addr, outgoing, error: r.err() });
}

#[allow(clippy::too_many_arguments)]
async fn peer_loop(
    torrent: &Arc<TorrentShared>,
    sock: TcpStream,
    addr: SocketAddr,
    outgoing: bool,
    incoming: Option<(Handshake, BytesMut)>,
    key: PeerKey,
    mut cmds: mpsc::UnboundedReceiver<PeerCmd>,
    counters: Arc<PeerCounters>,
) -> Result<(), Error> {
    let _ = sock.set_nodelay(true);
    let settings = &torrent.settings;
    let now = Instant::now();
    let (our_have, md_size) = {
        let st = lock(&torrent.state);
        match &st.meta {
            Some(m) => (Some(m.picker.have().clone()), Some(m.info.len() as u64)),
            None => (None, st.pending_info.as_ref().map(|i| i.len() as u64)),
        }
    };
    let info_hash = incoming.as_ref().map_or(torrent.handshake_hash, |(h, _)| h.info_hash);
    // A hybrid connection on the v1 hash offers the BEP 52 upgrade to v2, as libtorrent does.
    let upgrade = match torrent.hashes {
        InfoHashes::Hybrid(_, v2) if v2.truncated_id() != info_hash => Some(v2.truncated_id()),
        _ => None,
    };
    let mut reserved = torrent.reserved();
    if upgrade.is_some() {
        reserved = reserved.with(Feature::V2Upgrade);
    }
    let ours = Handshake { reserved, info_hash, peer_id: torrent.peer_id };
    let mut peer = Peer::new(now, settings.peer, ours, outgoing, peer_ip4(addr), our_have, md_size);
    if let Some(v2) = upgrade {
        peer.allow_v2_upgrade(v2);
    }
    let mut decoder = Decoder::with_limits(settings.peer.wire_limits);
    if let Some(h) = &md_size.and(lock(&torrent.state).meta.as_ref().map(|m| m.picker.piece_count())) {
        decoder.set_piece_count(Some(*h));
    }
    let (mut r, w) = sock.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(writer(w, out_rx, torrent.clone(), counters.clone()));
    let mut buf = BytesMut::with_capacity(settings.read_buffer);
    let mut handshaken = false;
    if let Some((hs, rest)) = incoming {
        peer.handle_handshake(now, &hs)?;
        handshaken = true;
        buf.extend_from_slice(&rest);
    }
    let mut stop = torrent.stop.subscribe();
    let mut served_seen = 0usize;
    let mut jobs = Vec::new();
    let result: Result<(), Error> = async {
        loop {
            // Decode whatever is buffered.
            let now = Instant::now();
            if !handshaken && let Some(hs) = Handshake::decode(&mut buf)? {
                peer.handle_handshake(now, &hs)?;
                handshaken = true;
            }
            if handshaken {
                // A read often brings many requests: `drain` trims the buffer once for them.
                for msg in decoder.drain(&mut buf) {
                    peer.handle_message(now, msg?)?;
                }
            }
            let served = counters.served.load(Ordering::Relaxed);
            peer.served(served - served_seen);
            served_seen = served;
            process_events(torrent, key, &mut peer, &out_tx, &mut jobs, now)?;
            if !jobs.is_empty() {
                // Waits when the disk threads are behind, so the socket is read no faster than
                // the disk takes the data.
                let disk = torrent.disk().ok_or(Error::Shutdown)?;
                for job in jobs.drain(..) {
                    disk.send(job).await?;
                }
            }
            flush(&mut peer, &out_tx, now)?;
            if buf.capacity() - buf.len() < settings.read_buffer / 4 {
                buf.reserve(settings.read_buffer);
            }
            let deadline = tokio::time::Instant::from_std(peer.poll_timeout());
            tokio::select! {
                n = r.read_buf(&mut buf) => {
                    if n.map_err(Error::io("read"))? == 0 {
                        return Ok(());
                    }
                }
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return Ok(()) };
                    let mut next = Some(cmd);
                    while let Some(cmd) = next {
                        if handle_cmd(torrent, key, &mut peer, &mut decoder, cmd)? {
                            return Ok(());
                        }
                        next = cmds.try_recv().ok();
                    }
                }
                _ = tokio::time::sleep_until(deadline) => peer.handle_timeout(Instant::now())?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    // Whatever was queued (a last `have`, a reject) goes out before the socket closes.
    let _ = flush(&mut peer, &out_tx, Instant::now());
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    let lost = peer.take_inflight();
    let mut st = lock(&torrent.state);
    let entry = st.peers.remove(&key);
    if let Some(m) = st.meta.as_mut() {
        for b in lost {
            m.picker.lost(key, b);
        }
        if let Some(has) = entry.as_ref().and_then(|e| e.has.as_ref()) {
            m.picker.remove_peer(has);
        }
    }
    if let Some(f) = st.fetch.as_mut() {
        for a in &mut f.asked {
            if a.is_some_and(|(k, _)| k == key) {
                *a = None;
            }
        }
    }
    if let Some(f) = st.layer_fetch.as_mut() {
        f.peer_gone(key);
    }
    result
}

fn flush(peer: &mut Peer, out: &mpsc::UnboundedSender<Out>, now: Instant) -> Result<(), Error> {
    let mut frame = BytesMut::new();
    let mut any = false;
    while let Some(t) = peer.poll_transmit() {
        any = true;
        match t {
            Transmit::Handshake(h) => h.encode(&mut frame),
            Transmit::Message(m) => m.encode(&mut frame)?,
        }
    }
    if any {
        peer.sent(now, 0);
        out.send(Out::Frame(frame.freeze())).map_err(|_| Error::Shutdown)?;
    }
    Ok(())
}

/// Returns true when the connection should close.
fn handle_cmd(
    torrent: &Arc<TorrentShared>,
    key: PeerKey,
    peer: &mut Peer,
    decoder: &mut Decoder,
    cmd: PeerCmd,
) -> Result<bool, Error> {
    match cmd {
        PeerCmd::Have(p) => {
            peer.we_have(p);
            update_interest(torrent, peer);
        }
        PeerCmd::Cancel(b) => peer.cancel(b),
        PeerCmd::Choke(c) => peer.set_choking(c),
        PeerCmd::Close => return Ok(true),
        PeerCmd::Refill => {
            let mut st = lock(&torrent.state);
            if st.meta.is_none() && st.fetch.is_some() {
                start_metadata_fetch(torrent, &mut st, key, peer, Instant::now())?;
            }
            request_hashes(torrent, &mut st, key, peer, Instant::now());
        }
        PeerCmd::Metadata => {
            let mut st = lock(&torrent.state);
            let Some(m) = st.meta.as_mut() else { return Ok(false) };
            let have = m.picker.have().clone();
            let size = m.info.len() as u64;
            decoder.set_piece_count(Some(have.len()));
            drop(st);
            peer.set_metadata(have, size)?;
        }
    }
    Ok(false)
}

fn update_interest(torrent: &Arc<TorrentShared>, peer: &mut Peer) {
    let st = lock(&torrent.state);
    let want = match (&st.meta, peer.peer_has()) {
        (Some(m), Some(h)) => m.picker.interesting(h),
        _ => false,
    };
    drop(st);
    peer.set_interested(want);
}

fn process_events(
    torrent: &Arc<TorrentShared>,
    key: PeerKey,
    peer: &mut Peer,
    out: &mpsc::UnboundedSender<Out>,
    jobs: &mut Vec<WriteJob>,
    now: Instant,
) -> Result<(), Error> {
    let mut writes: Vec<(BlockRef, Bytes)> = Vec::new();
    let mut cancels: Vec<(PeerKey, BlockRef)> = Vec::new();
    let mut interest_changed = false;
    let mut close_both_seeds = false;
    {
        let mut st = lock(&torrent.state);
        while let Some(ev) = peer.poll_event() {
            match ev {
                PeerEvent::Connected { .. } => {
                    debug!(v2 = torrent.v2_connection(peer), client = ?peer.peer_id().and_then(|p| p.client()), "handshake done");
                    if let Some(e) = st.peers.get(&key) {
                        e.counters.fast.store(peer.fast(), Ordering::Relaxed);
                    }
                }
                PeerEvent::ExtensionHandshake => {
                    if st.meta.is_none() && st.pending_info.is_none() {
                        start_metadata_fetch(torrent, &mut st, key, peer, now)?;
                    }
                }
                PeerEvent::Bitfield => {
                    let has = peer.peer_has().cloned();
                    if let (Some(m), Some(h)) = (st.meta.as_mut(), &has) {
                        m.picker.add_peer(h);
                    }
                    if let Some(e) = st.peers.get_mut(&key) {
                        e.has = has;
                    }
                    interest_changed = true;
                }
                PeerEvent::Have(p) => {
                    if let Some(m) = st.meta.as_mut() {
                        m.picker.add_have(p);
                    }
                    if let Some(h) = st.peers.get_mut(&key).and_then(|e| e.has.as_mut()) {
                        h.set(p);
                    }
                    interest_changed = true;
                }
                PeerEvent::Interest(i) => {
                    let slots = torrent.settings.unchoke_slots;
                    let unchoked = st.peers.values().filter(|e| !e.choked).count();
                    if let Some(e) = st.peers.get_mut(&key) {
                        e.interested = i;
                        // A free upload slot is given at once instead of at the next rechoke.
                        if i && e.choked && unchoked < slots {
                            e.choked = false;
                            peer.set_choking(false);
                        }
                    }
                }
                PeerEvent::Unchoked | PeerEvent::Choked => {}
                PeerEvent::Block { block, data } => {
                    counters_add(torrent, block.length);
                    if let Some(m) = st.meta.as_mut()
                        && let Some(r) = m.picker.received(key, block)
                    {
                        for other in r.cancel {
                            cancels.push((other, block));
                        }
                        writes.push((block, data));
                    }
                }
                PeerEvent::RequestsLost(v) => {
                    if let Some(m) = st.meta.as_mut() {
                        for b in v {
                            m.picker.lost(key, b);
                        }
                    }
                }
                PeerEvent::Serve(b) => {
                    out.send(Out::Block(b)).map_err(|_| Error::Shutdown)?;
                }
                PeerEvent::Metadata(m) => on_metadata(torrent, &mut st, key, peer, m, now)?,
                PeerEvent::HashRequest(r) => {
                    let answer = match st.trees.get(&r.pieces_root) {
                        Some(t) if torrent.v2_connection(peer) => {
                            t.answer(&r, torrent.settings.peer.max_hash_request).ok()
                        }
                        _ => None,
                    };
                    match answer {
                        Some(h) => peer.send_message(Message::Hashes(hashes_message(r, &h))),
                        None => peer.send_message(Message::HashReject(r)),
                    }
                }
                PeerEvent::Hashes(h) => on_hashes(torrent, &mut st, key, &h, now)?,
                PeerEvent::HashReject(r) => {
                    if let Some(f) = st.layer_fetch.as_mut() {
                        f.on_reject(key, &r, now);
                    }
                }
            }
        }
        request_hashes(torrent, &mut st, key, peer, now);
        for (other, b) in cancels.drain(..) {
            if let Some(e) = st.peers.get(&other) {
                let _ = e.tx.send(PeerCmd::Cancel(b));
            }
        }
        if let Some(m) = st.meta.as_ref()
            && m.picker.have().is_full()
            && peer.peer_has().is_some_and(Bitfield::is_full)
        {
            close_both_seeds = true;
        }
    }
    if close_both_seeds {
        if let Some(e) = lock(&torrent.state).peers.get_mut(&key) {
            e.seed = true;
        }
        return Err(Error::Protocol { rule: "both sides are seeds" });
    }
    // Consecutive blocks of a piece go to disk together (one vectored write); the writes
    // themselves happen on the disk threads, see `DiskWriter`.
    let mut rest = writes.into_iter().peekable();
    while let Some(first) = rest.next() {
        let (piece, offset) = (first.0.piece, first.0.offset);
        let mut blocks = vec![first];
        while let Some((b, _)) = rest.peek()
            && b.piece == piece
            && u64::from(b.offset) == u64::from(offset) + blocks.len() as u64 * u64::from(BLOCK_SIZE)
            && blocks.len() < MAX_WRITE_RUN
        {
            blocks.extend(rest.next());
        }
        jobs.push(WriteJob { key, piece, offset, blocks });
    }
    if interest_changed {
        update_interest(torrent, peer);
    }
    request_more(torrent, key, peer, now);
    Ok(())
}

/// Most blocks handed to storage in one write (1 MiB).
const MAX_WRITE_RUN: usize = 64;

/// Write jobs queued per disk thread before the socket tasks wait (each job holds at most
/// one read buffer's worth of blocks).
const DISK_QUEUE: usize = 16;

/// Consecutive blocks of one piece, received from one peer, on their way to storage.
struct WriteJob {
    key: PeerKey,
    piece: PieceIndex,
    offset: u32,
    blocks: Vec<(BlockRef, Bytes)>,
}

/// Writes received blocks on threads of their own (one per hashing thread), so a socket task
/// goes back to reading while its blocks are written and hashed. A piece always goes to the
/// same thread, so its blocks reach storage in the order they came and storage hashes them
/// as they are written instead of reading the piece back.
struct DiskWriter {
    queues: Vec<mpsc::Sender<WriteJob>>,
    /// Jobs queued or being written.
    pending: Arc<AtomicUsize>,
}

impl DiskWriter {
    /// The threads end when the writer is dropped (with the torrent's metadata).
    fn start(storage: Arc<Store>, torrent: std::sync::Weak<TorrentShared>) -> Result<Arc<Self>, Error> {
        let n = storage.settings().effective_hash_threads().max(1);
        let pending = Arc::new(AtomicUsize::new(0));
        let mut queues = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = mpsc::channel::<WriteJob>(DISK_QUEUE);
            let (storage, torrent, pending) = (storage.clone(), torrent.clone(), pending.clone());
            std::thread::Builder::new()
                .name(format!("piecework-disk-{i}"))
                .spawn(move || {
                    while let Some(job) = rx.blocking_recv() {
                        write_job(&storage, &torrent, job);
                        pending.fetch_sub(1, Ordering::AcqRel);
                    }
                })
                .map_err(Error::io("spawn disk thread"))?;
            queues.push(tx);
        }
        Ok(Arc::new(Self { queues, pending }))
    }

    async fn send(&self, job: WriteJob) -> Result<(), Error> {
        let q = self.queues.get(job.piece.as_usize() % self.queues.len()).ok_or(Error::Shutdown)?;
        self.pending.fetch_add(1, Ordering::AcqRel);
        if q.send(job).await.is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the queued blocks to be written.
    async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Runs on a disk thread. A block that cannot be written goes back to the picker; a storage
/// environment error (disk full, ...) is fatal and closes the peer's connection.
fn write_job(storage: &Store, torrent: &std::sync::Weak<TorrentShared>, job: WriteJob) {
    let slices: Vec<&[u8]> = job.blocks.iter().map(|(_, d)| &d[..]).collect();
    let Err(e) = storage.write_blocks(job.piece, job.offset, &slices) else { return };
    warn!(error = %e, "writing a block failed");
    let Some(torrent) = torrent.upgrade() else { return };
    let mut st = lock(&torrent.state);
    if let Some(m) = st.meta.as_mut() {
        for (b, _) in &job.blocks {
            m.picker.unreceive(*b);
        }
    }
    if e.is_environment() {
        *lock(&torrent.fatal) = Some(e.to_string());
        if let Some(p) = st.peers.get(&job.key) {
            let _ = p.tx.send(PeerCmd::Close);
        }
    }
}

/// Hash requests kept outstanding at one peer (libtorrent keeps two).
const HASH_REQUESTS_PER_PEER: usize = 2;

/// Asks a v2 peer for missing piece layers, if any.
fn request_hashes(
    torrent: &Arc<TorrentShared>,
    st: &mut TorrentState,
    key: PeerKey,
    peer: &mut Peer,
    now: Instant,
) {
    let Some(f) = st.layer_fetch.as_mut() else { return };
    // Only after the handshake (our own handshake must go out first) and on v2 connections.
    if peer.peer_id().is_none() || !torrent.v2_connection(peer) {
        return;
    }
    for r in f.requests_for(key, now) {
        peer.send_message(Message::HashRequest(r));
    }
}

/// A `hashes` message: verified against the file's root and stored; once every layer is in,
/// a v2 torrent opens its storage and a hybrid starts answering hash requests.
fn on_hashes(
    torrent: &Arc<TorrentShared>,
    st: &mut TorrentState,
    key: PeerKey,
    h: &piecework_wire::Hashes,
    now: Instant,
) -> Result<(), Error> {
    let Some(f) = st.layer_fetch.as_mut() else { return Ok(()) };
    match f.on_hashes(key, h, now) {
        Received::Stored => {}
        Received::Unsolicited => return Ok(()),
        Received::Bad => {
            // Counted like a failed piece; the connection closes and the request goes to
            // someone else.
            if let Some(addr) = st.peers.get(&key).map(|e| e.addr) {
                let strikes = st.strikes.entry(addr).or_insert(0);
                *strikes += 1;
                if *strikes >= torrent.settings.ban_strikes {
                    warn!(%addr, "banning peer that sent bad hashes");
                    if addr.ip().is_loopback() {
                        st.banned.insert(addr);
                    } else {
                        st.banned_ips.insert(addr.ip());
                    }
                }
            }
            return Err(Error::Protocol { rule: "hashes that fail their merkle proof" });
        }
    }
    if !f.is_complete() {
        return Ok(());
    }
    let layers = f.layers().unwrap_or_default();
    st.layer_fetch = None;
    match st.pending_info.take() {
        Some(info) => {
            let _ = torrent.control.send(Control::Layers(torrent_with_layers(&info, &layers)));
        }
        None => {
            let pl = st.meta.as_ref().map_or(0, |m| u64::from(m.storage.layout().piece_length()));
            for (root, len, layer) in layers {
                if let Some(t) = FileTree::new(root, len, pl, layer) {
                    st.trees.insert(root, t);
                }
            }
            info!("piece layers received: answering v2 hash requests");
        }
    }
    Ok(())
}

fn counters_add(torrent: &TorrentShared, n: u32) {
    torrent.downloaded.fetch_add(u64::from(n), Ordering::Relaxed);
}

fn request_more(torrent: &Arc<TorrentShared>, key: PeerKey, peer: &mut Peer, now: Instant) {
    let slots = peer.request_slots(now);
    if slots == 0 {
        return;
    }
    let Some(has) = peer.peer_has() else { return };
    let mut st = lock(&torrent.state);
    let Some(m) = st.meta.as_mut() else { return };
    let choked = peer.peer_choking();
    let allowed = |p: PieceIndex| !choked || peer.may_request(p);
    let blocks = m.picker.pick(key, has, &allowed, slots);
    drop(st);
    for b in blocks {
        peer.request(now, b);
    }
}

fn start_metadata_fetch(
    torrent: &Arc<TorrentShared>,
    st: &mut TorrentState,
    key: PeerKey,
    peer: &mut Peer,
    now: Instant,
) -> Result<(), Error> {
    let (Some(size), Some(_)) = (peer.metadata_size(), peer.peer_metadata_id()) else { return Ok(()) };
    if size == 0 || size > torrent.settings.peer.max_metadata_size {
        return Err(Error::Protocol { rule: "metadata size out of range" });
    }
    let fetch = st.fetch.get_or_insert_with(|| {
        let n = MetadataMessage::piece_count(size) as usize;
        MetadataFetch { size, pieces: vec![None; n], asked: vec![None; n] }
    });
    if fetch.size != size {
        // Another peer announced another size; the hash check decides who was right.
        return Ok(());
    }
    let retry = torrent.settings.peer.request_timeout;
    for i in 0..fetch.pieces.len() {
        let stale = fetch.asked[i].is_none_or(|(_, at)| now.saturating_duration_since(at) >= retry);
        if fetch.pieces[i].is_none()
            && stale
            && peer.send_metadata(&MetadataMessage::Request { piece: i as u32 })
        {
            fetch.asked[i] = Some((key, now));
        }
    }
    Ok(())
}

fn on_metadata(
    torrent: &Arc<TorrentShared>,
    st: &mut TorrentState,
    key: PeerKey,
    peer: &mut Peer,
    m: MetadataMessage,
    now: Instant,
) -> Result<(), Error> {
    match m {
        MetadataMessage::Request { piece } => {
            // Also while a v2 torrent waits for its piece layers: others can fetch both.
            let info = st.meta.as_ref().map(|m| &m.info).or(st.pending_info.as_ref());
            let reply = match info {
                Some(info) => {
                    let len = info.len();
                    let start = piece as usize * piecework_wire::METADATA_PIECE_LEN;
                    if start < len {
                        let end = (start + piecework_wire::METADATA_PIECE_LEN).min(len);
                        MetadataMessage::Data { piece, total_size: len as u64, data: info.slice(start..end) }
                    } else {
                        MetadataMessage::Reject { piece }
                    }
                }
                None => MetadataMessage::Reject { piece },
            };
            peer.send_metadata(&reply);
        }
        MetadataMessage::Data { piece, total_size, data } => {
            let Some(f) = st.fetch.as_mut() else { return Ok(()) };
            if f.size != total_size {
                return Ok(());
            }
            if let Some(slot) = f.pieces.get_mut(piece as usize) {
                *slot = Some(data);
            }
            if f.pieces.iter().all(Option::is_some) {
                let mut info = BytesMut::with_capacity(f.size as usize);
                for p in f.pieces.iter().flatten() {
                    info.extend_from_slice(p);
                }
                let info = info.freeze();
                let ok_v1 = torrent.hashes.v1().is_none_or(|h| InfoHashV1::of_info_bytes(&info) == h);
                let ok_v2 = torrent
                    .hashes
                    .v2()
                    .is_none_or(|h| piecework_metainfo::InfoHashV2::of_info_bytes(&info) == h);
                if ok_v1 && ok_v2 {
                    st.fetch = None;
                    let _ = torrent.control.send(Control::Metadata(info));
                } else {
                    // Start over; the peer that sent the bad piece is unknown, so no ban.
                    warn!("metadata failed the info-hash check");
                    let n = f.pieces.len();
                    f.pieces = vec![None; n];
                    f.asked = vec![None; n];
                    return Err(Error::MetadataMismatch);
                }
            }
        }
        MetadataMessage::Reject { piece } => {
            if let Some(f) = st.fetch.as_mut()
                && let Some(a) = f.asked.get_mut(piece as usize)
            {
                *a = None;
            }
        }
        _ => {}
    }
    if st.meta.is_none() && st.fetch.is_some() {
        start_metadata_fetch(torrent, st, key, peer, now)?;
    }
    Ok(())
}

/// A .torrent file around raw info bytes (so the parser sees exactly those bytes).
fn torrent_from_info(info: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(info.len() + 16);
    t.extend_from_slice(b"d4:info");
    t.extend_from_slice(info);
    t.push(b'e');
    t
}

async fn control_loop(
    torrent: Arc<TorrentShared>,
    mut rx: mpsc::UnboundedReceiver<Control>,
    mut session_stop: watch::Receiver<bool>,
) {
    let mut stop = torrent.stop.subscribe();
    let s = &torrent.settings;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rechoke = Instant::now();
    let mut last_optimistic = Instant::now();
    let mut last_rate = Instant::now();
    let mut last_resume = Instant::now();
    let mut rng = Rng::new(random_u64());
    let mut tracker = crate::announce::Announcer::new(&torrent);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = session_stop.changed() => break,
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                match msg {
                    Control::Verdict(r) => on_verdict(&torrent, r),
                    Control::PeerClosed { key, addr, outgoing, error } => {
                        let mut st = lock(&torrent.state);
                        let both_seeds = matches!(error, Some(Error::Protocol { rule: "both sides are seeds" }))
                            || matches!(error, Some(Error::SelfConnection));
                        if let Some(d) = st.dial.get_mut(&addr) {
                            d.connected = false;
                            d.finished |= both_seeds;
                            if outgoing && error.is_some() && !both_seeds && key == 0 {
                                d.failures += 1;
                            } else if key != 0 {
                                d.failures = 0;
                            }
                            d.next = Some(Instant::now() + s.reconnect_interval);
                        }
                        if st.optimistic == Some(key) {
                            st.optimistic = None;
                        }
                    }
                    Control::Metadata(info) => {
                        let t = torrent.clone();
                        let r = tokio::task::spawn_blocking(move || init_metadata(&t, &torrent_from_info(&info))).await;
                        match r {
                            Ok(Ok(())) => {
                                info!("metadata received and verified");
                                let st = lock(&torrent.state);
                                for p in st.peers.values() {
                                    let _ = p.tx.send(PeerCmd::Metadata);
                                    // Starts the hash requests if piece layers are missing.
                                    let _ = p.tx.send(PeerCmd::Refill);
                                }
                            }
                            Ok(Err(e)) => {
                                warn!(error = %e, "metadata unusable");
                                *lock(&torrent.fatal) = Some(e.to_string());
                                torrent.stop.send_replace(true);
                            }
                            Err(_) => break,
                        }
                    }
                    Control::Layers(t) => {
                        let tc = torrent.clone();
                        match tokio::task::spawn_blocking(move || init_metadata(&tc, &t)).await {
                            Ok(Ok(())) => {
                                info!("piece layers received and verified");
                                let st = lock(&torrent.state);
                                for p in st.peers.values() {
                                    let _ = p.tx.send(PeerCmd::Metadata);
                                }
                            }
                            Ok(Err(e)) => {
                                warn!(error = %e, "metadata with the fetched piece layers unusable");
                                *lock(&torrent.fatal) = Some(e.to_string());
                                torrent.stop.send_replace(true);
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                dial(&torrent, now);
                if now.duration_since(last_rate) >= Duration::from_secs(1) {
                    update_rates(&torrent, now.duration_since(last_rate));
                    last_rate = now;
                }
                if now.duration_since(last_rechoke) >= s.rechoke_interval {
                    let rotate = now.duration_since(last_optimistic) >= s.optimistic_interval;
                    if rotate {
                        last_optimistic = now;
                    }
                    rechoke(&torrent, rotate, &mut rng);
                    last_rechoke = now;
                }
                if now.duration_since(last_resume) >= s.resume_interval {
                    last_resume = now;
                    save_resume(&torrent).await;
                }
                {
                    // Metadata and hash requests that went unanswered are asked of someone else.
                    let st = lock(&torrent.state);
                    if st.meta.is_none() || st.layer_fetch.is_some() {
                        for p in st.peers.values() {
                            let _ = p.tx.send(PeerCmd::Refill);
                        }
                    }
                }
                tracker.tick(&torrent, now);
            }
        }
    }
    tracker.stopped(&torrent).await;
}

async fn save_resume(torrent: &Arc<TorrentShared>) {
    let (Some(path), Some(storage)) = (torrent.resume_file.clone(), torrent.storage()) else { return };
    let r = tokio::task::spawn_blocking(move || storage.save_resume_file(&path)).await;
    if let Ok(Err(e)) = r {
        warn!(error = %e, "saving resume data failed");
    }
}

fn dial(torrent: &Arc<TorrentShared>, now: Instant) {
    let mut st = lock(&torrent.state);
    if st.stopped {
        return;
    }
    let max = torrent.settings.max_peers_per_torrent;
    let connected: HashSet<SocketAddr> = st.peers.values().map(|p| p.addr).collect();
    let mut n = st.peers.len();
    let banned = st.banned.clone();
    let banned_ips = st.banned_ips.clone();
    let max_fail = torrent.settings.max_connect_failures;
    let mut to_dial = Vec::new();
    for (addr, d) in st.dial.iter_mut() {
        if n >= max {
            break;
        }
        if d.connected || d.finished || d.failures >= max_fail || connected.contains(addr) {
            continue;
        }
        if banned.contains(addr) || banned_ips.contains(&addr.ip()) {
            continue;
        }
        if d.next.is_some_and(|t| t > now) {
            continue;
        }
        d.connected = true;
        n += 1;
        to_dial.push(*addr);
    }
    drop(st);
    for addr in to_dial {
        tokio::spawn(connect(torrent.clone(), addr));
    }
}

fn update_rates(torrent: &Arc<TorrentShared>, dt: Duration) {
    let secs = dt.as_secs_f64().max(0.001);
    let mut st = lock(&torrent.state);
    let mut down = 0.0;
    let mut up = 0.0;
    for e in st.peers.values_mut() {
        let d = e.counters.down.load(Ordering::Relaxed);
        let u = e.counters.up.load(Ordering::Relaxed);
        e.down_rate = 0.5 * e.down_rate + 0.5 * (d - e.last_down) as f64 / secs;
        e.up_rate = 0.5 * e.up_rate + 0.5 * (u - e.last_up) as f64 / secs;
        e.last_down = d;
        e.last_up = u;
        up += e.up_rate;
    }
    let total_down = torrent.downloaded.load(Ordering::Relaxed);
    let prev = st.stats.downloaded;
    let sample = (total_down - prev.min(total_down)) as f64 / secs;
    down += if st.stats.download_rate == 0.0 { sample } else { 0.5 * st.stats.download_rate + 0.5 * sample };
    st.stats.downloaded = total_down;
    st.stats.download_rate = down;
    st.stats.upload_rate = up;
}

/// Tit-for-tat: unchoke the interested peers that give us the most (or, as a seed, take
/// the most), plus one optimistic unchoke that rotates.
fn rechoke(torrent: &Arc<TorrentShared>, rotate: bool, rng: &mut Rng) {
    let mut st = lock(&torrent.state);
    let seeding = st.meta.as_ref().is_some_and(|m| m.picker.have().is_full());
    let mut interested: Vec<(f64, PeerKey)> = st
        .peers
        .iter()
        .filter(|(_, e)| e.interested)
        .map(|(k, e)| (if seeding { e.up_rate } else { e.down_rate }, *k))
        .collect();
    interested.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slots = torrent.settings.unchoke_slots;
    let mut unchoke: HashSet<PeerKey> = interested.iter().take(slots).map(|(_, k)| *k).collect();
    let rest: Vec<PeerKey> = interested.iter().skip(slots).map(|(_, k)| *k).collect();
    if rotate || st.optimistic.is_none_or(|k| !st.peers.contains_key(&k)) {
        st.optimistic =
            if rest.is_empty() { None } else { Some(rest[(rng.next() % rest.len() as u64) as usize]) };
    }
    if let Some(k) = st.optimistic {
        unchoke.insert(k);
    }
    for (k, e) in st.peers.iter_mut() {
        let choke = !unchoke.contains(k);
        if e.choked != choke {
            e.choked = choke;
            let _ = e.tx.send(PeerCmd::Choke(choke));
        }
    }
}

fn on_verdict(torrent: &Arc<TorrentShared>, r: piecework_storage::PieceResult) {
    let mut st = lock(&torrent.state);
    let Some(m) = st.meta.as_mut() else { return };
    match r.verdict {
        PieceVerdict::Verified => {
            m.picker.verified(r.piece);
            let complete = m.picker.have().is_full();
            for p in st.peers.values() {
                let _ = p.tx.send(PeerCmd::Have(r.piece));
            }
            if complete {
                info!("download complete");
                drop(st);
                torrent.complete.send_replace(true);
            }
        }
        PieceVerdict::Failed { bad_blocks } => {
            let v2 = matches!(torrent.hashes, InfoHashes::V2(_));
            let blame = m.picker.failed(r.piece, if v2 { Some(&bad_blocks) } else { None });
            st.stats.hash_failures += 1;
            warn!(piece = r.piece.get(), "piece failed verification");
            smart_ban(torrent, &mut st, &blame);
            // The freed blocks go to whoever has room for them.
            for p in st.peers.values() {
                let _ = p.tx.send(PeerCmd::Refill);
            }
        }
        PieceVerdict::Unreadable(e) => {
            warn!(error = %e, "piece unreadable after writing");
            m.picker.failed(r.piece, None);
        }
        _ => {}
    }
}

/// Bans the peers whose data failed: at once when one peer sent every bad block, else after
/// [`Settings::ban_strikes`] failed pieces it contributed to.
fn smart_ban(torrent: &Arc<TorrentShared>, st: &mut TorrentState, blame: &[PeerKey]) {
    let mut culprits: Vec<PeerKey> = blame.to_vec();
    culprits.sort_unstable();
    culprits.dedup();
    let sole = culprits.len() == 1;
    for k in culprits {
        let Some(addr) = st.peers.get(&k).map(|e| e.addr) else { continue };
        let strikes = st.strikes.entry(addr).or_insert(0);
        *strikes += 1;
        if sole || *strikes >= torrent.settings.ban_strikes {
            warn!(%addr, "banning peer that sent corrupt data");
            // Every loopback peer shares one IP, so those are banned by address and port.
            if addr.ip().is_loopback() {
                st.banned.insert(addr);
            } else {
                st.banned_ips.insert(addr.ip());
            }
            if let Some(e) = st.peers.get(&k) {
                let _ = e.tx.send(PeerCmd::Close);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest as _;

    #[test]
    fn carved_buffers_are_aligned_zeroed_and_the_pool_is_reused() {
        let mut pool = BytesMut::new();
        pool.reserve(4 * (16384 + ALIGN));
        let first = pool.as_ptr() as usize;
        for round in 0..3 {
            let mut blocks = Vec::new();
            for len in [16384, 1000, 16384] {
                let mut b = carve(&mut pool, len);
                assert_eq!(b.len(), len);
                assert_eq!(b.as_ptr() as usize % ALIGN, 0, "round {round}");
                assert!(b.iter().all(|&x| x == 0));
                b.fill(0xab); // the next round must see zeros again
                blocks.push(b.freeze());
            }
            drop(blocks);
            pool.reserve(4 * (16384 + ALIGN));
            // Everything carved was dropped: the same memory serves the next round.
            assert!((pool.as_ptr() as usize).abs_diff(first) < ALIGN, "round {round}");
        }
    }

    #[test]
    fn torrent_from_info_wraps_raw_bytes() {
        assert_eq!(torrent_from_info(b"d1:ai1ee"), b"d4:infod1:ai1eee");
    }

    #[test]
    fn sha1_of_info_matches_v1_hash() {
        let info = b"d4:name1:xe";
        let mut h = sha1::Sha1::new();
        h.update(info);
        let d: [u8; 20] = h.finalize().into();
        assert_eq!(InfoHashV1::of_info_bytes(info), InfoHashV1::from_bytes(d));
    }
}
