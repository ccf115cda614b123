//! Creating torrents: v1, v2 or hybrid, from a file, a directory or any readers.
//!
//! Hashing is streamed with bounded memory and runs on one thread per core. Files on disk are
//! read by the hashing threads themselves with positional reads, a small chunk at a time; other
//! readers are read in order by the calling thread into a small pool of piece buffers. A
//! hybrid's SHA-1 and SHA-256 hashes come from the same read of the data.
//!
//! This module reads files (`std::fs`), so it sits behind the `create` feature (on by default);
//! the rest of the crate does no I/O.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use piecework_bencode::Encoder;
use piecework_interleaved_sha::Sha1;

use crate::merkle::{self, MerkleHash};
use crate::piece::BLOCK_SIZE;
use crate::{Error, FileAttributes, Version};

/// Most memory the read buffers may take together (the pool shrinks for big pieces).
const BUFFER_BUDGET: u64 = 32 << 20;

/// How files found in a directory are ordered.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum FileOrder {
    /// Sorted by path, byte-wise per component (the v2 file tree's order). Reproducible.
    #[default]
    Sorted,
    /// The order the directory listing returns (what libtorrent and mktorrent do for v1);
    /// v2 and hybrid torrents are always sorted.
    AsListed,
}

/// Where a file's bytes come from.
enum Source {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
}

/// One file to put in a torrent.
pub struct InputFile {
    path: Vec<String>,
    length: u64,
    attributes: FileAttributes,
    symlink_target: Option<Vec<String>>,
    source: Source,
}

impl core::fmt::Debug for InputFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InputFile").field("path", &self.path).field("length", &self.length).finish()
    }
}

impl InputFile {
    /// A file whose `length` bytes `reader` yields. `path` is relative to the torrent's root.
    pub fn from_reader(path: Vec<String>, length: u64, reader: impl Read + Send + 'static) -> Self {
        Self {
            path,
            length,
            attributes: FileAttributes::default(),
            symlink_target: None,
            source: Source::Reader(Box::new(reader)),
        }
    }
    /// A file on disk, opened when hashing reaches it.
    pub fn from_path(path: Vec<String>, length: u64, disk_path: PathBuf) -> Self {
        Self {
            path,
            length,
            attributes: FileAttributes::default(),
            symlink_target: None,
            source: Source::Path(disk_path),
        }
    }
    /// A symbolic link to `target` (relative to the torrent's root); it has no data.
    pub fn symlink(path: Vec<String>, target: Vec<String>) -> Self {
        Self {
            path,
            length: 0,
            attributes: FileAttributes { symlink: true, ..FileAttributes::default() },
            symlink_target: Some(target),
            source: Source::Reader(Box::new(io::empty())),
        }
    }
    /// Marks the file executable (`x`).
    pub fn executable(mut self, on: bool) -> Self {
        self.attributes.executable = on;
        self
    }
    /// Marks the file hidden (`h`).
    pub fn hidden(mut self, on: bool) -> Self {
        self.attributes.hidden = on;
        self
    }
}

/// Progress of hashing: bytes done and bytes in total.
pub type Progress<'p> = &'p mut dyn FnMut(u64, u64);

/// Builds a torrent. Set options, then call [`TorrentBuilder::build_path`] or
/// [`TorrentBuilder::build_files`].
///
/// ```no_run
/// use piecework_metainfo::{TorrentBuilder, Version};
/// let bytes = TorrentBuilder::new(Version::Hybrid)
///     .tracker("http://tracker.example/announce")
///     .creation_date(None)
///     .build_path("some/dir".as_ref(), &mut |done, total| eprintln!("{done}/{total}"))?;
/// # Ok::<(), piecework_metainfo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TorrentBuilder {
    version: Version,
    piece_length: Option<u64>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    threads: usize,
    order: FileOrder,
    follow_symlinks: bool,
    mark_hidden: bool,
    name: Option<String>,
}

