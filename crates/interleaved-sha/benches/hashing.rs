//! One hash stream against two interleaved, over 4 MiB in 16 KiB leaves (BEP 52 blocks).
//!
//! `cargo bench -p piecework-interleaved-sha`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha1::Digest as _;

const LEAF: usize = 16 * 1024;

fn data() -> Vec<u8> {
    (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn sha256_leaves(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("sha256 leaves");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha2, one at a time", |b| {
        b.iter(|| data.chunks(LEAF).map(|l| sha2::Sha256::digest(l)[0]).fold(0u8, |a, x| a ^ x))
    });
    g.bench_function("interleaved pairs", |b| {
        b.iter(|| piecework_interleaved_sha::digest_chunks(black_box(&data), LEAF).fold(0u8, |a, x| a ^ x[0]))
    });
    g.finish();
}

fn hybrid_piece(c: &mut Criterion) {
    // A hybrid torrent's piece: its SHA-1 and the SHA-256 of each of its blocks.
    let data = data();
    let mut g = c.benchmark_group("sha1 piece + sha256 leaves");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha1 then sha2, one stream each", |b| {
        b.iter(|| {
            let mut h = sha1::Sha1::new();
            let mut acc = 0u8;
            for l in data.chunks(LEAF) {
                h.update(l);
                acc ^= sha2::Sha256::digest(l)[0];
            }
            (h.finalize()[0], acc)
        })
    });
    g.bench_function("fused", |b| {
        b.iter(|| {
            let mut h = piecework_interleaved_sha::Sha1::new();
            let acc = data.chunks(LEAF).fold(0u8, |a, l| a ^ h.update_with_leaf(black_box(l))[0]);
            (h.finalize()[0], acc)
        })
    });
    g.finish();
}

fn leaves_on_the_way_to_a_write_buffer(c: &mut Criterion) {
    // An upload server's path: a received 256 KiB frame hashed into leaves and copied into
    // one of three 1 MiB write buffers in turn (so the destination is rarely cached).
    let frame = &data()[..256 * 1024];
    let mut bufs = vec![vec![0u8; 1 << 20]; 3];
    let mut g = c.benchmark_group("sha256 leaves + copy out");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    let mut at = 0usize;
    let mut next = move || {
        at = (at + frame.len()) % (3 << 20);
        (at >> 20, at & ((1 << 20) - 1))
    };
    g.bench_function("hash, then copy", |b| {
        b.iter(|| {
            let (i, off) = next();
            let acc =
                piecework_interleaved_sha::digest_chunks(black_box(frame), LEAF).fold(0u8, |a, x| a ^ x[0]);
            bufs[i][off..off + frame.len()].copy_from_slice(frame);
            acc
        })
    });
    g.bench_function("hash while copying", |b| {
        b.iter(|| {
            let (i, off) = next();
            let out = &mut bufs[i][off..off + frame.len()];
            piecework_interleaved_sha::digest_chunks_copy(black_box(frame), LEAF, out)
                .fold(0u8, |a, x| a ^ x[0])
        })
    });
    g.finish();
}

criterion_group!(benches, sha256_leaves, hybrid_piece, leaves_on_the_way_to_a_write_buffer);
criterion_main!(benches);
