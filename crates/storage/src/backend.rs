//! The [`Backend`] trait and the in-memory backend.
//!
//! A backend stores the bytes of the torrent's files, addressed by file index (into
//! [`Layout::files`](crate::Layout::files)) and byte offset. It is synchronous and positional:
//! no seek position, so any number of threads may read and write at once. Pad files and
//! symlinks never reach a backend.

use std::io;
use std::sync::RwLock;

use crate::{Error, Layout};

/// Size and modification time of a stored file, as recorded in resume data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileMeta {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (or any counter that changes on
    /// every write, for backends without clocks).
    pub mtime_secs: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nanos: u32,
}

/// Positional, synchronous storage for a torrent's files.
///
/// Implementations must be safe to call from many threads at once (`&self` everywhere).
/// Offsets and lengths passed by [`Storage`](crate::Storage) are always inside the file's
/// length from the layout; a backend should still refuse anything else without panicking.
pub trait Backend: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset` of `file`. Bytes never written read as
    /// zeros or fail; a file that does not exist fails with [`Error::MissingFile`].
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Error>;

    /// Writes all of `data` at `offset` of `file`, creating the file (and its directories)
    /// if needed.
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), Error>;

    /// Reads consecutive bytes into several buffers. The default calls
    /// [`read_at`](Self::read_at) for each.
    fn read_vectored_at(&self, file: usize, mut offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        for b in bufs.iter_mut() {
            self.read_at(file, offset, b)?;
            offset += b.len() as u64;
        }
        Ok(())
    }

    /// Writes several buffers back to back. The default calls [`write_at`](Self::write_at)
    /// for each.
    fn write_vectored_at(&self, file: usize, mut offset: u64, bufs: &[&[u8]]) -> Result<(), Error> {
        for b in bufs {
            self.write_at(file, offset, b)?;
            offset += b.len() as u64;
        }
        Ok(())
    }

    /// Size and modification time of `file`, or `None` if it does not exist.
    fn metadata(&self, file: usize) -> Result<Option<FileMeta>, Error>;

    /// Makes sure a zero-length file exists (BEP 3 torrents may list empty files; they are
    /// created so the download looks like the original).
    fn create_empty(&self, file: usize) -> Result<(), Error>;

    /// Makes everything written so far durable (fsync). Called before resume data is saved,
    /// so resume data never claims more than survives a crash.
    fn sync(&self) -> Result<(), Error>;
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        (**self).read_at(file, offset, buf)
    }
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), Error> {
        (**self).write_at(file, offset, data)
    }
    fn read_vectored_at(&self, file: usize, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        (**self).read_vectored_at(file, offset, bufs)
    }
    fn write_vectored_at(&self, file: usize, offset: u64, bufs: &[&[u8]]) -> Result<(), Error> {
        (**self).write_vectored_at(file, offset, bufs)
    }
    fn metadata(&self, file: usize) -> Result<Option<FileMeta>, Error> {
        (**self).metadata(file)
    }
    fn create_empty(&self, file: usize) -> Result<(), Error> {
        (**self).create_empty(file)
    }
    fn sync(&self) -> Result<(), Error> {
        (**self).sync()
    }
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    exists: bool,
    generation: i64,
}

/// A backend that keeps every file in memory; for tests, fuzzing and small torrents.
///
/// Memory grows to the highest offset written of each file, never beyond its length. The
/// "modification time" in [`FileMeta`] is a write counter.
#[derive(Debug)]
pub struct MemoryBackend {
    lengths: Vec<u64>,
    files: Vec<RwLock<MemFile>>,
}

impl MemoryBackend {
    /// An empty backend for the files of `layout`.
    pub fn new(layout: &Layout) -> Self {
        Self {
            lengths: layout.files().iter().map(|f| f.length()).collect(),
            files: layout.files().iter().map(|_| RwLock::new(MemFile::default())).collect(),
        }
    }

    /// The bytes written to `file` so far (up to its highest written offset).
    pub fn file_data(&self, file: usize) -> Option<Vec<u8>> {
        let f = self.files.get(file)?.read().ok()?;
        f.exists.then(|| f.data.clone())
    }

    fn bounds(&self, file: usize, offset: u64, len: usize) -> Result<&RwLock<MemFile>, Error> {
        let (Some(&flen), Some(f)) = (self.lengths.get(file), self.files.get(file)) else {
            return Err(mem_error(file, "no such file"));
        };
        match offset.checked_add(len as u64) {
            Some(end) if end <= flen => Ok(f),
            _ => Err(mem_error(file, "past the end of the file")),
        }
    }
}

fn mem_error(file: usize, what: &'static str) -> Error {
    Error::Io { path: format!("memory:{file}").into(), op: "memory", source: io::Error::other(what) }
}

fn poisoned(file: usize) -> Error {
    mem_error(file, "lock poisoned")
}

impl Backend for MemoryBackend {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let f = self.bounds(file, offset, buf.len())?.read().map_err(|_| poisoned(file))?;
        if !f.exists {
            return Err(Error::MissingFile { path: format!("memory:{file}").into() });
        }
        // offset <= length, and the length of an in-memory file fits usize.
        let start = usize::try_from(offset).map_err(|_| mem_error(file, "offset too large"))?;
        let have = f.data.get(start..).unwrap_or_default();
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        buf[n..].fill(0);
        Ok(())
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut f = self.bounds(file, offset, data.len())?.write().map_err(|_| poisoned(file))?;
        let start = usize::try_from(offset).map_err(|_| mem_error(file, "offset too large"))?;
        let end = start + data.len();
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[start..end].copy_from_slice(data);
        f.exists = true;
        f.generation += 1;
        Ok(())
    }

    fn metadata(&self, file: usize) -> Result<Option<FileMeta>, Error> {
        let f = self.files.get(file).ok_or_else(|| mem_error(file, "no such file"))?;
        let f = f.read().map_err(|_| poisoned(file))?;
        let size = self.lengths.get(file).copied().unwrap_or(0);
        Ok(f.exists.then_some(FileMeta { size, mtime_secs: f.generation, mtime_nanos: 0 }))
    }

    fn create_empty(&self, file: usize) -> Result<(), Error> {
        let f = self.files.get(file).ok_or_else(|| mem_error(file, "no such file"))?;
        f.write().map_err(|_| poisoned(file))?.exists = true;
        Ok(())
    }

    fn sync(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::v1_layout;

    #[test]
    fn memory_backend_reads_zeros_and_refuses_out_of_range() {
        let l = v1_layout(16384, &[("t/a", 100, false), ("t/b", 10, false)]);
        let m = MemoryBackend::new(&l);
        let mut buf = [1u8; 4];
        assert!(matches!(m.read_at(0, 0, &mut buf), Err(Error::MissingFile { .. })));
        m.write_vectored_at(0, 10, &[b"ab", b"cd"]).unwrap();
        let (mut x, mut y) = ([0u8; 3], [0u8; 3]);
        m.read_vectored_at(0, 9, &mut [&mut x, &mut y]).unwrap();
        assert_eq!((&x, &y), (b"\0ab", b"cd\0"));
        assert!(m.write_at(0, 99, b"xy").is_err());
        assert!(m.write_at(7, 0, b"x").is_err());
        assert!(m.read_at(1, u64::MAX, &mut buf).is_err());
        assert_eq!(m.metadata(0).unwrap().unwrap().size, 100);
        assert_eq!(m.metadata(1).unwrap(), None);
    }
}
