//! HTTP tracker responses: announce ([BEP 3], compact peers [BEP 23], `peers6` [BEP 7]) and
//! scrape ([BEP 48]) bodies, parsed from bencode.
//!
//! Bodies are decoded with [`DecodeOptions::lenient`]: trackers in the wild send unsorted keys and
//! non-canonical integers. Sizes are still capped by [`Limits`].
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
//! [BEP 23]: https://www.bittorrent.org/beps/bep_0023.html
//! [BEP 7]: https://www.bittorrent.org/beps/bep_0007.html
//! [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html

use std::net::{IpAddr, SocketAddr};

use piecework_bencode::{DecodeOptions, DictNode, Document, Kind, Node};
use piecework_metainfo::InfoHashV1;

use crate::announce::push_compact_peers;
use crate::{AnnounceResponse, Error, Limits, ScrapeStats};

/// A parsed scrape response: one entry per torrent the tracker reported, in its order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ScrapeResponse {
    /// The torrents and their counters.
    pub files: Vec<(InfoHashV1, ScrapeStats)>,
}

impl ScrapeResponse {
    /// The counters for `hash`, if the tracker reported it.
    pub fn get(&self, hash: &InfoHashV1) -> Option<ScrapeStats> {
        self.files.iter().find(|(h, _)| h == hash).map(|(_, s)| *s)
    }
}

/// The body of a complete HTTP tracker response, if the status is 2xx.
///
/// For any other status the body is checked for a bencoded `failure reason` (some trackers send
/// one with a 4xx): that is [`Error::TrackerFailure`], anything else [`Error::HttpStatus`].
pub fn success_body<'r>(
    response: &'r crate::http1::Response<'_>,
    limits: &Limits,
) -> Result<&'r [u8], Error> {
    if (200..300).contains(&response.status) {
        return Ok(&response.body);
    }
    match decode_body(&response.body, limits).as_ref().map(root_dict) {
        Ok(Err(e @ Error::TrackerFailure { .. })) => Err(e),
        _ => Err(Error::HttpStatus { status: response.status }),
    }
}

fn decode_body<'a>(body: &'a [u8], limits: &Limits) -> Result<Document<'a>, Error> {
    if body.len() > limits.response_bytes_limit() {
        return Err(Error::TooLarge { limit: limits.response_bytes_limit() });
    }
    DecodeOptions::lenient()
        .max_input_len(limits.response_bytes_limit())
        .decode(body)
        .map_err(Error::MalformedBencode)
}

fn root_dict<'d, 'a>(doc: &'d Document<'a>) -> Result<DictNode<'d, 'a>, Error> {
    let root = doc.root().as_dict().ok_or(Error::MalformedResponse { field: "(root)" })?;
    if let Some(f) = root.get(b"failure reason") {
        let reason = f.as_bytes().ok_or(Error::MalformedResponse { field: "failure reason" })?;
        return Err(Error::TrackerFailure { reason: String::from_utf8_lossy(reason).into_owned() });
    }
    Ok(root)
}

fn opt_u32(d: &DictNode<'_, '_>, key: &'static [u8], field: &'static str) -> Result<Option<u32>, Error> {
    match d.get(key) {
        None => Ok(None),
        Some(n) => {
            n.as_int().and_then(|i| u32::try_from(i).ok()).map(Some).ok_or(Error::MalformedResponse { field })
        }
    }
}

