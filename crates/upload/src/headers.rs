//! tus 1.0.0 header grammar: strict parsers and writers.
//!
//! Every parser rejects what the [tus 1.0.0 protocol] does not allow: signs,
//! leading `+`, numbers past `u64::MAX`, duplicated headers, bad base64.
//!
//! [tus 1.0.0 protocol]: https://tus.io/protocols/resumable-upload

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::Error;
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::id::UploadId;

/// The only protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// `Content-Type` of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// `Tus-Resumable`.
pub const TUS_RESUMABLE: &str = "Tus-Resumable";
/// `Tus-Version`.
pub const TUS_VERSION_H: &str = "Tus-Version";
/// `Tus-Extension`.
pub const TUS_EXTENSION: &str = "Tus-Extension";
/// `Tus-Max-Size`.
pub const TUS_MAX_SIZE: &str = "Tus-Max-Size";
/// `Tus-Checksum-Algorithm`.
pub const TUS_CHECKSUM_ALGORITHM: &str = "Tus-Checksum-Algorithm";
/// `Upload-Offset`.
pub const UPLOAD_OFFSET: &str = "Upload-Offset";
/// `Upload-Length`.
pub const UPLOAD_LENGTH: &str = "Upload-Length";
/// `Upload-Defer-Length`.
pub const UPLOAD_DEFER_LENGTH: &str = "Upload-Defer-Length";
/// `Upload-Metadata`.
pub const UPLOAD_METADATA: &str = "Upload-Metadata";
/// `Upload-Expires`.
pub const UPLOAD_EXPIRES: &str = "Upload-Expires";
/// `Upload-Checksum`.
pub const UPLOAD_CHECKSUM: &str = "Upload-Checksum";
/// `Upload-Concat`.
pub const UPLOAD_CONCAT: &str = "Upload-Concat";
/// `Content-Type`.
pub const CONTENT_TYPE: &str = "Content-Type";

/// Longest number literal accepted (`u64::MAX` has 20 digits); longer ones are
/// rejected before any arithmetic.
const MAX_DIGITS: usize = 20;

/// Read access to a request's headers, with every value of a repeated header.
///
/// Implemented for slices of `(name, value)` pairs and, with feature `server`,
/// for `http::HeaderMap`. Names compare case-insensitively.
pub trait HeaderSource {
    /// Every value of header `name`, in order.
    fn values<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The single value of `name`: `Ok(None)` if absent, an error if repeated.
    fn unique(&self, name: &'static str) -> Result<Option<&[u8]>, Error> {
        let mut it = self.values(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(Error::DuplicateHeader { name });
        }
        Ok(first)
    }

    /// Like [`HeaderSource::unique`] but also requires visible ASCII.
    fn unique_str(&self, name: &'static str) -> Result<Option<&str>, Error> {
        match self.unique(name)? {
            None => Ok(None),
            Some(v) => ascii(name, v).map(Some),
        }
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderSource for [(N, V)] {
    fn values<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderSource for Vec<(N, V)> {
    fn values<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.as_slice().values(name)
    }
}

fn ascii<'a>(name: &'static str, v: &'a [u8]) -> Result<&'a str, Error> {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        // Checked above: only ASCII bytes.
        std::str::from_utf8(v).map_err(|_| Error::MalformedHeader { name })
    } else {
        Err(Error::MalformedHeader { name })
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses a non-negative decimal `u64` header value strictly.
pub fn parse_u64(name: &'static str, value: &[u8]) -> Result<u64, Error> {
    let s = trim_ows(ascii(name, value)?);
    if s.starts_with('-') {
        return Err(Error::NegativeNumber { name });
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::MalformedHeader { name });
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return Err(Error::NumberOverflow { name });
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(b - b'0')))
            .ok_or(Error::NumberOverflow { name })
    })
}

/// Reads an optional unique `u64` header.
pub fn get_u64<H: HeaderSource + ?Sized>(h: &H, name: &'static str) -> Result<Option<u64>, Error> {
    h.unique(name)?.map(|v| parse_u64(name, v)).transpose()
}

