//! `piecework create`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use piecework_metainfo::{Magnet, Metainfo, TorrentBuilder, Version};

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("format").multiple(false))]
pub(crate) struct Args {
    /// File or directory to make a torrent of.
    path: PathBuf,
    /// Where to write the .torrent (default: NAME.torrent in the current directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// v1 only (BEP 3).
    #[arg(long, group = "format")]
    v1: bool,
    /// v2 only (BEP 52).
    #[arg(long, group = "format")]
    v2: bool,
    /// v1 and v2 in one torrent (the default).
    #[arg(long, group = "format")]
    hybrid: bool,
    /// Piece length in bytes (a power of two, at least 16384); automatic by default.
    #[arg(long, value_name = "BYTES")]
    piece_length: Option<u64>,
    /// Announce URL, each in its own tier (repeatable).
    #[arg(long, value_name = "URL")]
    tracker: Vec<String>,
    /// Web seed URL (repeatable).
    #[arg(long, value_name = "URL")]
    web_seed: Vec<String>,
    /// Set the private flag (BEP 27).
    #[arg(long)]
    private: bool,
    /// A comment to embed.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Leave out the creation date (reproducible output).
    #[arg(long)]
    no_date: bool,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let version = if a.v1 {
        Version::V1
    } else if a.v2 {
        Version::V2
    } else {
        Version::Hybrid
    };
    let mut b = TorrentBuilder::new(version).piece_length(a.piece_length).private(a.private);
    for t in a.tracker {
        b = b.tracker(t);
    }
    for w in a.web_seed {
        b = b.web_seed(w);
    }
    if let Some(c) = a.comment {
        b = b.comment(c);
    }
    if a.no_date {
        b = b.creation_date(None);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} hashing [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let bytes = b
        .build_path(&a.path, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| format!("cannot make a torrent of {}", a.path.display()))?;
    bar.finish_and_clear();
    let m = Metainfo::parse(&bytes).context("the created torrent does not parse back")?;
    let out = a.output.unwrap_or_else(|| PathBuf::from(format!("{}.torrent", m.name())));
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    out!("wrote {}", out.display());
    if let Some(h) = m.info_hashes().v1() {
        out!("info-hash v1: {h}");
    }
    if let Some(h) = m.info_hashes().v2() {
        out!("info-hash v2: {h}");
    }
    out!("{}", Magnet::from_metainfo(&m));
    Ok(ExitCode::SUCCESS)
}
