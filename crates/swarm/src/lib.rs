//! A BitTorrent engine on tokio: seeds and downloads torrents with the piecework crates.
//!
//! What it does:
//! - **Per-peer protocol** ([`Peer`]): a sans-IO state machine with time passed in: the
//!   handshake and extension handshake ([BEP 3], [BEP 10]), the fast extension ([BEP 6]: have
//!   all/none, rejecting requests while choking, allowed-fast pieces), keep-alives, timeouts,
//!   and a request pipeline whose depth follows the peer's measured rate.
//! - **Piece picking** ([`Picker`]): partial pieces first, random first pieces, then rarest
//!   first, end game with duplicate requests and cancels.
//! - **The engine** ([`Session`], [`TorrentHandle`]): outgoing connections, an incoming
//!   listener, choking (tit-for-tat plus an optimistic unchoke), upload serving, piece
//!   verification on storage's hashing threads, smart ban of peers that send corrupt data,
//!   resume data, tracker announces ([`piecework_tracker`]), statistics ([`Stats`]) and a
//!   clean shutdown.
//! - **Magnet links**: the metadata is fetched with [BEP 9] `ut_metadata`, checked against the
//!   info-hash(es), and served to other peers.
//! - **v2 piece layers** ([BEP 52] `hash request` / `hashes` / `hash reject`): a v2 torrent
//!   whose `piece layers` are missing (a v2 magnet link, or a .torrent without them) asks v2
//!   peers for each file's piece layer, checks every answer's uncle hashes up to the file's
//!   pieces root, and opens storage once all layers are in; a peer whose hashes fail the proof
//!   is dropped and, after [`Settings::ban_strikes`] offences, banned. Hash requests from
//!   peers are answered from the verified layers (the piece layer and the layers above it, up
//!   to [`PeerSettings::max_hash_request`] hashes); block-layer requests are rejected. A hybrid
//!   torrent verifies by SHA-1 but still fetches missing layers, to answer v2 peers.
//!   A connection is v2 when its handshake names the truncated v2 info-hash; a hybrid
//!   torrent's connections on the v1 hash offer the BEP 52 upgrade bit and switch to the v2
//!   hash when the peer takes it (as libtorrent does, both ways).
//!
//! The block path is copy-free: a `piece` message's payload is a [`bytes::Bytes`] split off
//! the socket's read buffer and written to disk from there; served blocks are read from
//! storage into one buffer and written after their 13-byte header with a vectored write.
//!
//! What it does not do (yet): DHT, PEX, local peer discovery, µTP, encryption (MSE/PE),
//! web seeds, block-layer hash requests (answered with `hash reject`), rate limits.
//!
//! ```
//! use std::time::Duration;
//! use piecework_metainfo::{TorrentBuilder, Version};
//! use piecework_swarm::{AddTorrent, Session, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
//! std::fs::create_dir_all(dir.path().join("seed"))?;
//! let file = dir.path().join("seed/demo.bin");
//! std::fs::write(&file, &data)?;
//! let torrent = TorrentBuilder::new(Version::Hybrid).build_path(&file, &mut |_, _| {})?;
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let seeder = Session::new(Settings::default()).await?;
//!     seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await?;
//!     let leecher = Session::new(Settings::default()).await?;
//!     let addr = seeder.listen_addr().expect("listening");
//!     let t = leecher.add_torrent(AddTorrent::torrent(torrent, dir.path().join("out")).peer(addr)).await?;
//!     tokio::time::timeout(Duration::from_secs(60), t.wait_complete()).await.expect("in time")?;
//!     assert!(t.stats().complete);
//!     leecher.shutdown().await;
//!     seeder.shutdown().await;
//!     Ok::<_, piecework_swarm::Error>(())
//! })?;
//! assert_eq!(std::fs::read(dir.path().join("out/demo.bin"))?, data);
//! # Ok(())
//! # }
//! ```
//!
//! ## Feature flags
//! None.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
//! [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
//! [BEP 10]: https://www.bittorrent.org/beps/bep_0010.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod announce;
mod engine;
mod error;
mod layers;
pub mod peer;
pub mod picker;
mod settings;

pub use engine::{AddTorrent, Session, Source, Stats, TorrentHandle};
pub use error::Error;
pub use peer::{Peer, PeerEvent, Transmit};
pub use picker::Picker;
pub use settings::{PeerSettings, Settings};