impl TorrentBuilder {
    /// A builder for the given format, with an automatic piece length, no trackers, the
    /// current time as creation date and one hashing thread per core.
    pub fn new(version: Version) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .ok();
        Self {
            version,
            piece_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            comment: None,
            created_by: Some(concat!("piecework ", env!("CARGO_PKG_VERSION")).to_owned()),
            creation_date: now,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            order: FileOrder::Sorted,
            follow_symlinks: true,
            mark_hidden: false,
            name: None,
        }
    }
    /// A fixed piece length (a power of two of at least 16 KiB); `None` picks one.
    pub fn piece_length(mut self, len: Option<u64>) -> Self {
        self.piece_length = len;
        self
    }
    /// Adds a tracker in a tier of its own (BEP 12).
    pub fn tracker(mut self, url: impl Into<String>) -> Self {
        self.trackers.push(vec![url.into()]);
        self
    }
    /// Adds a tier of trackers.
    pub fn tracker_tier(mut self, urls: Vec<String>) -> Self {
        self.trackers.push(urls);
        self
    }
    /// Adds a web seed (BEP 19 `url-list`).
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        self.web_seeds.push(url.into());
        self
    }
    /// Sets the private flag (BEP 27).
    pub fn private(mut self, on: bool) -> Self {
        self.private = on;
        self
    }
    /// Sets `comment`.
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }
    /// Sets `created by` (`None` leaves it out).
    pub fn created_by(mut self, text: Option<String>) -> Self {
        self.created_by = text;
        self
    }
    /// Sets `creation date`; `None` leaves it out, for reproducible output.
    pub fn creation_date(mut self, secs: Option<i64>) -> Self {
        self.creation_date = secs;
        self
    }
    /// Hashing threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }
    /// Order of files found in a directory (v1 only; v2 and hybrid are always sorted).
    pub fn file_order(mut self, order: FileOrder) -> Self {
        self.order = order;
        self
    }
    /// Whether symlinks in a directory are followed (default) or stored as BEP 47 links.
    pub fn follow_symlinks(mut self, on: bool) -> Self {
        self.follow_symlinks = on;
        self
    }
    /// Whether files found in a directory whose name starts with `.` get the hidden attribute
    /// (`h`). Off by default, like libtorrent on Unix, so info-hashes match its torrents.
    pub fn mark_hidden(mut self, on: bool) -> Self {
        self.mark_hidden = on;
        self
    }
    /// Overrides the torrent's name (default: the file or directory name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes a torrent of a file (single-file torrent) or a directory (multi-file, named after
    /// it). Returns the bencoded .torrent.
    pub fn build_path(&self, path: &Path, progress: Progress<'_>) -> Result<Vec<u8>, Error> {
        let io_err = |p: &Path, e| Error::Io { path: p.display().to_string(), source: e };
        let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => path
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| Error::InvalidOption {
                    reason: format!("{} has no file name", path.display()),
                })?,
        };
        if meta.is_file() {
            let f = InputFile::from_path(vec![name.clone()], meta.len(), path.to_path_buf())
                .executable(is_executable(&meta));
            return self.build(&name, vec![f], false, progress);
        }
        let mut files = Vec::new();
        self.walk(path, &mut Vec::new(), &mut files)?;
        self.build(&name, files, true, progress)
    }

    fn walk(&self, dir: &Path, rel: &mut Vec<String>, out: &mut Vec<InputFile>) -> Result<(), Error> {
        let io_err = |p: &Path, e| Error::Io { path: p.display().to_string(), source: e };
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(dir, e))?;
        if self.order == FileOrder::Sorted || self.version != Version::V1 {
            entries.sort_by_key(|e| e.file_name());
        }
        for e in entries {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let lmeta = fs::symlink_metadata(&p).map_err(|er| io_err(&p, er))?;
            rel.push(name);
            let link_target = if lmeta.file_type().is_symlink() && !self.follow_symlinks {
                let target = fs::read_link(&p).map_err(|er| io_err(&p, er))?;
                link_in_torrent(&rel[..rel.len() - 1], &target)
            } else {
                None
            };
            if let Some(t) = link_target {
                out.push(InputFile::symlink(rel.clone(), t));
            } else {
                let meta = match fs::metadata(&p) {
                    Ok(m) => m,
                    // A dangling link has nothing to hash: leave it out.
                    Err(er) if lmeta.file_type().is_symlink() && er.kind() == io::ErrorKind::NotFound => {
                        rel.pop();
                        continue;
                    }
                    Err(er) => return Err(io_err(&p, er)),
                };
                if meta.is_dir() {
                    if rel.len() > 100 {
                        return Err(Error::InvalidOption {
                            reason: format!("{} is nested too deep", p.display()),
                        });
                    }
                    self.walk(&p, rel, out)?;
                } else if meta.is_file() {
                    let hidden = self.mark_hidden && rel.last().is_some_and(|n| n.starts_with('.'));
                    out.push(
                        InputFile::from_path(rel.clone(), meta.len(), p)
                            .executable(is_executable(&meta))
                            .hidden(hidden),
                    );
                }
            }
            rel.pop();
        }
        Ok(())
    }

    /// Makes a multi-file torrent named `name` from the given files (in the order given for
    /// v1; sorted for v2 and hybrid). A v2-only torrent whose tree holds a single top-level file
    /// reads back as a single-file torrent (BEP 52 has no other way to say it).
    pub fn build_files(
        &self,
        name: &str,
        files: Vec<InputFile>,
        progress: Progress<'_>,
    ) -> Result<Vec<u8>, Error> {
        self.build(name, files, true, progress)
    }

    /// Makes a multi-file torrent named `name` from `(path, length, reader)` triples, each
    /// reader yielding exactly `length` bytes (read once, when hashing reaches it).
    pub fn build_iter<R: Read + Send + 'static>(
        &self,
        name: &str,
        files: impl IntoIterator<Item = (Vec<String>, u64, R)>,
        progress: Progress<'_>,
    ) -> Result<Vec<u8>, Error> {
        let files = files.into_iter().map(|(p, len, r)| InputFile::from_reader(p, len, r)).collect();
        self.build(name, files, true, progress)
    }

    fn build(
        &self,
        name: &str,
        mut files: Vec<InputFile>,
        multi: bool,
        progress: Progress<'_>,
    ) -> Result<Vec<u8>, Error> {
        if files.is_empty() {
            return Err(Error::InvalidOption { reason: "no files to add".to_owned() });
        }
        for f in &files {
            if f.path.is_empty()
                || f.path.iter().any(|c| c.is_empty() || c == "." || c == ".." || c.contains(['/', '\\']))
            {
                return Err(Error::InvalidOption { reason: format!("bad path {:?}", f.path) });
            }
        }
        if self.version != Version::V1 {
            files.sort_by(|a, b| a.path.cmp(&b.path));
            if files.windows(2).any(|w| w[0].path == w[1].path) {
                return Err(Error::InvalidOption { reason: "two files have the same path".to_owned() });
            }
        }
        let total: u64 = files.iter().map(|f| f.length).sum();
        if total == 0 {
            return Err(Error::InvalidOption { reason: "all files are empty".to_owned() });
        }
        let piece_length = match self.piece_length {
            Some(p) if p >= u64::from(BLOCK_SIZE) && p.is_power_of_two() && p <= crate::MAX_PIECE_LENGTH => p,
            Some(p) => {
                return Err(Error::InvalidOption {
                    reason: format!("piece length {p} is not a power of two between 16 KiB and 512 MiB"),
                });
            }
            None => auto_piece_length(total),
        };
        let hashed =
            hash_files(self.version, &mut files, piece_length, total, self.threads, multi, progress)?;
        self.encode(name, &files, multi, piece_length, &hashed)
    }

    fn encode(
        &self,
        name: &str,
        files: &[InputFile],
        multi: bool,
        pl: u64,
        h: &Hashed,
    ) -> Result<Vec<u8>, Error> {
        let v1 = self.version != Version::V2;
        let v2 = self.version != Version::V1;
        let mut info = Encoder::new(Vec::new());
        info.begin_dict()?;
        let single_attr = files[0].attributes.to_attr_string();
        if v1 && !multi && !single_attr.is_empty() {
            // A single file's attributes sit in the info dictionary (as libtorrent writes them).
            info.key(b"attr")?;
            info.str(&single_attr)?;
        }
        if v2 {
            info.key(b"file tree")?;
            // Build the nested tree: BTreeMap keeps each level sorted.
            let mut tree = Tree::default();
            for (i, f) in files.iter().enumerate() {
                tree.insert(&f.path, i);
            }
            if multi {
                encode_tree(&mut info, &tree, files, h)?;
            } else {
                let mut t = Tree::default();
                t.insert(&[name.to_owned()], 0);
                encode_tree(&mut info, &t, files, h)?;
            }
        }
        if v1 && multi {
            info.key(b"files")?;
            info.begin_list()?;
            for f in files {
                encode_v1_file(&mut info, f)?;
                if v2 {
                    let rem = f.length % pl;
                    // Hybrid: every non-aligned file, the last one included, is padded (libtorrent 2.0).
                    if rem != 0 {
                        let pad = pl - rem;
                        info.begin_dict()?;
                        info.key(b"attr")?;
                        info.bytes(b"p")?;
                        info.key(b"length")?;
                        info.int(pad as i64)?;
                        info.key(b"path")?;
                        info.begin_list()?;
                        info.bytes(b".pad")?;
                        info.bytes(pad.to_string().as_bytes())?;
                        info.end()?;
                        info.end()?;
                    }
                }
            }
            info.end()?;
        }
        if v1 && !multi {
            let f = &files[0];
            info.key(b"length")?;
            info.int(f.length as i64)?;
        }
        if v2 {
            info.key(b"meta version")?;
            info.int(2)?;
        }
        info.key(b"name")?;
        info.str(name)?;
        info.key(b"piece length")?;
        info.int(pl as i64)?;
        if v1 {
            info.key(b"pieces")?;
            info.bytes(&h.pieces)?;
        }
        if self.private {
            info.key(b"private")?;
            info.int(1)?;
        }
        info.end()?;
        let info = info.finish()?;

        let mut out = Encoder::new(Vec::with_capacity(info.len() + 1024));
        out.begin_dict()?;
        let flat: Vec<&String> = self.trackers.iter().flatten().collect();
        if let Some(first) = flat.first() {
            out.key(b"announce")?;
            out.str(first)?;
        }
        if flat.len() > 1 {
            out.key(b"announce-list")?;
            out.begin_list()?;
            for tier in self.trackers.iter().filter(|t| !t.is_empty()) {
                out.begin_list()?;
                for u in tier {
                    out.str(u)?;
                }
                out.end()?;
            }
            out.end()?;
        }
        if let Some(c) = &self.comment {
            out.key(b"comment")?;
            out.str(c)?;
        }
        if let Some(c) = &self.created_by {
            out.key(b"created by")?;
            out.str(c)?;
        }
        if let Some(d) = self.creation_date {
            out.key(b"creation date")?;
            out.int(d)?;
        }
        out.key(b"info")?;
        out.raw(&info)?;
        if v2 {
            let mut layers: Vec<(&MerkleHash, &Vec<MerkleHash>)> = files
                .iter()
                .enumerate()
                .filter(|(_, f)| f.length > pl)
                .filter_map(|(i, _)| h.roots[i].as_ref().map(|r| (r, &h.layers[i])))
                .collect();
            layers.sort_by_key(|(r, _)| **r);
            layers.dedup_by(|a, b| a.0 == b.0);
            if !layers.is_empty() {
                out.key(b"piece layers")?;
                out.begin_dict()?;
                for (r, l) in layers {
                    out.key(r)?;
                    let flat: Vec<u8> = l.iter().flatten().copied().collect();
                    out.bytes(&flat)?;
                }
                out.end()?;
            }
        }
        if !self.web_seeds.is_empty() {
            out.key(b"url-list")?;
            if self.web_seeds.len() == 1 {
                out.str(&self.web_seeds[0])?;
            } else {
                out.begin_list()?;
                for w in &self.web_seeds {
                    out.str(w)?;
                }
                out.end()?;
            }
        }
        out.end()?;
        Ok(out.finish()?)
    }
}

