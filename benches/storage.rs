//! Storage throughput: write 1 GiB as 16 KiB blocks in random piece order with verification,
//! then recheck it with the page cache warm. Prints one `RESULT` line per measurement and the
//! peak RSS.
//!
//! A plain `main` (harness = false) rather than criterion: one 1 GiB pass takes seconds and
//! the interesting comparison (libtorrent's `force_recheck` on the same files) runs in another
//! process; `benches/storage_bench.sh` runs both side by side.
//!
//! Environment: `PW_BENCH_DIR` (default `/tmp/pw-storage-bench`), `PW_BENCH_MIB` (default
//! 1024), `PW_BENCH_PIECE_KIB` (default 1024), `PW_BENCH_RUNS` (recheck repetitions, default
//! 3), `PW_BENCH_KEEP=1` keeps the data and torrent for the libtorrent run,
//! `PW_BENCH_MODE=recheck` only rechecks existing data.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use piecework_metainfo::{BLOCK_SIZE, Metainfo, PieceIndex, TorrentBuilder, Version};
use piecework_storage::{FileBackend, Layout, PieceVerdict, Settings, Storage};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Fills a block with bytes derived from its global index (cheap xorshift, 8 bytes a step).
fn fill_block(index: u64, out: &mut [u8]) {
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut step = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_le_bytes()
    };
    // Whole 8-byte words as fixed-size copies (a variable-length copy per word compiles to a
    // `memmove` call each, which made generating the data cost a sixth of the write loop).
    let mut words = out.chunks_exact_mut(8);
    for c in &mut words {
        c.copy_from_slice(&step());
    }
    let rest = words.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&step()[..n]);
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) this process has used: compares work done
/// independently of how busy the machine is.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, so utime (14) and stime (15) are at 11 and 12; clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

fn make_source(dir: &Path, bytes: u64, piece_kib: u64) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("create source dir");
    let file = src.join("data.bin");
    let mut f =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).expect("create source"));
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let blocks = bytes.div_ceil(u64::from(BLOCK_SIZE));
    for i in 0..blocks {
        let len = (bytes - i * u64::from(BLOCK_SIZE)).min(u64::from(BLOCK_SIZE)) as usize;
        fill_block(i, &mut block[..len]);
        f.write_all(&block[..len]).expect("write source");
    }
    f.flush().expect("flush source");
    drop(f);
    let torrent = TorrentBuilder::new(Version::V1)
        .piece_length(Some(piece_kib * 1024))
        .creation_date(None)
        .build_path(&file, &mut |_, _| {})
        .expect("build torrent");
    let t = dir.join("bench.torrent");
    std::fs::write(&t, torrent).expect("write torrent");
    std::fs::remove_file(&file).expect("remove source");
    t
}

