//! BEP 52 hash request / hashes / hash reject bodies after a fixed header. Invariants: a
//! decoded message re-encodes byte for byte, `hashes` holds whole 32-byte hashes within the
//! limit, and bad lengths are refused without consuming anything.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use piecework_wire::{Decoder, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let id = 21 + sel % 3;
    let mut wire = BytesMut::new();
    // Honest length prefix most of the time, a random one otherwise.
    let len = if sel & 0x80 == 0 { body.len() as u32 + 1 } else { u32::from(sel) * 97 };
    wire.put_u32(len);
    wire.put_u8(id);
    wire.put_slice(body);
    let original = wire.clone();
    let mut d = Decoder::with_limits(Limits::new().max_hashes(256));
    match d.decode(&mut wire) {
        Ok(Some(m)) => {
            match &m {
                Message::HashRequest(_) | Message::HashReject(_) => assert_eq!(m.encoded_len(), 53),
                Message::Hashes(h) => {
                    assert_eq!(h.hashes.len() % 32, 0);
                    assert!(h.count() <= 256);
                    assert_eq!(h.iter().count(), h.count());
                }
                other => panic!("id {id} decoded as {other:?}"),
            }
            let mut re = Vec::new();
            m.encode(&mut re).unwrap();
            assert_eq!(&re[..], &original[..re.len()]);
            assert_eq!(wire.len(), original.len() - re.len());
        }
        Ok(None) | Err(_) => assert_eq!(wire.len(), original.len()),
    }
});
