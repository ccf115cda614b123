//! `piecework upload-server`, `upload` (killed mid-way, then resumed) and `share`, end to end
//! over 127.0.0.1. Every wait is bounded.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

const WAIT: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_piecework"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Kills the child on drop, so a failing assertion never leaves a server running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Deterministic, incompressible-looking bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn start_server(store: &Path, secret: &Path) -> (Guard, String) {
    let mut child = bin()
        .args(["upload-server", "--listen", "127.0.0.1:0", "--dir", s(store), "--secret-file", s(secret)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("READY ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx.recv_timeout(WAIT).expect("server prints READY");
    (guard, url)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Starts an upload with small chunks and SIGKILLs it once some but not all bytes are
/// stored. Returns the upload id, or `None` if the upload finished before the kill landed.
fn interrupted_upload(file: &Path, endpoint: &str, store: &Path, total: u64) -> Option<String> {
    let state = PathBuf::from(format!("{}.tus-url", s(file)));
    let child = bin()
        .args(["upload", s(file), endpoint, "--chunk-size", "16K", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut client = Guard(child);
    wait_until("the resume state", || state.exists() || client.0.try_wait().ok().flatten().is_some());
    let url = std::fs::read_to_string(&state).ok()?;
    let id = url.trim().rsplit('/').next().unwrap().to_owned();
    let data = store.join(format!("{id}.bin"));
    wait_until("a partial upload", || {
        file_len(&data) >= 256 << 10 || client.0.try_wait().ok().flatten().is_some()
    });
    client.0.kill().expect("SIGKILL the client");
    let status = client.0.wait().expect("reaped");
    // Killed before it finished: the state file stays for the rerun.
    (!status.success() && state.exists() && file_len(&data) < total).then_some(id)
}

#[test]
fn upload_kill_resume_share_download() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, payload(32, 99)).unwrap();
    let (_server, endpoint) = start_server(&store, &secret);

    let total = 6usize << 20;
    // Small chunks make a kill mid-upload near certain; retry with a new file if the
    // upload still won the race.
    let mut found = None;
    for attempt in 0..5u64 {
        let file = dir.path().join(format!("big-{attempt}.bin"));
        let data = payload(total, attempt + 1);
        std::fs::write(&file, &data).unwrap();
        if let Some(id) = interrupted_upload(&file, &endpoint, &store, total as u64) {
            found = Some((file, data, id));
            break;
        }
    }
    let (file, data, id) = found.expect("one upload was interrupted mid-way");

    // Rerun: it resumes the same upload and completes it.
    let o = bin().args(["upload", s(&file), &endpoint, "--chunk-size", "1M"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming"));
    let url = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert_eq!(url, format!("{endpoint}{id}"));
    assert!(!PathBuf::from(format!("{}.tus-url", s(&file))).exists(), "state removed when done");
    let stored = std::fs::read(store.join(format!("{id}.bin"))).unwrap();
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&data));

    // A share link, with and without a password, downloaded with plain GETs.
    let base = endpoint.trim_end_matches("/files/").to_owned();
    let share = |extra: &[&str]| {
        let mut args = vec!["share", "--dir", s(&store), "--secret-file", s(&secret), "--base", &base];
        args.extend_from_slice(extra);
        args.push(&url);
        let o = bin().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let open_link = share(&["--expires-in", "1h"]);
    let locked_link = share(&["--password", "hunter2"]);
    let zip_link = share(&["--zip"]);
    assert!(open_link.starts_with(&format!("{base}/shares/")));
    assert!(zip_link.ends_with("&format=zip"));

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().timeout(WAIT).build().unwrap();
        let r = http.get(&open_link).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert_eq!(Sha256::digest(&body), Sha256::digest(&data));

        let r = http.get(&locked_link).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = http.get(&locked_link).basic_auth("x", Some("wrong")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = http.get(&locked_link).basic_auth("x", Some("hunter2")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(Sha256::digest(r.bytes().await.unwrap()), Sha256::digest(&data));

        // `--zip`: one stored entry, its bytes as uploaded.
        let r = http.get(&zip_link).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["Content-Type"], "application/zip");
        let z = r.bytes().await.unwrap();
        assert_eq!(&z[..4], b"PK\x03\x04");
        let at = 30
            + usize::from(u16::from_le_bytes([z[26], z[27]]))
            + usize::from(u16::from_le_bytes([z[28], z[29]]));
        assert_eq!(Sha256::digest(&z[at..at + data.len()]), Sha256::digest(&data));

        // A tampered signature is refused: its first character changed (the last one carries
        // padding bits, and trimming characters could give the same signature back).
        let at = open_link.find("sig=").expect("signed link") + 4;
        let first = open_link.as_bytes()[at];
        let other = if first == b'A' { "B" } else { "A" };
        let tampered = format!("{}{other}{}", &open_link[..at], &open_link[at + 1..]);
        let r = http.get(&tampered).send().await.unwrap();
        assert_eq!(r.status(), 403);
    });
}

#[test]
fn upload_commands_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, b"k").unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["upload", "/nonexistent/file", "http://127.0.0.1:1/files/"],
        vec!["upload", s(&f), "not a url"],
        vec!["upload", s(&f), "http://127.0.0.1:1/files/", "--chunk-size", "0"],
        vec!["upload", s(&f), "http://127.0.0.1:1/files/", "--chunk-size", "-5"],
        vec!["upload", s(&f), "http://127.0.0.1:1/files/", "--checksum", "crc64"],
        vec!["upload-server", "--listen", "nowhere", "--dir", s(dir.path())],
        vec!["upload-server", "--dir", s(dir.path()), "--expire-after", "3 weeks"],
        vec!["upload-server", "--dir", s(dir.path()), "--max-size", "99999999999999999999"],
        vec!["upload-server", "--dir", s(dir.path()), "--secret-file", s(&short)],
        vec!["share", "--dir", s(dir.path()), "--secret-file", s(&short), "abc"],
        vec!["share", "--dir", s(dir.path()), "--secret-file", s(&f)],
        vec!["share", "--dir", s(dir.path()), "--secret-file", "/nonexistent", "../../etc/passwd"],
    ];
    for args in cases {
        let o = bin().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    // A well-formed share of an upload that does not exist: one line, exit 2.
    let key = dir.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let o = bin().args(["share", "--dir", s(dir.path()), "--secret-file", s(&key), "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
