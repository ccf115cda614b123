//! Parsing and validating metainfo files: v1 ([BEP 3]), v2 ([BEP 52]) and hybrid.
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use piecework_bencode::{DecodeOptions, DictNode, Encoder, Node};

use crate::Error;
use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes, to_hex};
use crate::limits::{Limits, MAX_FILE_BLOCKS, MAX_PIECE_LENGTH};
use crate::merkle::{self, LayerProblem, MerkleHash};
use crate::path::{SafePath, append_element, resolve_duplicates};
use crate::piece::{BLOCK_SIZE, PieceIndex};

/// Which metainfo format a torrent uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Version {
    /// BEP 3: SHA-1 pieces over the concatenated files.
    V1,
    /// BEP 52 only: per-file merkle trees.
    V2,
    /// Both, describing the same data (v1 files padded to piece boundaries, BEP 47).
    Hybrid,
}

/// BEP 47 file attributes (`attr`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct FileAttributes {
    /// `p`: a pad file (zeros that align the next file to a piece boundary).
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symbolic link (its target is [`FileEntry::symlink_target`]).
    pub symlink: bool,
}

impl FileAttributes {
    fn parse(attr: &[u8]) -> Self {
        let mut a = Self::default();
        for c in attr {
            match c {
                b'p' => a.pad = true,
                b'x' => a.executable = true,
                b'h' => a.hidden = true,
                b'l' => a.symlink = true,
                _ => {}
            }
        }
        a
    }
    /// The `attr` string (`""` when none is set).
    pub fn to_attr_string(&self) -> String {
        let mut s = String::new();
        for (on, c) in [(self.pad, 'p'), (self.executable, 'x'), (self.hidden, 'h'), (self.symlink, 'l')] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// One file of a torrent, with its path made safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry<'a> {
    raw_path: Vec<Cow<'a, [u8]>>,
    path: SafePath,
    length: u64,
    offset: u64,
    attributes: FileAttributes,
    symlink_target: Option<SafePath>,
    pieces_root: Option<MerkleHash>,
    mtime: Option<i64>,
}

impl<'a> FileEntry<'a> {
    /// The sanitized path, relative to the download folder (it starts with the torrent's
    /// directory name for multi-file torrents).
    pub fn path(&self) -> &SafePath {
        &self.path
    }
    /// The path elements exactly as the torrent gives them (possibly unsafe, possibly not
    /// UTF-8); for a single-file torrent, the name.
    pub fn raw_path(&self) -> &[Cow<'a, [u8]>] {
        &self.raw_path
    }
    /// The raw path joined with `/`, invalid UTF-8 shown as U+FFFD.
    pub fn raw_path_lossy(&self) -> String {
        let parts: Vec<_> = self.raw_path.iter().map(|p| String::from_utf8_lossy(p)).collect();
        parts.join("/")
    }
    /// Length in bytes (0 for symlinks).
    pub fn length(&self) -> u64 {
        self.length
    }
    /// Byte offset in the torrent's payload: the v1 concatenation for v1 and hybrid
    /// torrents, the piece-aligned v2 layout for v2-only ones.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// BEP 47 attributes.
    pub fn attributes(&self) -> FileAttributes {
        self.attributes
    }
    /// Whether this is a pad file.
    pub fn is_pad(&self) -> bool {
        self.attributes.pad
    }
    /// For a symlink, its validated target (relative to the download folder); a target that
    /// would leave the torrent points at the link itself, as in libtorrent.
    pub fn symlink_target(&self) -> Option<&SafePath> {
        self.symlink_target.as_ref()
    }
    /// The v2 merkle root of the file (`None` for v1 torrents, pad files, symlinks and empty files).
    pub fn pieces_root(&self) -> Option<&MerkleHash> {
        self.pieces_root.as_ref()
    }
    /// `mtime`, if given.
    pub fn mtime(&self) -> Option<i64> {
        self.mtime
    }
    fn into_owned(self) -> FileEntry<'static> {
        FileEntry {
            raw_path: self.raw_path.into_iter().map(|c| Cow::Owned(c.into_owned())).collect(),
            path: self.path,
            length: self.length,
            offset: self.offset,
            attributes: self.attributes,
            symlink_target: self.symlink_target,
            pieces_root: self.pieces_root,
            mtime: self.mtime,
        }
    }
}

/// A parsed, validated metainfo file.
///
/// Borrows from the input (`Metainfo<'a>`): the info dictionary, piece hashes, piece layers,
/// raw names and unknown keys are slices of it. [`Metainfo::into_owned`] gives a
/// `Metainfo<'static>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metainfo<'a> {
    raw_info: Cow<'a, [u8]>,
    hashes: InfoHashes,
    version: Version,
    raw_name: Cow<'a, [u8]>,
    name: String,
    piece_length: u64,
    piece_count: u64,
    total_length: u64,
    pieces: Option<Cow<'a, [u8]>>,
    files: Vec<FileEntry<'a>>,
    multi_file: bool,
    piece_layers: Vec<(MerkleHash, Cow<'a, [u8]>)>,
    private: bool,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    http_seeds: Vec<String>,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
    encoding: Option<String>,
    similar: Vec<InfoHashV1>,
    collections: Vec<String>,
    nodes: Vec<(String, u16)>,
    /// Every top-level entry except `info` and `piece layers`, raw, in input order.
    top_level: Vec<RawEntry<'a>>,
}

