//! Extension payloads (BEP 10 handshake, BEP 9 ut_metadata, BEP 11 ut_pex) from arbitrary
//! bytes. Invariant: whatever decodes re-encodes, and the re-encoding decodes to the same value
//! (a fixed point after one round).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use piecework_bencode::DecodeOptions;
use piecework_wire::{ExtendedHandshake, MetadataMessage, PexMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let payload = Bytes::copy_from_slice(rest);
    let opts = if which & 0x80 != 0 { DecodeOptions::lenient() } else { DecodeOptions::new() };
    match which % 3 {
        0 => {
            if let Ok(hs) = ExtendedHandshake::decode_with(&payload, &opts) {
                let mut out = Vec::new();
                hs.encode(&mut out).expect("a decoded handshake encodes");
                let again = ExtendedHandshake::decode_with(&Bytes::from(out.clone()), &opts)
                    .expect("re-encoding decodes");
                // Encoding writes keys in canonical order (lenient input may have had others) and
                // unknown values verbatim (lenient input may have non-canonical ones, so they
                // decode again only under the same options).
                let mut canonical = hs.clone();
                canonical.extensions.sort();
                canonical.unknown.sort();
                assert_eq!(again, canonical);
                if !opts.is_lenient() {
                    // Strict input is canonical and every value is kept as sent.
                    assert_eq!(&out[..], &payload[..]);
                }
            }
        }
        1 => {
            if let Ok(m) = MetadataMessage::decode_with(&payload, &opts) {
                let mut out = Vec::new();
                m.encode(&mut out).expect("a decoded ut_metadata message encodes");
                assert_eq!(MetadataMessage::decode(&Bytes::from(out)).expect("re-encoding decodes"), m);
            }
        }
        _ => {
            if let Ok(p) = PexMessage::decode_with(&payload, &opts) {
                let mut out = Vec::new();
                p.encode(&mut out).expect("a decoded ut_pex message encodes");
                assert_eq!(PexMessage::decode(&Bytes::from(out)).expect("re-encoding decodes"), p);
            }
        }
    }
});
