//! Magnet parsing: never panics, and whatever parses prints to a link that parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::Magnet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(m) = Magnet::parse(s) else { return };
    let printed = m.to_string();
    let back = Magnet::parse(&printed).expect("printed link parses");
    assert_eq!(back, m, "{printed}");
    assert_eq!(back.to_string(), printed);
});
