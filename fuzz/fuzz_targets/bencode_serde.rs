//! serde: torrent-shaped structs borrowed from arbitrary input; whatever deserializes
//! serializes back and deserializes equal, and RawValue spans are exact.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use piecework_bencode::{DecodeOptions, RawValue};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct File<'a> {
    length: i64,
    #[serde(borrow)]
    path: Vec<&'a str>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Info<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<File<'a>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    #[serde(borrow)]
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: u32,
    #[serde(with = "serde_bytes")]
    pieces: &'a [u8],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Torrent<'a> {
    #[serde(borrow, default)]
    announce: Option<&'a str>,
    #[serde(borrow)]
    info: RawValue<'a>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Message<'a> {
    Request { piece: u32, msg_type: u8 },
    #[serde(borrow)]
    Names(Vec<&'a str>),
    Id(i64),
}

fuzz_target!(|data: &[u8]| {
    for opts in [DecodeOptions::new(), DecodeOptions::lenient()] {
        if let Ok(t) = piecework_bencode::from_bytes_with::<Torrent<'_>>(data, &opts) {
            if let Some(a) = t.announce {
                assert!(data.as_ptr_range().contains(&a.as_ptr()) || a.is_empty(), "borrowed, not copied");
            }
            let raw = t.info.as_bytes();
            let start = raw.as_ptr() as usize - data.as_ptr() as usize;
            assert_eq!(&data[start..start + raw.len()], raw);
            if let Ok(info) = piecework_bencode::from_bytes_with::<Info<'_>>(raw, &opts) {
                let again = piecework_bencode::to_vec(&info).unwrap();
                assert_eq!(piecework_bencode::from_bytes::<Info<'_>>(&again).unwrap(), info);
            }
        }
        if let Ok(m) = piecework_bencode::from_bytes_with::<Message<'_>>(data, &opts) {
            let again = piecework_bencode::to_vec(&m).unwrap();
            assert_eq!(piecework_bencode::from_bytes::<Message<'_>>(&again).unwrap(), m);
        }
        if let Ok(map) = piecework_bencode::from_bytes_with::<BTreeMap<&str, i64>>(data, &opts) {
            let again = piecework_bencode::to_vec(&map).unwrap();
            assert_eq!(piecework_bencode::from_bytes::<BTreeMap<&str, i64>>(&again).unwrap(), map);
        }
    }
});
