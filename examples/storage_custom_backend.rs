//! A custom storage backend: a middleware that counts the bytes going to another backend,
//! and refuses writes once a quota is used up (as a disk-quota or metering layer would).
//!
//! Run with `cargo run -p piecework-storage --example storage_custom_backend`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use piecework_metainfo::{BLOCK_SIZE, InputFile, Metainfo, PieceIndex, TorrentBuilder, Version};
use piecework_storage::{Backend, Error, FileMeta, Layout, MemoryBackend, PieceVerdict, Settings, Storage};

/// Counts bytes and enforces a write quota in front of any other backend.
struct Metered<B> {
    inner: B,
    read: AtomicU64,
    written: AtomicU64,
    quota: u64,
}

impl<B: Backend> Backend for Metered<B> {
    fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.inner.read_at(file, offset, buf)?;
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), Error> {
        let before = self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        if before + data.len() as u64 > self.quota {
            self.written.fetch_sub(data.len() as u64, Ordering::Relaxed);
            // Reported like a full disk, so callers treat it as an environment fault.
            return Err(Error::DiskFull { path: format!("quota, file {file}").into() });
        }
        self.inner.write_at(file, offset, data)
    }

    fn metadata(&self, file: usize) -> Result<Option<FileMeta>, Error> {
        self.inner.metadata(file)
    }

    fn create_empty(&self, file: usize) -> Result<(), Error> {
        self.inner.create_empty(file)
    }

    fn sync(&self) -> Result<(), Error> {
        self.inner.sync()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let input = InputFile::from_reader(
        vec!["data.bin".into()],
        data.len() as u64,
        std::io::Cursor::new(data.clone()),
    );
    let torrent = TorrentBuilder::new(Version::V2).piece_length(Some(32_768)).build_files(
        "example",
        vec![input],
        &mut |_, _| {},
    )?;
    let meta = Metainfo::parse(&torrent)?;
    let layout = Layout::from_metainfo(&meta)?;
    let backend = Metered {
        inner: MemoryBackend::new(&layout),
        read: AtomicU64::new(0),
        written: AtomicU64::new(0),
        quota: 1 << 20,
    };
    let storage = Storage::new(layout, backend, Settings::default())?;

    for (p, piece) in data.chunks(32_768).enumerate() {
        for (n, block) in piece.chunks(BLOCK_SIZE as usize).enumerate() {
            storage.write_block(PieceIndex::new(p as u32), n as u32 * BLOCK_SIZE, block)?;
        }
    }
    if !storage.wait_idle(Duration::from_secs(30)) {
        return Err("hashing did not finish".into());
    }
    while let Some(r) = storage.poll_result() {
        println!(
            "piece {}: {}",
            r.piece,
            if matches!(r.verdict, PieceVerdict::Verified) { "verified" } else { "failed" }
        );
    }
    let b = storage.backend();
    println!(
        "complete: {}, written {} bytes, read back {} bytes for hashing",
        storage.is_complete(),
        b.written.load(Ordering::Relaxed),
        b.read.load(Ordering::Relaxed)
    );
    Ok(())
}
