//! The crate's one error type.

/// Everything that can go wrong while decoding or encoding peer-wire data.
///
/// Variants up to [`Error::Bencode`] are **peer misbehaviour**: the stream is corrupt or hostile
/// and the connection should be closed. [`Error::Encode`] is **caller misuse** (a value that
/// cannot be put on the wire). [`Error::Io`] comes only from the I/O adapters. Errors name the
/// message id (the wire byte) and the field; tests compare variants, never message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handshake does not start with `\x13BitTorrent protocol`.
    #[error("handshake field `{field}` is not the BitTorrent protocol string")]
    InvalidHandshake {
        /// `pstrlen` or `pstr`.
        field: &'static str,
    },
    /// A length prefix larger than the limit for this message; refused before any payload is
    /// buffered.
    #[error("message id {id:?} declares {len} bytes, over the limit of {limit}")]
    MessageTooLong {
        /// The message id, when it was already readable (`None`: only the prefix was there).
        id: Option<u8>,
        /// The declared length (id byte included).
        len: u32,
        /// The limit in force.
        limit: u32,
    },
    /// A fixed-size message whose length prefix is wrong.
    #[error("message id {id} has length {len}, expected {expected}")]
    BadLength {
        /// The message id.
        id: u8,
        /// The declared length (id byte included).
        len: u32,
        /// The only length this message may have.
        expected: u32,
    },
    /// A message id this decoder does not know (see [`Limits::accept_unknown`]).
    ///
    /// [`Limits::accept_unknown`]: crate::Limits::accept_unknown
    #[error("unknown message id {id}")]
    UnknownMessage {
        /// The message id.
        id: u8,
    },
    /// A field whose value is over a limit (for example a block `length` over
    /// [`Limits::max_block_length`](crate::Limits::max_block_length)).
    #[error("message id {id}: field `{field}` is {value}, over the limit of {limit}")]
    FieldTooLarge {
        /// The message id.
        id: u8,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A `bitfield` of the wrong size for the piece count, or with spare bits set.
    #[error("bitfield (id 5) is {len} bytes, expected {expected} with spare bits zero")]
    InvalidBitfield {
        /// Bytes received.
        len: usize,
        /// `ceil(pieces / 8)`.
        expected: usize,
    },
    /// A `hashes` message (id 22) whose hash list is not a whole number of 32-byte hashes.
    #[error("hashes (id 22): hash list of {len} bytes is not a multiple of 32")]
    MisalignedHashes {
        /// Bytes in the hash list.
        len: usize,
    },
    /// An extension-protocol payload (BEP 9, 10, 11) with a missing or malformed field.
    #[error("extension message `{message}`: field `{field}` is missing or malformed")]
    Extension {
        /// Which message (`handshake`, `ut_metadata`, `ut_pex`).
        message: &'static str,
        /// The field (a dictionary key, or `payload`).
        field: &'static str,
    },
    /// An extension-protocol payload that is not valid bencode.
    #[error("extension message `{message}` is not valid bencode")]
    Bencode {
        /// Which message.
        message: &'static str,
        /// What the bencode decoder found.
        #[source]
        source: piecework_bencode::Error,
    },
    /// Caller misuse: the value cannot be encoded (named field out of range, keys colliding).
    #[error("cannot encode: field `{field}` is out of range or invalid")]
    Encode {
        /// The field.
        field: &'static str,
    },
    /// An I/O error from an adapter (futures or tokio).
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}