/// A raw `(key, bencoded value)` pair.
type RawEntry<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

fn field(s: impl Into<String>) -> String {
    s.into()
}

fn get_bytes<'d, 'a>(d: &DictNode<'d, 'a>, key: &[u8]) -> Option<&'a [u8]> {
    d.get(key).and_then(|n| n.as_bytes())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Percent-encodes what may not appear raw in a URL (spaces, controls, non-ASCII).
fn escape_url(u: &str) -> String {
    let mut s = String::with_capacity(u.len());
    for &b in u.as_bytes() {
        if b <= b' ' || b >= 0x7f {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(char::from(b));
        }
    }
    s
}

struct V2File<'a> {
    raw: Vec<&'a [u8]>,
    path: Vec<String>,
    length: u64,
    attributes: FileAttributes,
    root: Option<MerkleHash>,
    symlink: Option<Vec<String>>,
    mtime: Option<i64>,
}

struct Ctx<'l> {
    limits: &'l Limits,
    has_files: bool,
}

impl<'a> Metainfo<'a> {
    /// Parses and validates a metainfo file with the default [`Limits`].
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        Self::parse_with(input, &Limits::default())
    }

    /// Parses and validates a metainfo file.
    ///
    /// Checks everything libtorrent checks: required fields, lengths, piece counts, the v2
    /// file tree and pieces roots, that a hybrid's v1 and v2 file lists agree, and each
    /// `piece layers` entry against its file's pieces root (missing layers are allowed:
    /// peers can supply them). Paths are sanitized and duplicates renamed.
    pub fn parse_with(input: &'a [u8], limits: &Limits) -> Result<Self, Error> {
        if input.len() > limits.max_metainfo_size {
            return Err(Error::TooLarge { len: input.len(), max: limits.max_metainfo_size });
        }
        let strict = DecodeOptions::new()
            .max_depth(limits.max_bencode_depth)
            .max_tokens(limits.max_bencode_tokens)
            .max_input_len(limits.max_metainfo_size);
        // Bytes after the top-level dictionary are ignored, as libtorrent does.
        let doc = match strict.decode_prefix(input) {
            Ok((d, _)) => d,
            // Whatever strict decoding tripped on first, the lenient reading decides; if that
            // fails too, the strict error is the one to report.
            Err(e) if limits.lenient_v1 => {
                DecodeOptions::lenient()
                    .max_depth(limits.max_bencode_depth)
                    .max_tokens(limits.max_bencode_tokens)
                    .max_input_len(limits.max_metainfo_size)
                    .decode_prefix(input)
                    .map_err(|_| e)?
                    .0
            }
            Err(e) => return Err(e.into()),
        };
        let root = doc.root().as_dict().ok_or(Error::NotADictionary)?;
        let info = root
            .get(b"info")
            .and_then(|n| n.as_dict())
            .ok_or_else(|| Error::MissingField { field: field("info") })?;
        let raw_info = info.as_node().raw();

        let version = match info.get(b"meta version") {
            None => 1,
            Some(n) => n.as_int().unwrap_or(-1),
        };
        if version > 2 {
            return Err(Error::UnsupportedVersion { version });
        }
        if version >= 2 {
            // v2 info dictionaries must be canonical bencode, whatever the outer leniency.
            strict.validate(raw_info)?;
        }
        let v1_hash = InfoHashV1::of_info_bytes(raw_info);
        let v2_hash = (version >= 2).then(|| InfoHashV2::of_info_bytes(raw_info));

        let piece_length = match info.get(b"piece length").and_then(|n| n.as_int()) {
            Some(p) if p > 0 && (p as u64) <= MAX_PIECE_LENGTH => p as u64,
            Some(p) => return Err(Error::InvalidPieceLength { length: p }),
            None => return Err(Error::InvalidPieceLength { length: -1 }),
        };
        if version >= 2 && merkle::blocks_per_piece(piece_length).is_none() {
            return Err(Error::InvalidPieceLength { length: piece_length as i64 });
        }

        let raw_name = get_bytes(&info, b"name.utf-8")
            .or_else(|| get_bytes(&info, b"name"))
            .ok_or(Error::InvalidName)?;
        let mut name_parts = Vec::new();
        append_element(&mut name_parts, raw_name, false);
        let name = name_parts.pop().unwrap_or_else(|| v1_hash.to_hex());

        let files_node = info.get(b"files");
        let ctx = Ctx { limits, has_files: files_node.is_some() };

        // v2 file tree.
        let mut v2_files: Vec<V2File<'a>> = Vec::new();
        let mut v2_single = false;
        if version >= 2 {
            let tree = info
                .get(b"file tree")
                .ok_or_else(|| Error::MissingField { field: field("info.file tree") })?;
            let tree =
                tree.as_dict().ok_or_else(|| Error::InvalidFileTree { field: field("info.file tree") })?;
            let mut raw = Vec::new();
            let mut safe = Vec::new();
            walk_tree(&ctx, tree, &mut raw, &mut safe, 0, &mut v2_files, &mut v2_single, "info.file tree")?;
        } else if info.get(b"file tree").is_some() {
            return Err(Error::UnsupportedVersion { version });
        }

        // v1 file list.
        let mut v1_files: Vec<FileEntry<'a>> = Vec::new();
        let mut has_v1 = false;
        let mut v1_multi = false;
        if let Some(fl) = files_node {
            let list = fl.as_list().ok_or_else(|| Error::InvalidPath { field: field("info.files") })?;
            if list.len() > limits.max_files {
                return Err(Error::TooManyFiles { max: limits.max_files });
            }
            v1_files.reserve(list.len());
            for (i, f) in list.iter().enumerate() {
                v1_files.push(parse_v1_file(&ctx, f, i, &name)?);
            }
            has_v1 = true;
            v1_multi = true;
        } else if version < 2 || info.get(b"length").is_some() {
            let attributes = FileAttributes::parse(get_bytes(&info, b"attr").unwrap_or_default());
            let length = parse_length(info.as_node(), attributes.symlink, || field("info.length"))?;
            if raw_name.is_empty() {
                return Err(Error::InvalidName);
            }
            let mut p = Vec::new();
            append_element(&mut p, raw_name, false);
            if p.is_empty() {
                return Err(Error::InvalidName);
            }
            v1_files.push(FileEntry {
                raw_path: vec![Cow::Borrowed(raw_name)],
                path: SafePath::from_components(p),
                length,
                offset: 0,
                attributes,
                symlink_target: None,
                pieces_root: None,
                mtime: info.get(b"mtime").and_then(|n| n.as_int()),
            });
            has_v1 = true;
        }

        let mut total: u64 = 0;
        let (mut files, multi_file, ver) = if version >= 2 {
            if v2_files.is_empty() {
                return Err(Error::NoFiles);
            }
            if has_v1 {
                check_hybrid(&v1_files, &v2_files, piece_length, &name, v1_multi, v2_single)?;
                // Attach roots (v2 order equals the non-pad v1 order, checked above).
                let mut roots = v2_files.iter().map(|f| f.root);
                for f in v1_files.iter_mut().filter(|f| !f.attributes.pad) {
                    f.pieces_root = roots.next().flatten();
                }
                (v1_files, v1_multi, Version::Hybrid)
            } else {
                let multi = !v2_single;
                let mut out = Vec::with_capacity(v2_files.len());
                let mut off: u64 = 0;
                for f in v2_files {
                    let mut comps = Vec::with_capacity(f.path.len() + 1);
                    if multi {
                        comps.push(name.clone());
                    }
                    comps.extend(f.path);
                    let symlink_target = f.symlink.map(SafePath::from_components);
                    out.push(FileEntry {
                        raw_path: f.raw.into_iter().map(Cow::Borrowed).collect(),
                        path: SafePath::from_components(comps),
                        length: f.length,
                        offset: off,
                        attributes: f.attributes,
                        symlink_target,
                        pieces_root: f.root,
                        mtime: f.mtime,
                    });
                    // v2 files start on piece boundaries.
                    off = off
                        .checked_add(f.length.div_ceil(piece_length).saturating_mul(piece_length))
                        .ok_or(Error::TooManyPieces { count: u64::MAX, max: limits.max_pieces })?;
                    total = total.saturating_add(f.length);
                }
                (out, multi, Version::V2)
            }
        } else {
            if v1_files.is_empty() {
                return Err(Error::NoFiles);
            }
            (v1_files, v1_multi, Version::V1)
        };
        if ver != Version::V2 {
            let mut off: u64 = 0;
            for (i, f) in files.iter_mut().enumerate() {
                f.offset = off;
                off = off
                    .checked_add(f.length)
                    .ok_or_else(|| Error::InvalidLength { field: format!("info.files[{i}].length") })?;
            }
            total = off;
        }

        let piece_count = match ver {
            Version::V2 => {
                files.iter().map(|f| f.length.div_ceil(piece_length)).fold(0u64, u64::saturating_add)
            }
            _ => total.div_ceil(piece_length),
        };
        if piece_count > limits.max_pieces || piece_count > u64::from(u32::MAX) {
            return Err(Error::TooManyPieces { count: piece_count, max: limits.max_pieces });
        }

        let pieces = match info.get(b"pieces") {
            Some(n) => {
                let b = n.as_bytes().ok_or(Error::InvalidPieces { len: 0, expected: piece_count * 20 })?;
                if ver != Version::V2 && b.len() as u64 != piece_count * 20 {
                    return Err(Error::InvalidPieces { len: b.len(), expected: piece_count * 20 });
                }
                Some(Cow::Borrowed(b))
            }
            None if ver == Version::V1 => {
                return Err(Error::InvalidPieces { len: 0, expected: piece_count * 20 });
            }
            None => None,
        };
        let pieces = if ver == Version::V2 { None } else { pieces };

        if total == 0 {
            return Err(Error::InvalidLength { field: field("total length") });
        }

        // Symlinks, then duplicate names.
        if multi_file {
            sanitize_symlinks(&mut files, &name);
        } else {
            for f in &mut files {
                if f.attributes.symlink {
                    f.symlink_target = Some(f.path.clone());
                }
            }
        }
        resolve_duplicates(
            files.iter_mut().map(|f| (&mut f.path, f.attributes.pad, f.length)).collect(),
            limits.max_duplicate_names,
        )
        .map_err(|max| Error::TooManyDuplicates { max })?;

        // Piece layers.
        let mut piece_layers = Vec::new();
        if ver != Version::V1
            && let Some(pl) = root.get(b"piece layers")
        {
            let d = pl.as_dict().ok_or(Error::InvalidPieceLayers)?;
            let by_root: HashMap<&MerkleHash, u64> =
                files.iter().filter_map(|f| f.pieces_root.as_ref().map(|r| (r, f.length))).collect();
            for (k, v) in d.iter() {
                let bad = |problem| Error::InvalidPieceLayer { root: to_hex(k), problem };
                let key: MerkleHash = k.try_into().map_err(|_| bad(LayerProblem::UnknownRoot))?;
                let len = *by_root.get(&key).ok_or_else(|| bad(LayerProblem::UnknownRoot))?;
                let layer = v.as_bytes().ok_or_else(|| bad(LayerProblem::NotBytes))?;
                if len <= piece_length {
                    // A one-piece file's layer is its root; anything else is bogus.
                    if layer != key.as_slice() {
                        return Err(bad(LayerProblem::UnknownRoot));
                    }
                } else {
                    merkle::verify_piece_layer(layer, len, piece_length, &key).map_err(bad)?;
                }
                piece_layers.push((key, Cow::Borrowed(layer)));
            }
        }

        let hashes = match ver {
            Version::V1 => InfoHashes::V1(v1_hash),
            Version::V2 => InfoHashes::V2(v2_hash.unwrap_or_default()),
            Version::Hybrid => InfoHashes::Hybrid(v1_hash, v2_hash.unwrap_or_default()),
        };

        let mut m = Metainfo {
            raw_info: Cow::Borrowed(raw_info),
            hashes,
            version: ver,
            raw_name: Cow::Borrowed(raw_name),
            name,
            piece_length,
            piece_count,
            total_length: total,
            pieces,
            files,
            multi_file,
            piece_layers,
            private: info.get(b"private").and_then(|n| n.as_int()).is_some_and(|p| p != 0),
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            http_seeds: Vec::new(),
            creation_date: root.get(b"creation date").and_then(|n| n.as_int()),
            comment: get_bytes(&root, b"comment.utf-8").or_else(|| get_bytes(&root, b"comment")).map(text),
            created_by: get_bytes(&root, b"created by.utf-8")
                .or_else(|| get_bytes(&root, b"created by"))
                .map(text),
            encoding: get_bytes(&root, b"encoding").map(text),
            similar: Vec::new(),
            collections: Vec::new(),
            nodes: Vec::new(),
            top_level: Vec::new(),
        };
        m.read_extras(&root, &info);
        Ok(m)
    }

    fn read_extras<'d>(&mut self, root: &DictNode<'d, 'a>, info: &DictNode<'d, 'a>) {
        // BEP 12 tiers, falling back to the single `announce`.
        let mut seen = HashSet::new();
        if let Some(tiers) = root.get(b"announce-list").and_then(|n| n.as_list()) {
            for tier in tiers.iter() {
                let Some(tier) = tier.as_list() else { continue };
                let urls: Vec<String> = tier
                    .iter()
                    .filter_map(|u| u.as_bytes())
                    .map(|u| text(u).trim().to_owned())
                    .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                    .collect();
                if !urls.is_empty() {
                    self.trackers.push(urls);
                }
            }
        }
        if self.trackers.is_empty()
            && let Some(a) = get_bytes(root, b"announce")
        {
            let a = text(a).trim().to_owned();
            if !a.is_empty() {
                self.trackers.push(vec![a]);
            }
        }
        // BEP 19 web seeds and BEP 17 HTTP seeds.
        let strings = |n: Option<Node<'d, 'a>>| -> Vec<String> {
            match n {
                Some(n) if n.as_bytes().is_some() => n.as_bytes().map(text).into_iter().collect(),
                Some(n) => n
                    .as_list()
                    .map(|l| l.iter().filter_map(|u| u.as_bytes()).map(text).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let many = self.files.len() > 1;
        let mut seen = HashSet::new();
        for u in strings(root.get(b"url-list")) {
            let mut u = escape_url(u.trim());
            if u.is_empty() {
                continue;
            }
            if many && !u.ends_with('/') {
                u.push('/');
            }
            if seen.insert(u.clone()) {
                self.web_seeds.push(u);
            }
        }
        let mut seen = HashSet::new();
        for u in strings(root.get(b"httpseeds")) {
            let u = escape_url(u.trim());
            if !u.is_empty() && seen.insert(u.clone()) {
                self.http_seeds.push(u);
            }
        }
        // BEP 38: `similar` and `collections`, in the info dictionary or (older files) beside it.
        for d in [info, root] {
            if let Some(l) = d.get(b"similar").and_then(|n| n.as_list()) {
                self.similar.extend(l.iter().filter_map(|n| n.as_bytes()).filter_map(InfoHashV1::from_slice));
            }
            if let Some(l) = d.get(b"collections").and_then(|n| n.as_list()) {
                self.collections.extend(l.iter().filter_map(|n| n.as_bytes()).map(text));
            }
        }
        if let Some(l) = root.get(b"nodes").and_then(|n| n.as_list()) {
            for n in l.iter() {
                let Some(pair) = n.as_list() else { continue };
                let host = pair.get(0).and_then(|h| h.as_bytes()).map(text);
                let port = pair.get(1).and_then(|p| p.as_int()).and_then(|p| u16::try_from(p).ok());
                if let (Some(h), Some(p)) = (host, port) {
                    self.nodes.push((h, p));
                }
            }
        }
        for (k, v) in root.iter() {
            if k != b"info" && k != b"piece layers" {
                self.top_level.push((Cow::Borrowed(k), Cow::Borrowed(v.raw())));
            }
        }
    }

    /// Copies every borrowed part, detaching the metainfo from its input buffer.
    pub fn into_owned(self) -> Metainfo<'static> {
        let own = |c: Cow<'a, [u8]>| -> Cow<'static, [u8]> { Cow::Owned(c.into_owned()) };
        Metainfo {
            raw_info: own(self.raw_info),
            hashes: self.hashes,
            version: self.version,
            raw_name: own(self.raw_name),
            name: self.name,
            piece_length: self.piece_length,
            piece_count: self.piece_count,
            total_length: self.total_length,
            pieces: self.pieces.map(own),
            files: self.files.into_iter().map(FileEntry::into_owned).collect(),
            multi_file: self.multi_file,
            piece_layers: self.piece_layers.into_iter().map(|(k, v)| (k, own(v))).collect(),
            private: self.private,
            trackers: self.trackers,
            web_seeds: self.web_seeds,
            http_seeds: self.http_seeds,
            creation_date: self.creation_date,
            comment: self.comment,
            created_by: self.created_by,
            encoding: self.encoding,
            similar: self.similar,
            collections: self.collections,
            nodes: self.nodes,
            top_level: self.top_level.into_iter().map(|(k, v)| (own(k), own(v))).collect(),
        }
    }

    /// Re-encodes the metainfo: the info dictionary verbatim, `piece layers` from the verified
    /// layers, every other top-level key (known or not) as it came. For canonical input the
    /// output is byte-identical to it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<(&[u8], Cow<'_, [u8]>)> =
            self.top_level.iter().map(|(k, v)| (k.as_ref(), Cow::Borrowed(v.as_ref()))).collect();
        entries.push((b"info", Cow::Borrowed(self.raw_info.as_ref())));
        if !self.piece_layers.is_empty() {
            entries.push((b"piece layers", Cow::Owned(self.piece_layers_bytes())));
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let mut enc = Encoder::new(Vec::with_capacity(self.raw_info.len() + 256));
        // Keys are sorted and unique and values are complete bencode values, so the encoder
        // cannot refuse them; fall back to the raw info if it somehow does.
        let r = (|| {
            enc.begin_dict()?;
            for (k, v) in &entries {
                enc.key(k)?;
                enc.raw(v)?;
            }
            enc.end()?;
            enc.finish()
        })();
        r.unwrap_or_default()
    }

    /// The `piece layers` dictionary, bencoded (keys sorted).
    pub fn piece_layers_bytes(&self) -> Vec<u8> {
        let mut layers: Vec<&(MerkleHash, Cow<'a, [u8]>)> = self.piece_layers.iter().collect();
        layers.sort_by_key(|a| a.0);
        layers.dedup_by(|a, b| a.0 == b.0);
        let mut enc = Encoder::new(Vec::new());
        let r = (|| {
            enc.begin_dict()?;
            for (k, v) in layers {
                enc.key(k)?;
                enc.bytes(v)?;
            }
            enc.end()?;
            enc.finish()
        })();
        r.unwrap_or_default()
    }

    /// The raw info dictionary: what the info-hashes are computed over and what BEP 9 sends.
    pub fn info_bytes(&self) -> &[u8] {
        &self.raw_info
    }
    /// The info-hashes.
    pub fn info_hashes(&self) -> InfoHashes {
        self.hashes
    }
    /// v1, v2 or hybrid.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The sanitized name (the directory for multi-file torrents); the hex info-hash when the
    /// name sanitizes to nothing.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The name as the torrent gives it.
    pub fn raw_name(&self) -> &[u8] {
        &self.raw_name
    }
    /// Nominal piece length.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }
    /// Number of pieces (v2-only torrents: the sum over files, each starting a new piece).
    pub fn piece_count(&self) -> u64 {
        self.piece_count
    }
    /// Total bytes: the v1 payload (pad files included) for v1 and hybrid; the sum of file
    /// lengths for v2.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }
    /// The files, in torrent order (v1 order with pad files for v1 and hybrid).
    pub fn files(&self) -> &[FileEntry<'a>] {
        &self.files
    }
    /// Whether the files live in a directory named [`Metainfo::name`].
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }
    /// The SHA-1 of a v1 piece.
    pub fn piece_hash_v1(&self, piece: PieceIndex) -> Option<[u8; 20]> {
        let p = self.pieces.as_ref()?;
        let start = piece.as_usize().checked_mul(20)?;
        p.get(start..start + 20)?.try_into().ok()
    }
    /// The verified piece layers, keyed by pieces root.
    pub fn piece_layers(&self) -> &[(MerkleHash, Cow<'a, [u8]>)] {
        &self.piece_layers
    }
    /// The piece layer for a file's pieces root, if the torrent carries it.
    pub fn piece_layer(&self, root: &MerkleHash) -> Option<&[u8]> {
        self.piece_layers.iter().find(|(k, _)| k == root).map(|(_, v)| v.as_ref())
    }
    /// BEP 27 private flag.
    pub fn is_private(&self) -> bool {
        self.private
    }
    /// Tracker tiers (BEP 12), or the single `announce` as one tier. Whitespace trimmed,
    /// duplicates and empty URLs dropped.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.trackers
    }
    /// BEP 19 web seeds (`url-list`), de-duplicated; a `/` is appended for multi-file torrents.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }
    /// BEP 17 HTTP seeds (`httpseeds`).
    pub fn http_seeds(&self) -> &[String] {
        &self.http_seeds
    }
    /// `creation date` (seconds since the Unix epoch).
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }
    /// `comment` (lossy UTF-8).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
    /// `created by` (lossy UTF-8).
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }
    /// `encoding`.
    pub fn encoding(&self) -> Option<&str> {
        self.encoding.as_deref()
    }
    /// BEP 38 `similar` info-hashes.
    pub fn similar(&self) -> &[InfoHashV1] {
        &self.similar
    }
    /// BEP 38 `collections`.
    pub fn collections(&self) -> &[String] {
        &self.collections
    }
    /// BEP 5 DHT `nodes` (host, port).
    pub fn nodes(&self) -> &[(String, u16)] {
        &self.nodes
    }
    /// Top-level entries other than `info` and `piece layers`, raw and in input order
    /// (unknown keys included).
    pub fn top_level_entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.top_level.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

