//! Engine tests on loopback sockets: our seeder to our leecher.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use piecework_metainfo::{InputFile, Magnet, Metainfo, TorrentBuilder, Version};
use piecework_swarm::{AddTorrent, Session, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(60);

fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Two files in a folder, so pieces straddle files in v1 and align per file in v2.
fn make_torrent(dir: &Path, version: Version, piece_len: u64) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let files = vec![("a.bin".to_owned(), payload(700_001, 1)), ("b.bin".to_owned(), payload(333_333, 2))];
    let root = dir.join("seed/share");
    std::fs::create_dir_all(&root).unwrap();
    let mut inputs = Vec::new();
    for (name, data) in &files {
        std::fs::write(root.join(name), data).unwrap();
        inputs.push(InputFile::from_reader(
            vec![name.clone()],
            data.len() as u64,
            std::io::Cursor::new(data.clone()),
        ));
    }
    let t = TorrentBuilder::new(version)
        .piece_length(Some(piece_len))
        .build_files("share", inputs, &mut |_, _| {})
        .unwrap();
    (t, files)
}

fn check_files(out: &Path, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        let got = std::fs::read(out.join("share").join(name)).unwrap();
        assert!(got == *data, "{name} differs");
    }
}

async fn transfer(version: Version, magnet: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), version, 64 * 1024);
    let seeder = Session::new(Settings::default()).await.unwrap();
    let st = seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await.unwrap();
    assert!(st.stats().complete, "the seeder found its data");
    let addr = seeder.listen_addr().unwrap();
    let leecher = Session::new(Settings::default()).await.unwrap();
    let add = if magnet {
        let m = Magnet::from_metainfo(&Metainfo::parse(&torrent).unwrap());
        AddTorrent::magnet(Magnet::parse(&m.to_string()).unwrap(), dir.path().join("out"))
    } else {
        AddTorrent::torrent(torrent, dir.path().join("out"))
    };
    let t = leecher.add_torrent(add.peer(addr)).await.unwrap();
    tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("transfer finished in time").unwrap();
    let s = t.stats();
    assert!(s.complete && s.has_metadata);
    assert_eq!(s.have_bytes, 1_033_334);
    assert_eq!(s.hash_failures, 0);
    // The seeder counts a block as uploaded once its write completes, which can be a moment
    // after the leecher has verified the last piece: wait for it, bounded.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while st.stats().uploaded < 1_033_334 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(st.stats().uploaded >= 1_033_334, "seeder counted {} bytes uploaded", st.stats().uploaded);
    leecher.shutdown().await;
    seeder.shutdown().await;
    check_files(&dir.path().join("out"), &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_seeder_to_leecher() {
    transfer(Version::V1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_seeder_to_leecher() {
    transfer(Version::V2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_seeder_to_leecher() {
    transfer(Version::Hybrid, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_v1_metadata_from_peer() {
    transfer(Version::V1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_hybrid_metadata_from_peer() {
    transfer(Version::Hybrid, true).await;
}

/// Two leechers and a seeder: the leechers also trade with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_swarm() {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), Version::V1, 16 * 1024);
    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await.unwrap();
    let a = Session::new(Settings::default()).await.unwrap();
    let b = Session::new(Settings::default()).await.unwrap();
    let seed_addr = seeder.listen_addr().unwrap();
    let ta = a
        .add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("a")).peer(seed_addr))
        .await
        .unwrap();
    let tb = b
        .add_torrent(
            AddTorrent::torrent(torrent, dir.path().join("b")).peer(seed_addr).peer(a.listen_addr().unwrap()),
        )
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, async {
        ta.wait_complete().await.unwrap();
        tb.wait_complete().await.unwrap();
    })
    .await
    .expect("both finished in time");
    assert!(tb.stats().peers_max >= 2, "b talked to the seeder and to a");
    for s in [&a, &b, &seeder] {
        s.shutdown().await;
    }
    check_files(&dir.path().join("a"), &files);
    check_files(&dir.path().join("b"), &files);
}

/// A peer that claims every piece and answers every request with garbage is banned, and the
/// download completes from the honest seeder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupting_peer_is_banned() {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), Version::V1, 64 * 1024);
    let meta = Metainfo::parse(&torrent).unwrap();
    let info_hash = *meta.info_hashes().v1().unwrap().as_bytes();
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let evil_task = tokio::spawn(corrupt_peer(evil, info_hash));

    // The leecher starts with only the evil peer, so it must download bad data first.
    let leecher = Session::new(Settings::default()).await.unwrap();
    let t = leecher
        .add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("out")).peer(evil_addr))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, async {
        while t.stats().banned == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the corrupting peer was banned");
    assert!(t.stats().hash_failures >= 1);

    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent, dir.path().join("seed"))).await.unwrap();
    t.add_peer(seeder.listen_addr().unwrap());
    tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("finished in time").unwrap();
    let connections = evil_task.await.unwrap();
    assert_eq!(connections, 1, "a banned peer is not dialled again");
    leecher.shutdown().await;
    seeder.shutdown().await;
    check_files(&dir.path().join("out"), &files);
}

/// Speaks just enough of the protocol to send wrong blocks; returns how many connections it
/// accepted before the listener went quiet for two seconds.
async fn corrupt_peer(listener: tokio::net::TcpListener, info_hash: [u8; 20]) -> usize {
    let mut accepted = 0;
    while let Ok(Ok((mut s, _))) = tokio::time::timeout(Duration::from_secs(2), listener.accept()).await {
        accepted += 1;
        let mut hs = [0u8; 68];
        if s.read_exact(&mut hs).await.is_err() {
            continue;
        }
        let mut out = BytesMut::new();
        out.put_slice(b"\x13BitTorrent protocol");
        out.put_slice(&[0; 8]);
        out.put_slice(&info_hash);
        out.put_slice(b"-XX0000-evilevilevil");
        // Unchoke and a full bitfield of 16 pieces (1,033,334 bytes / 64 KiB).
        out.put_u32(1 + 2);
        out.put_u8(5);
        out.put_slice(&[0xff, 0xff]);
        out.put_u32(1);
        out.put_u8(1);
        let _ = s.write_all(&out).await;
        let mut buf = BytesMut::new();
        loop {
            if buf.len() >= 4 {
                let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if buf.len() >= 4 + len {
                    let msg = buf.split_to(4 + len);
                    if len == 13 && msg[4] == 6 {
                        let index = &msg[5..9];
                        let begin = &msg[9..13];
                        let length = u32::from_be_bytes(msg[13..17].try_into().unwrap());
                        let mut reply = BytesMut::new();
                        reply.put_u32(9 + length);
                        reply.put_u8(7);
                        reply.put_slice(index);
                        reply.put_slice(begin);
                        reply.put_bytes(0xee, length as usize);
                        if s.write_all(&reply).await.is_err() {
                            break;
                        }
                    }
                    continue;
                }
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    accepted
}

/// A .torrent without `piece layers`: the leecher asks a peer that answers every hash request
/// with hashes that do not prove to the root. The peer is dropped and, after repeated offences,
/// banned; the layers then come from an honest seeder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_torrent_without_layers_bans_a_peer_with_bad_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), Version::V2, 64 * 1024);
    let meta = Metainfo::parse(&torrent).unwrap();
    let mut bare = b"d4:info".to_vec();
    bare.extend_from_slice(meta.info_bytes());
    bare.push(b'e');
    assert!(Metainfo::parse(&bare).unwrap().piece_layers().is_empty());
    let info_hash = *meta.info_hashes().v2().unwrap().truncated_id().as_bytes();
    let liar = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = liar.local_addr().unwrap();
    let liar_task = tokio::spawn(lying_hashes_peer(liar, info_hash));

    let leecher = Session::new(Settings::default()).await.unwrap();
    let t =
        leecher.add_torrent(AddTorrent::torrent(bare, dir.path().join("out")).peer(liar_addr)).await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        while t.stats().banned == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the lying peer was banned");
    assert!(!t.stats().has_metadata, "no storage without verified layers");

    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent, dir.path().join("seed"))).await.unwrap();
    t.add_peer(seeder.listen_addr().unwrap());
    tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("finished in time").unwrap();
    assert_eq!(t.stats().hash_failures, 0);
    let connections = liar_task.await.unwrap();
    assert_eq!(connections, Settings::default().ban_strikes as usize, "one connection per strike");
    leecher.shutdown().await;
    seeder.shutdown().await;
    check_files(&dir.path().join("out"), &files);
}

/// A hybrid torrent fetched with a v2-only (btmh) magnet verifies by SHA-1, and still fetches
/// the piece layers so that v2 peers can ask it for hashes; bad requests and requests on a v1
/// connection are rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_leecher_fetches_layers_and_answers_hash_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), Version::Hybrid, 64 * 1024);
    let meta = Metainfo::parse(&torrent).unwrap();
    let hashes = meta.info_hashes();
    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await.unwrap();
    let leecher = Session::new(Settings::default()).await.unwrap();
    let btmh = Magnet::new(piecework_metainfo::InfoHashes::from_parts(None, hashes.v2()).unwrap());
    let t = leecher
        .add_torrent(AddTorrent::magnet(btmh, dir.path().join("out")).peer(seeder.listen_addr().unwrap()))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("finished in time").unwrap();
    check_files(&dir.path().join("out"), &files);

    // a.bin: 700,001 bytes, 11 pieces of 64 KiB (4 blocks: piece layer 2), 64 leaves (root at 6).
    let a = meta.files().iter().find(|f| f.length() == 700_001).unwrap();
    let root = *a.pieces_root().unwrap();
    let layer = meta.piece_layer(&root).unwrap().to_vec();
    let v2 = *hashes.v2().unwrap().truncated_id().as_bytes();
    let addr = leecher.listen_addr().unwrap();
    let ask = |index: u32, length: u32, proof: u32| {
        let mut r = Vec::with_capacity(48);
        r.extend_from_slice(&root);
        for x in [2u32, index, length, proof] {
            r.extend_from_slice(&x.to_be_bytes());
        }
        r
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let answer = loop {
        let (id, payload) = hash_request(addr, v2, &ask(0, 16, 3)).await;
        if id == 22 {
            break payload;
        }
        assert_eq!(id, 23);
        assert!(tokio::time::Instant::now() < deadline, "the leecher never got the layers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(&answer[..48], &ask(0, 16, 3)[..]);
    let got = &answer[48..];
    assert_eq!(got.len(), 16 * 32, "the whole padded layer, no uncles needed");
    assert_eq!(&got[..11 * 32], &layer[..]);
    for pad in got[11 * 32..].chunks(32) {
        assert_eq!(pad, piecework_metainfo::merkle::zero_hash(2));
    }
    // Two hashes with the full proof: 2 + (3 + 1 - 1) uncles.
    let (id, payload) = hash_request(addr, v2, &ask(4, 2, 3)).await;
    assert_eq!((id, payload.len()), (22, 48 + 5 * 32));
    // Unaligned, not a power of two, too many proof layers: rejected.
    for bad in [ask(1, 2, 0), ask(0, 3, 0), ask(0, 2, 4)] {
        assert_eq!(hash_request(addr, v2, &bad).await.0, 23);
    }
    // The seeder (which has the layers from the .torrent) answers on a v2 connection and
    // rejects the same request on a v1 one.
    let seed_addr = seeder.listen_addr().unwrap();
    assert_eq!(hash_request(seed_addr, v2, &ask(0, 16, 3)).await.0, 22);
    let v1 = *hashes.v1().unwrap().as_bytes();
    assert_eq!(hash_request(seed_addr, v1, &ask(0, 16, 3)).await.0, 23);
    leecher.shutdown().await;
    seeder.shutdown().await;
}

/// Connects with `info_hash`, sends one hash request, returns the id and payload of the
/// `hashes` (22) or `hash reject` (23) that answers it.
async fn hash_request(addr: SocketAddr, info_hash: [u8; 20], request: &[u8]) -> (u8, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    out.put_slice(b"\x13BitTorrent protocol");
    out.put_slice(&[0; 8]);
    out.put_slice(&info_hash);
    out.put_slice(b"-XX0000-askaskaskask");
    out.put_u32(1 + 48);
    out.put_u8(21);
    out.put_slice(request);
    s.write_all(&out).await.unwrap();
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).await.unwrap();
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.unwrap();
        let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut msg).await.unwrap();
        if let Some((&id, payload)) = msg.split_first()
            && (id == 22 || id == 23)
        {
            return (id, payload.to_vec());
        }
    }
}

