//! The upload client's HTTP/1.1 response decoder (`patch_stream::ResponseDecoder`): never
//! panics, and the responses it finds do not depend on how the bytes arrive (all at once,
//! or split at a point taken from the input).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use piecework_upload::patch_stream::{ResponseDecoder, ResponseHead, ResponseLimits};

/// Every response `parts` yield in order, and whether decoding stopped at an error.
fn decode_all(parts: &[&[u8]]) -> (Vec<ResponseHead>, bool) {
    let limits = ResponseLimits { max_head: 512, max_headers: 16 };
    let mut d = ResponseDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(h)) => out.push(h),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let at = usize::from(cut).min(data.len());
    let (whole, failed) = decode_all(&[data]);
    let (split, split_failed) = decode_all(&[&data[..at], &data[at..]]);
    assert_eq!(failed, split_failed);
    assert_eq!(whole, split);
    // Nothing follows a response that ends the connection.
    if let Some(i) = whole.iter().position(|h| !h.keep_alive) {
        assert_eq!(i + 1, whole.len());
    }
});
