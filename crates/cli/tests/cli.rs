//! End-to-end runs of the `piecework` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_piecework"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("piecework-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("payload/sub")).unwrap();
    std::fs::write(d.join("payload/a.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(d.join("payload/sub/b.txt"), b"hello").unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn create_inspect_magnet_verify() {
    for flag in ["--v1", "--v2", "--hybrid"] {
        let d = scratch(&flag[2..]);
        let t = d.join("t.torrent");
        let o = run(&[
            "create",
            s(&d.join("payload")),
            "-o",
            s(&t),
            flag,
            "--piece-length",
            "16384",
            "--tracker",
            "http://t/a",
            "--no-date",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = run(&["inspect", "--json", s(&t)]);
        assert!(o.status.success());
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["name"], "payload");
        assert_eq!(j["piece_length"], 16384);
        assert_eq!(j["trackers"][0][0], "http://t/a");
        assert_eq!(j["info_hash_v1"].is_string(), flag != "--v2");
        assert_eq!(j["info_hash_v2"].is_string(), flag != "--v1");
        let real: Vec<_> = j["files"].as_array().unwrap().iter().filter(|f| f["pad"] == false).collect();
        assert_eq!(real.len(), 2);
        assert_eq!(real[0]["path"], "payload/a.bin");

        let o = run(&["magnet", s(&t)]);
        let link = String::from_utf8(o.stdout).unwrap();
        assert!(link.starts_with("magnet:?xt=urn:bt"), "{link}");
        let o = run(&["inspect", "--json", link.trim()]);
        let mj: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(mj["info_hash_v1"], j["info_hash_v1"]);
        assert_eq!(mj["info_hash_v2"], j["info_hash_v2"]);

        // Good data verifies, from the parent folder or the torrent's own folder.
        assert!(run(&["verify", s(&t), s(&d)]).status.success());
        assert!(run(&["verify", s(&t), s(&d.join("payload"))]).status.success());
        // A flipped byte is caught (exit 1), and so is a missing file.
        let mut a = std::fs::read(d.join("payload/a.bin")).unwrap();
        a[50_000] ^= 1;
        std::fs::write(d.join("payload/a.bin"), &a).unwrap();
        let o = run(&["verify", s(&t), s(&d)]);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("CORRUPT") && text.contains("bad pieces: 3"), "{flag}: {text}");
        std::fs::remove_file(d.join("payload/sub/b.txt")).unwrap();
        let o = run(&["verify", s(&t), s(&d)]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stdout).contains("MISSING"));
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let d = scratch("bad");
    let junk = d.join("junk.torrent");
    std::fs::write(&junk, b"d4:infod4:name1:xee").unwrap();
    for args in [
        vec!["inspect", s(&junk)],
        vec!["inspect", "/definitely/not/here.torrent"],
        vec!["inspect", "magnet:?xt=urn:btih:zz"],
        vec!["magnet", s(&junk)],
        vec!["verify", s(&junk), s(&d)],
        vec!["create", "/definitely/not/here"],
        vec!["create", s(&d.join("payload")), "--piece-length", "1000"],
        vec!["create"],
        vec!["nonsense"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
