//! Decodes arbitrary bytes as a peer-wire stream (handshake first when the input starts with
//! one). Invariants: nothing is consumed without a message, consumed never exceeds the input,
//! every decoded message re-encodes to exactly the bytes it was decoded from, and `drain` yields
//! the same messages and error and leaves the same bytes as repeated `decode`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use piecework_wire::{Decoder, Handshake, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let mut limits = Limits::new().accept_unknown(flags & 1 != 0).max_block_length(1 << 15);
    if flags & 2 != 0 {
        limits = limits.max_bitfield_pieces(4096).max_extended_length(4096).max_hashes(64);
    }
    let mut decoder = Decoder::with_limits(limits);
    if flags & 4 != 0 {
        decoder.set_piece_count(Some(u32::from(flags >> 3) * 37));
    }
    let mut drainer = decoder.clone();
    let mut start = 0usize;
    let mut hs_buf = BytesMut::from(input);
    if let Ok(Some(h)) = Handshake::decode(&mut hs_buf) {
        assert_eq!(&h.to_bytes()[..], &input[..68]);
        start = 68;
    }
    let stream = &input[start..];
    // Feed in two parts to exercise the incremental path.
    let cut = usize::from(flags) % (stream.len() + 1);
    let mut buf = BytesMut::from(&stream[..cut]);
    let mut fed_all = cut == stream.len();
    let mut consumed = 0usize;
    let mut decoded = Vec::new();
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(m)) => {
                let used = before - buf.len();
                assert_eq!(used, m.encoded_len());
                let mut re = Vec::new();
                m.encode(&mut re).expect("a decoded message encodes");
                assert_eq!(&re[..], &stream[consumed..consumed + used]);
                consumed += used;
                decoded.push(Ok(m));
            }
            Ok(None) if !fed_all => {
                assert_eq!(buf.len(), before);
                buf.extend_from_slice(&stream[cut..]);
                fed_all = true;
            }
            Ok(None) | Err(_) => {
                assert_eq!(buf.len(), before, "nothing consumed without a message");
                if let Err(e) = decoder.decode(&mut buf) {
                    decoded.push(Err(e));
                }
                break;
            }
        }
    }
    assert!(consumed <= stream.len());
    // The same stream, fed in the same two parts, through `drain`.
    let mut dbuf = BytesMut::from(&stream[..cut]);
    let mut drained: Vec<_> = drainer.drain(&mut dbuf).collect();
    if !drained.last().is_some_and(|r| r.is_err()) {
        dbuf.extend_from_slice(&stream[cut..]);
        drained.extend(drainer.drain(&mut dbuf));
    }
    assert_eq!(format!("{drained:?}"), format!("{decoded:?}"));
    assert_eq!(dbuf.len(), buf.len(), "drain leaves the bytes decode leaves");
});
