//! Strict decoding: anything accepted is canonical (re-encodes byte for byte), the validator
//! and serde agree with the tape decoder, and errors point inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_bencode::{DecodeOptions, Value};

fuzz_target!(|data: &[u8]| {
    let decoded = piecework_bencode::decode(data);
    assert_eq!(decoded.as_ref().err(), piecework_bencode::validate(data).err().as_ref());
    let serde = piecework_bencode::from_bytes::<serde::de::IgnoredAny>(data).map(|_| ());
    assert_eq!(decoded.as_ref().err(), serde.err().as_ref());
    match decoded {
        Ok(doc) => {
            assert_eq!(doc.root().raw(), data);
            assert_eq!(doc.root().to_value().to_vec(), data);
            assert!(DecodeOptions::lenient().decode(data).is_ok());
            let via_serde: Value<'_> = piecework_bencode::from_bytes(data).expect("serde accepts what decode does");
            assert_eq!(via_serde, doc.root().to_value());
        }
        Err(e) => assert!(e.offset().is_some_and(|o| o <= data.len())),
    }
});
