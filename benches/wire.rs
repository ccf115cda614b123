//! Peer-wire decode and encode: piecework-wire against rqbit's codec (`librqbit-peer-protocol`)
//! in the same groups, so the ratios come from one run.
//!
//! Streams: small messages (`have` + `request`), 16 KiB `piece` messages, and the mix the
//! issue names (a 100,000-piece `bitfield`, then `have`, `request`, 16 KiB `piece` and an
//! extension handshake, repeated). rqbit decodes from a borrowed slice; piecework decodes from
//! the `BytesMut` a socket read would fill (built outside the timed part with `iter_batched`)
//! and splits payloads off it as `Bytes`: one message per `decode` call (`piecework`), or every
//! whole message in the buffer from one `drain` iterator (`piecework_drain`, which trims the
//! buffer once instead of after every small message). rqbit parses the extension handshake
//! while decoding; piecework keeps the payload raw, so `piecework+parse` also parses every
//! extension handshake to compare like with like. Every loop hands the decoded message to
//! `black_box` by reference where the decoder left it (moving an 80-byte enum out of its
//! `Result` first costs a stalled copy that would measure the bench, not the codec).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use librqbit_peer_protocol::extended::PeerExtendedMessageIds;
use librqbit_peer_protocol::{Message as RqMessage, Request as RqRequest};
use piecework_wire::{BlockRef, Decoder, Extended, ExtendedHandshake, Limits, Message, Piece, PieceIndex};

const BLOCK: usize = 16 * 1024;
const BITFIELD_PIECES: u32 = 100_000;

fn have(i: u32) -> Message {
    Message::Have(PieceIndex::new(i))
}

fn request(i: u32) -> Message {
    Message::Request(BlockRef { piece: PieceIndex::new(i), offset: 0, length: BLOCK as u32 })
}

fn piece(i: u32, data: &Bytes) -> Message {
    Message::Piece(Piece { index: PieceIndex::new(i), begin: 0, data: data.clone() })
}

fn ext_handshake() -> Message {
    let payload: &'static [u8] = b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e1:pi6881e4:reqqi250e1:v15:piecework 0.1.06:yourip4:\x7f\x00\x00\x01e";
    Message::Extended(Extended { id: 0, payload: Bytes::from_static(payload) })
}

fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut v = Vec::new();
    for m in msgs {
        m.encode(&mut v).expect("encodable");
    }
    v
}

struct Stream {
    name: &'static str,
    wire: Vec<u8>,
    messages: u64,
}

fn streams() -> Vec<Stream> {
    let block = Bytes::from(vec![0xa5u8; BLOCK]);
    let small: Vec<Message> = (0..10_000).flat_map(|i| [have(i), request(i)]).collect();
    let pieces: Vec<Message> = (0..256).map(|i| piece(i, &block)).collect();
    let mut mixed = vec![Message::Bitfield(Bytes::from(vec![0xffu8; BITFIELD_PIECES.div_ceil(8) as usize]))];
    for i in 0..64 {
        mixed.extend([have(i), request(i), piece(i, &block), ext_handshake()]);
    }
    // The bitfield's spare bits: 100,000 is a multiple of 8, so 0xff everywhere is valid.
    [("small", small), ("piece_16k", pieces), ("mixed", mixed)]
        .into_iter()
        .map(|(name, msgs)| Stream { name, wire: encode_all(&msgs), messages: msgs.len() as u64 })
        .collect()
}

fn piecework_decoder() -> Decoder {
    let mut d = Decoder::with_limits(Limits::new());
    d.set_piece_count(Some(BITFIELD_PIECES));
    d
}

