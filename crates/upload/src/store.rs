//! Storage: a positional, synchronous trait with file and memory backends.
//!
//! # Durability (fsync policy)
//!
//! [`FileStore`] writes PATCH bodies straight to `<id>.bin` through a small
//! buffer. The server advances an offset only after [`StoreWriter::sync`]
//! (`fdatasync` of the data) returned. State changes (creation, length,
//! completion) go to `<id>.info` by write, fsync, rename, fsync of the
//! directory. Plain progress goes to a 24-byte checksummed record `<id>.off`
//! written in place *without* fsync: after a power cut it can only be older
//! than the truth (it is written after the data it counts is durable), so the
//! offset reported after a restart may be smaller, never larger, than the
//! durable bytes; a torn record fails its checksum and is ignored. That is one
//! `fdatasync` per PATCH before its offset moves, plus background ones (every
//! 16 MiB written, one at a time) so writeback overlaps the transfer; those
//! never move the offset. Bytes past the offset (from a crash mid-PATCH) are
//! cut off when the upload is opened again.
//!
//! [`FileStore::without_fsync`] drops the `fsync` calls (for tmpfs, tests and
//! benchmarks): a process crash still loses nothing acknowledged, since the
//! page cache survives it, but an OS crash or power cut may.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::headers::{Concat, Metadata, MetadataLimits};
use crate::id::UploadId;
use crate::merkle::PiecesRoot;

/// What the server remembers about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// Total length, `None` while deferred.
    pub length: Option<u64>,
    /// Durable offset.
    pub offset: u64,
    /// Client metadata.
    pub metadata: Metadata,
    /// Concatenation role.
    pub concat: Option<Concat>,
    /// Creation time.
    pub created: SystemTime,
    /// When an unfinished upload expires.
    pub expires: Option<SystemTime>,
    /// BEP 52 root once finished (and non-empty).
    pub root: Option<PiecesRoot>,
}

impl UploadInfo {
    /// True once every byte has arrived.
    pub fn is_finished(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Serializes to the line format stored in `<id>.info`.
    pub fn encode(&self) -> String {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut s = String::from("piecework-upload 1\n");
        if let Some(l) = self.length {
            s.push_str(&format!("length {l}\n"));
        }
        s.push_str(&format!("offset {}\n", self.offset));
        s.push_str(&format!("created {}\n", secs(self.created)));
        if let Some(e) = self.expires {
            s.push_str(&format!("expires {}\n", secs(e)));
        }
        if !self.metadata.is_empty() {
            s.push_str(&format!("metadata {}\n", self.metadata.encode()));
        }
        if let Some(c) = &self.concat {
            s.push_str(&format!("concat {}\n", c.encode("/")));
        }
        if let Some(r) = self.root {
            s.push_str(&format!("root {}\n", r.to_hex()));
        }
        s
    }

    /// Parses [`UploadInfo::encode`] output.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = Error::CorruptRecord { what: "info" };
        let mut lines = text.lines();
        if lines.next() != Some("piecework-upload 1") {
            return Err(bad);
        }
        let num = |v: &str| v.parse::<u64>().map_err(|_| Error::CorruptRecord { what: "info" });
        let mut info = UploadInfo {
            length: None,
            offset: 0,
            metadata: Metadata::new(),
            concat: None,
            created: UNIX_EPOCH,
            expires: None,
            root: None,
        };
        for line in lines {
            let (k, v) = line.split_once(' ').ok_or(Error::CorruptRecord { what: "info" })?;
            match k {
                "length" => info.length = Some(num(v)?),
                "offset" => info.offset = num(v)?,
                "created" => info.created = unix_time(num(v)?)?,
                "expires" => info.expires = Some(unix_time(num(v)?)?),
                "metadata" => {
                    let limits = MetadataLimits { max_len: usize::MAX, max_pairs: usize::MAX };
                    info.metadata = Metadata::parse(v.as_bytes(), limits)?;
                }
                "concat" => info.concat = Some(Concat::parse(v.as_bytes(), usize::MAX)?),
                "root" => info.root = Some(PiecesRoot(parse_hex32(v).ok_or(bad_info())?)),
                _ => return Err(bad_info()),
            }
        }
        if info.length.is_some_and(|l| info.offset > l) {
            return Err(bad_info());
        }
        Ok(info)
    }
}

