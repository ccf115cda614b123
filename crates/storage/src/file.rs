//! [`FileBackend`]: files on disk, `pread`/`pwrite`, opened lazily through a bounded cache.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, FileMeta};
use crate::{Error, Layout, Settings};

struct Entry {
    handle: Arc<File>,
    writable: bool,
    used: u64,
}

/// The open files: at most `cap`, least recently used closed first.
struct FdCache {
    cap: usize,
    tick: u64,
    entries: HashMap<usize, Entry>,
    /// Files written since the last [`Backend::sync`].
    dirty: HashSet<usize>,
    /// Files already checked or extended to their full length since we opened them.
    sized: HashSet<usize>,
}

/// Stores a torrent's files under a directory with positional I/O.
///
/// - Files are opened on first use and kept in a cache of at most
///   [`Settings::fd_cache_size`] descriptors (least recently used closed first); a handle in
///   use by another thread stays open until that call returns, so the process may briefly
///   hold up to one more descriptor per thread.
/// - Files are sparse by default: opened for writing, a file is extended to its length with
///   `ftruncate`; with [`Settings::preallocate`] its blocks are allocated with `fallocate`.
/// - Directories are created as needed ([`Settings::create_directories`]).
/// - A file already larger than the torrent says is never truncated: it fails with
///   [`Error::FileTooLarge`].
pub struct FileBackend {
    paths: Vec<PathBuf>,
    lengths: Vec<u64>,
    cache: Mutex<FdCache>,
    preallocate: bool,
    create_directories: bool,
}

impl core::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileBackend").field("files", &self.paths.len()).finish_non_exhaustive()
    }
}

fn lock_error(path: &Path) -> Error {
    Error::Io { path: path.to_path_buf(), op: "lock", source: io::Error::other("fd cache lock poisoned") }
}

impl FileBackend {
    /// A backend storing `layout`'s files under `root` (which is created if needed).
    pub fn new(root: impl AsRef<Path>, layout: &Layout, settings: &Settings) -> Result<Self, Error> {
        let root = root.as_ref();
        Self::with_paths(layout.files().iter().map(|f| f.path().under(root)).collect(), layout, settings)
    }

    /// The shared constructor: `paths` has one entry per layout file.
    fn with_paths(paths: Vec<PathBuf>, layout: &Layout, settings: &Settings) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Self {
            paths,
            lengths: layout.files().iter().map(|f| f.length()).collect(),
            cache: Mutex::new(FdCache {
                cap: settings.fd_cache_size,
                tick: 0,
                entries: HashMap::new(),
                dirty: HashSet::new(),
                sized: HashSet::new(),
            }),
            preallocate: settings.preallocate,
            create_directories: settings.create_directories,
        })
    }

    /// A backend over files that are already somewhere on disk: `paths[i]` holds the layout's
    /// file `i` (pad files' entries are never used). For checking data in place, such as a
    /// download whose folder was renamed; writes work the same as with [`FileBackend::new`].
    ///
    /// Fails with [`Error::InvalidSetting`] when there is not one path per file.
    pub fn from_paths(paths: Vec<PathBuf>, layout: &Layout, settings: &Settings) -> Result<Self, Error> {
        if paths.len() != layout.files().len() {
            return Err(Error::InvalidSetting { name: "paths", reason: "need exactly one path per file" });
        }
        Self::with_paths(paths, layout, settings)
    }

    /// The path on disk of file `file`.
    pub fn path(&self, file: usize) -> Option<&Path> {
        self.paths.get(file).map(PathBuf::as_path)
    }

    /// Number of descriptors the cache holds right now (never more than
    /// [`Settings::fd_cache_size`]).
    pub fn open_files(&self) -> usize {
        self.cache.lock().map(|c| c.entries.len()).unwrap_or(0)
    }

    fn file_path(&self, file: usize) -> Result<(&Path, u64), Error> {
        match (self.paths.get(file), self.lengths.get(file)) {
            (Some(p), Some(&l)) => Ok((p, l)),
            _ => Err(Error::Io {
                path: PathBuf::from(format!("file #{file}")),
                op: "lookup",
                source: io::Error::other("no such file in the layout"),
            }),
        }
    }

    fn handle(&self, file: usize, write: bool) -> Result<Arc<File>, Error> {
        let (path, length) = self.file_path(file)?;
        let mut c = self.cache.lock().map_err(|_| lock_error(path))?;
        c.tick += 1;
        let tick = c.tick;
        if let Some(e) = c.entries.get_mut(&file) {
            if e.writable || !write {
                e.used = tick;
                return Ok(e.handle.clone());
            }
            c.entries.remove(&file);
        }
        let f = self.open(path, write)?;
        // One fstat per open: catches a file that grew behind our back.
        let first_write = write && !c.sized.contains(&file);
        self.check_size(&f, path, length, first_write)?;
        if first_write {
            c.sized.insert(file);
        }
        if c.entries.len() >= c.cap
            && let Some((&victim, _)) = c.entries.iter().min_by_key(|(_, e)| e.used)
        {
            c.entries.remove(&victim);
        }
        let handle = Arc::new(f);
        c.entries.insert(file, Entry { handle: handle.clone(), writable: write, used: tick });
        Ok(handle)
    }

    fn open(&self, path: &Path, write: bool) -> Result<File, Error> {
        let mut o = OpenOptions::new();
        o.read(true);
        if write {
            o.write(true).create(true);
        }
        match o.open(path) {
            Ok(f) => Ok(f),
            Err(e) if write && e.kind() == io::ErrorKind::NotFound && self.create_directories => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| dir_error(path, e))?;
                }
                o.open(path).map_err(|e| Error::from_io(path, "open", e))
            }
            Err(e) => Err(Error::from_io(path, "open", e)),
        }
    }

    fn check_size(&self, f: &File, path: &Path, length: u64, extend: bool) -> Result<(), Error> {
        let found = f.metadata().map_err(|e| Error::from_io(path, "stat", e))?.len();
        if found > length {
            return Err(Error::FileTooLarge { path: path.to_path_buf(), expected: length, found });
        }
        if extend {
            let allocated = self.preallocate
                && match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), 0, length) {
                    Ok(()) => true,
                    // Filesystems without fallocate get a sparse file instead.
                    Err(rustix::io::Errno::OPNOTSUPP) => false,
                    Err(e) => return Err(Error::from_io(path, "fallocate", e.into())),
                };
            if !allocated && found < length {
                f.set_len(length).map_err(|e| Error::from_io(path, "truncate", e))?;
            }
        }
        Ok(())
    }
}

