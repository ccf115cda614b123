//! Walks `shared/conformance/libtorrent-expectations.tsv`: every `ok` torrent must load with the
//! listed facts, every `error` torrent must be refused with an error of the matching kind.

use std::path::PathBuf;

use piecework_metainfo::{Error, Metainfo, Version};

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PIECEWORK_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    dir.join("conformance/libtorrent-expectations.tsv").is_file().then_some(dir)
}

fn require() -> bool {
    std::env::var("PIECEWORK_INTEROP").is_ok_and(|v| v == "require")
}

/// Does the error match the kind the table names?
fn kind_matches(reason: &str, e: &Error) -> bool {
    use piecework_bencode::Error as B;
    let r = reason;
    if r.contains("nesting depth") {
        return matches!(e, Error::Bencode(B::DepthExceeded { .. }));
    }
    if r.contains("keys out of order") {
        return matches!(e, Error::Bencode(B::UnsortedKey { .. }));
    }
    if r.contains("integer too long") {
        // `i07e`: libtorrent calls the overlong form "integer too long"; it is a non-canonical integer.
        return matches!(
            e,
            Error::Bencode(
                B::IntegerOverflow { .. } | B::InvalidInteger { .. } | B::NonCanonicalInteger { .. }
            )
        );
    }
    if r.contains("piece layer") {
        return matches!(e, Error::InvalidPieceLayer { .. } | Error::InvalidPieceLayers);
    }
    if r.contains("piece length") {
        return matches!(e, Error::InvalidPieceLength { .. });
    }
    if r.starts_with("hybrid whose") {
        return matches!(e, Error::HybridMismatch { .. });
    }
    if r.contains("pieces root") {
        return matches!(e, Error::MissingPiecesRoot { .. });
    }
    if r.contains("pad file") {
        return matches!(e, Error::InvalidPadFile { .. });
    }
    if r.contains("empty name") {
        return matches!(e, Error::EmptyFileName { .. });
    }
    if r.contains("file tree entry") {
        return matches!(e, Error::InvalidFileTree { .. });
    }
    if r.contains("duplicate file names") {
        return matches!(e, Error::TooManyDuplicates { .. });
    }
    if r.contains("too many pieces") {
        return matches!(e, Error::TooManyPieces { .. });
    }
    if r.contains("no files") {
        return matches!(e, Error::NoFiles);
    }
    if r.contains("symlink") {
        return matches!(e, Error::InvalidSymlink { .. });
    }
    if r.contains("piece hashes") || r.contains("missing pieces") {
        return matches!(e, Error::InvalidPieces { .. });
    }
    if r.contains("name / path") || r.contains("path list") {
        return matches!(e, Error::InvalidPath { .. });
    }
    if r.contains("name") {
        return matches!(e, Error::InvalidName);
    }
    if r.contains("info dictionary") {
        return matches!(e, Error::MissingField { field } if field == "info");
    }
    if r.contains("not a dictionary") {
        return matches!(e, Error::NotADictionary);
    }
    if r.contains("invalid length") {
        return matches!(e, Error::InvalidLength { .. });
    }
    false
}

fn paths(m: &Metainfo<'_>) -> Vec<String> {
    m.files().iter().map(|f| f.path().to_string()).collect()
}

fn link(m: &Metainfo<'_>, i: usize) -> String {
    m.files()[i].symlink_target().map(|p| p.to_string()).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    piecework_metainfo::to_hex(b)
}

