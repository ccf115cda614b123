//! Golden byte vectors (tests/data/*.hex, written from the BEPs), each decoded whole, one byte
//! at a time and split at every point, and re-encoded to the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use piecework_wire::{
    BlockRef, Decoder, ExtendedHandshake, Feature, Handshake, HashRequest, Hashes, InfoHashV1, Message,
    MetadataMessage, PeerId, PexFlags, PexMessage, Piece, PieceIndex, Reserved,
};

fn load(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digits: Vec<u8> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    assert_eq!(digits.len() % 2, 0, "{name}: odd number of hex digits");
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

fn block(piece: u32, offset: u32, length: u32) -> BlockRef {
    BlockRef { piece: PieceIndex::new(piece), offset, length }
}

fn ext(id: u8, payload: &'static [u8]) -> Message {
    Message::Extended(piecework_wire::Extended { id, payload: Bytes::from_static(payload) })
}

fn decoder_for(name: &str) -> Decoder {
    let mut d = Decoder::new();
    if name == "bitfield" {
        d.set_piece_count(Some(10));
    }
    d
}

fn cases() -> Vec<(&'static str, Message)> {
    let req = HashRequest { pieces_root: [0x11; 32], base_layer: 0, index: 4, length: 4, proof_layers: 2 };
    let mut hashes = vec![0x22u8; 32];
    hashes.extend_from_slice(&[0x33; 32]);
    vec![
        ("keep_alive", Message::KeepAlive),
        ("choke", Message::Choke),
        ("unchoke", Message::Unchoke),
        ("interested", Message::Interested),
        ("not_interested", Message::NotInterested),
        ("have", Message::Have(PieceIndex::new(42))),
        ("bitfield", Message::Bitfield(Bytes::from_static(&[0xff, 0xc0]))),
        ("request", Message::Request(block(1, 16384, 16384))),
        (
            "piece",
            Message::Piece(Piece {
                index: PieceIndex::new(1),
                begin: 16384,
                data: Bytes::from_static(b"hello"),
            }),
        ),
        ("cancel", Message::Cancel(block(1, 16384, 16384))),
        ("port", Message::Port(6881)),
        ("suggest", Message::Suggest(PieceIndex::new(7))),
        ("have_all", Message::HaveAll),
        ("have_none", Message::HaveNone),
        ("reject", Message::Reject(block(1, 16384, 16384))),
        ("allowed_fast", Message::AllowedFast(PieceIndex::new(1059))),
        ("ut_metadata_request", ext(3, b"d8:msg_typei0e5:piecei0ee")),
        ("ut_metadata_data", ext(3, b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:xe")),
        ("ut_metadata_reject", ext(3, b"d8:msg_typei2e5:piecei1ee")),
        ("hash_request", Message::HashRequest(req)),
        (
            "hashes",
            Message::Hashes(Hashes {
                request: HashRequest { length: 2, proof_layers: 0, ..req },
                hashes: Bytes::from(hashes),
            }),
        ),
        ("hash_reject", Message::HashReject(req)),
    ]
}

/// Decodes `wire` fed in the given chunks, with `decode` and with `drain`; every message must
/// come out exactly once, at the end of its last byte, and both must agree.
fn decode_chunks(name: &str, wire: &[u8], cuts: &[usize]) -> Vec<Message> {
    let mut outs = [Vec::new(), Vec::new()];
    for (drain, out) in outs.iter_mut().enumerate() {
        let mut d = decoder_for(name);
        let mut buf = BytesMut::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
            buf.extend_from_slice(&wire[at..cut]);
            at = cut;
            if drain == 1 {
                out.extend(d.drain(&mut buf).map(|m| m.unwrap_or_else(|e| panic!("{name}: {e:?}"))));
            } else {
                while let Some(m) = d.decode(&mut buf).unwrap_or_else(|e| panic!("{name}: {e:?}")) {
                    out.push(m);
                }
            }
        }
        assert!(buf.is_empty(), "{name}: {} bytes left over (drain: {drain})", buf.len());
    }
    let [decoded, drained] = outs;
    assert_eq!(decoded, drained, "{name}: decode and drain differ");
    decoded
}

fn check_message(name: &str, expected: &Message) {
    let wire = load(name);
    // Whole.
    assert_eq!(decode_chunks(name, &wire, &[]), std::slice::from_ref(expected), "{name}: whole");
    // One byte at a time.
    let cuts: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(decode_chunks(name, &wire, &cuts), std::slice::from_ref(expected), "{name}: byte by byte");
    // Split at every point.
    for split in 0..=wire.len() {
        let mut d = decoder_for(name);
        let mut buf = BytesMut::from(&wire[..split]);
        if split < wire.len() {
            assert_eq!(d.decode(&mut buf).unwrap(), None, "{name}: complete after {split} bytes?");
            assert_eq!(buf.len(), split, "{name}: consumed a partial message");
        }
        buf.extend_from_slice(&wire[split..]);
        assert_eq!(d.decode(&mut buf).unwrap().as_ref(), Some(expected), "{name}: split at {split}");
        assert!(buf.is_empty());
    }
    // Re-encode.
    let mut out = Vec::new();
    expected.encode(&mut out).unwrap();
    assert_eq!(out, wire, "{name}: encode");
    assert_eq!(expected.encoded_len(), wire.len(), "{name}: encoded_len");
}

#[test]
fn every_message_decodes_whole_byte_by_byte_and_at_every_split() {
    for (name, msg) in cases() {
        check_message(name, &msg);
    }
}

#[test]
fn all_vectors_back_to_back_in_one_stream() {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (name, msg) in cases() {
        if name == "bitfield" {
            continue; // needs a piece count; covered on its own
        }
        wire.extend(load(name));
        expected.push(msg);
    }
    for step in [1usize, 2, 3, 7, 13, 64, 1000] {
        let cuts: Vec<usize> = (step..wire.len()).step_by(step).collect();
        assert_eq!(decode_chunks("stream", &wire, &cuts), expected, "chunks of {step}");
    }
}

#[test]
fn handshake_vector() {
    let wire = load("handshake");
    let expected = Handshake {
        reserved: Reserved::NONE
            .with(Feature::Extension)
            .with(Feature::Dht)
            .with(Feature::Fast)
            .with(Feature::V2Upgrade),
        info_hash: InfoHashV1::from_bytes([0xaa; 20]),
        peer_id: PeerId::from_bytes(*b"-PW0100-0123456789ab"),
    };
    for split in 0..=wire.len() {
        let mut buf = BytesMut::from(&wire[..split]);
        if split < wire.len() {
            assert_eq!(Handshake::decode(&mut buf).unwrap(), None);
        }
        buf.extend_from_slice(&wire[split..]);
        assert_eq!(Handshake::decode(&mut buf).unwrap(), Some(expected));
        assert!(buf.is_empty());
    }
    let mut one = BytesMut::new();
    let mut got = None;
    for b in &wire {
        one.extend_from_slice(&[*b]);
        if let Some(h) = Handshake::decode(&mut one).unwrap() {
            assert!(got.is_none());
            got = Some(h);
        }
    }
    assert_eq!(got, Some(expected));
    assert_eq!(expected.to_bytes().as_slice(), wire.as_slice());
}

fn ext_payload(name: &str) -> (u8, Bytes) {
    let mut buf = BytesMut::from(load(name).as_slice());
    match Decoder::new().decode(&mut buf).unwrap() {
        Some(Message::Extended(e)) => (e.id, e.payload),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn extension_handshake_vector() {
    let (id, payload) = ext_payload("ext_handshake");
    assert_eq!(id, 0);
    let hs = ExtendedHandshake::decode(&payload).unwrap();
    assert_eq!(hs.extensions, [(Bytes::from_static(b"ut_metadata"), 3), (Bytes::from_static(b"ut_pex"), 1)]);
    assert_eq!(hs.port, Some(6881));
    assert_eq!(hs.client_str(), Some("piecework 0.1"));
    assert_eq!(hs.reqq, Some(250));
    assert_eq!(hs.metadata_size, Some(31235));
    assert_eq!(hs.upload_only, Some(1));
    assert_eq!(hs.your_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(hs.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(hs.ipv6, Some(Ipv6Addr::LOCALHOST));
    assert_eq!(hs.unknown, [(Bytes::from_static(b"complete_ago"), Bytes::from_static(b"i-1e"))]);
    let mut back = Vec::new();
    hs.encode(&mut back).unwrap();
    assert_eq!(back, &payload[..]);
    check_message("ext_handshake", &hs.to_message().unwrap());
}

#[test]
fn ut_metadata_vectors() {
    let cases = [
        ("ut_metadata_request", MetadataMessage::Request { piece: 0 }),
        (
            "ut_metadata_data",
            MetadataMessage::Data { piece: 0, total_size: 5, data: Bytes::from_static(b"d1:xe") },
        ),
        ("ut_metadata_reject", MetadataMessage::Reject { piece: 1 }),
    ];
    for (name, expected) in cases {
        let (id, payload) = ext_payload(name);
        assert_eq!(id, 3);
        let m = MetadataMessage::decode(&payload).unwrap();
        assert_eq!(m, expected, "{name}");
        let mut back = Vec::new();
        m.encode(&mut back).unwrap();
        assert_eq!(back, &payload[..], "{name}");
        if let MetadataMessage::Data { data, .. } = &m {
            // The piece shares the payload buffer: no copy.
            assert_eq!(data.as_ptr(), payload[payload.len() - 5..].as_ptr());
        }
    }
}

#[test]
fn ut_pex_vector() {
    let (id, payload) = ext_payload("ut_pex");
    assert_eq!(id, 1);
    let pex = PexMessage::decode(&payload).unwrap();
    assert_eq!(
        pex.added,
        [
            (SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 6881), PexFlags(PexFlags::REACHABLE)),
            (SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 6882), PexFlags(PexFlags::SEED)),
        ]
    );
    assert_eq!(pex.added6, [(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 6883, 0, 0), PexFlags(PexFlags::UTP))]);
    assert_eq!(pex.dropped, [SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080)]);
    assert_eq!(pex.dropped6, [SocketAddrV6::new("::2".parse().unwrap(), 8081, 0, 0)]);
    let mut back = Vec::new();
    pex.encode(&mut back).unwrap();
    assert_eq!(back, &payload[..]);
    check_message("ut_pex", &pex.to_message(1).unwrap());
}
