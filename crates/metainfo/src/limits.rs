//! Parse limits: every bound on what a torrent may make us allocate or do.

/// Bounds applied while parsing a metainfo file. Each has a safe default; raise them for
/// trusted input only.
///
/// ```
/// let mut limits = piecework_metainfo::Limits::default();
/// limits.max_files = 10_000;
/// # let _ = limits;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest metainfo accepted, in bytes (default 64 MiB).
    pub max_metainfo_size: usize,
    /// Most files (v1 list entries, pad files included, or v2 tree leaves) (default 1,000,000).
    pub max_files: usize,
    /// Most pieces (default 2,097,152, libtorrent's default; 512 TiB at 256 KiB pieces).
    pub max_pieces: u64,
    /// Deepest path (elements in a `path` list or levels of a `file tree`) (default 100).
    pub max_path_depth: usize,
    /// Deepest bencode nesting (default 128).
    pub max_bencode_depth: usize,
    /// Most bencode values in one metainfo (default 4,194,304).
    pub max_bencode_tokens: usize,
    /// Most name collisions tried while renaming duplicate files before giving up
    /// (default 1,000, as libtorrent).
    pub max_duplicate_names: usize,
    /// Accept unsorted or repeated dictionary keys and non-canonical integers in v1 torrents,
    /// as libtorrent does (many old torrents have them; the info-hash is still taken over the
    /// raw bytes). v2 and hybrid info dictionaries are always strict. Default `true`.
    pub lenient_v1: bool,
}

/// Largest piece length accepted (512 MiB, as libtorrent).
pub const MAX_PIECE_LENGTH: u64 = 1 << 29;

/// A single file must have fewer 16 KiB blocks than this (2^30 - 1, libtorrent's bound), which
/// keeps every merkle index within 32 bits.
pub const MAX_FILE_BLOCKS: u64 = (1 << 30) - 1;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_metainfo_size: 64 << 20,
            max_files: 1_000_000,
            max_pieces: 0x20_0000,
            max_path_depth: 100,
            max_bencode_depth: 128,
            max_bencode_tokens: 4 << 20,
            max_duplicate_names: 1000,
            lenient_v1: true,
        }
    }
}