/// Answers every BEP 52 hash request with the right number of wrong hashes; returns how many
/// connections it accepted before the listener went quiet for two seconds.
async fn lying_hashes_peer(listener: tokio::net::TcpListener, info_hash: [u8; 20]) -> usize {
    let mut accepted = 0;
    while let Ok(Ok((mut s, _))) = tokio::time::timeout(Duration::from_secs(2), listener.accept()).await {
        accepted += 1;
        let mut hs = [0u8; 68];
        if s.read_exact(&mut hs).await.is_err() {
            continue;
        }
        let mut out = BytesMut::new();
        out.put_slice(b"\x13BitTorrent protocol");
        out.put_slice(&[0; 8]);
        out.put_slice(&info_hash);
        out.put_slice(b"-XX0000-liarliarliar");
        let _ = s.write_all(&out).await;
        let mut buf = BytesMut::new();
        loop {
            if buf.len() >= 4 {
                let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if buf.len() >= 4 + len {
                    let msg = buf.split_to(4 + len);
                    if len == 49 && msg[4] == 21 {
                        let req = &msg[5..53];
                        let count = u32::from_be_bytes(req[40..44].try_into().unwrap());
                        let proof = u32::from_be_bytes(req[44..48].try_into().unwrap());
                        let n = count + (proof + 1).saturating_sub(count.trailing_zeros());
                        let mut reply = BytesMut::new();
                        reply.put_u32(1 + 48 + 32 * n);
                        reply.put_u8(22);
                        reply.put_slice(req);
                        reply.put_bytes(0x5a, 32 * n as usize);
                        if s.write_all(&reply).await.is_err() {
                            break;
                        }
                    }
                    continue;
                }
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    accepted
}

/// Stop half way, start again with the resume file: the verified pieces are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), Version::Hybrid, 16 * 1024);
    let resume = dir.path().join("out.resume");
    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await.unwrap();
    let addr: SocketAddr = seeder.listen_addr().unwrap();

    let first = Session::new(Settings::default()).await.unwrap();
    let t = first
        .add_torrent(
            AddTorrent::torrent(torrent.clone(), dir.path().join("out")).peer(addr).resume_file(&resume),
        )
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, async {
        while t.stats().pieces_have < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    first.shutdown().await;
    let had = t.stats().pieces_have;
    assert!(resume.exists());

    let second = Session::new(Settings::default()).await.unwrap();
    let t2 = second
        .add_torrent(AddTorrent::torrent(torrent, dir.path().join("out")).resume_file(&resume))
        .await
        .unwrap();
    let s = t2.stats();
    assert!(s.pieces_have >= had.min(s.pieces_total), "resumed {} of {had}", s.pieces_have);
    t2.add_peer(addr);
    tokio::time::timeout(DEADLINE, t2.wait_complete()).await.unwrap().unwrap();
    assert!(t2.stats().downloaded < 1_033_334 || had == 0, "did not fetch everything again");
    second.shutdown().await;
    seeder.shutdown().await;
    check_files(&dir.path().join("out"), &files);
}

/// A v2-only magnet: the info dictionary comes with BEP 9, the piece layers with BEP 52 hash
/// requests answered by our seeder, then every piece is verified by merkle root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_v2_fetches_piece_layers() {
    transfer(Version::V2, true).await;
}

/// More than 512 pieces in one file (several hash requests, the last one padded), a file of
/// one piece (no layer: its root is the piece hash) and two leechers, the second of which
/// can get the layers from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_v2_many_pieces_two_leechers() {
    let dir = tempfile::tempdir().unwrap();
    let files =
        vec![("big.bin".to_owned(), payload(600 * 16384 + 5, 7)), ("tiny.bin".to_owned(), payload(999, 8))];
    let root = dir.path().join("seed/share");
    std::fs::create_dir_all(&root).unwrap();
    let mut inputs = Vec::new();
    for (name, data) in &files {
        std::fs::write(root.join(name), data).unwrap();
        inputs.push(InputFile::from_reader(
            vec![name.clone()],
            data.len() as u64,
            std::io::Cursor::new(data.clone()),
        ));
    }
    let torrent = TorrentBuilder::new(Version::V2)
        .piece_length(Some(16384))
        .build_files("share", inputs, &mut |_, _| {})
        .unwrap();
    let seeder = Session::new(Settings::default()).await.unwrap();
    seeder.add_torrent(AddTorrent::torrent(torrent.clone(), dir.path().join("seed"))).await.unwrap();
    let m = Magnet::from_metainfo(&Metainfo::parse(&torrent).unwrap());
    assert!(m.info_hashes().v1().is_none(), "a v2-only magnet");
    let first = Session::new(Settings::default()).await.unwrap();
    let t1 = first
        .add_torrent(
            AddTorrent::magnet(m.clone(), dir.path().join("out1")).peer(seeder.listen_addr().unwrap()),
        )
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, t1.wait_complete()).await.expect("first finished in time").unwrap();
    // The second leecher knows only the first one, which got its layers over the wire.
    let second = Session::new(Settings::default()).await.unwrap();
    let t2 = second
        .add_torrent(AddTorrent::magnet(m, dir.path().join("out2")).peer(first.listen_addr().unwrap()))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, t2.wait_complete()).await.expect("second finished in time").unwrap();
    for t in [&t1, &t2] {
        let s = t.stats();
        assert!(s.complete);
        assert_eq!(s.pieces_total, 602);
        assert_eq!(s.hash_failures, 0);
    }
    second.shutdown().await;
    first.shutdown().await;
    seeder.shutdown().await;
    check_files(&dir.path().join("out1"), &files);
    check_files(&dir.path().join("out2"), &files);
}
