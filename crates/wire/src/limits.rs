//! [`Limits`]: every bound the decoder applies to what a peer sends.

/// Default for [`Limits::max_block_length`]: one 16 KiB block.
pub const DEFAULT_MAX_BLOCK_LENGTH: u32 = 16 * 1024;
/// Default for [`Limits::max_bitfield_pieces`] (libtorrent's default piece-count limit).
pub const DEFAULT_MAX_BITFIELD_PIECES: u32 = 0x20_0000;
/// Default for [`Limits::max_extended_length`]: 64 KiB, four times a BEP 9 metadata piece.
pub const DEFAULT_MAX_EXTENDED_LENGTH: u32 = 64 * 1024;
/// Default for [`Limits::max_hashes`]: 8192 hashes (libtorrent refuses larger hash requests).
pub const DEFAULT_MAX_HASHES: u32 = 8192;
/// Size of a BEP 9 metadata piece; the last piece may be shorter, none may be longer.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// Bounds on what a peer may make the decoder buffer, each with a safe default.
///
/// A length prefix is checked against these as soon as its 4 bytes (and, where the bound
/// depends on it, the message id) have arrived, before any payload is buffered, so a peer
/// cannot make the read buffer grow past the largest message allowed here.
///
/// ```
/// use piecework_wire::Limits;
/// // Serve peers that ask for 32 KiB blocks, refuse bitfields of more than 100,000 pieces.
/// let limits = Limits::new().max_block_length(32 * 1024).max_bitfield_pieces(100_000);
/// assert_eq!(limits.block_length_limit(), 32 * 1024);
/// // The bitfield is now at most 12,501 bytes on the wire; the 8192-hash `hashes` message
/// // (262,193 bytes) stays the largest message.
/// assert_eq!(limits.bitfield_pieces_limit().div_ceil(8) + 1, 12_501);
/// assert_eq!(limits.largest_message(), 262_193);
/// assert_eq!(limits.max_hashes(16).largest_message(), 2 + 64 * 1024); // the extension limit
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_block_length: u32,
    max_bitfield_pieces: u32,
    max_extended_length: u32,
    max_hashes: u32,
    accept_unknown: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    /// The defaults: see each setter.
    pub const fn new() -> Self {
        Limits {
            max_block_length: DEFAULT_MAX_BLOCK_LENGTH,
            max_bitfield_pieces: DEFAULT_MAX_BITFIELD_PIECES,
            max_extended_length: DEFAULT_MAX_EXTENDED_LENGTH,
            max_hashes: DEFAULT_MAX_HASHES,
            accept_unknown: false,
        }
    }

    /// Largest block in a `piece` message and largest `length` in `request`, `cancel` and
    /// `reject request` (default [`DEFAULT_MAX_BLOCK_LENGTH`]).
    pub const fn max_block_length(mut self, len: u32) -> Self {
        self.max_block_length = len;
        self
    }

    /// Most pieces a `bitfield` may describe while the piece count is not yet known (for
    /// example before a magnet link's metadata arrived); default
    /// [`DEFAULT_MAX_BITFIELD_PIECES`]. Once [`Decoder::set_piece_count`] is called the
    /// bitfield must be exactly `ceil(pieces / 8)` bytes.
    ///
    /// [`Decoder::set_piece_count`]: crate::Decoder::set_piece_count
    pub const fn max_bitfield_pieces(mut self, pieces: u32) -> Self {
        self.max_bitfield_pieces = pieces;
        self
    }

    /// Largest extension-protocol payload (BEP 10 `extended` message, after the id bytes);
    /// default [`DEFAULT_MAX_EXTENDED_LENGTH`]. Also bounds unknown messages when they are
    /// accepted.
    pub const fn max_extended_length(mut self, len: u32) -> Self {
        self.max_extended_length = len;
        self
    }

    /// Most 32-byte hashes in a BEP 52 `hashes` message (default [`DEFAULT_MAX_HASHES`]).
    pub const fn max_hashes(mut self, n: u32) -> Self {
        self.max_hashes = n;
        self
    }

    /// Whether a message id this crate does not know becomes [`Message::Unknown`] (true) or
    /// an error (false, the default: strict).
    ///
    /// [`Message::Unknown`]: crate::Message::Unknown
    pub const fn accept_unknown(mut self, accept: bool) -> Self {
        self.accept_unknown = accept;
        self
    }

    /// The block-length limit in force.
    pub const fn block_length_limit(&self) -> u32 {
        self.max_block_length
    }

    /// The bitfield piece limit in force.
    pub const fn bitfield_pieces_limit(&self) -> u32 {
        self.max_bitfield_pieces
    }

    /// The extension payload limit in force.
    pub const fn extended_length_limit(&self) -> u32 {
        self.max_extended_length
    }

    /// The hash-count limit in force.
    pub const fn hashes_limit(&self) -> u32 {
        self.max_hashes
    }

    /// Whether unknown message ids are accepted.
    pub const fn accepts_unknown(&self) -> bool {
        self.accept_unknown
    }

    /// The largest length prefix any message may carry under these limits (id byte included).
    pub const fn largest_message(&self) -> u32 {
        let piece = 9u64 + self.max_block_length as u64;
        let bitfield = 1 + (self.max_bitfield_pieces as u64).div_ceil(8);
        let extended = 2 + self.max_extended_length as u64;
        let hashes = 49 + 32 * self.max_hashes as u64;
        let mut m = 13u64;
        if piece > m {
            m = piece;
        }
        if bitfield > m {
            m = bitfield;
        }
        if extended > m {
            m = extended;
        }
        if hashes > m {
            m = hashes;
        }
        if m > u32::MAX as u64 { u32::MAX } else { m as u32 }
    }
}