/// What the machine gives right now, for context: plain `pwrite` of 16 KiB blocks to a new
/// file (no storage), and SHA-1 of in-memory data on one thread.
fn baselines(dir: &Path, total: u64) {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("baseline.bin");
    let f = std::fs::File::create(&path).expect("create baseline file");
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    let start = Instant::now();
    for i in 0..total / u64::from(BLOCK_SIZE) {
        fill_block(i, &mut block);
        f.write_all_at(&block, i * u64::from(BLOCK_SIZE)).expect("pwrite");
    }
    let took = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    println!(
        "RESULT client=baseline op=pwrite_16k bytes={total} seconds={:.3} MBps={:.1}",
        took.as_secs_f64(),
        mbps(total, took)
    );
    // SHA-1 of 1 MiB chunks (metainfo's info-hash function is a plain SHA-1 of a slice).
    let buf = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut acc = 0u8;
    for _ in 0..total >> 20 {
        acc ^= piecework_metainfo::InfoHashV1::of_info_bytes(&buf).as_bytes()[0];
    }
    let took = start.elapsed();
    println!(
        "RESULT client=baseline op=sha1_one_thread bytes={total} seconds={:.3} MBps={:.1} check={acc}",
        took.as_secs_f64(),
        mbps(total, took)
    );
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must be quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("storage bench: run with `cargo bench -p piecework-storage --bench storage`");
        return;
    }
    let dir = PathBuf::from(std::env::var("PW_BENCH_DIR").unwrap_or_else(|_| "/tmp/pw-storage-bench".into()));
    let bytes = env_u64("PW_BENCH_MIB", 1024) << 20;
    let piece_kib = env_u64("PW_BENCH_PIECE_KIB", 1024);
    let runs = env_u64("PW_BENCH_RUNS", 3);
    let recheck_only = std::env::var("PW_BENCH_MODE").is_ok_and(|m| m == "recheck");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    let torrent_path = dir.join("bench.torrent");
    if !recheck_only {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create bench dir");
        make_source(&dir, bytes, piece_kib);
    }
    let torrent = std::fs::read(&torrent_path).expect("read torrent");
    let meta = Metainfo::parse(&torrent).expect("parse torrent");
    let layout = Layout::from_metainfo(&meta).expect("layout");
    let total = meta.total_length();
    let settings = Settings::default();
    let dl = dir.join("dl");

    if !recheck_only {
        let backend = FileBackend::new(&dl, &layout, &settings).expect("backend");
        let storage = Storage::new(layout.clone(), backend, settings.clone()).expect("storage");
        // Pieces in a random (but fixed) order; blocks of a piece in order.
        let n = layout.piece_count();
        let mut order: Vec<u32> = (0..n).collect();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut block = vec![0u8; BLOCK_SIZE as usize];
        let per_piece = u64::from(layout.piece_length() / BLOCK_SIZE);
        let cpu = cpu_seconds();
        let start = Instant::now();
        for &p in &order {
            let size = layout.piece_size(PieceIndex::new(p)).expect("piece");
            for b in 0..size.div_ceil(BLOCK_SIZE) {
                let len = (size - b * BLOCK_SIZE).min(BLOCK_SIZE) as usize;
                fill_block(u64::from(p) * per_piece + u64::from(b), &mut block[..len]);
                storage.write_block(PieceIndex::new(p), b * BLOCK_SIZE, &block[..len]).expect("write");
            }
            while let Some(r) = storage.poll_result() {
                assert!(matches!(r.verdict, PieceVerdict::Verified), "piece {} failed", r.piece);
            }
        }
        assert!(storage.wait_idle(Duration::from_secs(600)), "hashing did not finish");
        let took = start.elapsed();
        let cpu = cpu_seconds() - cpu;
        while let Some(r) = storage.poll_result() {
            assert!(matches!(r.verdict, PieceVerdict::Verified), "piece {} failed", r.piece);
        }
        assert!(storage.is_complete());
        println!(
            "RESULT client=piecework op=write_verify bytes={total} seconds={:.3} MBps={:.1} cpu_seconds={cpu:.2} piece_kib={piece_kib} hash_threads={threads} peak_rss_kb={}",
            took.as_secs_f64(),
            mbps(total, took),
            peak_rss_kib()
        );
    }

    if !recheck_only {
        baselines(&dir, total);
    }

    for run in 0..runs {
        let backend = FileBackend::new(&dl, &layout, &settings).expect("backend");
        let storage = Storage::new(layout.clone(), backend, settings.clone()).expect("storage");
        let cpu = cpu_seconds();
        let start = Instant::now();
        let have = storage.recheck(&mut |_| {}).expect("recheck");
        let took = start.elapsed();
        let cpu = cpu_seconds() - cpu;
        assert!(have.is_full(), "recheck found {:?}", have);
        println!(
            "RESULT client=piecework op=recheck run={run} bytes={total} seconds={:.3} MBps={:.1} cpu_seconds={cpu:.2} hash_threads={threads} peak_rss_kb={}",
            took.as_secs_f64(),
            mbps(total, took),
            peak_rss_kib()
        );
    }
    if std::env::var_os("PW_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