/// Unix seconds to a time; out-of-range values (corrupt records) are errors,
/// not overflow panics (fuzz finding).
fn unix_time(secs: u64) -> Result<SystemTime, Error> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs)).ok_or(bad_info())
}

fn bad_info() -> Error {
    Error::CorruptRecord { what: "info" }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = (pair.first()?.to_ascii_lowercase() as char).to_digit(16)?;
        let lo = (pair.get(1)?.to_ascii_lowercase() as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// An open, positioned writer for one upload's data.
pub trait StoreWriter: Send {
    /// Appends bytes at the current position.
    fn write_all(&mut self, data: &[u8]) -> Result<(), Error>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> Result<(), Error>;
}

/// Positional, synchronous upload storage.
pub trait Store: Send {
    /// Writer type.
    type Writer: StoreWriter + 'static;
    /// Creates empty data and persists `info`.
    fn create(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error>;
    /// Persists `info` atomically.
    fn save_info(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error>;
    /// Persists progress (offset and expiry changed, nothing else). May be
    /// cheaper than [`Store::save_info`]; after a crash it may read back
    /// older, never newer.
    fn save_progress(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        self.save_info(id, info)
    }
    /// All stored uploads, data cut back to each recorded offset.
    fn list(&mut self) -> Result<Vec<(UploadId, UploadInfo)>, Error>;
    /// A writer positioned at `offset`; bytes beyond it are discarded.
    fn writer(&mut self, id: &UploadId, offset: u64) -> Result<Self::Writer, Error>;
    /// Reads at `offset` into `buf`; returns bytes read (0 at end).
    fn read_at(&self, id: &UploadId, offset: u64, buf: &mut [u8]) -> Result<usize, Error>;
    /// Cuts data back to `len`.
    fn truncate(&mut self, id: &UploadId, len: u64) -> Result<(), Error>;
    /// Deletes data and info.
    fn remove(&mut self, id: &UploadId) -> Result<(), Error>;
}

type SharedBytes = Arc<Mutex<Vec<u8>>>;

/// In-memory store for tests and fuzzing.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    uploads: HashMap<UploadId, (UploadInfo, SharedBytes)>,
}

impl MemoryStore {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the stored bytes of `id`.
    pub fn data(&self, id: &UploadId) -> Option<Vec<u8>> {
        let (_, d) = self.uploads.get(id)?;
        d.lock().ok().map(|v| v.clone())
    }
}

/// Writer of [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryWriter(Arc<Mutex<Vec<u8>>>);

fn poisoned() -> Error {
    Error::Io(std::io::Error::other("store lock poisoned"))
}

impl StoreWriter for MemoryWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0.lock().map_err(|_| poisoned())?.extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

impl Store for MemoryStore {
    type Writer = MemoryWriter;
    fn create(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        self.uploads.insert(id.clone(), (info.clone(), Arc::default()));
        Ok(())
    }
    fn save_info(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        let (i, _) = self.uploads.get_mut(id).ok_or(Error::UploadNotFound)?;
        *i = info.clone();
        Ok(())
    }
    fn list(&mut self) -> Result<Vec<(UploadId, UploadInfo)>, Error> {
        let mut out = Vec::new();
        for (id, (info, data)) in &self.uploads {
            let mut d = data.lock().map_err(|_| poisoned())?;
            d.truncate(usize::try_from(info.offset).unwrap_or(usize::MAX));
            out.push((id.clone(), info.clone()));
        }
        Ok(out)
    }
    fn writer(&mut self, id: &UploadId, offset: u64) -> Result<MemoryWriter, Error> {
        let (_, d) = self.uploads.get(id).ok_or(Error::UploadNotFound)?;
        d.lock().map_err(|_| poisoned())?.truncate(usize::try_from(offset).unwrap_or(usize::MAX));
        Ok(MemoryWriter(d.clone()))
    }
    fn read_at(&self, id: &UploadId, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let (_, d) = self.uploads.get(id).ok_or(Error::UploadNotFound)?;
        let d = d.lock().map_err(|_| poisoned())?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
        let src = d.get(start..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
    fn truncate(&mut self, id: &UploadId, len: u64) -> Result<(), Error> {
        let (_, d) = self.uploads.get(id).ok_or(Error::UploadNotFound)?;
        d.lock().map_err(|_| poisoned())?.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
    fn remove(&mut self, id: &UploadId) -> Result<(), Error> {
        self.uploads.remove(id);
        Ok(())
    }
}

/// Files under one directory: `<id>.bin` (data) and `<id>.info` (state).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    durable: bool,
}

const PROGRESS_MAGIC: &[u8; 4] = b"PWOF";
const PROGRESS_LEN: usize = 24;

/// Buffer between the network and `write(2)`; bounds memory per PATCH.
const WRITE_BUFFER: usize = 256 * 1024;

impl FileStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(Self { dir: dir.as_ref().to_owned(), durable: true })
    }

    /// The same store without `fsync` (see the module docs for what that
    /// gives up). Default is durable.
    pub fn without_fsync(mut self) -> Self {
        self.durable = false;
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of an upload's data file (ids are validated, so it stays inside).
    pub fn data_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{}.bin", id.as_str()))
    }

    fn info_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{}.info", id.as_str()))
    }

    fn progress_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{}.off", id.as_str()))
    }

    /// Reads `<id>.off`: `(offset, expires secs)` if present and intact.
    fn read_progress(&self, id: &UploadId) -> Option<(u64, u64)> {
        let raw = std::fs::read(self.progress_path(id)).ok()?;
        let rec: [u8; PROGRESS_LEN] = raw.as_slice().try_into().ok()?;
        let (body, crc) = rec.split_at(PROGRESS_LEN - 4);
        if body.get(..4)? != PROGRESS_MAGIC || crc32c::crc32c(body).to_le_bytes().as_slice() != crc {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            Some(u64::from_le_bytes(body.get(r)?.try_into().ok()?))
        };
        Some((num(4..12)?, num(12..20)?))
    }

    /// Writes `text` to `path` atomically and durably.
    pub fn write_atomic(&self, path: &Path, text: &[u8]) -> Result<(), Error> {
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text)?;
            if self.durable {
                f.sync_all()?;
            }
        }
        std::fs::rename(&tmp, path)?;
        if self.durable {
            // Make the rename itself durable.
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Writer of [`FileStore`].
#[derive(Debug)]
pub struct FileWriter {
    file: std::io::BufWriter<std::fs::File>,
    durable: bool,
    /// Bytes written since the last background flush started.
    unflushed: u64,
    /// Written (or just opened, which may have cut the file) since the last
    /// foreground sync. A clean writer skips `fdatasync`: the server syncs a
    /// body once off the async workers and again under the lock, and the
    /// second call had nothing left but a device cache flush.
    dirty: bool,
    /// A background `fdatasync` of the bytes written so far, if one runs.
    flusher: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// A durable writer starts a background `fdatasync` every this many bytes
/// (if the last one has finished), so the disk writes back while the body
/// still streams in and the final sync before the offset moves has little
/// left to do. (2 MiB was tried: no difference in an ABBA comparison.)
const BACKGROUND_SYNC: u64 = 16 << 20;

impl FileWriter {
    fn new(file: std::fs::File, durable: bool) -> Self {
        Self {
            file: std::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            durable,
            unflushed: 0,
            dirty: true,
            flusher: None,
        }
    }

    fn join_flusher(&mut self) -> Result<(), Error> {
        if let Some(h) = self.flusher.take() {
            h.join().map_err(|_| Error::InvalidState("background sync panicked"))??;
        }
        Ok(())
    }
}

impl StoreWriter for FileWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<(), Error> {
        self.dirty = true;
        self.file.write_all(data)?;
        self.unflushed += data.len() as u64;
        if self.durable
            && self.unflushed >= BACKGROUND_SYNC
            && self.flusher.as_ref().is_none_or(|h| h.is_finished())
        {
            // Only a head start: the offset still moves only after `sync`.
            self.join_flusher()?;
            self.file.flush()?;
            let clone = self.file.get_ref().try_clone()?;
            self.flusher = Some(std::thread::spawn(move || clone.sync_data()));
            self.unflushed = 0;
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), Error> {
        self.file.flush()?;
        self.join_flusher()?;
        if self.durable && self.dirty {
            self.file.get_ref().sync_data()?;
        }
        self.dirty = false;
        Ok(())
    }
}

impl Store for FileStore {
    type Writer = FileWriter;
    fn create(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        std::fs::File::create(self.data_path(id))?;
        self.save_info(id, info)
    }
    fn save_info(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        self.write_atomic(&self.info_path(id), info.encode().as_bytes())
    }
    fn save_progress(&mut self, id: &UploadId, info: &UploadInfo) -> Result<(), Error> {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut rec = [0u8; PROGRESS_LEN];
        rec[..4].copy_from_slice(PROGRESS_MAGIC);
        rec[4..12].copy_from_slice(&info.offset.to_le_bytes());
        rec[12..20].copy_from_slice(&info.expires.map_or(0, secs).to_le_bytes());
        let crc = crc32c::crc32c(&rec[..20]);
        rec[20..].copy_from_slice(&crc.to_le_bytes());
        // One small in-place write, no fsync (see the module docs).
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.progress_path(id))?;
        f.write_all(&rec)?;
        Ok(())
    }
    fn list(&mut self) -> Result<Vec<(UploadId, UploadInfo)>, Error> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".info")) else {
                continue;
            };
            let Ok(id) = UploadId::new(stem) else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path())?;
            let mut info = UploadInfo::decode(&text)?;
            if let Some((off, exp)) = self.read_progress(&id)
                && off > info.offset
                && info.length.is_none_or(|l| off <= l)
            {
                info.offset = off;
                info.expires = (exp > 0).then(|| unix_time(exp).ok()).flatten();
            }
            let data = std::fs::OpenOptions::new().write(true).open(self.data_path(&id))?;
            let len = data.metadata()?.len();
            if len > info.offset {
                // Unacknowledged tail from a crash mid-PATCH.
                data.set_len(info.offset)?;
                data.sync_all()?;
            } else if len < info.offset {
                // Data lost (e.g. OS crash despite fsync): trust the bytes.
                info.offset = len;
                info.root = None;
            }
            out.push((id, info));
        }
        Ok(out)
    }
    fn writer(&mut self, id: &UploadId, offset: u64) -> Result<FileWriter, Error> {
        let mut f =
            std::fs::OpenOptions::new().write(true).open(self.data_path(id)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::UploadNotFound,
                _ => Error::Io(e),
            })?;
        f.set_len(offset)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(FileWriter::new(f, self.durable))
    }
    fn read_at(&self, id: &UploadId, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let mut f = std::fs::File::open(self.data_path(id))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(f.read(buf)?)
    }
    fn truncate(&mut self, id: &UploadId, len: u64) -> Result<(), Error> {
        let f = std::fs::OpenOptions::new().write(true).open(self.data_path(id))?;
        f.set_len(len)?;
        if self.durable {
            f.sync_all()?;
        }
        Ok(())
    }
    fn remove(&mut self, id: &UploadId) -> Result<(), Error> {
        for p in [self.info_path(id), self.progress_path(id), self.data_path(id)] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> UploadInfo {
        let mut metadata = Metadata::new();
        metadata.insert("filename", b"a b.txt").unwrap();
        UploadInfo {
            length: Some(10),
            offset: 4,
            metadata,
            concat: Some(Concat::Partial),
            created: UNIX_EPOCH + Duration::from_secs(5),
            expires: Some(UNIX_EPOCH + Duration::from_secs(50)),
            root: Some(PiecesRoot([9; 32])),
        }
    }

    #[test]
    fn info_roundtrip() {
        let i = info();
        assert_eq!(UploadInfo::decode(&i.encode()).unwrap(), i);
        assert!(UploadInfo::decode("garbage").is_err());
        assert!(UploadInfo::decode("piecework-upload 1\nlength 3\noffset 4\n").is_err());
        assert!(UploadInfo::decode("piecework-upload 1\ncreated 18446744073709551615\n").is_err());
    }

    #[test]
    fn file_store_cuts_unacknowledged_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        let id = UploadId::new("abc").unwrap();
        let mut i = info();
        i.offset = 0;
        s.create(&id, &i).unwrap();
        let mut w = s.writer(&id, 0).unwrap();
        w.write_all(b"hello world").unwrap();
        w.sync().unwrap();
        i.offset = 5;
        s.save_info(&id, &i).unwrap();
        drop(w);
        let mut s2 = FileStore::open(dir.path()).unwrap();
        let list = s2.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1.offset, 5);
        let mut buf = [0u8; 64];
        assert_eq!(s2.read_at(&id, 0, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        s2.remove(&id).unwrap();
        assert!(s2.list().unwrap().is_empty());
    }

    /// A durable store in a temporary directory with one empty upload.
    fn fresh_upload() -> (tempfile::TempDir, FileStore, UploadId) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        let id = UploadId::new("w").unwrap();
        s.create(&id, &info()).unwrap();
        (dir, s, id)
    }

    #[test]
    fn writer_keeps_order_across_its_buffer_and_drop_flushes_before_truncate() {
        let (_dir, mut s, id) = fresh_upload();
        let data: Vec<u8> = (0..(3 * WRITE_BUFFER + 12_345)).map(|i| (i % 253) as u8).collect();
        let mut w = s.writer(&id, 0).unwrap();
        // Odd pieces, some larger than the whole buffer.
        for c in data.chunks(WRITE_BUFFER + 7) {
            for c in c.chunks(100_001) {
                w.write_all(c).unwrap();
            }
        }
        w.sync().unwrap();
        assert_eq!(std::fs::read(s.data_path(&id)).unwrap(), data);
        // Unsynced bytes are written by the time the writer is dropped, so a
        // truncate after the drop is final.
        w.write_all(b"tail").unwrap();
        drop(w);
        s.truncate(&id, data.len() as u64).unwrap();
        assert_eq!(std::fs::read(s.data_path(&id)).unwrap(), data);
    }

    #[test]
    fn long_durable_body_with_background_syncs_reads_back() {
        let (_dir, mut s, id) = fresh_upload();
        let data: Vec<u8> = (0..(5 * BACKGROUND_SYNC as usize + 999)).map(|i| (i % 241) as u8).collect();
        let mut w = s.writer(&id, 0).unwrap();
        for c in data.chunks(300_007) {
            w.write_all(c).unwrap();
        }
        w.sync().unwrap();
        // A second sync with nothing new is fine (and skips the fdatasync).
        w.sync().unwrap();
        drop(w);
        assert_eq!(std::fs::read(s.data_path(&id)).unwrap(), data);
    }

    #[test]
    fn progress_record_is_used_only_when_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        let id = UploadId::new("p").unwrap();
        let mut i = info();
        i.offset = 0;
        s.create(&id, &i).unwrap();
        let mut w = s.writer(&id, 0).unwrap();
        w.write_all(b"0123456789").unwrap();
        w.sync().unwrap();
        i.offset = 7;
        s.save_progress(&id, &i).unwrap();
        assert_eq!(s.list().unwrap()[0].1.offset, 7);
        assert_eq!(s.list().unwrap()[0].1.expires, i.expires);
        // A torn record is ignored: back to the info file's offset.
        let p = dir.path().join("p.off");
        let mut raw = std::fs::read(&p).unwrap();
        raw[5] ^= 1;
        std::fs::write(&p, raw).unwrap();
        assert_eq!(s.list().unwrap()[0].1.offset, 0);
        let mut buf = [0u8; 16];
        assert_eq!(s.read_at(&id, 0, &mut buf).unwrap(), 0, "tail cut");
    }
}
