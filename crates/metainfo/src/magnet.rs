//! Magnet links: [BEP 9] (`urn:btih:`) and [BEP 53] (`so` file selection), with the v2
//! `urn:btmh:` form of [BEP 52].
//!
//! [BEP 9]: https://www.bittorrent.org/beps/bep_0009.html
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html
//! [BEP 53]: https://www.bittorrent.org/beps/bep_0053.html

use core::fmt;
use core::ops::RangeInclusive;
use core::str::FromStr;

use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes, parse_base32, parse_hex};
use crate::{Error, Metainfo};

/// Longest magnet link accepted, in bytes.
pub const MAX_MAGNET_LENGTH: usize = 64 * 1024;

/// A parsed magnet link.
///
/// ```
/// use piecework_metainfo::Magnet;
/// let m: Magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a%20b&tr=udp%3A%2F%2Ft%3A1".parse()?;
/// assert_eq!(m.name(), Some("a b"));
/// assert_eq!(m.trackers(), ["udp://t:1"]);
/// assert_eq!(m.to_string().parse::<Magnet>()?, m);
/// # Ok::<(), piecework_metainfo::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    hashes: InfoHashes,
    name: Option<String>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    peers: Vec<String>,
    select_only: Vec<RangeInclusive<u64>>,
    exact_length: Option<u64>,
    extra: Vec<(String, String)>,
}

