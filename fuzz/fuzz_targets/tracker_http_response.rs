//! HTTP tracker responses: the HTTP/1.1 parser and the announce/scrape body parsers never panic,
//! respect their limits, and the incremental parser agrees with itself when fed in two pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_tracker::{Limits, http, http1};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new().max_peers(64).max_scrape_files(64).max_response_bytes(4096);
    if let Ok(r) = http::parse_announce_response(data, &limits) {
        assert!(r.peers.len() <= 64);
    }
    if let Ok(r) = http::parse_scrape_response(data, &limits) {
        assert!(r.files.len() <= 64);
    }

    let whole = http1::parse_response(data, true, 4096);
    if let Ok(Some(resp)) = &whole {
        assert!(resp.body.len() <= 4096);
        assert!(resp.body.len() <= data.len());
        // A complete response is also complete (and the same) without EOF, unless it is framed by
        // the end of the connection.
        if let Ok(Some(again)) = http1::parse_response(data, false, 4096) {
            assert_eq!(again, *resp);
        }
    }
    // A prefix never yields a different complete response than the whole input.
    let cut = data.len() / 2;
    if let Ok(Some(part)) = http1::parse_response(&data[..cut], false, 4096) {
        if let Ok(Some(resp)) = &whole {
            assert_eq!(part.status, resp.status);
        }
    }
});
