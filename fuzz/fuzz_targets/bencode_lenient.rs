//! Lenient decoding: spans are exact, and whatever is accepted re-encodes to a canonical form
//! that strict decoding accepts and reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_bencode::{DecodeOptions, Value};

fuzz_target!(|data: &[u8]| {
    let lenient = DecodeOptions::lenient();
    let decoded = lenient.decode(data);
    assert_eq!(decoded.as_ref().err(), lenient.validate(data).err().as_ref());
    if let Ok(doc) = decoded {
        assert_eq!(doc.root().raw(), data);
        let value = doc.root().to_value();
        let canonical = value.to_vec();
        assert_eq!(Value::decode(&canonical).expect("canonical re-encoding decodes strictly"), value);
        // Strict acceptance implies lenient acceptance of the same value.
        if let Ok(strict) = piecework_bencode::decode(data) {
            assert_eq!(strict.root().to_value(), value);
        }
    }
});
