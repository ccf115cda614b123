//! `piecework verify`: re-hash data against a torrent, in parallel, and report per file and per
//! piece.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use piecework_metainfo::merkle::{self, MerkleHash};
use piecework_metainfo::{BLOCK_SIZE, FileEntry, Metainfo, PieceIndex};
use sha1::{Digest as _, Sha1};

/// Bytes read at a time while verifying v1 pieces.
const CHUNK: usize = 1 << 20;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The .torrent file.
    torrent: PathBuf,
    /// The data: the folder the torrent was downloaded into, the torrent's own folder, or
    /// (single-file torrents) the file itself.
    data: PathBuf,
    /// Hashing threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Where each file of the torrent is on disk.
struct Locator {
    root: PathBuf,
    /// Strip the torrent's name (the data path is the torrent's own folder).
    strip_name: bool,
    /// Single-file torrent given as the file itself.
    single: Option<PathBuf>,
}

impl Locator {
    fn new(m: &Metainfo<'_>, data: &Path) -> Self {
        let first = m.files().iter().find(|f| !f.is_pad() && !f.attributes().symlink);
        let plain = Self { root: data.to_path_buf(), strip_name: false, single: None };
        let Some(f) = first else { return plain };
        if f.path().under(data).exists() {
            return plain;
        }
        if !m.is_multi_file() && data.is_file() {
            return Self { single: Some(data.to_path_buf()), ..plain };
        }
        if m.is_multi_file() && data.is_dir() {
            return Self { strip_name: true, ..plain };
        }
        plain
    }
    fn locate(&self, f: &FileEntry<'_>) -> PathBuf {
        if let Some(s) = &self.single {
            return s.clone();
        }
        if self.strip_name {
            let mut p = self.root.clone();
            for c in f.path().components().iter().skip(1) {
                p.push(c);
            }
            return p;
        }
        f.path().under(&self.root)
    }
}

/// Reads `buf.len()` bytes at `offset` of a file, through a per-worker handle cache.
fn read_at(cache: &mut HashMap<usize, File>, idx: usize, path: &Path, offset: u64, buf: &mut [u8]) -> bool {
    let file = match cache.entry(idx) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => match File::open(path) {
            Ok(f) => v.insert(f),
            Err(_) => return false,
        },
    };
    file.seek(SeekFrom::Start(offset)).is_ok() && file.read_exact(buf).is_ok()
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bytes = super::read_torrent(&a.torrent)?;
    let m = super::parse(&a.torrent, &bytes)?;
    let loc = Locator::new(&m, &a.data);
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1);

    // File presence and sizes first.
    let mut problems = 0usize;
    let mut file_state: Vec<Option<String>> = vec![None; m.files().len()];
    for (i, f) in m.files().iter().enumerate() {
        if f.is_pad() || f.attributes().symlink {
            continue;
        }
        let p = loc.locate(f);
        match std::fs::metadata(&p) {
            Err(_) => file_state[i] = Some("MISSING".to_owned()),
            Ok(md) if md.len() != f.length() => {
                file_state[i] = Some(format!("WRONG SIZE ({} bytes, want {})", md.len(), f.length()))
            }
            Ok(_) => {}
        }
    }

    let bar = ProgressBar::new(m.total_length());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let (bad_pieces, piece_total) = if m.info_hashes().v1().is_some() {
        verify_v1(&m, &loc, threads, &bar, &mut file_state)
    } else {
        verify_v2(&m, &loc, threads, &bar, &mut file_state)
    };
    bar.finish_and_clear();

    for (f, st) in m.files().iter().zip(&file_state) {
        if f.is_pad() {
            continue;
        }
        match st {
            Some(s) => {
                problems += 1;
                out!("{s:<10} {}", f.path());
            }
            None => out!("{:<10} {}", "ok", f.path()),
        }
    }
    out!("pieces: {}/{} ok", piece_total - bad_pieces.len() as u64, piece_total);
    if !bad_pieces.is_empty() {
        out!("bad pieces: {}", ranges(&bad_pieces));
    }
    Ok(if problems == 0 && bad_pieces.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `1, 3-5, 9` (at most 40 ranges).
fn ranges(v: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
        if out.len() == 40 && i < v.len() {
            out.push("...".to_owned());
            break;
        }
    }
    out.join(", ")
}

fn mark_corrupt(state: &mut Option<String>) {
    if state.is_none() {
        *state = Some("CORRUPT".to_owned());
    }
}

