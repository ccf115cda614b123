//! Replays `tests/data/vectors.tsv`: every vector whole, at every truncation, and followed by
//! trailing bytes, in strict and lenient mode, through `decode`, `validate`, `decode_prefix` and
//! serde.

use piecework_bencode::{DecodeOptions, Error};

struct Vector {
    line: usize,
    strict: String,
    lenient: String,
    input: Vec<u8>,
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("hex escape"));
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b't') {
            out.push(b'\t');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/vectors.tsv");
    let v: Vec<Vector> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let mut parts = l.splitn(3, '\t');
            Vector {
                line: i + 1,
                strict: parts.next().unwrap().to_string(),
                lenient: parts.next().unwrap().to_string(),
                input: unescape(parts.next().unwrap_or("")),
            }
        })
        .collect();
    assert!(v.len() > 40, "vector file parsed");
    v
}

/// `Kind@offset`, the form the vector file uses.
fn outcome(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{', '(']).next().unwrap().to_string();
            format!("{kind}@{}", e.offset().map_or("-".into(), |o| o.to_string()))
        }
    }
}

#[test]
fn whole_vectors() {
    for v in vectors() {
        for (opts, want) in [(DecodeOptions::new(), &v.strict), (DecodeOptions::lenient(), &v.lenient)] {
            let got = outcome(opts.decode(&v.input).map(|_| ()));
            assert_eq!(&got, want, "line {} decode (lenient={})", v.line, opts.is_lenient());
            let got = outcome(opts.validate(&v.input));
            assert_eq!(&got, want, "line {} validate", v.line);
            let got = outcome(
                piecework_bencode::from_bytes_with::<serde::de::IgnoredAny>(&v.input, &opts).map(|_| ()),
            );
            assert_eq!(&got, want, "line {} serde", v.line);
        }
    }
}

#[test]
fn every_truncation_is_unexpected_end() {
    for v in vectors().into_iter().filter(|v| v.strict == "ok") {
        for cut in 0..v.input.len() {
            let part = &v.input[..cut];
            assert_eq!(
                piecework_bencode::decode(part).err(),
                Some(Error::UnexpectedEnd { offset: cut }),
                "line {} cut at {cut}",
                v.line
            );
            assert_eq!(
                piecework_bencode::decode_prefix(part).err(),
                Some(Error::UnexpectedEnd { offset: cut })
            );
            assert!(piecework_bencode::validate(part).unwrap_err().is_incomplete());
        }
    }
}

#[test]
fn every_split_with_trailing_bytes() {
    // The value followed by the start of the next message: the prefix decoder stops at the
    // value's end whatever follows, and the spans agree with the whole-input decode.
    for v in vectors().into_iter().filter(|v| v.strict == "ok") {
        let whole = piecework_bencode::decode(&v.input).unwrap();
        for tail in [&b""[..], b"e", b"i1e", b"\xff\x00garbage", b"d"] {
            let mut buf = v.input.clone();
            buf.extend_from_slice(tail);
            let (doc, end) = piecework_bencode::decode_prefix(&buf).unwrap();
            assert_eq!(end, v.input.len(), "line {}", v.line);
            assert_eq!(doc.root().raw(), whole.root().raw());
            assert_eq!(doc.root().to_value(), whole.root().to_value());
            if !tail.is_empty() {
                assert_eq!(piecework_bencode::decode(&buf).err(), Some(Error::TrailingData { offset: end }));
            }
        }
    }
}

#[test]
fn canonical_vectors_re_encode_identically() {
    for v in vectors().into_iter().filter(|v| v.strict == "ok") {
        let value = piecework_bencode::Value::decode(&v.input).unwrap();
        assert_eq!(value.to_vec(), v.input, "line {}", v.line);
    }
}
