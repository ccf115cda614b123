//! Creation: our torrents parse back with correct hashes, and match libtorrent, mktorrent and
//! transmission-create byte for byte where it matters (the info-hashes).

#![cfg(feature = "create")]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use piecework_metainfo::merkle::FileHasher;
use piecework_metainfo::{FileOrder, InputFile, Metainfo, PieceIndex, TorrentBuilder, Version};
use sha1::{Digest as _, Sha1};

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sample_files() -> Vec<(Vec<String>, Vec<u8>)> {
    vec![
        (vec!["b".into(), "two.bin".into()], data(70_000, 2)),
        (vec!["a.txt".into()], data(5, 1)),
        (vec!["c".into(), "empty".into()], Vec::new()),
        (vec!["d.bin".into()], data(16_384 * 3, 3)),
        (vec!["e.bin".into()], data(200_001, 4)),
    ]
}

fn build(version: Version, pl: u64, threads: usize) -> Vec<u8> {
    let files = sample_files()
        .into_iter()
        .map(|(p, d)| InputFile::from_reader(p, d.len() as u64, Cursor::new(d)))
        .collect();
    let mut calls = 0u64;
    let mut last = 0;
    let out = TorrentBuilder::new(version)
        .piece_length(Some(pl))
        .threads(threads)
        .creation_date(None)
        .tracker("http://t.example/announce")
        .build_files("root", files, &mut |done, total| {
            calls += 1;
            assert!(done >= last && done <= total);
            last = done;
        })
        .unwrap();
    assert!(calls > 0);
    assert_eq!(last, sample_files().iter().map(|(_, d)| d.len() as u64).sum::<u64>());
    out
}