fn parse_length(dict: Node<'_, '_>, symlink: bool, path: impl Fn() -> String) -> Result<u64, Error> {
    if symlink {
        return Ok(0);
    }
    let bad = || Error::InvalidLength { field: path() };
    let d = dict.as_dict().ok_or_else(bad)?;
    let l = d.get(b"length").and_then(|n| n.as_int()).ok_or_else(bad)?;
    let l = u64::try_from(l).map_err(|_| bad())?;
    if l / u64::from(BLOCK_SIZE) >= MAX_FILE_BLOCKS {
        return Err(bad());
    }
    Ok(l)
}

fn string_list<'a>(n: Node<'_, 'a>) -> Option<Vec<&'a [u8]>> {
    n.as_list()?.iter().map(|e| e.as_bytes()).collect()
}

fn parse_v1_file<'a>(ctx: &Ctx<'_>, f: Node<'_, 'a>, i: usize, name: &str) -> Result<FileEntry<'a>, Error> {
    let d = f.as_dict().ok_or_else(|| Error::InvalidPath { field: format!("info.files[{i}]") })?;
    let mut attributes = FileAttributes::parse(get_bytes(&d, b"attr").unwrap_or_default());
    let length = parse_length(f, attributes.symlink, || format!("info.files[{i}].length"))?;
    let path_node = d.get(b"path.utf-8").or_else(|| d.get(b"path"));
    let bad_path = || {
        let field = format!("info.files[{i}].path");
        if attributes.symlink { Error::InvalidSymlink { field } } else { Error::InvalidPath { field } }
    };
    let (raw, path) = match path_node {
        Some(p) => {
            let list = p.as_list().ok_or_else(bad_path)?;
            if list.len() > ctx.limits.max_path_depth {
                return Err(Error::InvalidPath { field: format!("info.files[{i}].path") });
            }
            if list.is_empty() {
                if !attributes.pad {
                    return Err(bad_path());
                }
                (Vec::new(), vec![".pad".to_owned(), length.to_string()])
            } else {
                let mut raw = Vec::with_capacity(list.len());
                let mut comps = Vec::with_capacity(list.len() + 1);
                comps.push(name.to_owned());
                for e in list.iter() {
                    let e = e.as_bytes().ok_or_else(bad_path)?;
                    append_element(&mut comps, e, true);
                    raw.push(Cow::Borrowed(e));
                }
                if comps.len() == 1 {
                    // Every element was `.` or `..`: the file still needs a name of its own.
                    comps.push("_".to_owned());
                }
                (raw, comps)
            }
        }
        None if attributes.pad => (Vec::new(), vec![".pad".to_owned(), length.to_string()]),
        None => return Err(bad_path()),
    };
    if path.iter().any(|c| c.contains("_____padding_file_")) {
        attributes.pad = true;
    }
    let mut symlink_target = None;
    if attributes.symlink {
        match d.get(b"symlink path") {
            Some(sp) => {
                let elems = string_list(sp).ok_or_else(|| Error::InvalidSymlink {
                    field: format!("info.files[{i}].symlink path"),
                })?;
                let mut t = Vec::new();
                for e in elems {
                    append_element(&mut t, e, true);
                }
                symlink_target = Some(SafePath::from_components(t));
            }
            None => attributes.symlink = false,
        }
    }
    Ok(FileEntry {
        raw_path: raw,
        path: SafePath::from_components(path),
        length,
        offset: 0,
        attributes,
        symlink_target,
        pieces_root: None,
        mtime: d.get(b"mtime").and_then(|n| n.as_int()),
    })
}

