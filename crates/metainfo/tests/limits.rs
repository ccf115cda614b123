//! Every parse limit is enforced with a typed error, and the defaults accept ordinary torrents.

use piecework_metainfo::{Error, Limits, Metainfo};

/// A v1 multi-file torrent: `files` files of 1 byte, each `depth` directories deep.
fn torrent(files: usize, depth: usize) -> Vec<u8> {
    let mut list = String::new();
    for i in 0..files {
        let mut path = String::new();
        for d in 0..depth {
            path.push_str(&format!("1:{}", (b'a' + (d % 26) as u8) as char));
        }
        let name = format!("f{i}");
        path.push_str(&format!("{}:{name}", name.len()));
        list.push_str(&format!("d6:lengthi1e4:pathl{path}ee"));
    }
    let pieces = files.div_ceil(16_384);
    let hashes = "x".repeat(pieces * 20);
    format!("d4:infod5:filesl{list}e4:name1:t12:piece lengthi16384e6:pieces{}:{hashes}ee", hashes.len())
        .into_bytes()
}

#[test]
fn defaults_accept_and_each_limit_refuses() {
    let t = torrent(50, 3);
    assert_eq!(Metainfo::parse(&t).unwrap().files().len(), 50);

    let mut l = Limits::default();
    l.max_files = 49;
    assert!(matches!(Metainfo::parse_with(&t, &l), Err(Error::TooManyFiles { max: 49 })));

    let mut l = Limits::default();
    l.max_metainfo_size = t.len() - 1;
    assert!(matches!(Metainfo::parse_with(&t, &l), Err(Error::TooLarge { .. })));

    let mut l = Limits::default();
    l.max_path_depth = 3;
    assert!(matches!(Metainfo::parse_with(&t, &l), Err(Error::InvalidPath { .. })));

    let mut l = Limits::default();
    l.max_bencode_depth = 3;
    assert!(matches!(Metainfo::parse_with(&t, &l), Err(Error::Bencode(_))));

    let mut l = Limits::default();
    l.max_bencode_tokens = 100;
    assert!(matches!(Metainfo::parse_with(&t, &l), Err(Error::Bencode(_))));
}

#[test]
fn piece_count_limit() {
    // 1 TiB in 16 KiB pieces is 2^26 pieces: over the default of 2^21, refused before `pieces`
    // is even looked at.
    let t =
        b"d4:infod6:lengthi1099511627776e4:name1:t12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    assert!(matches!(Metainfo::parse(t), Err(Error::TooManyPieces { .. })));
    let mut l = Limits::default();
    l.max_pieces = 1;
    let small = b"d4:infod6:lengthi16385e4:name1:t12:piece lengthi16384e6:pieces40:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaee";
    assert!(Metainfo::parse(small).is_ok());
    assert!(matches!(Metainfo::parse_with(small, &l), Err(Error::TooManyPieces { count: 2, max: 1 })));
}

#[test]
fn duplicate_limit() {
    let mut list = String::new();
    for _ in 0..20 {
        list.push_str("d6:lengthi1e4:pathl1:aee");
    }
    let t =
        format!("d4:infod5:filesl{list}e4:name1:t12:piece lengthi16384e6:pieces20:xxxxxxxxxxxxxxxxxxxxee");
    let m = Metainfo::parse(t.as_bytes()).unwrap();
    assert_eq!(m.files()[19].path().to_string(), "t/a.19");
    let mut l = Limits::default();
    l.max_duplicate_names = 10;
    assert!(matches!(Metainfo::parse_with(t.as_bytes(), &l), Err(Error::TooManyDuplicates { max: 10 })));
}

#[test]
fn strict_v1_when_asked() {
    // Unsorted keys: libtorrent (and the default) accept a v1 torrent; strict refuses it.
    let t = b"d4:infod4:name1:t6:lengthi1e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    assert!(Metainfo::parse(t).is_ok());
    let mut l = Limits::default();
    l.lenient_v1 = false;
    assert!(matches!(Metainfo::parse_with(t, &l), Err(Error::Bencode(_))));
}
