//! Interop with libtorrent on loopback, driving the lab scripts in `shared/interop/` and the
//! `wire_fetch_metadata` example.
//!
//! Runs only inside a loopback-only network namespace (`shared/interop/run-in-netns.sh`) with
//! `python3-libtorrent` installed; otherwise it prints why and skips, or fails when
//! `PIECEWORK_INTEROP=require`. `shared/` is found at `<manifest>/../../../shared` or at
//! `$PIECEWORK_SHARED`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the child (by its PID, through `Child::kill`) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn required() -> bool {
    std::env::var("PIECEWORK_INTEROP").is_ok_and(|v| v == "require")
}

/// Why the lab cannot run here, if it cannot.
fn unavailable(interop: &Path, example: &Path) -> Option<String> {
    if !interop.join("lt_seed.py").exists() {
        return Some(format!("no interop lab at {}", interop.display()));
    }
    let lt = Command::new("/usr/bin/python3").args(["-c", "import libtorrent"]).output();
    if !lt.is_ok_and(|o| o.status.success()) {
        return Some("python3-libtorrent is not installed (apt-get install python3-libtorrent)".into());
    }
    // /proc/net/dev lists this network namespace's interfaces (sysfs may show the host's).
    let ifaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .map(|t| t.lines().skip(2).filter_map(|l| l.split(':').next()).map(|i| i.trim().to_owned()).collect())
        .unwrap_or_else(|_| vec!["<unreadable /proc/net/dev>".into()]);
    if ifaces.iter().any(|i| i != "lo") {
        return Some(format!(
            "not in a loopback-only network namespace (interfaces: {ifaces:?}); run under shared/interop/run-in-netns.sh"
        ));
    }
    if !example.exists() {
        return Some(format!("example binary missing at {} (build with --all-features)", example.display()));
    }
    None
}

fn shared_dir() -> PathBuf {
    std::env::var_os("PIECEWORK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn example_binary() -> PathBuf {
    // target/<profile>/deps/interop-xxxx -> target/<profile>/examples/wire_fetch_metadata
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target dir").join("examples/wire_fetch_metadata")
}

/// Spawns `cmd` with piped stdout and waits (with a deadline) for a line starting with `prefix`.
fn spawn_until(mut cmd: Command, prefix: &str, within: Duration) -> (Guard, String, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = Guard(child);
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return (guard, line, rx),
            Ok(_) => {}
            Err(e) => panic!("no `{prefix}` line within {within:?}: {e}"),
        }
    }
}

/// Runs `cmd` to completion with a deadline; returns (exit code, stdout).
fn run(mut cmd: Command, within: Duration) -> (i32, String) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let mut guard = Guard(child);
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            let mut out = String::new();
            if let Some(mut s) = guard.0.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut s, &mut out);
            }
            return (status.code().unwrap_or(-1), out);
        }
        assert!(Instant::now() < deadline, "{cmd:?} did not finish within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn result_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line in {out:?}"))
        .to_owned()
}

#[test]
fn libtorrent_interop() {
    let interop = shared_dir().join("interop");
    let example = example_binary();
    if let Some(why) = unavailable(&interop, &example) {
        assert!(!required(), "PIECEWORK_INTEROP=require but: {why}");
        // Written straight to stderr so it shows even though the harness captures output.
        let _ = writeln!(std::io::stderr(), "SKIP libtorrent_interop: {why}");
        return;
    }

    let work = std::env::temp_dir().join(format!("piecework-wire-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("data")).unwrap();
    // 14,000,000 bytes at 16 KiB pieces: 855 pieces, so the info dict needs two 16 KiB
    // ut_metadata pieces.
    let mut data = vec![0u8; 14_000_000];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let file = work.join("data/f.bin");
    std::fs::write(&file, &data).unwrap();

    let mut magnet_v1 = String::new();
    for version in ["v1", "hybrid"] {
        let torrent = work.join(format!("{version}.torrent"));
        let mut c = Command::new(interop.join("lt_create.py"));
        c.arg(&file).arg("-o").arg(&torrent).args(["--version", version, "--piece-size", "16"]);
        let (code, out) = run(c, Duration::from_secs(60));
        assert_eq!(code, 0, "lt_create: {out}");
        let created = result_line(&out);
        let v1 = field(&created, "infohash_v1").expect("v1 hash").to_owned();
        let v2 = field(&created, "infohash_v2").filter(|h| *h != "-").map(str::to_owned);
        if version == "v1" {
            magnet_v1 = field(&created, "magnet").expect("magnet").to_owned();
        }

        let mut s = Command::new(interop.join("lt_seed.py"));
        s.arg("--torrent").arg(&torrent).arg("--data-dir").arg(work.join("data"));
        s.args(["--port", "0", "--no-trackers", "--timeout", "120"]);
        let (_seed, ready, _lines) = spawn_until(s, "READY", Duration::from_secs(60));
        let port = field(&ready, "port").expect("port");

        let mut f = Command::new(&example);
        f.args(["fetch", "--peer", &format!("127.0.0.1:{port}"), "--info-hash", &v1, "--pieces", "5"]);
        f.args(["--timeout", "60"]);
        if let Some(v2) = &v2 {
            f.args(["--info-hash-v2", v2]);
        }
        let (code, out) = run(f, Duration::from_secs(90));
        let line = result_line(&out);
        let _ = writeln!(std::io::stderr(), "{version}: {line}");
        assert_eq!(code, 0, "{line}");
        assert_eq!(field(&line, "status"), Some("ok"), "{line}");
        assert_eq!(field(&line, "metadata_pieces"), Some("2"), "{line}");
        assert_eq!(field(&line, "pieces_checked"), Some("5"), "{line}");
        assert_eq!(field(&line, "v2_ok"), Some(if v2.is_some() { "1" } else { "0" }), "{line}");
    }

    // The other direction: libtorrent dials us with only a magnet link and gets the metadata
    // (and the data) from the example.
    let mut s = Command::new(&example);
    s.arg("serve").arg("--torrent").arg(work.join("v1.torrent")).arg("--data").arg(&file);
    s.args(["--timeout", "90"]);
    let (mut server, ready, lines) = spawn_until(s, "READY", Duration::from_secs(30));
    let port = field(&ready, "port").expect("port");
    let mut l = Command::new(interop.join("lt_fetch.py"));
    l.args(["--magnet", &magnet_v1, "--peer", &format!("127.0.0.1:{port}"), "--no-trackers"]);
    l.args(["--enc", "disabled", "--timeout", "60"]).arg("--save-dir").arg(work.join("dl"));
    let (code, out) = run(l, Duration::from_secs(120));
    let line = result_line(&out);
    let _ = writeln!(std::io::stderr(), "lt_fetch from us: {line}");
    assert_eq!(code, 0, "{line}");
    assert_eq!(field(&line, "status"), Some("ok"), "{line}");
    assert_ne!(field(&line, "metadata_seconds"), Some("-"), "{line}");
    let served = lines.recv_timeout(Duration::from_secs(60)).expect("serve RESULT line");
    let _ = writeln!(std::io::stderr(), "serve: {served}");
    assert_eq!(field(&served, "status"), Some("ok"), "{served}");
    assert_eq!(field(&served, "metadata_pieces_served"), Some("2"), "{served}");
    let _ = server.0.wait();
    let _ = std::fs::remove_dir_all(&work);
}
