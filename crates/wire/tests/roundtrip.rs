//! Property tests: `decode(encode(m)) == m` for every message kind, in any split, and
//! arbitrary bytes never panic and never consume more than they were given.

use bytes::{Bytes, BytesMut};
use piecework_wire::{BlockRef, Decoder, Extended, HashRequest, Hashes, Limits, Message, Piece, PieceIndex};
use proptest::prelude::*;

fn block() -> impl Strategy<Value = BlockRef> {
    (any::<u32>(), any::<u32>(), 0u32..=16384).prop_map(|(p, o, l)| BlockRef {
        piece: PieceIndex::new(p),
        offset: o,
        length: l,
    })
}

fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn hash_request() -> impl Strategy<Value = HashRequest> {
    (any::<[u8; 32]>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(r, b, i, l, p)| {
        HashRequest { pieces_root: r, base_layer: b, index: i, length: l, proof_layers: p }
    })
}

fn message() -> impl Strategy<Value = Message> {
    let index = any::<u32>().prop_map(PieceIndex::new);
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        index.clone().prop_map(Message::Have),
        index.clone().prop_map(Message::Suggest),
        index.clone().prop_map(Message::AllowedFast),
        payload(300).prop_map(Message::Bitfield),
        block().prop_map(Message::Request),
        block().prop_map(Message::Cancel),
        block().prop_map(Message::Reject),
        (index, any::<u32>(), payload(16385)).prop_map(|(index, begin, data)| Message::Piece(Piece {
            index,
            begin,
            data
        })),
        any::<u16>().prop_map(Message::Port),
        (any::<u8>(), payload(600)).prop_map(|(id, payload)| Message::Extended(Extended { id, payload })),
        hash_request().prop_map(Message::HashRequest),
        hash_request().prop_map(Message::HashReject),
        (hash_request(), 0usize..40).prop_map(|(request, n)| Message::Hashes(Hashes {
            request,
            hashes: Bytes::from(vec![0x5a; 32 * n]),
        })),
    ]
}

proptest! {
    #[test]
    fn decode_inverts_encode(msgs in proptest::collection::vec(message(), 1..8), cut in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        for m in &msgs {
            m.encode(&mut wire).unwrap();
        }
        let cut = cut.index(wire.len() + 1);
        let mut d = Decoder::new();
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(m) = d.decode(&mut buf).unwrap() {
            got.push(m);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(m) = d.decode(&mut buf).unwrap() {
            got.push(m);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_over_consume(data in proptest::collection::vec(any::<u8>(), 0..2000), unknown in any::<bool>()) {
        let mut d = Decoder::with_limits(Limits::new().accept_unknown(unknown));
        let mut buf = BytesMut::from(&data[..]);
        let mut consumed = 0;
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(m)) => {
                    let used = before - buf.len();
                    prop_assert_eq!(used, m.encoded_len());
                    let mut re = Vec::new();
                    m.encode(&mut re).unwrap();
                    prop_assert_eq!(&re[..], &data[consumed..consumed + used]);
                    consumed += used;
                }
                Ok(None) | Err(_) => {
                    prop_assert_eq!(buf.len(), before, "nothing consumed without a message");
                    break;
                }
            }
        }
        prop_assert!(consumed <= data.len());
    }

    #[test]
    fn drain_agrees_with_decode(data in proptest::collection::vec(any::<u8>(), 0..2000), unknown in any::<bool>()) {
        let limits = Limits::new().accept_unknown(unknown);
        let mut one = BytesMut::from(&data[..]);
        let mut d = Decoder::with_limits(limits);
        let mut expected = Vec::new();
        loop {
            match d.decode(&mut one) {
                Ok(Some(m)) => expected.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    expected.push(Err(e));
                    break;
                }
            }
        }
        let mut all = BytesMut::from(&data[..]);
        let got: Vec<_> = Decoder::with_limits(limits).drain(&mut all).collect();
        prop_assert_eq!(format!("{got:?}"), format!("{expected:?}"));
        prop_assert_eq!(all.len(), one.len(), "both leave the same bytes");
    }
}