/// `create_dir_all` reports a regular file in the way as `EEXIST` or `ENOTDIR`.
fn dir_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::AlreadyExists {
        return Error::NotADirectory { path: path.to_path_buf() };
    }
    Error::from_io(path, "create directory", e)
}

impl Backend for FileBackend {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let f = self.handle(file, false)?;
        f.read_exact_at(buf, offset).map_err(|e| {
            let path = self.paths.get(file).map(PathBuf::as_path).unwrap_or(Path::new(""));
            Error::from_io(path, "read", e)
        })
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), Error> {
        let (path, length) = self.file_path(file)?;
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > length) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                op: "write",
                source: io::Error::other("past the end of the file"),
            });
        }
        let f = self.handle(file, true)?;
        f.write_all_at(data, offset).map_err(|e| Error::from_io(path, "write", e))?;
        if let Ok(mut c) = self.cache.lock() {
            c.dirty.insert(file);
        }
        Ok(())
    }

    /// One `pwritev` (repeated only on short writes).
    fn write_vectored_at(&self, file: usize, offset: u64, bufs: &[&[u8]]) -> Result<(), Error> {
        let (path, length) = self.file_path(file)?;
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if offset.checked_add(total).is_none_or(|end| end > length) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                op: "write",
                source: io::Error::other("past the end of the file"),
            });
        }
        let f = self.handle(file, true)?;
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        let mut pos = offset;
        while !rest.is_empty() {
            match rustix::io::pwritev(&*f, rest, pos) {
                Ok(0) if rest.iter().any(|s| !s.is_empty()) => {
                    return Err(Error::from_io(path, "write", io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => {
                    pos += n as u64;
                    IoSlice::advance_slices(&mut rest, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::from_io(path, "write", e.into())),
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            c.dirty.insert(file);
        }
        Ok(())
    }

    /// One `preadv` (repeated only on short reads).
    fn read_vectored_at(&self, file: usize, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        let (path, _) = self.file_path(file)?;
        let f = self.handle(file, false)?;
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut rest = &mut slices[..];
        let mut pos = offset;
        while !rest.is_empty() {
            match rustix::io::preadv(&*f, rest, pos) {
                Ok(0) if rest.iter().any(|s| !s.is_empty()) => {
                    return Err(Error::from_io(path, "read", io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => {
                    pos += n as u64;
                    IoSliceMut::advance_slices(&mut rest, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::from_io(path, "read", e.into())),
            }
        }
        Ok(())
    }

    fn metadata(&self, file: usize) -> Result<Option<FileMeta>, Error> {
        let (path, _) = self.file_path(file)?;
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileMeta {
                size: m.len(),
                mtime_secs: m.mtime(),
                mtime_nanos: u32::try_from(m.mtime_nsec()).unwrap_or(0),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_io(path, "stat", e)),
        }
    }

    fn create_empty(&self, file: usize) -> Result<(), Error> {
        let (path, length) = self.file_path(file)?;
        let f = self.open(path, true)?;
        self.check_size(&f, path, length, false)
    }

    fn sync(&self) -> Result<(), Error> {
        let dirty: Vec<usize> = match self.cache.lock() {
            Ok(mut c) => c.dirty.drain().collect(),
            Err(_) => return Err(lock_error(Path::new(""))),
        };
        for (i, &file) in dirty.iter().enumerate() {
            let r = self
                .handle(file, true)
                .and_then(|f| f.sync_data().map_err(|e| Error::from_io(&self.paths[file], "fsync", e)));
            if let Err(e) = r {
                // Put back what was not synced so the next call retries it.
                if let Ok(mut c) = self.cache.lock() {
                    c.dirty.extend(dirty[i..].iter().copied());
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::v1_layout;

    #[test]
    fn fd_cache_stays_bounded_and_files_are_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(String, u64, bool)> =
            (0..50).map(|i| (format!("t/d{}/f{i}", i % 7), 1000, false)).collect();
        let refs: Vec<(&str, u64, bool)> = files.iter().map(|(n, l, p)| (n.as_str(), *l, *p)).collect();
        let l = v1_layout(16384, &refs);
        let s = Settings { fd_cache_size: 4, ..Settings::default() };
        let b = FileBackend::new(dir.path(), &l, &s).unwrap();
        for i in 0..50 {
            b.write_at(i, 999, &[i as u8]).unwrap();
            assert!(b.open_files() <= 4);
        }
        for i in 0..50 {
            let mut x = [9u8; 2];
            b.read_at(i, 998, &mut x).unwrap();
            assert_eq!(x, [0, i as u8]);
            assert!(b.open_files() <= 4);
            assert_eq!(b.metadata(i).unwrap().unwrap().size, 1000);
        }
        b.sync().unwrap();
        assert!(b.write_at(0, 1000, b"x").is_err());
    }

    #[test]
    fn vectored_io_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let l = v1_layout(16384, &[("v", 100_000, false)]);
        let b = FileBackend::new(dir.path(), &l, &Settings::default()).unwrap();
        let (x, y, z) = (vec![1u8; 70_000], vec![2u8; 0], vec![3u8; 29_000]);
        b.write_vectored_at(0, 1000, &[&x, &y, &z]).unwrap();
        let (mut p, mut q) = (vec![0u8; 69_001], vec![0u8; 29_999]);
        b.read_vectored_at(0, 1000, &mut [&mut p, &mut q]).unwrap();
        assert!(p.iter().all(|&v| v == 1));
        assert_eq!(q[..999], [1u8; 999]);
        assert!(q[999..].iter().all(|&v| v == 3));
        assert!(b.write_vectored_at(0, 99_999, &[b"ab"]).is_err());
        let mut past = [0u8; 2];
        assert!(b.read_vectored_at(0, 99_999, &mut [&mut past]).is_err());
    }

    #[test]
    fn larger_file_on_disk_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let l = v1_layout(16384, &[("big", 10, false)]);
        std::fs::write(dir.path().join("big"), [7u8; 20]).unwrap();
        let b = FileBackend::new(dir.path(), &l, &Settings::default()).unwrap();
        assert!(matches!(b.write_at(0, 0, b"a"), Err(Error::FileTooLarge { expected: 10, found: 20, .. })));
        let mut x = [0u8; 1];
        assert!(matches!(b.read_at(0, 0, &mut x), Err(Error::FileTooLarge { .. })));
        assert_eq!(std::fs::read(dir.path().join("big")).unwrap(), [7u8; 20]);
    }

    #[test]
    fn missing_file_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let l = v1_layout(16384, &[("t/a", 10, false)]);
        let b = FileBackend::new(dir.path(), &l, &Settings::default()).unwrap();
        let mut x = [0u8; 1];
        assert!(matches!(b.read_at(0, 0, &mut x), Err(Error::MissingFile { .. })));
        assert_eq!(b.metadata(0).unwrap(), None);
    }

    #[test]
    fn preallocation_allocates_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let l = v1_layout(16384, &[("p", 1 << 20, false)]);
        let s = Settings { preallocate: true, ..Settings::default() };
        let b = FileBackend::new(dir.path(), &l, &s).unwrap();
        b.write_at(0, 0, b"x").unwrap();
        let m = std::fs::metadata(dir.path().join("p")).unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert!(m.blocks() * 512 >= 1 << 20, "allocated {} blocks", m.blocks());
    }

    #[test]
    fn a_file_in_the_path_is_not_a_directory() {
        // Tests run as root, where chmod does not deny anything: a regular file standing where a
        // directory must be is the portable way to make creation fail.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), b"in the way").unwrap();
        let l = v1_layout(16384, &[("t/sub/a", 10, false)]);
        let b = FileBackend::new(dir.path(), &l, &Settings::default()).unwrap();
        assert!(matches!(b.write_at(0, 0, b"a"), Err(Error::NotADirectory { .. })));
        assert_eq!(std::fs::read(dir.path().join("t")).unwrap(), b"in the way");
    }
}
