//! `piecework seed`: serve a torrent's data until interrupted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use piecework_swarm::{AddTorrent, Session, Settings};

use super::swarm_common::{Progress, runtime};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The .torrent file.
    torrent: PathBuf,
    /// The data: the torrent's file or folder, or the folder that holds it.
    data: PathBuf,
    /// Address to accept peers on.
    #[arg(long, default_value = "127.0.0.1:6881")]
    listen: SocketAddr,
    /// A peer to connect to (repeatable); redialled until it has everything.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    timeout: Option<u64>,
    /// Do not announce to the torrent's trackers.
    #[arg(long)]
    no_trackers: bool,
}

/// The folder the torrent's name lives in: `data` itself, unless `data` *is* the torrent's
/// file or folder.
pub(crate) fn save_path(data: &Path, name: &str) -> PathBuf {
    if data.file_name().is_some_and(|n| n == name) {
        data.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    } else {
        data.to_path_buf()
    }
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bytes = super::read_torrent(&a.torrent)?;
    let m = super::parse(&a.torrent, &bytes)?;
    let save = save_path(&a.data, m.name());
    let hashes = m.info_hashes();
    runtime()?.block_on(async move {
        let mut settings = Settings::default();
        settings.listen = Some(a.listen);
        settings.trackers = !a.no_trackers;
        let session = Session::new(settings).await.context("cannot start the session")?;
        let mut add = AddTorrent::torrent(bytes, &save);
        for p in &a.peers {
            add = add.peer(*p);
        }
        let t = session.add_torrent(add).await.context("cannot add the torrent")?;
        let s = t.stats();
        if !s.complete {
            anyhow::bail!(
                "the data in {} does not match the torrent ({} of {} pieces)",
                save.display(),
                s.pieces_have,
                s.pieces_total
            );
        }
        let port = session.listen_addr().map_or(0, |a| a.port());
        out!(
            "READY port={port} info_hash_v1={} info_hash_v2={}",
            hashes.v1().map_or_else(|| "-".into(), |h| h.to_hex()),
            hashes.v2().map_or_else(|| "-".into(), |h| h.to_hex())
        );
        let progress = Progress::new("seeding", false);
        let deadline = a.timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => progress.update(&t.stats()),
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            }
        }
        progress.finish();
        let s = t.stats();
        session.shutdown().await;
        out!("uploaded {} bytes to {} peers", s.uploaded, s.peers_max);
        Ok(ExitCode::SUCCESS)
    })
}
