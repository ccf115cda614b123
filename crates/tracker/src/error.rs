//! The crate's one error type.

/// Everything that can go wrong talking to a tracker.
///
/// Variants are split by who is at fault: the tracker said no ([`Error::TrackerFailure`]), the
/// tracker sent something we cannot use (`Malformed*`, `TooLarge`, `TransactionMismatch`), the
/// caller asked for something impossible (`InvalidUrl`, `UnsupportedScheme`, `TooManyInfoHashes`),
/// or the network failed (`Io`, `Timeout`). Compare errors by variant in tests, never by text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tracker answered with a `failure reason` (HTTP) or an error packet (UDP, BEP 15).
    #[error("tracker refused the request: {reason}")]
    TrackerFailure {
        /// The tracker's message, lossily decoded as UTF-8.
        reason: String,
    },
    /// The response body is not the bencode a tracker must send.
    #[error("malformed bencode in tracker response")]
    MalformedBencode(#[source] piecework_bencode::Error),
    /// The response is bencode, but a field is missing or has the wrong type or size.
    #[error("malformed tracker response: field `{field}`")]
    MalformedResponse {
        /// The field (or part of the response) that was wrong.
        field: &'static str,
    },
    /// The HTTP status line or headers could not be parsed (strict HTTP/1.x).
    #[error("malformed HTTP response at byte {offset}")]
    MalformedHttp {
        /// Position of the first byte that could not be accepted.
        offset: usize,
    },
    /// The HTTP status was not 2xx and the body carried no `failure reason`.
    #[error("HTTP status {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// A UDP packet is too short, too long or has an unknown action.
    #[error("malformed UDP tracker packet at byte {offset}")]
    MalformedPacket {
        /// Position of the first byte that could not be accepted (the length when truncated).
        offset: usize,
    },
    /// A UDP response answered a different transaction than the one we sent.
    #[error("UDP transaction id mismatch: expected {expected:#010x}, got {got:#010x}")]
    TransactionMismatch {
        /// The id we sent.
        expected: u32,
        /// The id in the packet.
        got: u32,
    },
    /// A UDP response had a different action than the request (other than an error packet).
    #[error("unexpected UDP action {action}")]
    UnexpectedAction {
        /// The action received.
        action: u32,
    },
    /// The response exceeded a configured size limit.
    #[error("response larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The tracker URL could not be parsed.
    #[error("invalid tracker URL")]
    InvalidUrl,
    /// The tracker URL's scheme is not `http` or `udp` (`https` is not supported).
    #[error("unsupported tracker URL scheme")]
    UnsupportedScheme,
    /// The announce URL's last path segment does not start with `announce`, so it has no scrape URL
    /// (BEP 48).
    #[error("tracker does not support scrape")]
    ScrapeNotSupported,
    /// More info-hashes were given to one UDP scrape than fit in a packet (BEP 15).
    #[error("too many info-hashes for one scrape: {count} > {max}")]
    TooManyInfoHashes {
        /// How many were given.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A `handle_*`/`start` call that the state machine's current state does not allow.
    #[error("operation not allowed in the current state")]
    InvalidState,
    /// No response within the configured time (HTTP), or after the last UDP retransmission.
    #[error("tracker did not answer in time")]
    Timeout,
    /// A socket or name-resolution error.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}