/// Parses an HTTP announce response body ([BEP 3]).
///
/// A `failure reason` becomes [`Error::TrackerFailure`]. `interval` is required; `min interval`,
/// `tracker id`, `warning message`, `complete` and `incomplete` are optional. Peers come from
/// `peers` in either model (compact string, [BEP 23], or a list of `ip`/`port` dictionaries whose
/// `ip` is an address literal; host names are skipped since this crate does no name resolution)
/// and from `peers6` ([BEP 7]). At most [`Limits::max_peers`] are kept. A compact string whose
/// length is not a multiple of the record size has its trailing partial record ignored.
///
/// [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html#trackers
/// [BEP 23]: https://www.bittorrent.org/beps/bep_0023.html
/// [BEP 7]: https://www.bittorrent.org/beps/bep_0007.html
pub fn parse_announce_response(body: &[u8], limits: &Limits) -> Result<AnnounceResponse, Error> {
    let doc = decode_body(body, limits)?;
    let d = root_dict(&doc)?;
    let mut r = AnnounceResponse {
        interval: opt_u32(&d, b"interval", "interval")?
            .ok_or(Error::MalformedResponse { field: "interval" })?,
        min_interval: opt_u32(&d, b"min interval", "min interval")?,
        complete: opt_u32(&d, b"complete", "complete")?,
        incomplete: opt_u32(&d, b"incomplete", "incomplete")?,
        ..AnnounceResponse::default()
    };
    if let Some(t) = d.get(b"tracker id") {
        r.tracker_id = Some(t.as_bytes().ok_or(Error::MalformedResponse { field: "tracker id" })?.to_vec());
    }
    if let Some(w) = d.get(b"warning message") {
        let w = w.as_bytes().ok_or(Error::MalformedResponse { field: "warning message" })?;
        r.warning = Some(String::from_utf8_lossy(w).into_owned());
    }
    let max = limits.peers_limit();
    if let Some(p) = d.get(b"peers") {
        match p.kind() {
            Kind::Bytes => {
                let b = p.as_bytes().unwrap_or_default();
                r.peers_truncated |= push_compact_peers(b, false, max, &mut r.peers);
            }
            Kind::List => r.peers_truncated |= push_dict_peers(p, max, &mut r.peers)?,
            _ => return Err(Error::MalformedResponse { field: "peers" }),
        }
    }
    if let Some(p) = d.get(b"peers6") {
        let b = p.as_bytes().ok_or(Error::MalformedResponse { field: "peers6" })?;
        r.peers_truncated |= push_compact_peers(b, true, max, &mut r.peers);
    }
    Ok(r)
}

fn push_dict_peers(list: Node<'_, '_>, max: usize, out: &mut Vec<SocketAddr>) -> Result<bool, Error> {
    const FIELD: &str = "peers";
    for entry in list.as_list().into_iter().flatten() {
        let e = entry.as_dict().ok_or(Error::MalformedResponse { field: FIELD })?;
        let ip =
            e.get(b"ip").and_then(|n| n.as_str()).ok_or(Error::MalformedResponse { field: "peers.ip" })?;
        let port = e
            .get(b"port")
            .and_then(|n| n.as_int())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or(Error::MalformedResponse { field: "peers.port" })?;
        let Ok(ip) = ip.parse::<IpAddr>() else { continue };
        if out.len() >= max {
            return Ok(true);
        }
        out.push(SocketAddr::new(ip, port));
    }
    Ok(false)
}

