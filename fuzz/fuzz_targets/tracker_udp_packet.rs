//! UDP tracker packets (BEP 15): decoding never panics, and whatever decodes re-encodes to bytes
//! that decode to the same packet (re-encoding is stable). The session state machine swallows any
//! datagram without panicking.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::InfoHashV1;
use piecework_tracker::udp::{Family, Request, Response};
use piecework_tracker::{Announce, Operation, PeerId, UdpSession, UdpSettings};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        let mut out = Vec::new();
        req.encode(&mut out);
        assert!(out.len() <= data.len());
        assert_eq!(Request::decode(&out).expect("re-encoded request decodes"), req);
    }
    for family in [Family::V4, Family::V6] {
        if let Ok(resp) = Response::decode(data, family, 200, 200) {
            let mut out = Vec::new();
            resp.encode(&mut out);
            assert!(out.len() <= data.len());
            assert_eq!(Response::decode(&out, family, 200, 200).expect("re-encoded response decodes"), resp);
        }
    }

    // Feed the datagram to a session waiting for a connect answer, then (if it moved on) again.
    let t0 = Instant::now();
    let mut s = UdpSession::new(UdpSettings::new(), Family::V4, u64::from(data.len() as u32));
    let a = Announce::new(InfoHashV1::from_bytes([1; 20]), PeerId::from_bytes([2; 20]), 1);
    if s.start(t0, Operation::Announce(a)).is_ok() {
        let _ = s.poll_transmit();
        let _ = s.handle_datagram(t0, data);
        let _ = s.poll_transmit();
        let _ = s.handle_datagram(t0, data);
        let _ = s.poll_event();
        s.handle_timeout(t0 + Duration::from_secs(4000));
    }
});
