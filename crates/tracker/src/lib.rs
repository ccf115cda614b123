//! BitTorrent tracker client: HTTP and UDP announce and scrape.
//!
//! What it does:
//! - **Tracker URLs** ([`TrackerUrl`]): `http://` and `udp://`, the announce query string with
//!   percent-encoded binary `info_hash`/`peer_id`, `compact=1`, `event`, `numwant`, `key`,
//!   `trackerid` ([BEP 3]), and the scrape URL derived from the announce URL ([BEP 48]).
//! - **HTTP responses** ([`http`]): announce bodies with compact ([BEP 23]) and dictionary peers,
//!   `peers6` ([BEP 7]), `failure reason`, `warning message`, `interval`, `min interval`,
//!   `tracker id`, `complete`/`incomplete`; scrape bodies ([BEP 48]). Parsed leniently with
//!   `piecework-bencode`, since trackers send unsorted keys and odd integers.
//! - **HTTP/1.1 codec** ([`http1`]): a `GET` request and a strict, incremental response parser
//!   (`Content-Length`, chunked, or until close) with size caps.
//! - **UDP tracker protocol** ([`udp`], [BEP 15]): connect, announce, scrape and error packets in
//!   both directions, and [`UdpSession`], a sans-IO state machine that checks transaction ids,
//!   keeps the connection id for a minute and retransmits after `15 * 2^n` seconds (n up to 8),
//!   with time passed in.
//! - **tokio client** (`client::Client`, feature `tokio`): both protocols over real sockets.
//!
//! What it does not do: HTTPS, HTTP redirects or compression, WebSocket trackers, BEP 41 UDP
//! URL options, or name resolution in the sans-IO parts (dictionary-model peers given by host name
//! are skipped). Choosing when to announce, and to which tracker tier, is the caller's job.
//!
//! Every limit (response size, peer count, scrape entries, UDP timing) is a setting with a safe
//! default ([`Limits`], [`UdpSettings`], `client::ClientSettings`). Nothing panics on input.
//!
//! For v2 and hybrid torrents announce the 20-byte truncated v2 hash
//! ([`InfoHashV2::truncated_id`](piecework_metainfo::InfoHashV2::truncated_id)) as well as, or
//! instead of, the v1 hash.
//!
//! ```
//! use piecework_metainfo::InfoHashV1;
//! use piecework_tracker::{Announce, Event, Limits, PeerId, TrackerUrl, http, http1};
//!
//! // Build the request for an HTTP tracker...
//! let url = TrackerUrl::parse("http://tracker.invalid:6969/announce")?;
//! let mut announce = Announce::new(InfoHashV1::from_bytes([0xab; 20]), PeerId::from_bytes(*b"-PW0001-123456789012"), 6881);
//! announce.left = 1 << 20;
//! announce.event = Event::Started;
//! let request = http1::get_request(&url, &url.announce_target(&announce));
//! assert!(request.starts_with(b"GET /announce?info_hash=%AB%AB"));
//!
//! // ...send it with any transport, then parse what comes back.
//! let received = b"HTTP/1.1 200 OK\r\nContent-Length: 33\r\n\r\nd8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
//! let response = http1::parse_response(received, false, 1 << 20)?.expect("complete");
//! let announced = http::parse_announce_response(&response.body, &Limits::new())?;
//! assert_eq!(announced.interval, 1800);
//! assert_eq!(announced.peers, ["127.0.0.1:6881".parse()?]);
//!
//! // The scrape URL, per BEP 48:
//! assert_eq!(url.to_scrape()?.path_and_query(), "/scrape");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `tokio` feature the same takes one call:
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo(announce: piecework_tracker::Announce) -> Result<(), piecework_tracker::Error> {
//! use piecework_tracker::client::{Client, ClientSettings};
//!
//! let client = Client::new(ClientSettings::new());
//! let reply = client.announce("udp://127.0.0.1:6969", &announce).await?;
//! println!("{} peers, next announce in {} s", reply.peers.len(), reply.interval);
//! # Ok(())
//! # }
//! ```
//!
//! ## Feature flags
//! - `tokio` (default): the async `client` module for HTTP and UDP trackers.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
//! [BEP 7]: https://www.bittorrent.org/beps/bep_0007.html
//! [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html
//! [BEP 23]: https://www.bittorrent.org/beps/bep_0023.html
//! [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod announce;
#[cfg(feature = "tokio")]
pub mod client;
mod error;
pub mod http;
pub mod http1;
pub mod udp;
pub mod udp_session;
mod url;

pub use announce::{
    Announce, AnnounceResponse, DEFAULT_MAX_PEERS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_SCRAPE_FILES,
    Event, Limits, ScrapeStats,
};
pub use error::Error;
pub use http::ScrapeResponse;
/// Peer ids live in `piecework-metainfo` (the wire handshake uses them too); re-exported here.
pub use piecework_metainfo::PeerId;
pub use udp_session::{Operation, Output, UdpSession, UdpSettings};
pub use url::{MAX_URL_LEN, Scheme, TrackerUrl, percent_encode};
