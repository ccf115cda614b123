//! `piecework-metainfo` benchmarks, on inputs generated here (no files):
//!
//! - `create/{v1,v2,hybrid}`: hashing 64 MiB held in memory into a torrent with 256 KiB pieces
//!   (all cores), so the number is hashing plus copying, without disk;
//! - `parse/{files20k,pieces100k}`: loading a 20,000-file v1 torrent (1 MiB pieces, 40,000
//!   pieces, about 2.6 MB) and a single-file torrent with 100,000 pieces, against
//!   `lava_torrent` and rqbit's `librqbit_core` in the same group, so ratios come from one run.
//!
//! Run with `cargo bench --bench metainfo`.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use piecework_bencode::Encoder;
use piecework_metainfo::{InputFile, Metainfo, TorrentBuilder, Version};

const CREATE_BYTES: usize = 64 << 20;

fn payload() -> Arc<[u8]> {
    let mut x = 0x9e37_79b9_u32;
    (0..CREATE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn bench_create(c: &mut Criterion) {
    let data = payload();
    let mut g = c.benchmark_group("create");
    g.throughput(Throughput::Bytes(CREATE_BYTES as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, v) in [("v1", Version::V1), ("v2", Version::V2), ("hybrid", Version::Hybrid)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let f = InputFile::from_reader(
                    vec!["data.bin".into()],
                    CREATE_BYTES as u64,
                    Cursor::new(Arc::clone(&data)),
                );
                let t = TorrentBuilder::new(v)
                    .piece_length(Some(256 << 10))
                    .creation_date(None)
                    .build_files("bench", vec![f], &mut |_, _| {})
                    .expect("creates");
                black_box(t)
            })
        });
    }
    g.finish();
}

/// A v1 torrent; `files` of `file_len` bytes each with 3-level paths, or one file if `files == 0`.
fn torrent(files: usize, file_len: u64, piece_len: u64, total: u64) -> Vec<u8> {
    let pieces = total.div_ceil(piece_len) as usize;
    let hashes: Vec<u8> = (0..pieces * 20).map(|i| (i * 7 % 251) as u8).collect();
    let go = |mut e: Encoder<Vec<u8>>| -> Result<Vec<u8>, piecework_bencode::Error> {
        e.begin_dict()?;
        e.key(b"announce")?;
        e.str("http://tracker.example.org:6969/announce")?;
        e.key(b"created by")?;
        e.str("piecework bench")?;
        e.key(b"creation date")?;
        e.int(1_700_000_000)?;
        e.key(b"info")?;
        e.begin_dict()?;
        if files > 0 {
            e.key(b"files")?;
            e.begin_list()?;
            for i in 0..files {
                e.begin_dict()?;
                e.key(b"length")?;
                e.int(file_len as i64)?;
                e.key(b"path")?;
                e.begin_list()?;
                e.str(&format!("dir{:03}", i / 1000))?;
                e.str(&format!("sub{:02}", (i / 50) % 20))?;
                e.str(&format!("file-{i:05}.dat"))?;
                e.end()?;
                e.end()?;
            }
            e.end()?;
        } else {
            e.key(b"length")?;
            e.int(total as i64)?;
        }
        e.key(b"name")?;
        e.str("bench-torrent")?;
        e.key(b"piece length")?;
        e.int(piece_len as i64)?;
        e.key(b"pieces")?;
        e.bytes(&hashes)?;
        e.end()?;
        e.end()?;
        e.finish()
    };
    go(Encoder::new(Vec::new())).expect("encodes")
}

fn bench_parse(c: &mut Criterion) {
    let inputs = [
        ("files20k", torrent(20_000, 2 << 20, 1 << 20, 20_000 * (2 << 20))),
        ("pieces100k", torrent(0, 0, 256 << 10, 100_000 * (256 << 10))),
    ];
    for (name, bytes) in &inputs {
        // Every parser must accept the input, or the comparison means nothing.
        assert!(Metainfo::parse(bytes).is_ok());
        assert!(lava_torrent::torrent::v1::Torrent::read_from_bytes(bytes).is_ok());
        assert!(librqbit_core::torrent_metainfo::torrent_from_bytes(bytes).is_ok());
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("piecework", |b| b.iter(|| black_box(Metainfo::parse(black_box(bytes)).is_ok())));
        g.bench_function("lava_torrent", |b| {
            b.iter(|| {
                black_box(lava_torrent::torrent::v1::Torrent::read_from_bytes(black_box(bytes)).is_ok())
            })
        });
        g.bench_function("librqbit_core", |b| {
            b.iter(|| {
                black_box(librqbit_core::torrent_metainfo::torrent_from_bytes(black_box(bytes)).is_ok())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_create, bench_parse);
criterion_main!(benches);