/// Checks `Tus-Resumable: 1.0.0` (the server answers 412 otherwise).
pub fn check_tus_resumable<H: HeaderSource + ?Sized>(h: &H) -> Result<(), Error> {
    match h.unique(TUS_RESUMABLE) {
        Ok(Some(v)) if trim_ows(ascii(TUS_RESUMABLE, v)?) == TUS_VERSION => Ok(()),
        Err(e) => Err(e),
        _ => Err(Error::UnsupportedVersion),
    }
}

/// Parses `Upload-Defer-Length`, whose only legal value is `1`.
pub fn get_defer_length<H: HeaderSource + ?Sized>(h: &H) -> Result<bool, Error> {
    match h.unique_str(UPLOAD_DEFER_LENGTH)? {
        None => Ok(false),
        Some(v) if trim_ows(v) == "1" => Ok(true),
        Some(_) => Err(Error::MalformedHeader { name: UPLOAD_DEFER_LENGTH }),
    }
}

/// Parses a comma-separated token list (`Tus-Version`, `Tus-Extension`,
/// `Tus-Checksum-Algorithm`); empty items are an error.
pub fn parse_list(name: &'static str, value: &[u8]) -> Result<Vec<String>, Error> {
    let s = ascii(name, value)?;
    s.split(',')
        .map(|item| {
            let t = trim_ows(item);
            if t.is_empty() || t.contains([' ', '\t']) {
                Err(Error::MalformedHeader { name })
            } else {
                Ok(t.to_owned())
            }
        })
        .collect()
}

/// Limits applied to `Upload-Metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Longest header value accepted, in bytes. Default 4096.
    pub max_len: usize,
    /// Most pairs accepted. Default 64.
    pub max_pairs: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self { max_len: 4096, max_pairs: 64 }
    }
}

/// Decoded `Upload-Metadata`: ordered, unique keys, binary values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair; fails on an invalid or repeated key.
    pub fn insert(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        let pair = self.pairs.len();
        if !valid_key(key) {
            return Err(Error::InvalidMetadata { pair });
        }
        if self.get(key).is_some() {
            return Err(Error::DuplicateMetadataKey { pair });
        }
        self.pairs.push((key.to_owned(), value.to_vec()));
        Ok(())
    }

    /// Value of `key` (an empty value for a key sent without one).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// Pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// True if there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Parses an `Upload-Metadata` value within `limits`.
    pub fn parse(value: &[u8], limits: MetadataLimits) -> Result<Self, Error> {
        let name = UPLOAD_METADATA;
        if value.len() > limits.max_len {
            return Err(Error::HeaderTooLong { name, limit: limits.max_len });
        }
        let s = trim_ows(ascii(name, value)?);
        let mut md = Metadata::new();
        if s.is_empty() {
            return Ok(md);
        }
        for (pair, item) in s.split(',').enumerate() {
            if pair >= limits.max_pairs {
                return Err(Error::TooManyItems { name, limit: limits.max_pairs });
            }
            let item = trim_ows(item);
            let (key, encoded) = match item.split_once(' ') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            let val = match encoded {
                None => Vec::new(),
                Some(v) => {
                    if v.contains([' ', '\t']) {
                        return Err(Error::InvalidMetadata { pair });
                    }
                    B64.decode(v).map_err(|_| Error::InvalidMetadata { pair })?
                }
            };
            md.insert(key, &val).map_err(|e| match e {
                Error::DuplicateMetadataKey { .. } => Error::DuplicateMetadataKey { pair },
                _ => Error::InvalidMetadata { pair },
            })?;
        }
        Ok(md)
    }

    /// Encodes as an `Upload-Metadata` value.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            if !v.is_empty() {
                out.push(' ');
                out.push_str(&B64.encode(v));
            }
        }
        out
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// `Upload-Concat` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// A part that a final upload will join.
    Partial,
    /// A final upload joining the parts in order.
    Final(Vec<UploadId>),
}

