//! `piecework verify`: re-hash data against a torrent, in parallel, and report per file and per
//! piece.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use piecework_metainfo::{FileEntry, Metainfo, PieceIndex};
use piecework_storage::{FileBackend, Layout, MAX_HASH_THREADS, Settings};

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

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bytes = super::read_torrent(&a.torrent)?;
    let m = super::parse(&a.torrent, &bytes)?;
    let loc = Locator::new(&m, &a.data);
    let layout = Layout::from_metainfo(&m).with_context(|| format!("{}", a.torrent.display()))?;
    // 0 means one per core.
    let mut settings = Settings::default();
    settings.hash_threads = a.threads.unwrap_or(0).min(MAX_HASH_THREADS);

    // Where each file is, then its presence and size.
    let paths: Vec<PathBuf> = m.files().iter().map(|f| loc.locate(f)).collect();
    let mut problems = 0usize;
    let mut file_state: Vec<Option<String>> = vec![None; m.files().len()];
    for (i, f) in m.files().iter().enumerate() {
        if f.is_pad() || f.attributes().symlink {
            continue;
        }
        match std::fs::metadata(&paths[i]) {
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
    // Storage's recheck, reading each file where the locator found it; nothing is created.
    let backend = FileBackend::from_paths(paths, &layout, &settings)?;
    let have =
        piecework_storage::recheck(&layout, &backend, &settings, &mut |p| bar.set_position(p.bytes_done))?;
    let piece_total = u64::from(layout.piece_count());
    let bad_pieces: Vec<u64> =
        (0..layout.piece_count()).filter(|&p| !have.get(PieceIndex::new(p))).map(u64::from).collect();
    for (i, st) in file_state.iter_mut().enumerate() {
        if layout.pieces_of_file(i).any(|p| !have.get(PieceIndex::new(p))) {
            mark_corrupt(st);
        }
    }
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
