//! `piecework magnet`.

use std::path::PathBuf;
use std::process::ExitCode;

use piecework_metainfo::Magnet;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The .torrent file.
    torrent: PathBuf,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bytes = super::read_torrent(&a.torrent)?;
    let m = super::parse(&a.torrent, &bytes)?;
    out!("{}", Magnet::from_metainfo(&m));
    Ok(ExitCode::SUCCESS)
}
