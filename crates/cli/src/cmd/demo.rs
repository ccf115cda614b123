//! `piecework demo`: the share demo. Makes a file, a hybrid torrent and its magnet link,
//! then moves the file from a seeder to a leecher (which starts from the magnet link) over
//! 127.0.0.1, verifies it and prints the throughput.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use piecework_metainfo::{Magnet, Metainfo, TorrentBuilder, Version};
use piecework_swarm::{AddTorrent, Session, Settings};

use super::swarm_common::{Progress, parse_size, runtime, summary, wait_with_progress};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Size of the file to share (`1GiB`, `64MiB`, `500M`, bytes).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Work in this folder instead of a temporary one (kept afterwards).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Print one JSON summary object at the end.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Writes `size` pseudo-random bytes (xorshift; incompressible enough, and fast).
fn make_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

fn same_contents(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let tmp;
    let root = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let seed_dir = root.join("seed");
    let leech_dir = root.join("leech");
    std::fs::create_dir_all(&seed_dir)?;
    let file = seed_dir.join("demo.bin");
    let say = |s: String| {
        if !a.json {
            out!("{s}");
        }
    };
    say(format!("making a {} byte file in {}", a.size, seed_dir.display()));
    make_file(&file, a.size).context("cannot write the demo file")?;
    let t0 = Instant::now();
    let torrent = TorrentBuilder::new(Version::Hybrid)
        .build_path(&file, &mut |_, _| {})
        .context("cannot create the torrent")?;
    let meta = Metainfo::parse(&torrent)?;
    let magnet = Magnet::from_metainfo(&meta);
    say(format!("hybrid torrent created in {:.2} s", t0.elapsed().as_secs_f64()));
    say(format!("magnet: {magnet}"));
    std::fs::write(root.join("demo.torrent"), &torrent)?;

    runtime()?.block_on(async {
        let seeder = Session::new(Settings::default()).await?;
        seeder.add_torrent(AddTorrent::torrent(torrent.clone(), &seed_dir)).await?;
        let addr = seeder.listen_addr().context("the seeder is not listening")?;
        say(format!("seeder on {addr}; leecher starts from the magnet link"));
        let leecher = Session::new(Settings::default()).await?;
        let started = Instant::now();
        let t = leecher.add_torrent(AddTorrent::magnet(magnet.clone(), &leech_dir).peer(addr)).await?;
        let progress = Progress::new("transfer", a.json);
        let r = wait_with_progress(&t, &progress, Some(Duration::from_secs(a.timeout))).await;
        progress.finish();
        let stats = t.stats();
        let s = summary(t.info_hashes(), &stats, started);
        leecher.shutdown().await;
        seeder.shutdown().await;
        r?;
        let same = same_contents(&file, &leech_dir.join("demo.bin"))?;
        if a.json {
            out!("{s}");
        } else {
            out!(
                "transferred {} bytes in {} s: {} MB/s, every piece verified, files {}",
                s["bytes"],
                s["seconds"],
                s["mb_per_s"],
                if same { "identical" } else { "DIFFER" }
            );
        }
        Ok(if same { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