/// Checks the facts the table lists for one `ok` file; returns a description of the first
/// failure.
fn check_facts(file: &str, m: &Metainfo<'_>, input: &[u8]) -> Result<(), String> {
    let p = paths(m);
    let fail = |what: &str| Err(format!("{what}: paths {p:?}"));
    let root0 = m.files().iter().find_map(|f| f.pieces_root()).map(|r| hex(r)).unwrap_or_default();
    let v2 = m.info_hashes().v2().map(|h| h.to_hex()).unwrap_or_default();
    let ok = match file {
        "parent_path.torrent" => p == ["temp/bar"],
        "slash_path.torrent" => p == ["temp/_/_/bar"],
        "slash_path2.torrent" => p == ["temp/abc....def/_/bar"],
        "slash_path3.torrent" => p == ["temp....abc"],
        "whitespace_url.torrent" => {
            m.trackers().first().and_then(|t| t.first()).is_some_and(|u| u == "udp://test.com/announce")
        }
        "duplicate_files.torrent" => p == ["temp/foo/bar.txt", "temp/foo/bar.1.txt"],
        "pad_file.torrent" => p.len() == 2 && m.files()[1].is_pad() && !m.files()[0].is_pad(),
        "creation_date.torrent" => m.creation_date() == Some(1_234_567),
        "no_creation_date.torrent" => m.creation_date().is_none(),
        "url_seed.torrent" => m.web_seeds() == ["http://test.com/file"],
        "url_seed_multi.torrent" => m.web_seeds() == ["http://test.com/file/"],
        "url_seed_multi_single_file.torrent" => m.web_seeds() == ["http://test.com/file/temp/foo/bar.txt"],
        "url_seed_multi_space.torrent" | "url_seed_multi_space_nolist.torrent" => {
            m.web_seeds() == ["http://test.com/test%20file/foo%20bar/"]
        }
        "duplicate_web_seeds.torrent" => m.web_seeds().len() == 3,
        "invalid_name2.torrent" => m.name() == "b61560c2918f463768cd122b6d2fdd47b77bdb35",
        "invalid_name3.torrent" => m.name() == "foobar ",
        "symlink1.torrent" | "symlink_zero_size.torrent" => {
            p.len() == 2 && m.files()[1].attributes().symlink && link(m, 1) == "temp/a/b/bar"
        }
        "symlink2.torrent" => {
            p.len() == 5
                && link(m, 0) == "Some.framework/Versions/A/SDL2"
                && link(m, 4) == "Some.framework/Versions/A"
        }
        "symlink_filtered_path.torrent" => {
            p.len() == 2 && p[0] == "temp/a/_/bar" && link(m, 1) == "temp/a/_/bar"
        }
        "pad_file_no_path.torrent" => p.len() == 2 && p[1] == ".pad/2124" && m.files()[1].is_pad(),
        "absolute_filename.torrent" => p == ["temp/abcde", "temp/foobar"],
        "invalid_filename.torrent" => p.len() == 2,
        "invalid_filename2.torrent" => p.len() == 3,
        "overlapping_symlinks.torrent" | "v2_symlinks.torrent" => {
            p.len() > 3
                && link(m, 0) == "SDL2.framework/Versions/Current/Headers"
                && link(m, 1) == "SDL2.framework/Versions/Current/Resources"
                && link(m, 2) == "SDL2.framework/Versions/Current/SDL2"
        }
        "invalid_directory_name.torrent" => p == ["test2/_/foo", "test2/_/foo.1"],
        "v2.torrent" => {
            m.version() == Version::Hybrid
                && p == ["test64K"]
                && m.files()[0].length() == 65536
                && root0 == "60aae9c7b428f87e0713e88229e18f0adf12cd7b22a0dd8a92bb2485eb7af242"
                && v2 == "597b180c1a170a585dfc5e85d834d69013ceda174b8f357d5bb1a0ca509faf0a"
        }
        "v2_multipiece_file.torrent" => {
            m.version() == Version::Hybrid
                && p == ["test1MB"]
                && m.files()[0].length() == 1_048_576
                && root0 == "515ea9181744b817744ded9d2e8e9dc6a8450c0b0c52e24b5077f302ffbd9008"
                && v2 == "108ac2c3718ce722e6896edc56c4afa98f1d711ecaace7aad74fca418ebd03de"
        }
        "v2_only.torrent" => {
            m.version() == Version::V2
                && m.info_hashes().v1().is_none()
                && p == ["test1MB"]
                && m.files()[0].length() == 1_048_576
                && root0 == "515ea9181744b817744ded9d2e8e9dc6a8450c0b0c52e24b5077f302ffbd9008"
                && v2 == "95e04d0c4bad94ab206efa884666fd89777dbe4f7bd9945af1829037a85c6192"
        }
        "v2_invalid_filename.torrent" => p == ["_estMB"],
        "v2_multiple_files.torrent" => {
            m.version() == Version::V2 && p.len() == 3 && m.piece_layers().len() == 3
        }
        "v2_invalid_filename2.torrent" => p == ["test/_", "test/_.1", "test/stress_test2"],
        "v2_hybrid.torrent"
        | "empty-files-1.torrent"
        | "empty-files-2.torrent"
        | "empty-files-3.torrent"
        | "empty-files-4.torrent"
        | "empty-files-5.torrent" => m.version() == Version::Hybrid,
        "v2_no_piece_layers.torrent" | "v2_incomplete_piece_layer.torrent" => m.version() == Version::V2,
        "similar.torrent" | "similar2.torrent" => {
            m.similar().len() == 1 && m.similar()[0].as_bytes() == b"aaaaaaaaaaaaaaaaaaaa"
        }
        "collection.torrent" | "collection2.torrent" => m.collections() == ["bar", "foo"],
        "dht_nodes.torrent" => {
            m.nodes() == [("127.0.0.1".to_owned(), 6881), ("192.168.1.1".to_owned(), 6881)]
        }
        "large_piece_size.torrent" => m.piece_length() == 536_854_528,
        "sample.torrent" => {
            p == ["sample/text_file2.txt", "sample/.____padding_file/0", "sample/text_file.txt"]
                && m.files()[1].is_pad()
                && !m.files()[0].is_pad()
        }
        "v2_empty_file.torrent" | "v2_hybrid-missing-tailpad.torrent" => {
            let doc = piecework_bencode::decode(input).map_err(|e| format!("{e}"))?;
            let root = doc.root().as_dict().ok_or("no dict")?;
            let info = root.get(b"info").ok_or("no info")?.raw();
            let layers_ok = match root.get(b"piece layers") {
                Some(l) => m.piece_layers_bytes() == l.raw(),
                None => m.piece_layers().is_empty(),
            };
            let again = Metainfo::parse(input).map_err(|e| format!("{e}"))?;
            m.info_bytes() == info && layers_ok && again.to_bytes() == m.to_bytes()
        }
        _ => true,
    };
    if ok { Ok(()) } else { fail("facts differ") }
}

