//! Responses captured from opentracker (Debian's build, on loopback) as test vectors in
//! `tests/data/`. HTTP vectors are also fed at every split point.

use std::net::SocketAddr;
use std::path::PathBuf;

use piecework_metainfo::InfoHashV1;
use piecework_tracker::udp::{Family, Response};
use piecework_tracker::{Error, Limits, ScrapeStats, http, http1};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a captured HTTP response, checking that no prefix of it is taken for a whole one.
fn http_body(name: &str) -> Result<Vec<u8>, Error> {
    let raw = data(name);
    for i in 0..raw.len() {
        assert!(matches!(http1::parse_response(&raw[..i], false, 1 << 20), Ok(None)), "{name}: prefix {i}");
    }
    let resp = http1::parse_response(&raw, true, 1 << 20)?.expect("complete");
    http::success_body(&resp, &Limits::new()).map(<[u8]>::to_vec)
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().expect("addr")).collect()
}

#[test]
fn opentracker_http_announce_compact() {
    let body = http_body("opentracker_http_announce_compact.http").expect("200");
    let r = http::parse_announce_response(&body, &Limits::new()).expect("announce");
    assert_eq!((r.interval, r.min_interval), (1976, Some(988)));
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(r.peers, addrs(&["127.0.0.1:6001", "127.0.0.1:6002"]));
}

#[test]
fn opentracker_http_scrape() {
    let body = http_body("opentracker_http_scrape.http").expect("200");
    let r = http::parse_scrape_response(&body, &Limits::new()).expect("scrape");
    assert_eq!(
        r.files,
        vec![(InfoHashV1::from_bytes([0x11; 20]), ScrapeStats { complete: 1, downloaded: 0, incomplete: 1 })]
    );
}

#[test]
fn opentracker_http_not_authorized() {
    let body = http_body("opentracker_http_not_authorized.http").expect("200");
    match http::parse_announce_response(&body, &Limits::new()) {
        Err(Error::TrackerFailure { reason }) => {
            assert_eq!(reason, "Requested download is not authorized for use with this tracker.")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn opentracker_http_400_html() {
    // opentracker answers a malformed request with HTML, not bencode.
    assert!(matches!(http_body("opentracker_http_400_html.http"), Err(Error::HttpStatus { status: 400 })));
}

fn udp(name: &str) -> Response {
    let raw = data(name);
    for i in 0..8.min(raw.len()) {
        assert!(Response::decode(&raw[..i], Family::V4, 100, 100).is_err(), "{name}: prefix {i}");
    }
    let r = Response::decode(&raw, Family::V4, 100, 100).expect("decodes");
    let mut again = Vec::new();
    r.encode(&mut again);
    assert_eq!(again, raw, "{name}: re-encodes byte for byte");
    r
}

#[test]
fn opentracker_udp_packets() {
    assert_eq!(
        udp("opentracker_udp_connect.bin"),
        Response::Connect { transaction_id: 0x0102_0304, connection_id: 0xf170_19b1_6beb_0bf9 }
    );
    assert_eq!(
        udp("opentracker_udp_announce.bin"),
        Response::Announce {
            transaction_id: 0x0506_0708,
            interval: 1919,
            leechers: 2,
            seeders: 1,
            peers: addrs(&["127.0.0.1:6001", "127.0.0.1:6004", "127.0.0.1:6002"]),
        }
    );
    assert_eq!(
        udp("opentracker_udp_scrape.bin"),
        Response::Scrape {
            transaction_id: 0x0a0b_0c0d,
            stats: vec![ScrapeStats { complete: 1, downloaded: 0, incomplete: 2 }]
        }
    );
}

/// Regression: opentracker NUL-terminates error messages; the NUL stays in the packet but not in
/// the reason a session reports (checked in `udp_session`'s tests).
#[test]
fn opentracker_udp_error_has_trailing_nul() {
    assert_eq!(
        udp("opentracker_udp_bad_connection_id.bin"),
        Response::Error { transaction_id: 0x0e0f_1011, message: b"Connection ID missmatch.\0".to_vec() }
    );
}
