//! Tracker URLs: parsing `http://` and `udp://` announce URLs, building announce and scrape
//! query strings ([BEP 3], [BEP 48]).
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
//! [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html

use core::fmt::Write as _;

use piecework_metainfo::InfoHashV1;

use crate::{Announce, Error};

/// Longest tracker URL accepted (announce URLs come from torrent files and magnet links).
pub const MAX_URL_LEN: usize = 4096;

/// Which protocol a tracker URL speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://` ([BEP 3](https://www.bittorrent.org/beps/bep_0003.html)).
    Http,
    /// `udp://` ([BEP 15](https://www.bittorrent.org/beps/bep_0015.html)).
    Udp,
}

/// A parsed tracker URL: scheme, host, port and (for HTTP) the path and query.
///
/// Only ASCII URLs without spaces or control characters are accepted, so the path can go into an
/// HTTP request line unchanged. User info (`user@`) is refused; a fragment is dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrackerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    path_and_query: String,
}

impl TrackerUrl {
    /// Parses `http://host[:port][/path][?query]` or `udp://host:port[/...]`. The HTTP port
    /// defaults to 80; a UDP URL must name its port. IPv6 hosts are written `[::1]`.
    pub fn parse(url: &str) -> Result<Self, Error> {
        if url.len() > MAX_URL_LEN || !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidUrl);
        }
        let url = url.split('#').next().unwrap_or(url);
        let (scheme_str, rest) = url.split_once("://").ok_or(Error::InvalidUrl)?;
        let scheme = if scheme_str.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme_str.eq_ignore_ascii_case("udp") {
            Scheme::Udp
        } else {
            return Err(Error::UnsupportedScheme);
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') || authority.is_empty() {
            return Err(Error::InvalidUrl);
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (h, p) = after.split_once(']').ok_or(Error::InvalidUrl)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| Error::InvalidUrl)?;
            let port = match p {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(Error::InvalidUrl)?),
            };
            (h, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(Error::InvalidUrl);
        }
        let port = match (port, scheme) {
            (Some(p), _) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::InvalidUrl);
                }
                p.parse::<u16>().map_err(|_| Error::InvalidUrl)?
            }
            (None, Scheme::Http) => 80,
            (None, Scheme::Udp) => return Err(Error::InvalidUrl),
        };
        if port == 0 {
            return Err(Error::InvalidUrl);
        }
        let path_and_query = match tail.strip_prefix('?') {
            Some(_) => format!("/{tail}"),
            None if tail.is_empty() => "/".to_owned(),
            None => tail.to_owned(),
        };
        Ok(Self { scheme, host: host.to_owned(), port, path_and_query })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The host: a name, an IPv4 literal, or an IPv6 literal without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port (80 when an HTTP URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The path and query, starting with `/`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
    /// The value for an HTTP `Host` header (`host`, `host:port`, `[v6]:port`).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 80 { host } else { format!("{host}:{}", self.port) }
    }

    /// The scrape URL for this announce URL ([BEP 48]): the last path segment must start with
    /// `announce`, which is replaced by `scrape`; anything else means the tracker does not
    /// support scrape ([`Error::ScrapeNotSupported`]). UDP trackers scrape on the same address
    /// ([BEP 15]), so a UDP URL is returned unchanged.
    ///
    /// [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html
    /// [BEP 15]: https://www.bittorrent.org/beps/bep_0015.html
    pub fn to_scrape(&self) -> Result<Self, Error> {
        if self.scheme == Scheme::Udp {
            return Ok(self.clone());
        }
        let qpos = self.path_and_query.find('?').unwrap_or(self.path_and_query.len());
        let (path, query) = self.path_and_query.split_at(qpos);
        // A path always starts with '/', so a last '/' exists.
        let slash = path.rfind('/').ok_or(Error::ScrapeNotSupported)?;
        let (dir, last) = path.split_at(slash + 1);
        let rest = last.strip_prefix("announce").ok_or(Error::ScrapeNotSupported)?;
        let mut out = self.clone();
        out.path_and_query = format!("{dir}scrape{rest}{query}");
        Ok(out)
    }

    /// The path and query of an HTTP announce ([BEP 3]): this URL's path and query plus
    /// `info_hash`, `peer_id`, `port`, `uploaded`, `downloaded`, `left`, `compact=1`, and when
    /// set `event`, `numwant`, `key` (8 hex digits) and `trackerid`. Binary values are
    /// percent-encoded byte by byte.
    ///
    /// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
    pub fn announce_target(&self, a: &Announce) -> String {
        let mut s = self.path_and_query.clone();
        s.push(if s.contains('?') { '&' } else { '?' });
        s.push_str("info_hash=");
        percent_encode(a.info_hash.as_bytes(), &mut s);
        s.push_str("&peer_id=");
        percent_encode(a.peer_id.as_bytes(), &mut s);
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "&port={}&uploaded={}&downloaded={}&left={}&compact=1",
            a.port, a.uploaded, a.downloaded, a.left
        );
        if let Some(ev) = a.event.as_http() {
            let _ = write!(s, "&event={ev}");
        }
        if let Some(n) = a.num_want {
            let _ = write!(s, "&numwant={n}");
        }
        if let Some(k) = a.key {
            let _ = write!(s, "&key={k:08x}");
        }
        if let Some(t) = &a.tracker_id {
            s.push_str("&trackerid=");
            percent_encode(t, &mut s);
        }
        s
    }

    /// The path and query of an HTTP scrape for `hashes` on this (already derived, see
    /// [`TrackerUrl::to_scrape`]) scrape URL: one `info_hash` parameter per hash ([BEP 48]).
    ///
    /// [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html
    pub fn scrape_target(&self, hashes: &[InfoHashV1]) -> String {
        let mut s = self.path_and_query.clone();
        let mut sep = if s.contains('?') { '&' } else { '?' };
        for h in hashes {
            s.push(sep);
            s.push_str("info_hash=");
            percent_encode(h.as_bytes(), &mut s);
            sep = '&';
        }
        s
    }
}

