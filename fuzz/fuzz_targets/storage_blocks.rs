//! Random block write/verify sequences against the memory backend, on v1 (with an empty file),
//! v2 and hybrid (pad files) torrents, with corrupt blocks and out-of-range requests mixed in.
//!
//! Invariant: a piece is complete exactly when all its blocks were written with the right data
//! (corruption confined to pad bytes does not count: pad data is never stored). A failed piece
//! is discarded whole and can be written again; bad requests fail with a typed error and change
//! nothing; a complete piece reads back its exact bytes.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::{BLOCK_SIZE, InputFile, Metainfo, PieceIndex, TorrentBuilder, Version};
use piecework_storage::{Layout, MemoryBackend, PieceVerdict, Settings, Storage, WriteOutcome};

struct Case {
    layout: Layout,
    /// The piece space (pad files as zeros).
    space: Vec<u8>,
}

fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn cases() -> &'static [Case] {
    static C: OnceLock<Vec<Case>> = OnceLock::new();
    C.get_or_init(|| {
        let sizes = [40_000usize, 0, 9_000, 50_000];
        [Version::V1, Version::V2, Version::Hybrid]
            .into_iter()
            .map(|v| {
                let data: Vec<Vec<u8>> =
                    sizes.iter().enumerate().map(|(i, &n)| content(i as u8, n)).collect();
                let files = data
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        InputFile::from_reader(
                            vec![format!("f{i}")],
                            d.len() as u64,
                            std::io::Cursor::new(d.clone()),
                        )
                    })
                    .collect();
                let t = TorrentBuilder::new(v)
                    .piece_length(Some(32_768))
                    .creation_date(None)
                    .build_files("t", files, &mut |_, _| {})
                    .expect("fixed torrent builds");
                let layout = Layout::from_metainfo(&Metainfo::parse(&t).expect("parses")).expect("layout");
                let end = layout.files().iter().map(|f| f.offset() + f.length()).max().unwrap_or(0);
                let mut space = vec![0u8; end as usize];
                for f in layout.files().iter().filter(|f| f.is_stored() && f.length() > 0) {
                    let i: usize = f.path().components().last().expect("name")[1..].parse().expect("index");
                    space[f.offset() as usize..(f.offset() + f.length()) as usize].copy_from_slice(&data[i]);
                }
                Case { layout, space }
            })
            .collect()
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, ops)) = input.split_first() else { return };
    let case = &cases()[which as usize % 3];
    let layout = &case.layout;
    let mut settings = Settings::default();
    settings.hash_threads = 1;
    let s = Storage::new(layout.clone(), MemoryBackend::new(layout), settings).expect("storage");
    let count = layout.piece_count();
    let pl = layout.piece_length() as usize;
    // Model: per piece, per block: None = missing, Some(good).
    let mut model: Vec<Vec<Option<bool>>> = (0..count)
        .map(|p| vec![None; layout.blocks_in_piece(PieceIndex::new(p)).expect("piece") as usize])
        .collect();
    let mut complete = vec![false; count as usize];

    for op in ops.chunks_exact(3) {
        let (p, b, kind) = (u32::from(op[0]), usize::from(op[1]), op[2]);
        if kind >= 250 {
            // A bad request (piece out of range, misaligned, oversized): a typed error that
            // changes nothing.
            let bad = match kind % 3 {
                0 => s.write_block(PieceIndex::new(count + p), 0, &[0u8; 16]),
                1 => s.write_block(PieceIndex::new(p % count), 1 + u32::from(op[1]), &[0u8; 16]),
                _ => s.write_block(PieceIndex::new(p % count), 0, &vec![0u8; BLOCK_SIZE as usize + 1 + b]),
            };
            assert!(bad.is_err());
            continue;
        }
        let p = p % count;
        let blocks = &mut model[p as usize];
        let b = b % blocks.len();
        let start = p as usize * pl;
        let size = layout.piece_size(PieceIndex::new(p)).expect("piece") as usize;
        let piece = &case.space[start..start + size];
        let off = b * BLOCK_SIZE as usize;
        let mut block = piece[off..(off + BLOCK_SIZE as usize).min(size)].to_vec();
        let mut good = true;
        if kind % 7 == 0 {
            // Flip a byte; it only matters where real file data lives.
            let at = usize::from(kind) % block.len();
            block[at] ^= 1;
            let pos = off + at;
            let stored =
                layout.segments(PieceIndex::new(p), pos as u32, 1).expect("in range").all(|seg| !seg.pad);
            good = !stored;
        }
        let out = s.write_block(PieceIndex::new(p), off as u32, &block).expect("valid block");
        if complete[p as usize] || blocks[b].is_some() {
            assert_eq!(out, WriteOutcome::Duplicate);
            continue;
        }
        blocks[b] = Some(good);
        if blocks.iter().all(Option::is_some) {
            assert_eq!(out, WriteOutcome::PieceComplete);
            let r = s.wait_result(Duration::from_secs(60)).expect("a verdict");
            assert_eq!(r.piece, PieceIndex::new(p));
            let all_good = blocks.iter().all(|x| *x == Some(true));
            assert_eq!(matches!(r.verdict, PieceVerdict::Verified), all_good, "piece {p}");
            if all_good {
                complete[p as usize] = true;
            } else {
                // No block hashes given: the whole piece is discarded.
                blocks.iter_mut().for_each(|x| *x = None);
            }
        } else {
            assert_eq!(out, WriteOutcome::Stored);
        }
    }
    assert!(s.wait_idle(Duration::from_secs(60)));
    for p in 0..count {
        assert_eq!(s.has_piece(PieceIndex::new(p)), complete[p as usize], "piece {p}");
        if complete[p as usize] {
            let start = p as usize * pl;
            let size = layout.piece_size(PieceIndex::new(p)).expect("piece") as usize;
            let mut got = vec![0u8; size];
            s.read_block(PieceIndex::new(p), 0, &mut got).expect("read");
            assert!(got == case.space[start..start + size]);
        }
    }
});
