//! tus header and metadata parsing: never panics, and whatever parses
//! re-encodes to a form that parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_upload::headers::{
    self, Concat, HeaderSource, Metadata, MetadataLimits, encode_checksum, parse_checksum,
};
use piecework_upload::share::{ShareManifest, parse_range};
use piecework_upload::{UploadId, UploadInfo};

fuzz_target!(|data: &[u8]| {
    let limits = MetadataLimits::default();

    if let Ok(n) = headers::parse_u64(headers::UPLOAD_OFFSET, data) {
        assert_eq!(headers::parse_u64(headers::UPLOAD_OFFSET, n.to_string().as_bytes()).unwrap(), n);
    }
    if let Ok(md) = Metadata::parse(data, limits) {
        let enc = md.encode();
        assert_eq!(
            Metadata::parse(enc.as_bytes(), MetadataLimits { max_len: usize::MAX, ..limits }).unwrap(),
            md
        );
    }
    if let Ok(c) = Concat::parse(data, 16) {
        if let Concat::Final(parts) = &c {
            assert!(!parts.is_empty() && parts.len() <= 16);
        }
        assert_eq!(Concat::parse(c.encode("/files/").as_bytes(), 16).unwrap(), c);
    }
    if let Ok(c) = parse_checksum(data) {
        assert_eq!(c.digest().len(), c.algorithm().digest_len());
        assert_eq!(parse_checksum(encode_checksum(&c).as_bytes()).unwrap(), c);
    }
    if let Ok(list) = headers::parse_list(headers::TUS_EXTENSION, data) {
        assert!(list.iter().all(|t| !t.is_empty()));
    }
    let _ = headers::parse_expires(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = UploadId::new(s) {
            assert!(!id.as_str().contains(['/', '\\', '.', '\0']));
        }
        if let Ok(info) = UploadInfo::decode(s) {
            assert_eq!(UploadInfo::decode(&info.encode()).unwrap(), info);
        }
        if let Ok(m) = ShareManifest::decode(s) {
            assert_eq!(ShareManifest::decode(&m.encode()).unwrap(), m);
        }
    }
    // A resource length from the first bytes, the rest as a Range header.
    if let Some((&l, rest)) = data.split_first() {
        let len = u64::from(l) * 1000;
        if let Ok(Some((a, b))) = parse_range(Some(rest), len) {
            assert!(a <= b && b < len);
        }
    }
    // Headers split on newlines: a repeated name is always an error.
    let pairs: Vec<(&str, &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(line.get(..colon)?).ok()?;
            Some((name, line.get(colon + 1..)?))
        })
        .collect();
    let count = pairs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(headers::UPLOAD_LENGTH)).count();
    let got = pairs.as_slice().unique(headers::UPLOAD_LENGTH);
    assert_eq!(count > 1, got.is_err());
    let _ = headers::check_tus_resumable(pairs.as_slice());
});