#[allow(clippy::too_many_arguments)]
fn walk_tree<'a>(
    ctx: &Ctx<'_>,
    tree: DictNode<'_, 'a>,
    raw: &mut Vec<&'a [u8]>,
    safe: &mut Vec<String>,
    depth: usize,
    out: &mut Vec<V2File<'a>>,
    single: &mut bool,
    at: &str,
) -> Result<(), Error> {
    if depth >= ctx.limits.max_path_depth {
        return Err(Error::InvalidFileTree { field: at.to_owned() });
    }
    let n = tree.len();
    for (key, value) in tree.iter() {
        let here = || format!("{at}/{}", String::from_utf8_lossy(key));
        if key.is_empty() {
            return Err(Error::EmptyFileName { field: here() });
        }
        let d = value.as_dict().ok_or_else(|| Error::InvalidFileTree { field: here() })?;
        let leaf = d.len() == 1 && d.get(b"").is_some();
        raw.push(key);
        let pushed = append_element(safe, key, true);
        if leaf {
            if out.len() >= ctx.limits.max_files {
                return Err(Error::TooManyFiles { max: ctx.limits.max_files });
            }
            *single = depth == 0 && n == 1 && !ctx.has_files;
            let entry = d.get(b"").unwrap_or(value);
            out.push(parse_v2_file(entry, raw, safe, &here())?);
        } else {
            walk_tree(ctx, d, raw, safe, depth + 1, out, single, &here())?;
        }
        raw.pop();
        if pushed {
            safe.pop();
        }
    }
    Ok(())
}