#[test]
fn libtorrent_expectations() {
    let Some(dir) = shared_dir() else {
        assert!(!require(), "PIECEWORK_INTEROP=require but shared/conformance is missing");
        eprintln!("SKIP: shared/conformance not found (set PIECEWORK_SHARED)");
        return;
    };
    let table = std::fs::read_to_string(dir.join("conformance/libtorrent-expectations.tsv")).unwrap();
    let mut rows = 0;
    let mut passed = 0;
    let mut failures = Vec::new();
    for line in table.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (file, expect, what) =
            (cols.next().unwrap(), cols.next().unwrap_or(""), cols.next().unwrap_or(""));
        rows += 1;
        let input = std::fs::read(dir.join("conformance/libtorrent-torrents").join(file)).unwrap();
        let result = std::panic::catch_unwind(|| Metainfo::parse(&input).map(|m| m.into_owned()));
        let outcome = match (expect, result) {
            (_, Err(_)) => Err("PANIC".to_owned()),
            ("ok", Ok(Ok(m))) => {
                let unsafe_path = m.files().iter().find(|f| !f.path().is_safe());
                match unsafe_path {
                    Some(f) => Err(format!("unsafe path {:?}", f.path())),
                    None => check_facts(file, &m, &input),
                }
            }
            ("ok", Ok(Err(e))) => Err(format!("refused: {e:?}")),
            ("error", Ok(Ok(m))) => Err(format!("loaded, paths {:?}", paths(&m))),
            ("error", Ok(Err(e))) if kind_matches(what, &e) => Ok(()),
            ("error", Ok(Err(e))) => Err(format!("wrong error kind: {e:?}")),
            (other, _) => Err(format!("unknown expectation {other}")),
        };
        match outcome {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{file} ({expect}: {what}): {why}")),
        }
    }
    eprintln!("conformance: {passed}/{rows}");
    for f in &failures {
        eprintln!("  FAIL {f}");
    }
    assert_eq!(rows, 108, "the table should have 108 rows");
    assert!(failures.is_empty(), "{passed}/{rows} passed");
}