/// Parses an HTTP scrape response body ([BEP 48]): a `files` dictionary from 20-byte info-hash
/// to `complete`, `downloaded`, `incomplete`. A missing counter counts as 0; more than
/// [`Limits::max_scrape_files`] entries is [`Error::TooLarge`].
///
/// [BEP 48]: https://www.bittorrent.org/beps/bep_0048.html
pub fn parse_scrape_response(body: &[u8], limits: &Limits) -> Result<ScrapeResponse, Error> {
    let doc = decode_body(body, limits)?;
    let d = root_dict(&doc)?;
    let files = match d.get(b"files") {
        None => return Ok(ScrapeResponse::default()),
        Some(f) => f.as_dict().ok_or(Error::MalformedResponse { field: "files" })?,
    };
    if files.len() > limits.scrape_files_limit() {
        return Err(Error::TooLarge { limit: limits.scrape_files_limit() });
    }
    let mut out = Vec::with_capacity(files.len());
    for (key, v) in files.iter() {
        let hash = InfoHashV1::from_slice(key).ok_or(Error::MalformedResponse { field: "files.(key)" })?;
        let v = v.as_dict().ok_or(Error::MalformedResponse { field: "files.(value)" })?;
        let stats = ScrapeStats {
            complete: opt_u32(&v, b"complete", "files.complete")?.unwrap_or(0),
            downloaded: opt_u32(&v, b"downloaded", "files.downloaded")?.unwrap_or(0),
            incomplete: opt_u32(&v, b"incomplete", "files.incomplete")?.unwrap_or(0),
        };
        out.push((hash, stats));
    }
    Ok(ScrapeResponse { files: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::new()
    }

    #[test]
    fn compact_and_ipv6_peers() {
        let body = b"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali60e5:peers12:\
\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x506:peers618:\
\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe210:tracker id3:abc\
15:warning message4:hmm!e";
        let r = parse_announce_response(body, &lim()).unwrap();
        assert_eq!(r.interval, 1800);
        assert_eq!(r.min_interval, Some(60));
        assert_eq!((r.complete, r.incomplete), (Some(3), Some(1)));
        assert_eq!(r.tracker_id.as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.warning.as_deref(), Some("hmm!"));
        let want: Vec<SocketAddr> =
            ["127.0.0.1:6881", "10.0.0.2:80", "[::1]:6882"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(r.peers, want);
        assert!(!r.peers_truncated);
        // Every split point: a prefix is never accepted as a complete response.
        for i in 0..body.len() {
            assert!(parse_announce_response(&body[..i], &lim()).is_err(), "prefix {i}");
        }
    }

    #[test]
    fn dict_model_peers() {
        let body = b"d8:intervali900e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip3:::14:porti1eed2:ip12:host.invalid4:porti2eeee";
        let r = parse_announce_response(body, &lim()).unwrap();
        assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap(), "[::1]:1".parse().unwrap()]);
        let bad_port = b"d8:intervali9e5:peersld2:ip9:127.0.0.14:porti70000eeee";
        assert!(matches!(
            parse_announce_response(bad_port, &lim()),
            Err(Error::MalformedResponse { field: "peers.port" })
        ));
    }

    #[test]
    fn sloppy_bencode_is_accepted() {
        // Unsorted keys and a leading-zero integer, as some trackers send.
        let body = b"d8:intervali0900e5:peers0:8:completei1ee";
        let r = parse_announce_response(body, &lim()).unwrap();
        assert_eq!((r.interval, r.complete), (900, Some(1)));
    }

    #[test]
    fn failure_reason_and_bad_shapes() {
        assert!(matches!(
            parse_announce_response(b"d14:failure reason14:not authorizede", &lim()),
            Err(Error::TrackerFailure { reason }) if reason == "not authorized"
        ));
        assert!(matches!(
            parse_scrape_response(b"d14:failure reason1:xe", &lim()),
            Err(Error::TrackerFailure { .. })
        ));
        for (body, field) in [
            (&b"le"[..], "(root)"),
            (b"de", "interval"),
            (b"d8:intervali-1ee", "interval"),
            (b"d8:intervali1e5:peersi1ee", "peers"),
            (b"d8:intervali1e6:peers6i1ee", "peers6"),
            (b"d8:intervali1e10:tracker idi1ee", "tracker id"),
        ] {
            match parse_announce_response(body, &lim()) {
                Err(Error::MalformedResponse { field: f }) => assert_eq!(f, field),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        assert!(matches!(parse_announce_response(b"d8:interval", &lim()), Err(Error::MalformedBencode(_))));
    }

    #[test]
    fn limits_apply() {
        let body = b"d8:intervali1e5:peers18:aaaaaabbbbbbcccccce";
        let r = parse_announce_response(body, &Limits::new().max_peers(2)).unwrap();
        assert_eq!(r.peers.len(), 2);
        assert!(r.peers_truncated);
        assert!(matches!(
            parse_announce_response(body, &Limits::new().max_response_bytes(10)),
            Err(Error::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn scrape_bep48_example() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend_from_slice(&[0xaa; 20]);
        body.extend_from_slice(b"d8:completei5e10:downloadedi50e10:incompletei10ee20:");
        body.extend_from_slice(&[0xbb; 20]);
        body.extend_from_slice(b"d8:completei1eeee");
        let r = parse_scrape_response(&body, &lim()).unwrap();
        let a = InfoHashV1::from_bytes([0xaa; 20]);
        assert_eq!(r.get(&a), Some(ScrapeStats { complete: 5, downloaded: 50, incomplete: 10 }));
        assert_eq!(r.get(&InfoHashV1::from_bytes([0xbb; 20])).map(|s| s.complete), Some(1));
        assert!(matches!(
            parse_scrape_response(&body, &Limits::new().max_scrape_files(1)),
            Err(Error::TooLarge { limit: 1 })
        ));
        assert!(parse_scrape_response(b"de", &lim()).unwrap().files.is_empty());
        assert!(matches!(
            parse_scrape_response(b"d5:filesd3:abcdeee", &lim()),
            Err(Error::MalformedResponse { field: "files.(key)" })
        ));
    }
}