fn verify_v1(
    m: &Metainfo<'_>,
    loc: &Locator,
    threads: usize,
    bar: &ProgressBar,
    state: &mut [Option<String>],
) -> (Vec<u64>, u64) {
    let n = m.piece_count();
    let pl = m.piece_length();
    let total = m.total_length();
    let files = m.files();
    let next = AtomicUsize::new(0);
    let bad = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                // A fixed buffer, whatever the piece length the torrent claims.
                let mut buf = vec![0u8; CHUNK];
                let mut cache = HashMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if i >= n {
                        return;
                    }
                    let off = i * pl;
                    let len = (total - off).min(pl);
                    let mut ok = true;
                    let mut hasher = Sha1::new();
                    // The first file that ends after `off`.
                    let mut fi = files.partition_point(|f| f.offset() + f.length() <= off);
                    let mut pos = 0u64;
                    while pos < len && fi < files.len() {
                        let f = &files[fi];
                        let start = off + pos - f.offset();
                        let take = (f.length() - start).min(len - pos);
                        let mut done = 0u64;
                        while done < take {
                            let n = ((take - done) as usize).min(CHUNK);
                            let chunk = &mut buf[..n];
                            if f.is_pad() {
                                chunk.fill(0);
                            } else if !read_at(&mut cache, fi, &loc.locate(f), start + done, chunk) {
                                ok = false;
                            }
                            hasher.update(&*chunk);
                            done += n as u64;
                        }
                        pos += take;
                        fi += 1;
                    }
                    let digest: [u8; 20] = hasher.finalize().into();
                    if !ok || m.piece_hash_v1(PieceIndex::new(i as u32)) != Some(digest) {
                        bad.lock().map(|mut b| b.push(i)).ok();
                    }
                    bar.inc(len);
                }
            });
        }
    });
    let mut bad = bad.into_inner().unwrap_or_default();
    bad.sort_unstable();
    for &p in &bad {
        let (start, end) = (p * pl, ((p + 1) * pl).min(total));
        for (f, st) in files.iter().zip(state.iter_mut()) {
            if !f.is_pad() && f.offset() < end && f.offset() + f.length() > start {
                mark_corrupt(st);
            }
        }
    }
    (bad, n)
}

fn verify_v2(
    m: &Metainfo<'_>,
    loc: &Locator,
    threads: usize,
    bar: &ProgressBar,
    state: &mut [Option<String>],
) -> (Vec<u64>, u64) {
    let pl = m.piece_length();
    let files = m.files();
    // Work units: (file, piece within the file, global piece number).
    let mut units = Vec::new();
    let mut global = 0u64;
    for (fi, f) in files.iter().enumerate() {
        if f.pieces_root().is_none() {
            continue;
        }
        for j in 0..f.length().div_ceil(pl) {
            units.push((fi, j, global + j));
        }
        global += f.length().div_ceil(pl);
    }
    let hashes: Vec<Mutex<Option<MerkleHash>>> = units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; BLOCK_SIZE as usize];
                let mut cache = HashMap::new();
                loop {
                    let u = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(fi, j, _)) = units.get(u) else { return };
                    let f = &files[fi];
                    let off = j * pl;
                    let len = (f.length() - off).min(pl);
                    // One 16 KiB block at a time: leaves only, never a whole piece in memory.
                    let mut leaves: Vec<MerkleHash> = Vec::new();
                    let mut done = 0u64;
                    let mut ok = true;
                    while done < len {
                        let n = ((len - done) as usize).min(BLOCK_SIZE as usize);
                        if !read_at(&mut cache, fi, &loc.locate(f), off + done, &mut buf[..n]) {
                            ok = false;
                            break;
                        }
                        leaves.push(merkle::leaf_hash(&buf[..n]));
                        done += n as u64;
                    }
                    if ok {
                        let width = if f.length() <= pl { 1 } else { pl / u64::from(BLOCK_SIZE) };
                        if let Ok(mut h) = hashes[u].lock() {
                            *h = Some(merkle::root_from_nodes(&leaves, 0, width));
                        }
                    }
                    bar.inc(len);
                }
            });
        }
    });
    let hashes: Vec<Option<MerkleHash>> = hashes.into_iter().map(|h| h.into_inner().ok().flatten()).collect();
    let mut bad = Vec::new();
    let mut k = 0;
    for (fi, f) in files.iter().enumerate() {
        let Some(root) = f.pieces_root() else { continue };
        let count = f.length().div_ceil(pl) as usize;
        let mine = &hashes[k..k + count];
        let first_global = units[k].2;
        k += count;
        let layer = m.piece_layer(root);
        let bad_here: Vec<u64> = if f.length() <= pl {
            if mine[0].as_ref() == Some(root) { vec![] } else { vec![first_global] }
        } else if let Some(layer) = layer {
            mine.iter()
                .enumerate()
                .filter(|(j, h)| h.as_ref().map(|h| &h[..]) != layer.get(j * 32..j * 32 + 32))
                .map(|(j, _)| first_global + j as u64)
                .collect()
        } else {
            // No layer in the torrent: only the whole file can be checked.
            let all: Option<Vec<MerkleHash>> = mine.iter().copied().collect();
            let ok = all.and_then(|a| merkle::root_from_piece_layer(&a, pl)).as_ref() == Some(root);
            if ok { vec![] } else { (0..count as u64).map(|j| first_global + j).collect() }
        };
        if !bad_here.is_empty() {
            mark_corrupt(&mut state[fi]);
        }
        bad.extend(bad_here);
    }
    (bad, global)
}