/// A link's target as BEP 47 wants it (relative to the torrent's root), or `None` when it
/// points outside the torrent (such links are followed and stored as files instead).
fn link_in_torrent(link_dir: &[String], target: &Path) -> Option<Vec<String>> {
    use std::path::Component;
    let mut out: Vec<String> = link_dir.to_vec();
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn is_executable(meta: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o100 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// libtorrent's rule: the smallest power of two that gives at most about 2,048 pieces,
/// between 16 KiB and 128 MiB... capped at 16 MiB here to keep buffers small.
pub fn auto_piece_length(total: u64) -> u64 {
    let target = total / 2048;
    let mut p = u64::from(BLOCK_SIZE);
    while p < target && p < (16 << 20) {
        p *= 2;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_stay_inside() {
        let dir = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            link_in_torrent(&dir, Path::new("../c/./d")),
            Some(vec!["a".into(), "c".into(), "d".into()])
        );
        assert_eq!(link_in_torrent(&dir, Path::new("../../../etc/passwd")), None);
        assert_eq!(link_in_torrent(&dir, Path::new("/etc/passwd")), None);
        assert_eq!(link_in_torrent(&[], Path::new("..")), None);
    }

    #[cfg(unix)]
    #[test]
    fn stored_symlinks_parse_back() {
        let d = std::env::temp_dir().join(format!("piecework-symlink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("t/sub")).unwrap();
        fs::write(d.join("t/sub/real.txt"), b"data").unwrap();
        fs::write(d.join("t/.dot"), b"hidden").unwrap();
        std::os::unix::fs::symlink("sub/real.txt", d.join("t/link")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("t/outside")).ok();
        std::os::unix::fs::symlink("nowhere", d.join("t/dangling")).ok();
        for v in [Version::V1, Version::V2, Version::Hybrid] {
            let bytes = TorrentBuilder::new(v)
                .follow_symlinks(false)
                .creation_date(None)
                .build_path(&d.join("t"), &mut |_, _| {})
                .unwrap();
            let m = crate::Metainfo::parse(&bytes).unwrap();
            let link = m.files().iter().find(|f| f.path().to_string() == "t/link").unwrap();
            assert!(link.attributes().symlink, "{v:?}");
            assert_eq!(link.symlink_target().unwrap().to_string(), "t/sub/real.txt", "{v:?}");
            // A dangling link is kept as a link; the parser points it at itself.
            let dangling = m.files().iter().find(|f| f.path().to_string() == "t/dangling").unwrap();
            assert_eq!(dangling.symlink_target().unwrap().to_string(), "t/dangling");
            // Followed, it has nothing to hash and is left out.
            let followed = TorrentBuilder::new(v).build_path(&d.join("t"), &mut |_, _| {}).unwrap();
            let mf = crate::Metainfo::parse(&followed).unwrap();
            assert!(mf.files().iter().all(|f| f.path().to_string() != "t/dangling"));
            // Hidden-file marking is opt-in.
            let hidden =
                TorrentBuilder::new(v).mark_hidden(true).build_path(&d.join("t"), &mut |_, _| {}).unwrap();
            let mh = crate::Metainfo::parse(&hidden).unwrap();
            let dot = mh.files().iter().find(|f| f.path().to_string().ends_with(".dot")).unwrap();
            assert!(dot.attributes().hidden, "{v:?}");
            assert!(
                !m.files()
                    .iter()
                    .find(|f| f.path().to_string().ends_with(".dot"))
                    .unwrap()
                    .attributes()
                    .hidden
            );
            // A link leaving the torrent is stored as the file it points to.
            if let Some(o) = m.files().iter().find(|f| f.path().to_string() == "t/outside") {
                assert!(!o.attributes().symlink);
            }
        }
        let _ = fs::remove_dir_all(&d);
    }
}

#[derive(Default)]
struct Tree {
    dirs: BTreeMap<String, Tree>,
    file: Option<usize>,
}

impl Tree {
    fn insert(&mut self, path: &[String], idx: usize) {
        let mut t = self;
        for c in path {
            t = t.dirs.entry(c.clone()).or_default();
        }
        t.file = Some(idx);
    }
}

fn encode_tree(enc: &mut Encoder<Vec<u8>>, t: &Tree, files: &[InputFile], h: &Hashed) -> Result<(), Error> {
    enc.begin_dict()?;
    for (k, sub) in &t.dirs {
        enc.key(k.as_bytes())?;
        if let Some(i) = sub.file {
            let f = &files[i];
            enc.begin_dict()?;
            enc.key(b"")?;
            enc.begin_dict()?;
            let attr = f.attributes.to_attr_string();
            if !attr.is_empty() {
                enc.key(b"attr")?;
                enc.str(&attr)?;
            }
            enc.key(b"length")?;
            enc.int(f.length as i64)?;
            if let Some(r) = &h.roots[i] {
                enc.key(b"pieces root")?;
                enc.bytes(r)?;
            }
            if let Some(t) = &f.symlink_target {
                enc.key(b"symlink path")?;
                enc.begin_list()?;
                for c in t {
                    enc.str(c)?;
                }
                enc.end()?;
            }
            enc.end()?;
            enc.end()?;
        } else {
            encode_tree(enc, sub, files, h)?;
        }
    }
    enc.end()?;
    Ok(())
}

fn encode_v1_file(enc: &mut Encoder<Vec<u8>>, f: &InputFile) -> Result<(), Error> {
    enc.begin_dict()?;
    let attr = f.attributes.to_attr_string();
    if !attr.is_empty() {
        enc.key(b"attr")?;
        enc.str(&attr)?;
    }
    enc.key(b"length")?;
    enc.int(f.length as i64)?;
    enc.key(b"path")?;
    enc.begin_list()?;
    for c in &f.path {
        enc.str(c)?;
    }
    enc.end()?;
    if let Some(t) = &f.symlink_target {
        enc.key(b"symlink path")?;
        enc.begin_list()?;
        for c in t {
            enc.str(c)?;
        }
        enc.end()?;
    }
    enc.end()?;
    Ok(())
}

/// What hashing produced.
struct Hashed {
    pieces: Vec<u8>,
    roots: Vec<Option<MerkleHash>>,
    layers: Vec<Vec<MerkleHash>>,
}

/// Bytes a hashing thread reads and hashes at a time when it reads the file itself: big enough
/// that syscalls are cheap, small enough to stay in the core's cache between the read and the
/// hash (a hybrid hashes every chunk twice).
const READ_CHUNK: usize = 256 << 10;

/// Read buffers start on a page boundary: the kernel's copy out of the page cache runs
/// markedly slower into a destination that is not cache-line aligned, and the allocator
/// hands out large blocks 16 bytes past a page.
const PAGE: usize = 4096;

/// The `len`-byte stretch of `backing` (at least `len + PAGE` long) that starts on a page.
fn page_aligned(backing: &mut [u8], len: usize) -> &mut [u8] {
    let skip = backing.as_ptr().align_offset(PAGE).min(PAGE);
    &mut backing[skip..skip + len]
}

/// Bytes a hashing thread hashes between reports of its progress.
const REPORT_BYTES: u64 = 16 << 20;

/// Bytes of consecutive pieces a hashing thread claims at once.
const CLAIM_BYTES: u64 = 1 << 20;

/// A stretch of one file that belongs to a piece.
#[derive(Clone, Copy, Debug)]
struct Segment {
    file: usize,
    offset: u64,
    len: u64,
}

/// One piece to hash: where its bytes are and where its hashes go.
#[derive(Clone, Debug)]
struct PieceJob {
    v1_index: Option<usize>,
    /// (file, piece within the file, whole file in one piece)
    v2: Option<(usize, usize, bool)>,
    segments: core::ops::Range<usize>,
    /// Bytes of file data.
    real: u64,
    /// Bytes the v1 hash covers: `real` plus a hybrid's pad-file zeros.
    v1_len: u64,
}

/// Every piece of the torrent in order, planned before any byte is read.
struct Plan {
    jobs: Vec<PieceJob>,
    segments: Vec<Segment>,
    v1_pieces: usize,
}

fn plan_pieces(files: &[InputFile], pl: u64, v1: bool, v2: bool, multi: bool) -> Plan {
    let aligned = v2; // v2 and hybrid: every file starts a piece
    let mut jobs = Vec::new();
    let mut segments = Vec::new();
    let mut v1_index = 0usize;
    let mut first_seg = 0usize;
    let mut cur = 0u64;
    for (fi, f) in files.iter().enumerate() {
        if f.attributes.symlink || f.length == 0 {
            continue;
        }
        let (mut offset, mut piece_in_file) = (0u64, 0usize);
        while offset < f.length {
            let want = (pl - cur).min(f.length - offset);
            segments.push(Segment { file: fi, offset, len: want });
            cur += want;
            offset += want;
            if cur == pl || (aligned && offset == f.length) {
                // A hybrid's v1 piece goes on with the pad file's zeros (libtorrent pads the last
                // file too; a single-file torrent has no pad).
                let v1_len = if aligned && v1 && multi { pl } else { cur };
                jobs.push(PieceJob {
                    v1_index: v1.then_some(v1_index),
                    v2: v2.then_some((fi, piece_in_file, f.length <= pl)),
                    segments: first_seg..segments.len(),
                    real: cur,
                    v1_len,
                });
                v1_index += usize::from(v1);
                piece_in_file += 1;
                first_seg = segments.len();
                cur = 0;
            }
        }
    }
    // v1: the last piece is whatever is left over.
    if cur > 0 {
        jobs.push(PieceJob {
            v1_index: v1.then_some(v1_index),
            v2: None,
            segments: first_seg..segments.len(),
            real: cur,
            v1_len: cur,
        });
        v1_index += 1;
    }
    Plan { jobs, segments, v1_pieces: if v1 { v1_index } else { 0 } }
}

/// Hashes one piece fed in order, in pieces of any multiple of 16 KiB (the last may be short).
struct PieceHasher<'a> {
    sha1: Option<Sha1>,
    leaves: Option<&'a mut Vec<MerkleHash>>,
}

impl<'a> PieceHasher<'a> {
    fn new(job: &PieceJob, leaves: &'a mut Vec<MerkleHash>) -> Self {
        leaves.clear();
        Self { sha1: job.v1_index.map(|_| Sha1::new()), leaves: job.v2.map(|_| leaves) }
    }

    fn update(&mut self, data: &[u8]) {
        match (&mut self.sha1, &mut self.leaves) {
            // A hybrid piece: SHA-1 and the leaves together, over each block once.
            (Some(h), Some(l)) => l.extend(data.chunks(BLOCK_SIZE as usize).map(|b| h.update_with_leaf(b))),
            (Some(h), None) => h.update(data),
            (None, Some(l)) => l.extend(merkle::leaf_hashes(data)),
            (None, None) => {}
        }
    }

    fn finish(self, index: usize, job: &PieceJob, pl: u64) -> Done {
        let sha1 = self.sha1.map(|mut h| {
            let mut pad = job.v1_len - job.real;
            while pad > 0 {
                let n = pad.min(ZEROS.len() as u64);
                h.update(&ZEROS[..n as usize]);
                pad -= n;
            }
            h.finalize()
        });
        let v2 = self.leaves.zip(job.v2).map(|(leaves, (_, _, whole))| {
            // A piece-layer hash pads to a full piece; a one-piece file's root pads only to a
            // power of two of its own leaves.
            let width = if whole { 1 } else { pl / u64::from(BLOCK_SIZE) };
            merkle::root_from_nodes(leaves, 0, width)
        });
        Done { index, sha1, v2 }
    }
}

static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// A hashed piece, by its index in [`Plan::jobs`].
struct Done {
    index: usize,
    sha1: Option<[u8; 20]>,
    v2: Option<MerkleHash>,
}

fn stopped() -> Error {
    Error::InvalidOption { reason: "hashing thread stopped".to_owned() }
}

fn hash_files(
    version: Version,
    files: &mut [InputFile],
    pl: u64,
    total: u64,
    threads: usize,
    multi: bool,
    progress: Progress<'_>,
) -> Result<Hashed, Error> {
    let v1 = version != Version::V2;
    let v2 = version != Version::V1;
    usize::try_from(pl).map_err(|_| Error::InvalidOption { reason: "piece length too large".to_owned() })?;
    let plan = plan_pieces(files, pl, v1, v2, multi);

    let mut pieces = vec![0u8; plan.v1_pieces * 20];
    let mut layers: Vec<Vec<MerkleHash>> = files
        .iter()
        .map(|f| if v2 { vec![[0u8; 32]; f.length.div_ceil(pl) as usize] } else { Vec::new() })
        .collect();
    let mut collect = |d: &Done| {
        let job = &plan.jobs[d.index];
        if let (Some(i), Some(h)) = (job.v1_index, d.sha1) {
            pieces[i * 20..i * 20 + 20].copy_from_slice(&h);
        }
        if let (Some((f, p, _)), Some(r)) = (job.v2, d.v2) {
            layers[f][p] = r;
        }
        job.real
    };

    // Files on disk are read by the hashing threads themselves, each at its own offsets: no
    // hand-over, and every chunk is hashed while it is still in that core's cache. Readers can
    // only be read in order, so then the calling thread reads and the threads hash.
    #[cfg_attr(not(unix), allow(unused_variables))]
    let on_disk =
        files.iter().all(|f| f.length == 0 || f.attributes.symlink || matches!(f.source, Source::Path(_)));
    #[cfg(unix)]
    if on_disk {
        let disk: Vec<DiskFile<'_>> = files
            .iter()
            .map(|f| DiskFile {
                path: match &f.source {
                    Source::Path(p) => Some(p.as_path()),
                    Source::Reader(_) => None,
                },
                length: f.length,
                label: &f.path,
            })
            .collect();
        hash_positional(&disk, &plan, pl, threads, total, &mut collect, progress)?;
    } else {
        hash_streamed(files, &plan, pl, threads, total, &mut collect, progress)?;
    }
    #[cfg(not(unix))]
    hash_streamed(files, &plan, pl, threads, total, &mut collect, progress)?;

    let mut roots: Vec<Option<MerkleHash>> = vec![None; files.len()];
    if v2 {
        for (i, f) in files.iter().enumerate() {
            if f.length == 0 || f.attributes.symlink {
                layers[i].clear();
                continue;
            }
            if f.length <= pl {
                // One piece: the hash computed for it is the file's root; no layer is stored.
                roots[i] = layers[i].first().copied();
                layers[i].clear();
            } else {
                roots[i] = merkle::root_from_piece_layer(&layers[i], pl);
            }
        }
    }
    Ok(Hashed { pieces, roots, layers })
}

/// A file the hashing threads open themselves.
#[cfg(unix)]
struct DiskFile<'a> {
    path: Option<&'a Path>,
    length: u64,
    label: &'a [String],
}

/// Each thread claims the next piece, reads its segments with positional reads and hashes them.
#[cfg(unix)]
fn hash_positional(
    files: &[DiskFile<'_>],
    plan: &Plan,
    pl: u64,
    threads: usize,
    total: u64,
    collect: &mut dyn FnMut(&Done) -> u64,
    progress: Progress<'_>,
) -> Result<(), Error> {
    use std::os::unix::fs::FileExt as _;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    // Threads claim runs of pieces so each reads long stretches of a file.
    let batch = (CLAIM_BYTES / pl).max(1) as usize;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<Vec<Done>, Error>>();
    std::thread::scope(|s| {
        for _ in 0..threads.min(plan.jobs.len()).max(1) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            s.spawn(move || {
                let mut backing = vec![0u8; READ_CHUNK.min(pl as usize) + PAGE];
                let buf = page_aligned(&mut backing, READ_CHUNK.min(pl as usize));
                let mut leaves = Vec::new();
                // Pieces are claimed in order, so one open file serves a run of them.
                let mut open: Option<(usize, fs::File)> = None;
                // Results go out in bundles: a message per piece would wake the collecting
                // thread thousands of times, and each wake-up interrupts a hashing core.
                let (mut bundle, mut bundled) = (Vec::new(), 0u64);
                let mut run = || -> Result<(), Error> {
                    loop {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        if first >= plan.jobs.len() {
                            tx.send(Ok(core::mem::take(&mut bundle))).map_err(|_| stopped())?;
                            return Ok(());
                        }
                        for index in first..(first + batch).min(plan.jobs.len()) {
                            if stop.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            let job = &plan.jobs[index];
                            let mut hasher = PieceHasher::new(job, &mut leaves);
                            let mut filled = 0usize;
                            for seg in &plan.segments[job.segments.clone()] {
                                let file = match &open {
                                    Some((i, f)) if *i == seg.file => f,
                                    _ => &open.insert((seg.file, open_checked(&files[seg.file])?)).1,
                                };
                                let (mut at, end) = (seg.offset, seg.offset + seg.len);
                                while at < end {
                                    let n = ((end - at) as usize).min(buf.len() - filled);
                                    file.read_exact_at(&mut buf[filled..filled + n], at)
                                        .map_err(|e| file_error(files[seg.file].label, e))?;
                                    (filled, at) = (filled + n, at + n as u64);
                                    if filled == buf.len() {
                                        hasher.update(buf);
                                        filled = 0;
                                    }
                                }
                            }
                            hasher.update(&buf[..filled]);
                            bundle.push(hasher.finish(index, job, pl));
                            bundled += job.real;
                            if bundled >= REPORT_BYTES {
                                tx.send(Ok(core::mem::take(&mut bundle))).map_err(|_| stopped())?;
                                bundled = 0;
                            }
                        }
                    }
                };
                if let Err(e) = run() {
                    stop.store(true, Ordering::Relaxed);
                    let _ = tx.send(Err(e));
                }
            });
        }
        drop(tx);
        let mut done_bytes = 0u64;
        for report in rx {
            for done in report? {
                done_bytes += collect(&done);
            }
            progress(done_bytes, total);
        }
        Ok(())
    })
    .inspect_err(|_| stop.store(true, Ordering::Relaxed))
}

#[cfg(unix)]
/// Opens a file to hash and checks it still has the length it was listed with.
fn open_checked(f: &DiskFile<'_>) -> Result<fs::File, Error> {
    let Some(p) = f.path else {
        return Err(Error::InvalidOption { reason: "not a file on disk".to_owned() });
    };
    let file = fs::File::open(p).map_err(|e| Error::Io { path: p.display().to_string(), source: e })?;
    let len = file.metadata().map_err(|e| Error::Io { path: p.display().to_string(), source: e })?.len();
    if len != f.length {
        return Err(file_error(
            f.label,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is {len} bytes, listed as {} (changed while hashing?)", f.length),
            ),
        ));
    }
    Ok(file)
}

fn file_error(label: &[String], e: io::Error) -> Error {
    let e = if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file is shorter than its stated length (changed while hashing?)",
        )
    } else {
        e
    };
    Error::Io { path: label.join("/"), source: e }
}

