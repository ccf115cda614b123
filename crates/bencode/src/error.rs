//! The crate's one error type.

/// Everything that can go wrong while decoding, encoding or (de)serializing bencode.
///
/// Decoding errors carry the byte `offset` of the first byte that could not be accepted, so a
/// caller can point at the problem in the input. Errors are compared by kind and offset in tests,
/// never by their message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a value (or was empty). More bytes might complete it.
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEnd {
        /// Where more input was needed (the input length).
        offset: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{byte:02x} at byte {offset}")]
    UnexpectedByte {
        /// Position of the byte.
        offset: usize,
        /// The byte itself.
        byte: u8,
    },
    /// An integer (`i...e`) that is empty or has a stray character.
    #[error("invalid integer at byte {offset}")]
    InvalidInteger {
        /// Position of the offending byte.
        offset: usize,
    },
    /// An integer with a leading zero, `-0` or a `+` sign (refused in strict mode).
    #[error("non-canonical integer at byte {offset}")]
    NonCanonicalInteger {
        /// Position of the integer's first digit or sign.
        offset: usize,
    },
    /// An integer outside the `i64` range.
    #[error("integer out of range at byte {offset}")]
    IntegerOverflow {
        /// Position of the integer's first digit or sign.
        offset: usize,
    },
    /// A byte-string length prefix that is not a canonical decimal number.
    #[error("invalid string length at byte {offset}")]
    InvalidLength {
        /// Position of the length prefix.
        offset: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("dictionary key at byte {offset} is not a byte string")]
    KeyNotString {
        /// Position of the key.
        offset: usize,
    },
    /// A dictionary key smaller than the key before it (strict mode).
    #[error("dictionary key at byte {offset} is out of order")]
    UnsortedKey {
        /// Position of the key.
        offset: usize,
    },
    /// A dictionary key equal to the key before it (strict mode).
    #[error("duplicate dictionary key at byte {offset}")]
    DuplicateKey {
        /// Position of the second occurrence.
        offset: usize,
    },
    /// A dictionary ended after a key, with no value for it.
    #[error("dictionary key without a value, end at byte {offset}")]
    MissingValue {
        /// Position of the `e` that closed the dictionary.
        offset: usize,
    },
    /// Containers nested deeper than [`DecodeOptions::max_depth`](crate::DecodeOptions::max_depth).
    #[error("nesting deeper than {limit} at byte {offset}")]
    DepthExceeded {
        /// Position of the container that went over the limit.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// More values than [`DecodeOptions::max_tokens`](crate::DecodeOptions::max_tokens).
    #[error("more than {limit} values at byte {offset}")]
    TooManyValues {
        /// Position of the value that went over the limit.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Input longer than [`DecodeOptions::max_input_len`](crate::DecodeOptions::max_input_len).
    #[error("input of {len} bytes is over the limit of {limit}")]
    InputTooLarge {
        /// The input's length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Bytes left over after one complete value.
    #[error("trailing data at byte {offset}")]
    TrailingData {
        /// Where the complete value ended.
        offset: usize,
    },
    /// The encoder was used out of order (caller misuse, not bad input): a value where a key
    /// was due, a key outside a dictionary, `end` with nothing open, or `finish` too early.
    #[error("encoder misuse: {0}")]
    EncoderState(&'static str),
    /// A key given to the encoder was not greater than the previous key of the same dictionary.
    #[error("encoder: dictionary key out of order or duplicated")]
    EncoderKeyOrder,
    /// A value that bencode cannot represent (serde: floats, maps with non-string keys, ...).
    #[error("cannot represent {0} in bencode")]
    Unsupported(&'static str),
    /// A message from a serde `Serialize` or `Deserialize` implementation.
    #[error("{message}")]
    Custom {
        /// What the implementation said.
        message: String,
        /// Byte offset in the input, when deserializing.
        offset: Option<usize>,
    },
}

impl Error {
    /// The byte offset in the input that the error refers to, if it has one.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Error::UnexpectedEnd { offset }
            | Error::UnexpectedByte { offset, .. }
            | Error::InvalidInteger { offset }
            | Error::NonCanonicalInteger { offset }
            | Error::IntegerOverflow { offset }
            | Error::InvalidLength { offset }
            | Error::KeyNotString { offset }
            | Error::UnsortedKey { offset }
            | Error::DuplicateKey { offset }
            | Error::MissingValue { offset }
            | Error::DepthExceeded { offset, .. }
            | Error::TooManyValues { offset, .. }
            | Error::TrailingData { offset } => Some(offset),
            Error::Custom { offset, .. } => offset,
            Error::InputTooLarge { .. }
            | Error::EncoderState(_)
            | Error::EncoderKeyOrder
            | Error::Unsupported(_) => None,
        }
    }

    /// True when the input was a valid prefix that simply stopped early: feeding more bytes
    /// may succeed. Useful for incremental framing.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Error::UnexpectedEnd { .. })
    }
}
