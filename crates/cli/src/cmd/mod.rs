//! Subcommands. Later issues add `seed`, `fetch`, `upload-server`, `upload` and `share` here:
//! one module each, one variant in [`Command`], one arm in [`run`].

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use piecework_metainfo::Metainfo;

mod create;
mod demo;
mod fetch;
mod inspect;
mod magnet;
mod seed;
mod share;
mod swarm_common;
mod upload;
mod upload_common;
mod upload_server;
mod verify;

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Make a .torrent of a file or directory.
    Create(create::Args),
    /// Show what a .torrent or magnet link holds.
    Inspect(inspect::Args),
    /// Print the magnet link of a .torrent.
    Magnet(magnet::Args),
    /// Re-hash data against a .torrent.
    Verify(verify::Args),
    /// Seed a torrent's data to peers.
    Seed(seed::Args),
    /// Download a torrent or magnet link.
    Fetch(fetch::Args),
    /// Share demo: a seeder and a leecher move a fresh file over 127.0.0.1.
    Demo(demo::Args),
    /// Run a tus 1.0 resumable upload server over a store directory.
    UploadServer(upload_server::Args),
    /// Upload a file to a tus server with progress; rerun to resume.
    Upload(upload::Args),
    /// Print a signed, expiring download link for finished uploads.
    Share(share::Args),
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Create(a) => create::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Magnet(a) => magnet::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Seed(a) => seed::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Demo(a) => demo::run(a),
        Command::UploadServer(a) => upload_server::run(a),
        Command::Upload(a) => upload::run(a),
        Command::Share(a) => share::run(a),
    }
}

/// Largest .torrent read from disk (the parser's own limit applies too).
const MAX_TORRENT_FILE: u64 = 64 << 20;

/// Reads a .torrent file, refusing oversized ones before reading them.
pub(crate) fn read_torrent(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_TORRENT_FILE {
        anyhow::bail!("{} is {} bytes, too large for a .torrent", path.display(), meta.len());
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parses a .torrent, naming the file in the error.
pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<Metainfo<'a>> {
    Metainfo::parse(bytes).with_context(|| format!("{} is not a valid torrent", path.display()))
}
