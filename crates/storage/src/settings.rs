//! [`Settings`]: every limit and knob, each with a safe default.

use crate::Error;

/// Largest accepted [`Settings::fd_cache_size`].
pub const MAX_FD_CACHE_SIZE: usize = 65_536;
/// Largest accepted [`Settings::hash_threads`].
pub const MAX_HASH_THREADS: usize = 256;
/// Largest accepted [`Settings::read_chunk_size`] (16 MiB).
pub const MAX_READ_CHUNK_SIZE: usize = 16 << 20;

/// Storage settings. Start from [`Settings::default`] and change fields:
///
/// ```
/// let mut s = piecework_storage::Settings::default();
/// s.fd_cache_size = 16; // at most 16 files open at once
/// s.preallocate = true;
/// assert!(s.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Most files the file backend keeps open at once (default 128, 1 ..=
    /// [`MAX_FD_CACHE_SIZE`]). The least recently used is closed when another is needed, so a
    /// torrent with 100,000 files works under a small `RLIMIT_NOFILE`.
    pub fd_cache_size: usize,
    /// Allocate each file's full length when it is first opened for writing (`fallocate`), so a
    /// full disk shows up at once instead of mid-download. Default `false`: files are sparse.
    pub preallocate: bool,
    /// Hashing threads, for piece verification and recheck (default: one per core, at most
    /// [`MAX_HASH_THREADS`]; `0` also means one per core).
    pub hash_threads: usize,
    /// Bytes read per call when hashing (default 256 KiB, a multiple of 16 KiB between 16 KiB
    /// and [`MAX_READ_CHUNK_SIZE`]). Each hashing thread holds one buffer of this size; memory
    /// does not grow with the piece length. The default stays in a core's cache between the
    /// read and the hash.
    pub read_chunk_size: usize,
    /// Pieces picked at random and re-hashed when a resume file is loaded, besides those in
    /// files whose size or modification time changed (default 0).
    pub spot_checks: u32,
    /// Largest resume file accepted, in bytes (default 64 MiB). Bitfields and file lists are
    /// allocated only after the input has passed this cap.
    pub max_resume_size: usize,
    /// Create the directories a file needs (default `true`). With `false`, a missing directory
    /// is an error.
    pub create_directories: bool,
    /// Hash blocks in the thread that writes them, while they are in its cache: every v2 leaf,
    /// and the piece's SHA-1 while its blocks arrive in order, so a piece need not be read back
    /// to be verified (default `false`). Worth it when several threads write (as the swarm
    /// engine's disk threads do); with one writing thread, leave it off and the hashing threads
    /// verify pieces in parallel with the writes.
    pub hash_on_write: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fd_cache_size: 128,
            preallocate: false,
            hash_threads: 0,
            read_chunk_size: 256 << 10,
            spot_checks: 0,
            max_resume_size: 64 << 20,
            create_directories: true,
            hash_on_write: false,
        }
    }
}

impl Settings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.fd_cache_size == 0 || self.fd_cache_size > MAX_FD_CACHE_SIZE {
            return Err(Error::InvalidSetting { name: "fd_cache_size", reason: "must be 1..=65536" });
        }
        if self.hash_threads > MAX_HASH_THREADS {
            return Err(Error::InvalidSetting { name: "hash_threads", reason: "must be 0..=256" });
        }
        let c = self.read_chunk_size;
        if !(16 * 1024..=MAX_READ_CHUNK_SIZE).contains(&c) || !c.is_multiple_of(16 * 1024) {
            return Err(Error::InvalidSetting {
                name: "read_chunk_size",
                reason: "must be a multiple of 16 KiB between 16 KiB and 16 MiB",
            });
        }
        Ok(())
    }

    /// The number of hashing threads to start.
    pub fn effective_hash_threads(&self) -> usize {
        if self.hash_threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_HASH_THREADS)
        } else {
            self.hash_threads
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_checked() {
        assert!(Settings::default().validate().is_ok());
        let bad = [
            Settings { fd_cache_size: 0, ..Settings::default() },
            Settings { hash_threads: 1000, ..Settings::default() },
            Settings { read_chunk_size: 1000, ..Settings::default() },
            Settings { read_chunk_size: 32 << 20, ..Settings::default() },
        ];
        for s in bad {
            assert!(matches!(s.validate(), Err(Error::InvalidSetting { .. })), "{s:?}");
        }
        assert!(Settings::default().effective_hash_threads() >= 1);
    }
}