fn parse_v2_file<'a>(
    entry: Node<'_, 'a>,
    raw: &[&'a [u8]],
    safe: &[String],
    at: &str,
) -> Result<V2File<'a>, Error> {
    let d = entry.as_dict().ok_or_else(|| Error::InvalidFileTree { field: at.to_owned() })?;
    let mut attributes = FileAttributes::parse(get_bytes(&d, b"attr").unwrap_or_default());
    if attributes.pad {
        return Err(Error::InvalidPadFile { field: at.to_owned() });
    }
    let length = parse_length(entry, attributes.symlink, || format!("{at}.length"))?;
    let mut symlink = None;
    if attributes.symlink {
        match d.get(b"symlink path") {
            Some(sp) => {
                let elems = string_list(sp)
                    .ok_or_else(|| Error::InvalidSymlink { field: format!("{at}.symlink path") })?;
                let mut t = Vec::new();
                for e in elems {
                    append_element(&mut t, e, true);
                }
                symlink = Some(t);
            }
            None => attributes.symlink = false,
        }
    }
    let mut root = None;
    if symlink.is_none() && length > 0 {
        let r = get_bytes(&d, b"pieces root")
            .and_then(|r| <MerkleHash>::try_from(r).ok())
            .filter(|r| r != &[0u8; 32])
            .ok_or_else(|| Error::MissingPiecesRoot { field: format!("{at}.pieces root") })?;
        root = Some(r);
    }
    let mut path = safe.to_vec();
    if path.is_empty() {
        path.push("_".to_owned());
    }
    Ok(V2File {
        raw: raw.to_vec(),
        path,
        length,
        attributes,
        root,
        symlink,
        mtime: d.get(b"mtime").and_then(|n| n.as_int()),
    })
}

