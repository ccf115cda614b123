//! A counting global allocator (this test binary only) shows that decoding fixed-size
//! messages allocates nothing, and that payload messages only share the read buffer.

use std::alloc::System;

use bytes::BytesMut;
use piecework_wire::{BlockRef, Decoder, HashRequest, Message, PieceIndex};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn fixed_messages() -> Vec<Message> {
    let b = BlockRef { piece: PieceIndex::new(3), offset: 16384, length: 16384 };
    let r = HashRequest { pieces_root: [7; 32], base_layer: 0, index: 0, length: 8, proof_layers: 3 };
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(PieceIndex::new(9)),
        Message::Request(b),
        Message::Cancel(b),
        Message::Port(6881),
        Message::Suggest(PieceIndex::new(1)),
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(b),
        Message::AllowedFast(PieceIndex::new(2)),
        Message::HashRequest(r),
        Message::HashReject(r),
    ]
}

/// The counters are process-wide and the harness allocates when it starts a test thread, so
/// this binary has exactly one test that runs both checks in turn.
#[test]
fn allocations_while_decoding() {
    zero_allocations_per_non_piece_message(false);
    zero_allocations_per_non_piece_message(true);
    payload_messages_share_the_read_buffer();
}

/// Decodes many fixed-size messages with `decode` (one call per message) or with `drain`.
fn zero_allocations_per_non_piece_message(drain: bool) {
    let msgs = fixed_messages();
    let rounds = 1000;
    let mut wire = BytesMut::new();
    for _ in 0..rounds {
        for m in &msgs {
            m.encode(&mut wire).unwrap();
        }
    }
    let mut d = Decoder::new();
    let mut decoded = 0usize;
    // Compare against the expected value without allocating.
    let mut check = |m: Message| {
        assert!(m.id() == msgs[decoded % msgs.len()].id());
        decoded += 1;
    };
    let region = Region::new(GLOBAL);
    if drain {
        d.drain(&mut wire).for_each(|m| check(m.unwrap()));
    } else {
        while let Some(m) = d.decode(&mut wire).unwrap() {
            check(m);
        }
    }
    let stats = region.change();
    assert_eq!(decoded, rounds * msgs.len(), "drain: {drain}");
    assert!(wire.is_empty());
    assert_eq!(stats.allocations, 0, "drain: {drain} {stats:?}");
    assert_eq!(stats.reallocations, 0, "drain: {drain} {stats:?}");
}

fn payload_messages_share_the_read_buffer() {
    // Extended, bitfield and piece messages split off the read buffer: after the buffer is
    // shared once (one allocation for its reference count), each further one allocates nothing.
    let mut wire = BytesMut::new();
    let n = 500;
    for i in 0..n {
        Message::Extended(piecework_wire::Extended {
            id: 1,
            payload: bytes::Bytes::from_static(b"d1:ai1ee"),
        })
        .encode(&mut wire)
        .unwrap();
        Message::Bitfield(bytes::Bytes::from_static(&[0xff; 40])).encode(&mut wire).unwrap();
        Message::Piece(piecework_wire::Piece {
            index: PieceIndex::new(i),
            begin: 0,
            data: bytes::Bytes::from_static(&[1; 16384]),
        })
        .encode(&mut wire)
        .unwrap();
    }
    let mut d = Decoder::new();
    let mut kept = Vec::with_capacity(3 * n as usize);
    let region = Region::new(GLOBAL);
    while let Some(m) = d.decode(&mut wire).unwrap() {
        kept.push(m);
    }
    let stats = region.change();
    assert_eq!(kept.len(), 3 * n as usize);
    assert!(stats.allocations <= 1, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