fn bad(offset: usize, reason: &'static str) -> Error {
    Error::InvalidMagnet { offset, reason }
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (which starts at byte `at` of the link) into UTF-8.
fn percent_decode(s: &str, at: usize) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(unhex);
            let lo = b.get(i + 2).copied().and_then(unhex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(bad(at + i, "bad percent-escape")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(at, "value is not UTF-8 after percent-decoding"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

fn parse_so(v: &str, at: usize) -> Result<Vec<RangeInclusive<u64>>, Error> {
    let mut out = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad(at, "bad `so` index"));
        let r = match part.split_once('-') {
            Some((a, b)) => num(a)?..=num(b)?,
            None => {
                let n = num(part)?;
                n..=n
            }
        };
        if r.start() > r.end() {
            return Err(bad(at, "`so` range runs backwards"));
        }
        out.push(r);
    }
    Ok(out)
}

impl Magnet {
    /// A magnet link for a torrent: its hashes, name, trackers and web seeds.
    pub fn from_metainfo(m: &Metainfo<'_>) -> Self {
        Self {
            hashes: m.info_hashes(),
            name: Some(m.name().to_owned()),
            trackers: m.trackers().iter().flatten().cloned().collect(),
            web_seeds: m.web_seeds().to_vec(),
            peers: Vec::new(),
            select_only: Vec::new(),
            exact_length: None,
            extra: Vec::new(),
        }
    }
    /// A bare magnet link for the given hashes.
    pub fn new(hashes: InfoHashes) -> Self {
        Self {
            hashes,
            name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
            exact_length: None,
            extra: Vec::new(),
        }
    }
    /// Parses a `magnet:?` link. `xt` must give a v1 (`urn:btih:`, 40 hex or 32 base32) or v2
    /// (`urn:btmh:1220` + 64 hex) hash, or one of each for a hybrid.
    pub fn parse(link: &str) -> Result<Self, Error> {
        if link.len() > MAX_MAGNET_LENGTH {
            return Err(bad(MAX_MAGNET_LENGTH, "link is too long"));
        }
        let prefix = "magnet:?";
        let query = match link.get(..prefix.len()) {
            Some(p) if p.eq_ignore_ascii_case(prefix) => &link[prefix.len()..],
            _ => return Err(bad(0, "does not start with `magnet:?`")),
        };
        let mut v1 = None;
        let mut v2 = None;
        let mut m = Self::new(InfoHashes::V1(InfoHashV1::default()));
        let mut at = prefix.len();
        for param in query.split('&') {
            let start = at;
            at += param.len() + 1;
            if param.is_empty() {
                continue;
            }
            let (key, raw) = param.split_once('=').unwrap_or((param, ""));
            let vat = start + key.len() + 1;
            let value = percent_decode(raw, vat)?;
            // `xt.1`, `tr.2`, ...: numbered repeats of a key.
            let base = key
                .split_once('.')
                .filter(|(k, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && *k != "x")
                .map_or(key, |(k, _)| k);
            match base {
                "xt" => {
                    if let Some(h) = value.strip_prefix("urn:btih:") {
                        let h = h.as_bytes();
                        let parsed = match h.len() {
                            40 => parse_hex::<20>(h),
                            32 => parse_base32::<20>(h),
                            _ => None,
                        };
                        v1 = Some(InfoHashV1::from_bytes(
                            parsed.ok_or_else(|| bad(vat + 9, "bad btih hash"))?,
                        ));
                    } else if let Some(h) = value.strip_prefix("urn:btmh:") {
                        let hex = h
                            .strip_prefix("1220")
                            .ok_or_else(|| bad(vat + 9, "btmh is not a sha2-256 multihash"))?;
                        let parsed =
                            parse_hex::<32>(hex.as_bytes()).ok_or_else(|| bad(vat + 13, "bad btmh hash"))?;
                        v2 = Some(InfoHashV2::from_bytes(parsed));
                    } else {
                        m.extra.push((key.to_owned(), value));
                    }
                }
                "dn" => m.name = Some(value),
                "tr" => m.trackers.push(value),
                "ws" => m.web_seeds.push(value),
                "x.pe" => m.peers.push(value),
                "so" => m.select_only.extend(parse_so(&value, vat)?),
                "xl" => {
                    m.exact_length = Some(value.parse().map_err(|_| bad(vat, "bad `xl` length"))?);
                }
                _ => m.extra.push((key.to_owned(), value)),
            }
        }
        m.hashes = InfoHashes::from_parts(v1, v2)
            .ok_or_else(|| bad(0, "no `xt=urn:btih:` or `xt=urn:btmh:` hash"))?;
        Ok(m)
    }
    /// The info-hashes.
    pub fn info_hashes(&self) -> InfoHashes {
        self.hashes
    }
    /// `dn`: the display name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Sets `dn`.
    pub fn set_name(&mut self, name: Option<String>) {
        self.name = name;
    }
    /// `tr`: trackers, in order.
    pub fn trackers(&self) -> &[String] {
        &self.trackers
    }
    /// Adds a `tr`.
    pub fn add_tracker(&mut self, url: impl Into<String>) {
        self.trackers.push(url.into());
    }
    /// `ws`: web seeds.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }
    /// Adds a `ws`.
    pub fn add_web_seed(&mut self, url: impl Into<String>) {
        self.web_seeds.push(url.into());
    }
    /// `x.pe`: peer addresses (`host:port`).
    pub fn peers(&self) -> &[String] {
        &self.peers
    }
    /// Adds an `x.pe`.
    pub fn add_peer(&mut self, addr: impl Into<String>) {
        self.peers.push(addr.into());
    }
    /// `so` ([BEP 53]): the file indices to download, as inclusive ranges.
    ///
    /// [BEP 53]: https://www.bittorrent.org/beps/bep_0053.html
    pub fn select_only(&self) -> &[RangeInclusive<u64>] {
        &self.select_only
    }
    /// Sets `so`.
    pub fn set_select_only(&mut self, ranges: Vec<RangeInclusive<u64>>) {
        self.select_only = ranges;
    }
    /// `xl`: the exact length in bytes.
    pub fn exact_length(&self) -> Option<u64> {
        self.exact_length
    }
    /// Sets `xl`.
    pub fn set_exact_length(&mut self, len: Option<u64>) {
        self.exact_length = len;
    }
    /// Parameters this type does not interpret, decoded, in order.
    pub fn extra(&self) -> &[(String, String)] {
        &self.extra
    }
}

impl FromStr for Magnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Magnet {
    /// The link, hashes first: `btih` as hex, `btmh` as `1220` + hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(h) = self.hashes.v1() {
            parts.push(format!("xt=urn:btih:{}", h.to_hex()));
        }
        if let Some(h) = self.hashes.v2() {
            parts.push(format!("xt=urn:btmh:{}", h.to_multihash_hex()));
        }
        let kv = |k: &str, v: &str| {
            let mut s = format!("{k}=");
            percent_encode(v, &mut s);
            s
        };
        if let Some(n) = &self.name {
            parts.push(kv("dn", n));
        }
        if let Some(l) = self.exact_length {
            parts.push(format!("xl={l}"));
        }
        parts.extend(self.trackers.iter().map(|t| kv("tr", t)));
        parts.extend(self.web_seeds.iter().map(|w| kv("ws", w)));
        parts.extend(self.peers.iter().map(|p| kv("x.pe", p)));
        if !self.select_only.is_empty() {
            let so: Vec<String> = self
                .select_only
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect();
            parts.push(format!("so={}", so.join(",")));
        }
        parts.extend(self.extra.iter().map(|(k, v)| kv(k, v)));
        write!(f, "magnet:?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V1: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    const V2: &str = "597b180c1a170a585dfc5e85d834d69013ceda174b8f357d5bb1a0ca509faf0a";

    #[test]
    fn hybrid_with_everything() {
        let link = format!(
            "magnet:?xt=urn:btih:{V1}&xt=urn:btmh:1220{V2}&dn=My+file%21&tr=http%3A%2F%2Fa%2Fann&tr=udp://b:80&ws=http://w/&x.pe=127.0.0.1:6881&so=0,2,4-6&xl=1234&foo=bar"
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hashes().v1().unwrap().to_hex(), V1);
        assert_eq!(m.info_hashes().v2().unwrap().to_hex(), V2);
        assert_eq!(m.name(), Some("My+file!"));
        assert_eq!(m.trackers(), ["http://a/ann", "udp://b:80"]);
        assert_eq!(m.web_seeds(), ["http://w/"]);
        assert_eq!(m.peers(), ["127.0.0.1:6881"]);
        assert_eq!(m.select_only(), [0..=0, 2..=2, 4..=6]);
        assert_eq!(m.exact_length(), Some(1234));
        assert_eq!(m.extra(), [("foo".to_owned(), "bar".to_owned())]);
        assert_eq!(Magnet::parse(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn base32_and_v2_only() {
        let m = Magnet::parse("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").unwrap();
        assert_eq!(m.info_hashes().v1().unwrap().to_hex(), V1);
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{V2}")).unwrap();
        assert!(matches!(m.info_hashes(), InfoHashes::V2(_)));
    }

    #[test]
    fn errors_say_where() {
        let e = Magnet::parse("http://x").unwrap_err();
        assert!(matches!(e, Error::InvalidMagnet { offset: 0, .. }));
        let e = Magnet::parse("magnet:?dn=x").unwrap_err();
        assert!(matches!(e, Error::InvalidMagnet { .. }));
        let e = Magnet::parse("magnet:?xt=urn:btih:zz").unwrap_err();
        assert!(matches!(e, Error::InvalidMagnet { offset: 20, .. }), "{e:?}");
        let e = Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&dn=%G1")).unwrap_err();
        assert!(matches!(e, Error::InvalidMagnet { offset: 64, .. }), "{e:?}");
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&so=5-2")).is_err());
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btmh:1114{V2}")).is_err());
    }

    proptest! {
        #[test]
        fn build_parse_roundtrip(h in any::<[u8; 20]>(), name in ".{0,20}", tr in proptest::collection::vec(".{0,20}", 0..3)) {
            let mut m = Magnet::new(InfoHashes::V1(InfoHashV1::from_bytes(h)));
            m.set_name(Some(name));
            for t in tr { m.add_tracker(t); }
            prop_assert_eq!(Magnet::parse(&m.to_string()).unwrap(), m);
        }
        #[test]
        fn parse_never_panics(s in "magnet:\\?.{0,100}") {
            let _ = Magnet::parse(&s);
        }
    }
}
