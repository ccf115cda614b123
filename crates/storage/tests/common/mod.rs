//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use piecework_metainfo::{BLOCK_SIZE, InputFile, Metainfo, PieceIndex, TorrentBuilder, Version};
use piecework_storage::{Backend, Layout, Storage};

/// Deterministic file contents.
pub fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A torrent named `t` with files `d<i % dirs>/f<i>` of the given sizes.
pub fn torrent(version: Version, piece_length: u64, sizes: &[usize], dirs: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &s)| content(i as u32 + 1, s)).collect();
    let inputs = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            InputFile::from_reader(
                vec![format!("d{}", i % dirs), format!("f{i:06}")],
                d.len() as u64,
                std::io::Cursor::new(d.clone()),
            )
        })
        .collect();
    let t = TorrentBuilder::new(version)
        .piece_length(Some(piece_length))
        .creation_date(None)
        .build_files("t", inputs, &mut |_, _| {})
        .unwrap();
    (t, data)
}

/// The piece space of a layout (pad files as zeros), from the file contents by file name.
pub fn piece_space(layout: &Layout, data: &[Vec<u8>]) -> Vec<u8> {
    let end = layout.files().iter().map(|f| f.offset() + f.length()).max().unwrap_or(0);
    let mut out = vec![0u8; end as usize];
    for f in layout.files() {
        if !f.is_stored() || f.length() == 0 {
            continue;
        }
        let name = f.path().components().last().unwrap();
        let i: usize = name.trim_start_matches('f').parse().unwrap();
        out[f.offset() as usize..(f.offset() + f.length()) as usize].copy_from_slice(&data[i]);
    }
    out
}

pub fn piece<'a>(layout: &Layout, space: &'a [u8], p: u32) -> &'a [u8] {
    let start = p as usize * layout.piece_length() as usize;
    &space[start..start + layout.piece_size(PieceIndex::new(p)).unwrap() as usize]
}

pub fn write_piece<B: Backend>(s: &Storage<B>, p: u32, data: &[u8]) -> Result<(), piecework_storage::Error> {
    for (n, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        s.write_block(PieceIndex::new(p), n as u32 * BLOCK_SIZE, block)?;
    }
    Ok(())
}

pub fn parse(t: &[u8]) -> Layout {
    Layout::from_metainfo(&Metainfo::parse(t).unwrap()).unwrap()
}

/// A tmpfs mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a visible note) when mounting is not permitted here.
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self { dir })
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Runs the single test `name` of the current test binary as a child process with the
/// given environment variable set.
pub fn self_command(name: &str, env: (&str, &Path)) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([name, "--exact", "--nocapture", "--include-ignored", "--test-threads", "1"]).env(env.0, env.1);
    c
}

pub fn path_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}
