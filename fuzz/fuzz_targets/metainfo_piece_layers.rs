//! Piece-layer verification: never panics on any layer, root or sizes; a layer accepted for a
//! root hashes up to it; the layer of real data is accepted and a flipped byte is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::merkle::{self, FileHasher, LayerProblem};

fuzz_target!(|data: &[u8]| {
    if data.len() < 41 {
        return;
    }
    let piece_length = 16_384u64 << (data[0] % 6);
    let file_length = u64::from_le_bytes(data[1..9].try_into().unwrap()) % (1 << 40);
    let root: [u8; 32] = data[9..41].try_into().unwrap();
    let layer = &data[41..];
    match merkle::verify_piece_layer(layer, file_length, piece_length, &root) {
        Ok(()) => {
            let hashes: Vec<[u8; 32]> = layer.chunks_exact(32).map(|c| c.try_into().unwrap()).collect();
            assert_eq!(merkle::root_from_piece_layer(&hashes, piece_length), Some(root));
        }
        Err(LayerProblem::NotMultipleOf32) => assert_ne!(layer.len() % 32, 0),
        Err(_) => {}
    }

    // Real data: the layer built from it verifies; a changed byte breaks it.
    let mut h = FileHasher::new(piece_length).unwrap();
    h.update(layer);
    let (root, built) = h.finish();
    if let Some(root) = root
        && layer.len() as u64 > piece_length
    {
        let flat: Vec<u8> = built.iter().flatten().copied().collect();
        assert_eq!(merkle::verify_piece_layer(&flat, layer.len() as u64, piece_length, &root), Ok(()));
        let mut bad = flat.clone();
        bad[0] ^= 1;
        assert!(merkle::verify_piece_layer(&bad, layer.len() as u64, piece_length, &root).is_err());
    }
});