impl Concat {
    /// Parses `partial` or `final;<url> <url> ...`, taking each URL's last path
    /// segment as the upload id. At most `max_parts` parts.
    pub fn parse(value: &[u8], max_parts: usize) -> Result<Self, Error> {
        let name = UPLOAD_CONCAT;
        let s = trim_ows(ascii(name, value)?);
        if s == "partial" {
            return Ok(Concat::Partial);
        }
        let Some(rest) = s.strip_prefix("final;") else {
            return Err(Error::MalformedHeader { name });
        };
        let mut parts = Vec::new();
        for url in rest.split(' ').filter(|u| !u.is_empty()) {
            if parts.len() >= max_parts {
                return Err(Error::TooManyItems { name, limit: max_parts });
            }
            if url.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(Error::MalformedHeader { name });
            }
            let seg = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            parts.push(UploadId::new(seg).map_err(|_| Error::MalformedHeader { name })?);
        }
        if parts.is_empty() {
            return Err(Error::MalformedHeader { name });
        }
        Ok(Concat::Final(parts))
    }

    /// Encodes with part URLs under `base_path` (e.g. `/files/`).
    pub fn encode(&self, base_path: &str) -> String {
        match self {
            Concat::Partial => "partial".to_owned(),
            Concat::Final(parts) => {
                let urls: Vec<String> = parts.iter().map(|p| format!("{base_path}{}", p.as_str())).collect();
                format!("final;{}", urls.join(" "))
            }
        }
    }
}

/// Parses `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn parse_checksum(value: &[u8]) -> Result<Checksum, Error> {
    let name = UPLOAD_CHECKSUM;
    let s = trim_ows(ascii(name, value)?);
    let (alg, digest) = s.split_once(' ').ok_or(Error::MalformedHeader { name })?;
    let alg = ChecksumAlgorithm::from_name(alg).ok_or(Error::UnsupportedChecksumAlgorithm)?;
    let digest = B64.decode(trim_ows(digest)).map_err(|_| Error::MalformedHeader { name })?;
    Checksum::new(alg, digest).map_err(|_| Error::MalformedHeader { name })
}

/// Encodes an `Upload-Checksum` value.
pub fn encode_checksum(c: &Checksum) -> String {
    format!("{} {}", c.algorithm().name(), B64.encode(c.digest()))
}

/// Formats a time as an `Upload-Expires` value (RFC 9110 IMF-fixdate).
/// Times past 9999-12-31 (which the format cannot carry) are clamped to it.
pub fn format_expires(t: std::time::SystemTime) -> String {
    // 9999-12-31T23:59:59Z; httpdate panics past it.
    let max = std::time::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    httpdate::fmt_http_date(t.min(max))
}