fn decode(c: &mut Criterion) {
    for s in streams() {
        let mut g = c.benchmark_group(format!("wire_decode/{}", s.name));
        if s.name == "small" {
            g.throughput(Throughput::Elements(s.messages));
        } else {
            g.throughput(Throughput::Bytes(s.wire.len() as u64));
        }
        g.bench_function("piecework", |b| {
            b.iter_batched(
                || BytesMut::from(&s.wire[..]),
                |mut buf| {
                    let mut d = piecework_decoder();
                    let mut n = 0u64;
                    loop {
                        let r = d.decode(&mut buf);
                        let Some(m) = r.as_ref().expect("valid stream") else { break };
                        black_box(m);
                        n += 1;
                    }
                    assert_eq!(n, s.messages);
                    buf
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function("piecework_drain", |b| {
            b.iter_batched(
                || BytesMut::from(&s.wire[..]),
                |mut buf| {
                    let mut d = piecework_decoder();
                    let mut n = 0u64;
                    let mut it = d.drain(&mut buf);
                    loop {
                        let r = it.next();
                        let Some(m) = r.as_ref() else { break };
                        black_box(m.as_ref().expect("valid stream"));
                        n += 1;
                    }
                    drop(it);
                    assert_eq!(n, s.messages);
                    buf
                },
                BatchSize::LargeInput,
            )
        });
        if s.name == "mixed" {
            g.bench_function("piecework+parse", |b| {
                b.iter_batched(
                    || BytesMut::from(&s.wire[..]),
                    |mut buf| {
                        let mut d = piecework_decoder();
                        while let Some(m) = d.decode(&mut buf).expect("valid stream") {
                            if let Message::Extended(e) = &m {
                                black_box(ExtendedHandshake::decode(&e.payload).expect("valid handshake"));
                            }
                            black_box(&m);
                        }
                        buf
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.bench_function("rqbit", |b| {
            b.iter(|| {
                let mut at = 0;
                let mut n = 0u64;
                while at < s.wire.len() {
                    let r = RqMessage::deserialize(&s.wire[at..], &[]);
                    let (m, len) = r.as_ref().expect("valid stream");
                    black_box(m);
                    at += len;
                    n += 1;
                }
                assert_eq!(n, s.messages);
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    let n = 10_000u32;
    let mut g = c.benchmark_group("wire_encode/small");
    g.throughput(Throughput::Elements(2 * u64::from(n)));
    g.bench_function("piecework", |b| {
        let mut out = BytesMut::with_capacity(30 * n as usize);
        b.iter(|| {
            out.clear();
            for i in 0..n {
                have(i).encode(&mut out).expect("encodable");
                request(i).encode(&mut out).expect("encodable");
            }
            black_box(&out);
        })
    });
    g.bench_function("rqbit", |b| {
        let mut out = vec![0u8; 30 * n as usize];
        let ids = || PeerExtendedMessageIds::my();
        b.iter(|| {
            let mut at = 0;
            for i in 0..n {
                at += RqMessage::Have(i).serialize(&mut out[at..], &ids).expect("space");
                at += RqMessage::Request(RqRequest::new(i, 0, BLOCK as u32))
                    .serialize(&mut out[at..], &ids)
                    .expect("space");
            }
            black_box(&out[..at]);
        })
    });
    g.finish();

    // Sending a block: piecework writes the 13-byte header and hands the block to a vectored
    // write as it is; rqbit serializes header and block into the send buffer (a copy).
    let block = Bytes::from(vec![0x5au8; BLOCK]);
    let count = 256u32;
    let mut g = c.benchmark_group("wire_encode/piece_16k");
    g.throughput(Throughput::Bytes(u64::from(count) * (BLOCK as u64 + 13)));
    g.bench_function("piecework_vectored", |b| {
        let mut iov: Vec<([u8; 13], Bytes)> = Vec::with_capacity(count as usize);
        b.iter(|| {
            iov.clear();
            for i in 0..count {
                let p = Piece { index: PieceIndex::new(i), begin: 0, data: block.clone() };
                iov.push((p.header().expect("fits"), p.data));
            }
            black_box(&iov);
        })
    });
    g.bench_function("piecework_copy", |b| {
        let mut out = BytesMut::with_capacity(count as usize * (BLOCK + 13));
        b.iter(|| {
            out.clear();
            for i in 0..count {
                piece(i, &block).encode(&mut out).expect("encodable");
            }
            black_box(&out);
        })
    });
    g.bench_function("rqbit", |b| {
        let mut out = vec![0u8; count as usize * (BLOCK + 13)];
        let ids = || PeerExtendedMessageIds::my();
        b.iter(|| {
            let mut at = 0;
            for i in 0..count {
                let p = librqbit_peer_protocol::Piece::from_data(i, 0, &block[..]);
                at += RqMessage::Piece(p).serialize(&mut out[at..], &ids).expect("space");
            }
            black_box(&out[..at]);
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
