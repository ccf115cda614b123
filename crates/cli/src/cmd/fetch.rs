//! `piecework fetch`: download a torrent or magnet link.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use piecework_metainfo::Magnet;
use piecework_swarm::{AddTorrent, Session, Settings};

use super::swarm_common::{Progress, runtime, summary, wait_with_progress};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A .torrent file or a magnet link.
    source: String,
    /// Folder to download into.
    #[arg(long)]
    out: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Address to accept peers on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Print one JSON summary object instead of progress.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Keep a resume file here (default: none; existing data is re-hashed instead).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Do not announce to the torrent's trackers.
    #[arg(long)]
    no_trackers: bool,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut add = if a.source.starts_with("magnet:") {
        let m = Magnet::parse(&a.source).context("invalid magnet link")?;
        AddTorrent::magnet(m, &a.out)
    } else {
        let path = PathBuf::from(&a.source);
        let bytes = super::read_torrent(&path)?;
        super::parse(&path, &bytes)?;
        AddTorrent::torrent(bytes, &a.out)
    };
    for p in &a.peers {
        add = add.peer(*p);
    }
    if let Some(r) = &a.resume {
        add = add.resume_file(r);
    }
    runtime()?.block_on(async move {
        let mut settings = Settings::default();
        settings.listen = Some(a.listen);
        settings.trackers = !a.no_trackers;
        let session = Session::new(settings).await.context("cannot start the session")?;
        let started = Instant::now();
        let t = session.add_torrent(add).await.context("cannot add the torrent")?;
        let progress = Progress::new("fetching", a.json);
        let r = wait_with_progress(&t, &progress, a.timeout.map(Duration::from_secs)).await;
        progress.finish();
        let stats = t.stats();
        let s = summary(t.info_hashes(), &stats, started);
        session.shutdown().await;
        r?;
        if a.json {
            out!("{s}");
        } else {
            out!(
                "fetched {} bytes in {} s ({} MB/s) from {} peers",
                s["bytes"],
                s["seconds"],
                s["mb_per_s"],
                s["peers"]
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