/// Regressions found by fuzzing, in `tests/data/`: each loads, and its re-encoding loads
/// again with the same hashes and files.
#[test]
fn fuzz_regressions_reencode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let m = Metainfo::parse(&input).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let again = m.to_bytes();
        let m2 = Metainfo::parse(&again).unwrap_or_else(|e| panic!("{path:?} re-encoded: {e}"));
        assert_eq!(m2.info_hashes(), m.info_hashes(), "{path:?}");
        assert_eq!(m2.files(), m.files(), "{path:?}");
        assert_eq!(m2.to_bytes(), again, "{path:?}");
    }
}

/// Differential check against the libtorrent installed here (Debian's 2.0.8): the same
/// sanitized paths for every `ok` torrent (leaving out the pad files libtorrent implies for v2),
/// except where the table (current libtorrent) knowingly differs from 2.0.8, or where 2.0.8
/// lists a hybrid's v2 view.
#[test]
fn paths_match_installed_libtorrent() {
    use std::process::Command;
    // file -> why 2.0.8 differs from the table we follow.
    const KNOWN: &[(&str, &str)] = &[
        ("slash_path.torrent", "2.0.8 drops separator-only elements; the table makes them `_`"),
        ("slash_path2.torrent", "same"),
        ("backslash_path.torrent", "same"),
        ("symlink_filtered_path.torrent", "same"),
        ("invalid_directory_name.torrent", "same (named in the conformance README)"),
        ("v2_invalid_filename2.torrent", "2.0.8 collapses a file onto its directory `test`"),
        ("v2_hybrid.torrent", "2.0.8 lists a hybrid's v2 files (pad names `.pad/N`); we list v1"),
        ("empty-files-2.torrent", "same: v2 order puts the pad before an empty file"),
    ];
    let Some(dir) = shared_dir() else {
        assert!(!require(), "PIECEWORK_INTEROP=require but shared/ is missing");
        return eprintln!("SKIP: shared/ not found");
    };
    let lt_ok = Command::new("/usr/bin/python3").args(["-c", "import libtorrent"]).output();
    if !lt_ok.is_ok_and(|o| o.status.success()) {
        assert!(!require(), "PIECEWORK_INTEROP=require but python3-libtorrent is missing");
        return eprintln!("SKIP: python3-libtorrent is not installed");
    }
    let torrents = dir.join("conformance/libtorrent-torrents");
    let script = format!(
        "import libtorrent as lt, os\n\
         for line in open({tsv:?}):\n    \
             if line.startswith('#'): continue\n    \
             f, exp = line.split('\\t')[:2]\n    \
             if exp != 'ok': continue\n    \
             ti = lt.torrent_info(os.path.join({dir:?}, f))\n    \
             fs = ti.files()\n    \
             keep = [i for i in range(fs.num_files()) if ti.info_hashes().has_v1() or not fs.file_flags(i) & 1]\n    \
             print(f + '\\t' + '|'.join(fs.file_path(i) for i in keep))\n",
        tsv = dir.join("conformance/libtorrent-expectations.tsv").to_str().unwrap(),
        dir = torrents.to_str().unwrap(),
    );
    // libtorrent only reads files here, but the lab's rule is that it runs without a network.
    let out = Command::new(dir.join("interop/run-in-netns.sh"))
        .args(["--timeout", "60", "/usr/bin/python3", "-c", &script])
        .output()
        .expect("run-in-netns.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut compared = 0;
    let mut unexpected = Vec::new();
    for line in text.lines() {
        let (file, lt_paths) = line.split_once('\t').unwrap_or((line, ""));
        let input = std::fs::read(torrents.join(file)).unwrap();
        let m = Metainfo::parse(&input).unwrap();
        let ours = paths(&m).join("|");
        compared += 1;
        let known = KNOWN.iter().any(|(f, _)| *f == file);
        if (ours == lt_paths) == known {
            unexpected.push(format!(
                "{file}: libtorrent {lt_paths:?}, ours {ours:?}, listed as differing: {known}"
            ));
        }
    }
    assert!(compared >= 60, "only {compared} rows from libtorrent");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