/// The calling thread reads every file in order into a small pool of piece buffers; the
/// threads hash whole pieces.
fn hash_streamed(
    files: &mut [InputFile],
    plan: &Plan,
    pl: u64,
    threads: usize,
    total: u64,
    collect: &mut dyn FnMut(&Done) -> u64,
    progress: Progress<'_>,
) -> Result<(), Error> {
    let plu = pl as usize;
    let nbuf = ((BUFFER_BUDGET / pl) as usize).clamp(2, threads * 2 + 2);
    let (job_tx, job_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(nbuf);
    let job_rx = Arc::new(Mutex::new(job_rx));
    // Hashing cannot fail: each buffer comes back with its piece's hashes.
    let (done_tx, done_rx) = mpsc::channel::<(Done, Vec<u8>)>();
    let mut free: Vec<Vec<u8>> = (0..nbuf).map(|_| vec![0u8; plu]).collect();
    let mut in_flight = 0usize;
    let mut done_bytes = 0u64;

    std::thread::scope(|s| -> Result<(), Error> {
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            s.spawn(move || {
                let mut leaves = Vec::new();
                loop {
                    // The lock is held only to take one job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, buf)) = job else { return };
                    let piece = &plan.jobs[index];
                    let mut hasher = PieceHasher::new(piece, &mut leaves);
                    hasher.update(&buf[..piece.real as usize]);
                    if tx.send((hasher.finish(index, piece, pl), buf)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut reader: Option<(usize, Box<dyn Read + Send>)> = None;
        for (index, job) in plan.jobs.iter().enumerate() {
            while free.is_empty() {
                let (d, buf) = done_rx.recv().map_err(|_| stopped())?;
                in_flight -= 1;
                done_bytes += collect(&d);
                progress(done_bytes, total);
                free.push(buf);
            }
            let mut buf = free.pop().unwrap_or_default();
            let mut filled = 0usize;
            for seg in &plan.segments[job.segments.clone()] {
                if reader.as_ref().is_none_or(|(i, _)| *i != seg.file) {
                    if let Some((prev, r)) = reader.take() {
                        ensure_ended(&files[prev], r)?;
                    }
                    reader = Some((seg.file, take_reader(&mut files[seg.file])?));
                }
                let Some((_, r)) = reader.as_mut() else { return Err(stopped()) };
                let n = seg.len as usize;
                r.read_exact(&mut buf[filled..filled + n])
                    .map_err(|e| file_error(&files[seg.file].path, e))?;
                filled += n;
            }
            job_tx.send((index, buf)).map_err(|_| stopped())?;
            in_flight += 1;
        }
        if let Some((prev, r)) = reader.take() {
            ensure_ended(&files[prev], r)?;
        }
        drop(job_tx);
        while in_flight > 0 {
            let (d, _) = done_rx.recv().map_err(|_| stopped())?;
            in_flight -= 1;
            done_bytes += collect(&d);
            progress(done_bytes, total);
        }
        Ok(())
    })
}

fn take_reader(f: &mut InputFile) -> Result<Box<dyn Read + Send>, Error> {
    match core::mem::replace(&mut f.source, Source::Reader(Box::new(io::empty()))) {
        Source::Path(p) => Ok(Box::new(
            fs::File::open(&p).map_err(|e| Error::Io { path: p.display().to_string(), source: e })?,
        )),
        Source::Reader(r) => Ok(r),
    }
}

/// The stream must end where the length says.
fn ensure_ended(f: &InputFile, mut r: Box<dyn Read + Send>) -> Result<(), Error> {
    let mut probe = [0u8; 1];
    if matches!(r.read(&mut probe), Ok(n) if n > 0) {
        return Err(file_error(
            &f.path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                "file is longer than its stated length (changed while hashing?)",
            ),
        ));
    }
    Ok(())
}
