//! Property tests for the extension payloads: `decode(encode(x)) == x`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::Bytes;
use piecework_wire::{ExtendedHandshake, METADATA_PIECE_LEN, MetadataMessage, PexFlags, PexMessage};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..12).prop_map(Bytes::from)
}

fn handshake() -> impl Strategy<Value = ExtendedHandshake> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ];
    (
        proptest::collection::btree_map(name(), any::<u8>(), 0..5),
        proptest::option::of(any::<u16>()),
        proptest::option::of(name()),
        proptest::option::of(ip),
        proptest::option::of(any::<[u8; 4]>()),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(0u64..(1 << 40)),
        proptest::option::of(any::<i64>()),
        proptest::collection::btree_map("[xz][a-z]{0,6}", any::<i64>(), 0..3),
    )
        .prop_map(|(m, p, v, yourip, ipv4, ipv6, reqq, size, upload_only, unknown)| {
            let mut hs = ExtendedHandshake::default();
            hs.extensions = m.into_iter().collect();
            hs.port = p;
            hs.client = v;
            hs.your_ip = yourip;
            hs.ipv4 = ipv4.map(Ipv4Addr::from);
            hs.ipv6 = ipv6.map(Ipv6Addr::from);
            hs.reqq = reqq;
            hs.metadata_size = size;
            hs.upload_only = upload_only;
            hs.unknown =
                unknown.into_iter().map(|(k, v)| (Bytes::from(k), Bytes::from(format!("i{v}e")))).collect();
            hs
        })
}

fn pex() -> impl Strategy<Value = PexMessage> {
    let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddrV4::new(a.into(), p));
    let v6 = (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddrV6::new(a.into(), p, 0, 0));
    (
        proptest::collection::vec((v4.clone(), any::<u8>().prop_map(PexFlags)), 0..20),
        proptest::collection::vec((v6.clone(), any::<u8>().prop_map(PexFlags)), 0..20),
        proptest::collection::vec(v4, 0..20),
        proptest::collection::vec(v6, 0..20),
    )
        .prop_map(|(added, added6, dropped, dropped6)| {
            let mut p = PexMessage::default();
            p.added = added;
            p.added6 = added6;
            p.dropped = dropped;
            p.dropped6 = dropped6;
            p
        })
}

fn metadata() -> impl Strategy<Value = MetadataMessage> {
    prop_oneof![
        any::<u32>().prop_map(|piece| MetadataMessage::Request { piece }),
        any::<u32>().prop_map(|piece| MetadataMessage::Reject { piece }),
        (0u32..8, 1usize..=METADATA_PIECE_LEN, any::<bool>()).prop_map(|(piece, len, last)| {
            // A full piece followed by more, or the (shorter) last piece.
            let start = piece as u64 * METADATA_PIECE_LEN as u64;
            let (total, len) = if last {
                (start + len as u64, len)
            } else {
                (start + 2 * METADATA_PIECE_LEN as u64, METADATA_PIECE_LEN)
            };
            MetadataMessage::Data { piece, total_size: total, data: Bytes::from(vec![0x42; len]) }
        }),
    ]
}

proptest! {
    #[test]
    fn extension_handshake_round_trips(hs in handshake()) {
        let mut out = Vec::new();
        hs.encode(&mut out).unwrap();
        let back = ExtendedHandshake::decode(&Bytes::from(out)).unwrap();
        // `m` comes back in key order.
        let mut expected = hs.clone();
        expected.extensions.sort();
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn pex_round_trips(p in pex()) {
        let mut out = Vec::new();
        p.encode(&mut out).unwrap();
        prop_assert_eq!(PexMessage::decode(&Bytes::from(out)).unwrap(), p);
    }

    #[test]
    fn metadata_round_trips(m in metadata()) {
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        prop_assert_eq!(MetadataMessage::decode(&Bytes::from(out)).unwrap(), m);
    }
}