impl core::fmt::Display for TrackerUrl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Udp => "udp",
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path_and_query)
    }
}

/// Percent-encodes every byte except RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, PeerId};

    #[test]
    fn parses_http_and_udp() {
        let u = TrackerUrl::parse("http://tracker.invalid/announce").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.path_and_query()),
            (Scheme::Http, "tracker.invalid", 80, "/announce")
        );
        assert_eq!(u.host_header(), "tracker.invalid");
        let u = TrackerUrl::parse("HTTP://127.0.0.1:6969?x=1#frag").unwrap();
        assert_eq!((u.port(), u.path_and_query()), (6969, "/?x=1"));
        assert_eq!(u.host_header(), "127.0.0.1:6969");
        let u = TrackerUrl::parse("udp://[::1]:6969/announce").unwrap();
        assert_eq!((u.scheme(), u.host(), u.port()), (Scheme::Udp, "::1", 6969));
        assert_eq!(u.host_header(), "[::1]:6969");
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in [
            "",
            "tracker.invalid/announce",
            "http://",
            "http://:80/",
            "http://a.invalid:/",
            "http://a.invalid:0/",
            "http://a.invalid:65536/",
            "http://a.invalid:+1/",
            "http://user@a.invalid/",
            "http://a.invalid/ann ounce",
            "http://a.invalid/announce\r\nX: y",
            "http://[::1/",
            "http://[nope]:80/",
            "udp://a.invalid/announce",
        ] {
            assert!(matches!(TrackerUrl::parse(bad), Err(Error::InvalidUrl)), "{bad:?}");
        }
        assert!(matches!(TrackerUrl::parse("https://a.invalid/"), Err(Error::UnsupportedScheme)));
        assert!(matches!(TrackerUrl::parse("wss://a.invalid/"), Err(Error::UnsupportedScheme)));
    }

    #[test]
    fn scrape_url_bep48_examples() {
        // The convention's examples: announce -> scrape in the last segment only.
        for (a, s) in [
            ("http://example.invalid/announce", Some("/scrape")),
            ("http://example.invalid/x/announce", Some("/x/scrape")),
            ("http://example.invalid/announce.php", Some("/scrape.php")),
            ("http://example.invalid/a?x2%0644", None),
            ("http://example.invalid/announce?x2%0644", Some("/scrape?x2%0644")),
            ("http://example.invalid/x%064announce", None),
            ("http://example.invalid/announce/x", None),
        ] {
            let u = TrackerUrl::parse(a).unwrap();
            match (u.to_scrape(), s) {
                (Ok(u), Some(s)) => assert_eq!(u.path_and_query(), s, "{a}"),
                (Err(Error::ScrapeNotSupported), None) => {}
                (r, _) => panic!("{a}: {r:?}"),
            }
        }
        let udp = TrackerUrl::parse("udp://127.0.0.1:1/announce").unwrap();
        assert_eq!(udp.to_scrape().unwrap(), udp);
    }

    #[test]
    fn announce_query_encodes_binary() {
        let mut ih = [0u8; 20];
        ih[0] = 0x12;
        ih[1] = b'a';
        ih[2] = b' ';
        ih[3] = 0xff;
        let mut a =
            Announce::new(InfoHashV1::from_bytes(ih), PeerId::from_bytes(*b"-PW0001-abcdefghij~."), 6881);
        a.left = 5;
        a.event = Event::Started;
        a.num_want = Some(50);
        a.key = Some(0xbeef);
        a.tracker_id = Some(b"t 1".to_vec());
        let u = TrackerUrl::parse("http://t.invalid/announce?passkey=x").unwrap();
        assert_eq!(
            u.announce_target(&a),
            "/announce?passkey=x&info_hash=%12a%20%FF%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
             &peer_id=-PW0001-abcdefghij~.&port=6881&uploaded=0&downloaded=0&left=5&compact=1\
             &event=started&numwant=50&key=0000beef&trackerid=t%201"
        );
        let s = TrackerUrl::parse("http://t.invalid/announce").unwrap().to_scrape().unwrap();
        assert_eq!(
            s.scrape_target(&[InfoHashV1::from_bytes([0xaa; 20]), InfoHashV1::from_bytes([b'A'; 20])]),
            format!("/scrape?info_hash={}&info_hash={}", "%AA".repeat(20), "A".repeat(20))
        );
    }
}