/// The v1 payload as a hybrid lays it out: sorted files, each padded to a piece boundary.
fn v1_payload(version: Version, pl: usize) -> Vec<u8> {
    let mut files = sample_files();
    if version != Version::V1 {
        files.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut out = Vec::new();
    for (_, d) in files {
        out.extend_from_slice(&d);
        if version == Version::Hybrid && out.len() % pl != 0 {
            out.resize(out.len().div_ceil(pl) * pl, 0);
        }
    }
    out
}

#[test]
fn created_torrents_parse_back_with_right_hashes() {
    for version in [Version::V1, Version::V2, Version::Hybrid] {
        for pl in [16_384u64, 65_536] {
            let bytes = build(version, pl, 3);
            // Deterministic whatever the thread count.
            assert_eq!(bytes, build(version, pl, 1), "{version:?}");
            let m = Metainfo::parse(&bytes).unwrap_or_else(|e| panic!("{version:?} {pl}: {e}"));
            assert_eq!(m.version(), version);
            assert_eq!(m.trackers(), [vec!["http://t.example/announce".to_owned()]]);
            assert!(m.creation_date().is_none());
            if version != Version::V2 {
                let payload = v1_payload(version, pl as usize);
                assert_eq!(m.total_length(), payload.len() as u64);
                for (i, chunk) in payload.chunks(pl as usize).enumerate() {
                    let want: [u8; 20] = Sha1::digest(chunk).into();
                    assert_eq!(
                        m.piece_hash_v1(PieceIndex::new(i as u32)),
                        Some(want),
                        "{version:?} piece {i}"
                    );
                }
            }
            if version != Version::V1 {
                for (p, d) in sample_files() {
                    let f = m
                        .files()
                        .iter()
                        .find(|f| f.path().components()[1..] == p[..])
                        .unwrap_or_else(|| panic!("{p:?} missing"));
                    let mut h = FileHasher::new(pl).unwrap();
                    h.update(&d);
                    let (root, layer) = h.finish();
                    assert_eq!(f.pieces_root(), root.as_ref(), "{p:?}");
                    if d.len() as u64 > pl {
                        let flat: Vec<u8> = layer.iter().flatten().copied().collect();
                        assert_eq!(m.piece_layer(&root.unwrap()), Some(&flat[..]));
                    }
                }
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Any set of files, any format: the torrent parses back, v1 pieces hash the payload as
    /// laid out, and each v2 root is the merkle root of its file.
    #[test]
    fn any_files_roundtrip(
        files in proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2})?", 0usize..40_000, 1..6),
        version in proptest::sample::select(vec![Version::V1, Version::V2, Version::Hybrid]),
        pl_log in 14u32..16,
    ) {
        let pl = 1u64 << pl_log;
        // Keep only paths that are not also a directory of another path.
        let paths: Vec<(Vec<String>, Vec<u8>)> = files
            .iter()
            .filter(|(p, _)| !files.keys().any(|q| q.starts_with(&format!("{p}/"))))
            .enumerate()
            .map(|(i, (p, len))| (p.split('/').map(str::to_owned).collect(), data(*len, i as u8)))
            .collect();
        let total: usize = paths.iter().map(|(_, d)| d.len()).sum();
        proptest::prop_assume!(total > 0);
        let inputs = paths.iter().map(|(p, d)| InputFile::from_reader(p.clone(), d.len() as u64, Cursor::new(d.clone()))).collect();
        let bytes = TorrentBuilder::new(version).piece_length(Some(pl)).creation_date(None).build_files("r", inputs, &mut |_, _| {}).unwrap();
        let m = Metainfo::parse(&bytes).unwrap();
        proptest::prop_assert_eq!(m.version(), version);
        let mut sorted = paths.clone();
        if version != Version::V1 {
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let real: Vec<_> = m.files().iter().filter(|f| !f.is_pad()).collect();
        proptest::prop_assert_eq!(real.len(), sorted.len());
        let mut payload = Vec::new();
        for (f, (p, d)) in real.iter().zip(&sorted) {
            // A v2 tree holding one top-level file is a single-file torrent (BEP 52): no folder.
            let skip = usize::from(m.is_multi_file());
            proptest::prop_assert_eq!(&f.path().components()[skip..], &p[..]);
            proptest::prop_assert_eq!(f.length(), d.len() as u64);
            if version != Version::V1 {
                let mut h = FileHasher::new(pl).unwrap();
                h.update(d);
                let root = h.finish().0;
                proptest::prop_assert_eq!(f.pieces_root(), root.as_ref());
            }
            payload.extend_from_slice(d);
            if version == Version::Hybrid && !(payload.len() as u64).is_multiple_of(pl) {
                payload.resize((payload.len() as u64).div_ceil(pl) as usize * pl as usize, 0);
            }
        }
        if version != Version::V2 {
            for (i, chunk) in payload.chunks(pl as usize).enumerate() {
                let want: [u8; 20] = Sha1::digest(chunk).into();
                proptest::prop_assert_eq!(m.piece_hash_v1(PieceIndex::new(i as u32)), Some(want));
            }
        }
    }
}

#[test]
fn build_iter_takes_triples() {
    let files = (0..3u8).map(|i| (vec![format!("f{i}")], 1000, Cursor::new(vec![i; 1000])));
    let bytes = TorrentBuilder::new(Version::Hybrid).build_iter("n", files, &mut |_, _| {}).unwrap();
    let m = Metainfo::parse(&bytes).unwrap();
    let names: Vec<String> = m.files().iter().filter(|f| !f.is_pad()).map(|f| f.path().to_string()).collect();
    assert_eq!(names, ["n/f0", "n/f1", "n/f2"]);
}

#[test]
fn bad_options_are_refused() {
    let f = || vec![InputFile::from_reader(vec!["x".into()], 3, Cursor::new(vec![1, 2, 3]))];
    let b = TorrentBuilder::new(Version::V2);
    assert!(b.clone().piece_length(Some(20_000)).build_files("n", f(), &mut |_, _| {}).is_err());
    assert!(b.build_files("n", vec![], &mut |_, _| {}).is_err());
    // A reader shorter than its stated length is an error, not a bad torrent.
    let short = vec![InputFile::from_reader(vec!["x".into()], 10, Cursor::new(vec![1, 2, 3]))];
    assert!(matches!(
        TorrentBuilder::new(Version::V1).build_files("n", short, &mut |_, _| {}),
        Err(piecework_metainfo::Error::Io { .. })
    ));
    let long = vec![InputFile::from_reader(vec!["x".into()], 2, Cursor::new(vec![1, 2, 3]))];
    assert!(TorrentBuilder::new(Version::V1).build_files("n", long, &mut |_, _| {}).is_err());
    let dup = vec![
        InputFile::from_reader(vec!["x".into()], 1, Cursor::new(vec![1])),
        InputFile::from_reader(vec!["x".into()], 1, Cursor::new(vec![1])),
    ];
    assert!(TorrentBuilder::new(Version::V2).build_files("n", dup, &mut |_, _| {}).is_err());
}

/// Files on disk are hashed by the threads with positional reads, readers in order by the
/// caller: both must give the same torrent, for pieces that span files, pieces bigger than one
/// read, pad files and files of one piece.
#[test]
fn files_on_disk_hash_like_readers() {
    let dir = std::env::temp_dir().join(format!("pw-create-positional-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("r");
    let sizes = [0usize, 1, 16_383, 300_000, 700_001, 1_100_000, 2_200_000];
    let mut files = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let path = vec![format!("d{}", i % 2), format!("f{i}.bin")];
        let on_disk = root.join(&path[0]).join(&path[1]);
        std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
        let d = data(*len, i as u8 + 7);
        std::fs::write(&on_disk, &d).unwrap();
        files.push((path, d));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for version in [Version::V1, Version::V2, Version::Hybrid] {
        for pl in [16_384u64, 1 << 19, 1 << 20] {
            for threads in [1, 3] {
                let b =
                    TorrentBuilder::new(version).piece_length(Some(pl)).creation_date(None).threads(threads);
                let from_disk = b.build_path(&root, &mut |_, _| {}).unwrap();
                let readers = files
                    .iter()
                    .map(|(p, d)| InputFile::from_reader(p.clone(), d.len() as u64, Cursor::new(d.clone())))
                    .collect();
                let from_readers = b.build_files("r", readers, &mut |_, _| {}).unwrap();
                assert!(from_disk == from_readers, "{version:?} piece length {pl}, {threads} threads");
            }
        }
    }
    // A file that no longer has its listed length is an I/O error naming it.
    let on_disk = root.join("d1").join("f5.bin");
    let listed = vec![InputFile::from_path(vec!["f5.bin".into()], 1_100_001, on_disk)];
    let err = TorrentBuilder::new(Version::V1).build_files("r", listed, &mut |_, _| {}).unwrap_err();
    assert!(matches!(&err, piecework_metainfo::Error::Io { path, .. } if path == "f5.bin"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_piece_length_is_a_power_of_two() {
    use piecework_metainfo::create::auto_piece_length;
    assert_eq!(auto_piece_length(1), 16_384);
    assert_eq!(auto_piece_length(1 << 30), 1 << 19);
    assert!(auto_piece_length(u64::MAX).is_power_of_two());
}

// ---- interop -------------------------------------------------------------------------------

fn require() -> bool {
    std::env::var("PIECEWORK_INTEROP").is_ok_and(|v| v == "require")
}

fn interop_dir() -> Option<PathBuf> {
    let shared = match std::env::var_os("PIECEWORK_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = shared.join("interop");
    dir.join("lt_create.py").is_file().then_some(dir)
}

fn have_libtorrent() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(why: &str) {
    assert!(!require(), "PIECEWORK_INTEROP=require but {why}");
    eprintln!("SKIP: {why}");
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("piecework-metainfo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("zeta.bin"), data(300_000, 7)).unwrap();
    std::fs::write(root.join("Alpha"), data(5, 8)).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("sub/b.txt"), data(40_000, 9)).unwrap();
    std::fs::write(root.join("sub/deeper/c.dat"), data(16_384 * 4, 10)).unwrap();
}

/// Runs a command inside the interop lab's network namespace (no traffic leaves the machine).
fn in_netns(dir: &Path, args: &[&str]) -> Option<String> {
    let out =
        Command::new(dir.join("run-in-netns.sh")).args(["--timeout", "120"]).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

#[test]
fn same_info_hashes_as_libtorrent() {
    let Some(dir) = interop_dir() else { return skip("shared/interop not found") };
    if !have_libtorrent() {
        return skip("python3-libtorrent is not installed");
    }
    let work = scratch("lt");
    let tree = work.join("payload");
    make_tree(&tree);
    let single = tree.join("zeta.bin");
    for target in [&tree, &single] {
        for (version, flag) in [(Version::V1, "v1"), (Version::V2, "v2"), (Version::Hybrid, "hybrid")] {
            let lt_out = work.join(format!("lt-{flag}.torrent"));
            let Some(stdout) = in_netns(
                &dir,
                &[
                    dir.join("lt_create.py").to_str().unwrap(),
                    target.to_str().unwrap(),
                    "-o",
                    lt_out.to_str().unwrap(),
                    "--version",
                    flag,
                    "--piece-size",
                    "16",
                ],
            ) else {
                return skip("run-in-netns.sh or lt_create.py failed");
            };
            let line = stdout.lines().find(|l| l.starts_with("RESULT")).expect("RESULT line");
            let ours = TorrentBuilder::new(version)
                .piece_length(Some(16_384))
                // libtorrent lists a v1 directory in readdir order.
                .file_order(FileOrder::AsListed)
                .build_path(target, &mut |_, _| {})
                .unwrap();
            let m = Metainfo::parse(&ours).unwrap();
            let v1 = m.info_hashes().v1().map_or("-".to_owned(), |h| h.to_hex());
            let v2 = m.info_hashes().v2().map_or("-".to_owned(), |h| h.to_hex());
            assert_eq!(field(line, "infohash_v1="), Some(v1.as_str()), "{flag} {target:?}: {line}");
            assert_eq!(field(line, "infohash_v2="), Some(v2.as_str()), "{flag} {target:?}: {line}");

            // And libtorrent loads ours with the same hashes.
            let ours_path = work.join(format!("ours-{flag}.torrent"));
            std::fs::write(&ours_path, &ours).unwrap();
            let script = format!(
                "import libtorrent as lt; ih = lt.torrent_info({:?}).info_hashes(); print(ih.v1 if ih.has_v1() else '-', ih.v2 if ih.has_v2() else '-')",
                ours_path.to_str().unwrap()
            );
            let loaded =
                in_netns(&dir, &["/usr/bin/python3", "-c", &script]).expect("libtorrent loads our torrent");
            assert_eq!(loaded.trim(), format!("{v1} {v2}"), "{flag}");
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn loads_mktorrent_and_transmission_torrents() {
    let have = |bin: &str| Command::new(bin).arg("--help").output().is_ok();
    if !have("mktorrent") || !have("transmission-create") || !have("transmission-show") {
        return skip("mktorrent / transmission-cli are not installed");
    }
    let work = scratch("mk");
    let tree = work.join("payload");
    make_tree(&tree);
    let mk = work.join("mk.torrent");
    let st = Command::new("mktorrent")
        .args(["-l", "15", "-a", "http://127.0.0.1:6969/announce", "-o"])
        .arg(&mk)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let tc = work.join("tc.torrent");
    let st = Command::new("transmission-create")
        .args(["-s", "32", "-t", "http://127.0.0.1:6969/announce", "-o"])
        .arg(&tc)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    for t in [&mk, &tc] {
        let show = Command::new("transmission-show").arg(t).output().unwrap();
        let text = String::from_utf8_lossy(&show.stdout);
        let hash = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Hash: "))
            .unwrap_or_else(|| panic!("no hash in {text}"))
            .trim()
            .to_lowercase();
        let bytes = std::fs::read(t).unwrap();
        let m = Metainfo::parse(&bytes).unwrap();
        assert_eq!(m.info_hashes().v1().unwrap().to_hex(), hash, "{t:?}");
        // mktorrent leaves the empty file out; transmission-create keeps it.
        assert!(m.files().len() >= 4);
        // Our v1 creation in the same order gives the same piece hashes.
        let ours = TorrentBuilder::new(Version::V1)
            .piece_length(Some(m.piece_length()))
            .file_order(FileOrder::Sorted)
            .build_path(&tree, &mut |_, _| {})
            .unwrap();
        let o = Metainfo::parse(&ours).unwrap();
        let listed = |m: &Metainfo<'_>| -> Vec<(String, u64)> {
            m.files().iter().filter(|f| f.length() > 0).map(|f| (f.path().to_string(), f.length())).collect()
        };
        let (mut theirs, mut mine) = (listed(&m), listed(&o));
        theirs.sort();
        mine.sort();
        assert_eq!(theirs, mine);
    }
    let _ = std::fs::remove_dir_all(&work);
}
