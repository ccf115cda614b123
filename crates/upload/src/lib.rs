//! Resumable chunked uploads over the [tus 1.0.0] protocol, with integrity
//! checked while the bytes stream in.
//!
//! What it does:
//! - parses and writes every tus 1.0.0 header strictly ([`headers`]);
//! - a sans-IO server state machine ([`Server`]) with the creation,
//!   creation-with-upload, creation-defer-length, expiration, checksum (sha1,
//!   sha256, md5, crc32c), checksum-trailer, termination and concatenation
//!   extensions, answering with exact status codes;
//! - a sans-IO client state machine ([`client::ClientMachine`]): create,
//!   resume from the server's offset, chunking, retry with backoff;
//! - a streaming [BEP 52] merkle root over 16 KiB blocks, so a finished upload
//!   has a v2 pieces root without reading the data again ([`merkle`]);
//! - a file-backed [`Store`] that streams bodies to disk and never reports an
//!   offset ahead of durable bytes;
//! - signed, expiring share links and Argon2id share passwords ([`share`]);
//! - a streaming ZIP layout (stored entries, data descriptors, ZIP64) for
//!   multi-file shares, with a known length up front ([`zip`]).
//!
//! What it does not do: no I/O, sockets or clocks in the core. Time is passed
//! in. The HTTP glue sits behind features.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use piecework_upload::{BodyEnd, MemoryStore, Server, ServerConfig, UploadId};
//!
//! let mut server = Server::open(ServerConfig::default(), MemoryStore::new())?;
//! let now = SystemTime::now();
//! let create = [("Tus-Resumable", "1.0.0"), ("Upload-Length", "5")];
//! let r = server.handle_create(now, UploadId::new("abc")?, &create[..])?;
//! assert_eq!(r.status, 201);
//!
//! let patch = [
//!     ("Tus-Resumable", "1.0.0"),
//!     ("Content-Type", "application/offset+octet-stream"),
//!     ("Upload-Offset", "0"),
//! ];
//! let mut body = server.begin_patch(now, "abc", &patch[..])?;
//! body.write(b"hello")?;
//! let r = server.finish_patch(now, body, BodyEnd::Complete { trailer: None })?;
//! assert_eq!((r.status, r.header("Upload-Offset")), (204, Some("5")));
//! assert!(server.pieces_root(&UploadId::new("abc")?).is_some());
//! # Ok::<(), piecework_upload::Error>(())
//! ```
//!
//! # Features
//! - `server`: axum/hyper adapter ([`http_server`]): tus routes under
//!   `/files/`, idle timeout for stalled bodies, signed downloads with Range,
//!   passwords and multi-file shares as one tar or zip stream (`&format=zip`).
//! - `zstd`: per-chunk zstd on downloads that send `Accept-Encoding: zstd`
//!   (incompressible chunks are stored raw) ([`compress`]).
//! - `client`: reqwest client ([`http_client`]) with progress callbacks that
//!   resumes interrupted uploads; on Linux, `PATCH` bodies to `http://` URLs
//!   go out with `sendfile(2)`, pipelined ([`patch_stream`]).
//!
//! [tus 1.0.0]: https://tus.io/protocols/resumable-upload
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checksum;
pub mod client;
mod error;
#[cfg(any(feature = "server", feature = "client"))]
mod file_range;
pub mod headers;
mod id;
pub mod merkle;
pub mod server;
pub mod share;
pub mod store;
pub mod zip;

#[cfg(feature = "zstd")]
pub mod compress;
#[cfg(feature = "client")]
pub mod http_client;
#[cfg(feature = "server")]
pub mod http_server;
#[cfg(all(feature = "client", target_os = "linux"))]
pub mod patch_stream;

pub use error::Error;
pub use id::{MAX_ID_LEN, UploadId, UploadOffset};
pub use server::{BodyEnd, Creation, FinalAssembly, PatchSession, Response, Server, ServerConfig};
pub use store::{FileStore, MemoryStore, Store, StoreWriter, UploadInfo};
