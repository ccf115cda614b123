//! The crate's error type.

use std::net::SocketAddr;

/// Everything that can go wrong in the swarm engine.
///
/// Peer misbehaviour ([`Error::Protocol`], [`Error::Wire`], ...) ends only that peer's
/// connection; the caller sees it in logs and statistics. Caller misuse and environment
/// failures ([`Error::InvalidInput`], [`Error::Io`], [`Error::Storage`]) are returned from the
/// API calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that do not decode as peer-wire messages.
    #[error("peer wire error: {0}")]
    Wire(#[from] piecework_wire::Error),
    /// The peer broke a protocol rule (named).
    #[error("peer protocol violation: {rule}")]
    Protocol {
        /// The rule that was broken.
        rule: &'static str,
    },
    /// The peer's handshake named a torrent we do not have.
    #[error("peer asked for an unknown info-hash")]
    UnknownInfoHash,
    /// We connected to ourselves.
    #[error("connected to our own peer id")]
    SelfConnection,
    /// The peer is banned (it sent data that failed verification).
    #[error("peer {0} is banned")]
    Banned(SocketAddr),
    /// The peer was silent for longer than the inactivity timeout.
    #[error("peer timed out")]
    Timeout,
    /// Metadata received with BEP 9 did not hash to the info-hash.
    #[error("metadata does not match the info-hash")]
    MetadataMismatch,
    /// Metadata could not be parsed as a torrent.
    #[error("invalid metadata: {0}")]
    Metainfo(#[from] piecework_metainfo::Error),
    /// Storage failed (disk full, permissions, ...).
    #[error("storage: {0}")]
    Storage(#[from] piecework_storage::Error),
    /// A socket or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The caller passed something unusable (named).
    #[error("invalid input: {what}")]
    InvalidInput {
        /// What was wrong.
        what: &'static str,
    },
    /// The torrent stopped on an error it cannot recover from (a disk error, unusable
    /// metadata such as a v2 magnet's info without piece layers); the reason is the
    /// underlying error's text.
    #[error("the torrent stopped: {reason}")]
    Stopped {
        /// What stopped it.
        reason: String,
    },
    /// The session or torrent has been shut down.
    #[error("the session has shut down")]
    Shutdown,
}

impl Error {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { op, source }
    }
}