/// A hybrid's v1 list must hold the v2 files in the same order, with pad files placing every
/// non-empty file on a piece boundary (an empty file may sit before a pad; the tail pad is
/// optional).
fn check_hybrid(
    v1: &[FileEntry<'_>],
    v2: &[V2File<'_>],
    piece_length: u64,
    name: &str,
    v1_multi: bool,
    v2_single: bool,
) -> Result<(), Error> {
    let mut off: u64 = 0;
    let mut it = v1.iter();
    for (i, f) in v2.iter().enumerate() {
        let mismatch = |reason| Error::HybridMismatch { index: i, reason };
        let g = loop {
            let g = it.next().ok_or(mismatch("v1 list is shorter"))?;
            if !g.attributes.pad {
                break g;
            }
            if g.length >= piece_length {
                return Err(mismatch("pad file of a piece or more"));
            }
            off = off.saturating_add(g.length);
        };
        if g.length != f.length {
            return Err(mismatch("lengths differ"));
        }
        let v2_path: Vec<&str> = if v2_single {
            f.path.iter().map(String::as_str).collect()
        } else {
            core::iter::once(name).chain(f.path.iter().map(String::as_str)).collect()
        };
        let v1_path: Vec<&str> = g.path.components().iter().map(String::as_str).collect();
        if v1_multi == v2_single || v1_path != v2_path {
            return Err(mismatch("paths differ"));
        }
        if g.length > 0 && !off.is_multiple_of(piece_length) {
            return Err(mismatch("file is not piece-aligned in the v1 list"));
        }
        off = off.saturating_add(g.length);
    }
    for g in it {
        if !g.attributes.pad || g.length >= piece_length {
            return Err(Error::HybridMismatch { index: v2.len(), reason: "v1 list is longer" });
        }
    }
    Ok(())
}

/// Validates symlink targets as libtorrent does: a target must name a file or directory of
/// this torrent (relative to its root, or for old torrents to the link's directory, possibly
/// through other links); anything else points the link at itself.
fn sanitize_symlinks(files: &mut [FileEntry<'_>], name: &str) {
    if !files.iter().any(|f| f.attributes.symlink) {
        return;
    }
    let internal = |f: &FileEntry<'_>| -> String {
        let c = f.path.components();
        c.get(1..).unwrap_or_default().join("/")
    };
    let file_set: HashMap<String, bool> = files.iter().map(|f| (internal(f), f.attributes.symlink)).collect();
    let mut dirs: HashSet<String> = HashSet::new();
    for f in files.iter() {
        let c = f.path.components();
        for i in 2..c.len() {
            dirs.insert(c[1..i].join("/"));
        }
    }
    let mut dir_links: HashMap<String, String> = HashMap::new();
    let mut resolved: Vec<Option<String>> = vec![None; files.len()];
    let mut pending = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if !f.attributes.symlink {
            continue;
        }
        let me = internal(f);
        let t = f.symlink_target.as_ref().map(|t| t.components().join("/")).unwrap_or_default();
        if let Some(&is_link) = file_set.get(&t) {
            if is_link {
                dir_links.insert(me, t.clone());
            }
            resolved[i] = Some(t);
            continue;
        }
        if dirs.contains(&t) {
            dir_links.insert(me, t.clone());
            resolved[i] = Some(t);
            continue;
        }
        if let Some((parent, _)) = me.rsplit_once('/') {
            let t2 = if t.is_empty() { parent.to_owned() } else { format!("{parent}/{t}") };
            if dirs.contains(&t2) {
                dir_links.insert(me, t2.clone());
                resolved[i] = Some(t2);
                continue;
            }
            if let Some(&is_link) = file_set.get(&t2) {
                if is_link {
                    dir_links.insert(me, t2.clone());
                }
                resolved[i] = Some(t2);
                continue;
            }
        }
        dir_links.insert(me, t.clone());
        pending.push((i, t));
    }
    for (i, t) in pending {
        let mut target = t.clone();
        let mut traversed = HashSet::new();
        let mut ok = true;
        let mut guard = 0;
        'walk: loop {
            guard += 1;
            if guard > 1000 {
                ok = false;
                break;
            }
            let parts: Vec<&str> = target.split('/').collect();
            for k in 1..parts.len() {
                let branch = parts[..k].join("/");
                if dirs.contains(&branch) {
                    continue;
                }
                match dir_links.get(&branch) {
                    Some(to) if traversed.insert(branch.clone()) => {
                        let rest = parts[k..].join("/");
                        target = format!("{to}/{rest}");
                        continue 'walk;
                    }
                    _ => {
                        ok = false;
                        break 'walk;
                    }
                }
            }
            break;
        }
        // The link keeps its target as written once it is known to resolve inside the torrent.
        if ok && (file_set.contains_key(&target) || dirs.contains(&target)) {
            resolved[i] = Some(t);
        }
    }
    for (f, r) in files.iter_mut().zip(resolved) {
        if !f.attributes.symlink {
            continue;
        }
        let target = r.unwrap_or_else(|| internal(f));
        let mut comps = vec![name.to_owned()];
        comps.extend(target.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        f.symlink_target = Some(SafePath::from_components(comps));
    }
}