/// Parses an `Upload-Expires` value.
pub fn parse_expires(value: &[u8]) -> Result<std::time::SystemTime, Error> {
    let name = UPLOAD_EXPIRES;
    httpdate::parse_http_date(ascii(name, value)?).map_err(|_| Error::MalformedHeader { name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_strict() {
        let n = UPLOAD_OFFSET;
        assert_eq!(parse_u64(n, b"0").unwrap(), 0);
        assert_eq!(parse_u64(n, b" 42 ").unwrap(), 42);
        assert_eq!(parse_u64(n, b"18446744073709551615").unwrap(), u64::MAX);
        assert_eq!(parse_u64(n, b"000000000000000000000000001").unwrap(), 1);
        assert!(matches!(parse_u64(n, b"18446744073709551616"), Err(Error::NumberOverflow { .. })));
        assert!(matches!(parse_u64(n, b"999999999999999999999999"), Err(Error::NumberOverflow { .. })));
        assert!(matches!(parse_u64(n, b"-1"), Err(Error::NegativeNumber { .. })));
        for bad in [&b""[..], b"+1", b"1 2", b"0x10", b"1e3", b"\xff", b"1,2"] {
            assert!(matches!(parse_u64(n, bad), Err(Error::MalformedHeader { .. })), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_are_rejected() {
        let h = vec![("upload-offset", "1"), ("Upload-Offset", "1")];
        assert!(matches!(get_u64(&h, UPLOAD_OFFSET), Err(Error::DuplicateHeader { .. })));
        let h = vec![("Tus-Resumable", "1.0.0"), ("tus-resumable", "1.0.0")];
        assert!(matches!(check_tus_resumable(&h), Err(Error::DuplicateHeader { .. })));
    }

    #[test]
    fn tus_resumable_version() {
        assert!(check_tus_resumable(&vec![("Tus-Resumable", "1.0.0")]).is_ok());
        let empty: Vec<(&str, &str)> = vec![];
        assert!(matches!(check_tus_resumable(&empty), Err(Error::UnsupportedVersion)));
        assert!(matches!(
            check_tus_resumable(&vec![("Tus-Resumable", "0.2.2")]),
            Err(Error::UnsupportedVersion)
        ));
    }

    #[test]
    fn metadata_roundtrip_and_errors() {
        let l = MetadataLimits::default();
        let md =
            Metadata::parse(b"filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential", l).unwrap();
        assert_eq!(md.get("filename").unwrap(), b"world_domination_plan.pdf");
        assert_eq!(md.get("is_confidential").unwrap(), b"");
        assert_eq!(Metadata::parse(md.encode().as_bytes(), l).unwrap(), md);
        assert!(matches!(Metadata::parse(b"a !!!", l), Err(Error::InvalidMetadata { pair: 0 })));
        assert!(matches!(Metadata::parse(b"a YQ==,a Yg==", l), Err(Error::DuplicateMetadataKey { pair: 1 })));
        assert!(matches!(Metadata::parse(b"a YQ==,,b", l), Err(Error::InvalidMetadata { pair: 1 })));
        let long = vec![b'a'; l.max_len + 1];
        assert!(matches!(Metadata::parse(&long, l), Err(Error::HeaderTooLong { .. })));
        let many = (0..=l.max_pairs).map(|i| format!("k{i}")).collect::<Vec<_>>().join(",");
        assert!(matches!(Metadata::parse(many.as_bytes(), l), Err(Error::TooManyItems { .. })));
    }

    #[test]
    fn concat_parse() {
        assert_eq!(Concat::parse(b"partial", 8).unwrap(), Concat::Partial);
        let c = Concat::parse(b"final;/files/a1 http://x/files/b2", 8).unwrap();
        let ids = vec![UploadId::new("a1").unwrap(), UploadId::new("b2").unwrap()];
        assert_eq!(c, Concat::Final(ids));
        assert_eq!(Concat::parse(c.encode("/files/").as_bytes(), 8).unwrap(), c);
        for bad in [&b"final;"[..], b"final", b"full", b"final;/files/../etc"] {
            assert!(Concat::parse(bad, 8).is_err(), "{bad:?}");
        }
        assert!(matches!(Concat::parse(b"final;/a /b /c", 2), Err(Error::TooManyItems { .. })));
    }

    #[test]
    fn checksum_header() {
        let c = parse_checksum(b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm(), ChecksumAlgorithm::Sha1);
        assert_eq!(encode_checksum(&c), "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert!(matches!(parse_checksum(b"crc32 AAAAAA=="), Err(Error::UnsupportedChecksumAlgorithm)));
        assert!(matches!(parse_checksum(b"sha1 AAAA"), Err(Error::MalformedHeader { .. })));
        assert!(parse_checksum(b"sha1").is_err());
    }

    #[test]
    fn expires_roundtrip() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(parse_expires(format_expires(t).as_bytes()).unwrap(), t);
        assert!(parse_expires(b"tomorrow").is_err());
        let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1 << 40);
        assert!(format_expires(far).starts_with("Fri, 31 Dec 9999"));
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list(TUS_EXTENSION, b"creation, termination").unwrap(),
            vec!["creation", "termination"]
        );
        assert!(parse_list(TUS_EXTENSION, b"creation,,x").is_err());
    }

    proptest! {
        #[test]
        fn u64_roundtrip(n: u64) {
            prop_assert_eq!(parse_u64(UPLOAD_LENGTH, n.to_string().as_bytes()).unwrap(), n);
        }

        #[test]
        fn metadata_roundtrip(pairs in proptest::collection::btree_map("[a-z0-9_.-]{1,8}", proptest::collection::vec(any::<u8>(), 0..20), 0..8)) {
            let mut md = Metadata::new();
            for (k, v) in &pairs { md.insert(k, v).unwrap(); }
            let back = Metadata::parse(md.encode().as_bytes(), MetadataLimits::default()).unwrap();
            prop_assert_eq!(back, md);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_u64(UPLOAD_OFFSET, &bytes);
            let _ = Metadata::parse(&bytes, MetadataLimits::default());
            let _ = Concat::parse(&bytes, 4);
            let _ = parse_checksum(&bytes);
            let _ = parse_expires(&bytes);
        }
    }
}
