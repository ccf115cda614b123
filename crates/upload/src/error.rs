//! The crate's single error type.

/// Everything that can go wrong in this crate.
///
/// Peer misbehaviour (a malformed request, a bad checksum) and caller misuse
/// (driving a state machine out of order) are different variants. Use
/// [`Error::status`] to get the HTTP status code the tus protocol assigns.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A header that may appear once appeared more than once.
    #[error("header {name} appears more than once")]
    DuplicateHeader {
        /// Header name.
        name: &'static str,
    },
    /// A required header is absent.
    #[error("header {name} is missing")]
    MissingHeader {
        /// Header name.
        name: &'static str,
    },
    /// A header value does not follow its grammar.
    #[error("header {name} is malformed")]
    MalformedHeader {
        /// Header name.
        name: &'static str,
    },
    /// A number header carries a sign.
    #[error("header {name} is negative")]
    NegativeNumber {
        /// Header name.
        name: &'static str,
    },
    /// A number header does not fit in 64 bits.
    #[error("header {name} overflows 64 bits")]
    NumberOverflow {
        /// Header name.
        name: &'static str,
    },
    /// A header is longer than the configured limit.
    #[error("header {name} is longer than {limit} bytes")]
    HeaderTooLong {
        /// Header name.
        name: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// An `Upload-Metadata` pair is malformed (bad key or bad base64).
    #[error("Upload-Metadata pair {pair} is malformed")]
    InvalidMetadata {
        /// Zero-based index of the pair.
        pair: usize,
    },
    /// An `Upload-Metadata` key appears twice.
    #[error("Upload-Metadata pair {pair} repeats a key")]
    DuplicateMetadataKey {
        /// Zero-based index of the repeated pair.
        pair: usize,
    },
    /// Too many metadata pairs or concatenation parts.
    #[error("header {name} has more than {limit} items")]
    TooManyItems {
        /// Header name.
        name: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// Two headers that exclude each other were both sent.
    #[error("conflicting headers {a} and {b}")]
    ConflictingHeaders {
        /// First header.
        a: &'static str,
        /// Second header.
        b: &'static str,
    },
    /// `Tus-Resumable` is missing or names a version we do not speak.
    #[error("unsupported tus version")]
    UnsupportedVersion,
    /// The checksum algorithm is not one we implement.
    #[error("unsupported checksum algorithm")]
    UnsupportedChecksumAlgorithm,
    /// The body's checksum differs from `Upload-Checksum`.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// `Content-Type` is not `application/offset+octet-stream`.
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// An upload id that is not `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid upload id")]
    InvalidUploadId,
    /// No such upload.
    #[error("upload not found")]
    UploadNotFound,
    /// The upload expired and was removed.
    #[error("upload expired")]
    UploadExpired,
    /// `Upload-Offset` differs from the server's offset.
    #[error("offset mismatch: server has {expected}, request says {got}")]
    OffsetMismatch {
        /// Server's offset.
        expected: u64,
        /// Offset the request named.
        got: u64,
    },
    /// The length (declared or streamed) exceeds what is allowed.
    #[error("{length} bytes exceed the limit of {max}")]
    TooLarge {
        /// Requested length.
        length: u64,
        /// Allowed maximum.
        max: u64,
    },
    /// Another request is writing to this upload.
    #[error("upload is locked by another request")]
    UploadBusy,
    /// A final (concatenated) upload cannot be patched.
    #[error("a final upload cannot be patched")]
    PatchOnFinal,
    /// `Upload-Length` may be set once, on a deferred upload, and not below the offset.
    #[error("Upload-Length cannot be changed")]
    LengthImmutable,
    /// A part named in a final concatenation is not a partial upload.
    #[error("concatenation part is not a partial upload")]
    NotPartial,
    /// A part named in a final concatenation is not complete.
    #[error("concatenation part is not finished")]
    PartialNotFinished,
    /// A share link's signature does not verify.
    #[error("link signature does not verify")]
    LinkTampered,
    /// A share link is past its expiry.
    #[error("link expired")]
    LinkExpired,
    /// The share needs a password and the one given is wrong or absent.
    #[error("wrong or missing password")]
    WrongPassword,
    /// A stored password hash could not be parsed or produced.
    #[error("password hash error")]
    PasswordHash,
    /// A share download asked for an archive format other than `tar` or `zip`.
    #[error("unsupported archive format")]
    UnsupportedArchiveFormat,
    /// A `Range` header that cannot be satisfied.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// A stored file (info or manifest) is corrupt.
    #[error("stored record {what} is corrupt")]
    CorruptRecord {
        /// Which record.
        what: &'static str,
    },
    /// Caller misuse: a state machine was driven out of order.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// Client side: the server answered with an unexpected status.
    #[error("server answered {status}")]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
    },
    /// Client side: a response that is not valid HTTP/1.x, or whose framing
    /// is ambiguous (two different `Content-Length`s).
    #[error("malformed HTTP response")]
    MalformedResponse,
    /// Client side: a response head over the configured limits.
    #[error("response head exceeds {max_head} bytes or {max_headers} fields")]
    ResponseTooLarge {
        /// Byte limit in force.
        max_head: usize,
        /// Field limit in force.
        max_headers: usize,
    },
    /// Client side: retries exhausted.
    #[error("gave up after {attempts} attempts")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// Storage I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status a tus server answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::DuplicateHeader { .. }
            | Error::MissingHeader { .. }
            | Error::MalformedHeader { .. }
            | Error::NegativeNumber { .. }
            | Error::NumberOverflow { .. }
            | Error::HeaderTooLong { .. }
            | Error::InvalidMetadata { .. }
            | Error::DuplicateMetadataKey { .. }
            | Error::TooManyItems { .. }
            | Error::ConflictingHeaders { .. }
            | Error::UnsupportedChecksumAlgorithm
            | Error::LengthImmutable
            | Error::NotPartial
            | Error::PartialNotFinished
            | Error::UnsupportedArchiveFormat => 400,
            Error::UnsupportedVersion => 412,
            Error::ChecksumMismatch => 460,
            Error::UnsupportedMediaType => 415,
            Error::InvalidUploadId | Error::UploadNotFound => 404,
            Error::UploadExpired => 410,
            Error::OffsetMismatch { .. } | Error::UploadBusy => 409,
            Error::TooLarge { .. } => 413,
            Error::PatchOnFinal | Error::LinkTampered => 403,
            Error::LinkExpired => 410,
            Error::WrongPassword => 401,
            Error::RangeNotSatisfiable => 416,
            Error::UnexpectedStatus { status } => *status,
            Error::PasswordHash
            | Error::CorruptRecord { .. }
            | Error::InvalidState(_)
            | Error::RetriesExhausted { .. }
            | Error::MalformedResponse
            | Error::ResponseTooLarge { .. }
            | Error::Io(_) => 500,
        }
    }
}
