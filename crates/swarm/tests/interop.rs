//! Interop with real clients through the lab scripts in `shared/interop/` (libtorrent,
//! aria2 + opentracker, Transmission).
//!
//! Run inside the lab's loopback-only network namespace:
//!
//! ```sh
//! cargo test -p piecework-swarm --test interop --no-run
//! shared/interop/run-in-netns.sh --timeout 900 cargo test --offline -p piecework-swarm --test interop
//! ```
//!
//! Each test prints `SKIP ...` and passes when the client is missing or when it is not inside
//! a loopback-only namespace; with `PIECEWORK_INTEROP=require` those cases fail instead. The
//! lab is found at `<CARGO_MANIFEST_DIR>/../../../shared`, or at `$PIECEWORK_SHARED`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use piecework_metainfo::{InfoHashes, Magnet, Metainfo, TorrentBuilder, Version};
use piecework_swarm::{AddTorrent, Session, Settings};

const DEADLINE: Duration = Duration::from_secs(90);

fn init_logs() {
    if std::env::var_os("PIECEWORK_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_test_writer().try_init();
    }
}

fn require() -> bool {
    init_logs();
    std::env::var("PIECEWORK_INTEROP").is_ok_and(|v| v == "require")
}

fn skip(why: &str) -> Option<PathBuf> {
    assert!(!require(), "PIECEWORK_INTEROP=require but {why}");
    println!("SKIP: {why}");
    None
}

/// The lab's `interop` folder, if the lab and `client` are usable here.
fn lab(client: &str) -> Option<PathBuf> {
    init_logs();
    let shared = std::env::var_os("PIECEWORK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("interop");
    if !dir.join("lt_fetch.py").exists() {
        return skip(&format!("no interop lab at {}", dir.display()));
    }
    // Never talk to real clients outside the loopback-only namespace.
    // /proc/net/dev is per network namespace (sysfs may still show the host's).
    let ifaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
        .collect();
    if ifaces.iter().any(|i| i != "lo") {
        return skip("not inside the loopback-only namespace (run under shared/interop/run-in-netns.sh)");
    }
    let ok = match client {
        "libtorrent" => Command::new("/usr/bin/python3")
            .args(["-c", "import libtorrent"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        other => Command::new("sh")
            .args(["-c", &format!("command -v {other}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    };
    if !ok {
        return skip(&format!("{client} is not installed"));
    }
    Some(dir)
}

/// A child process killed (by its PID) when dropped.
struct Guard {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Guard {
    fn spawn(cmd: &mut Command) -> Guard {
        use std::os::unix::process::CommandExt as _;
        // Its own process group, so the script's children (the daemons) go with it.
        let mut child = cmd.stdout(Stdio::piped()).process_group(0).spawn().expect("spawn lab script");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("  | {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Guard { child, lines }
    }

    /// The first line starting with `prefix`, within `timeout`.
    fn wait_for(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("no {prefix} line within {timeout:?}"),
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

struct Fixture {
    dir: tempfile::TempDir,
    torrent: Vec<u8>,
    torrent_path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    hashes: InfoHashes,
}

/// A folder `share` of two files (about 3 MiB) under `seed/`, and its torrent.
fn fixture(version: Version, tracker: Option<&str>) -> Fixture {
    let dir = tempfile::Builder::new().prefix("pw-interop").tempdir_in("/tmp").unwrap();
    let files =
        vec![("a.bin".to_owned(), payload(2_000_003, 1)), ("b.bin".to_owned(), payload(1_100_000, 2))];
    let root = dir.path().join("seed/share");
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in &files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let mut b = TorrentBuilder::new(version).piece_length(Some(64 * 1024));
    if let Some(t) = tracker {
        b = b.tracker(t);
    }
    let torrent = b.build_path(&root, &mut |_, _| {}).unwrap();
    let torrent_path = dir.path().join("share.torrent");
    std::fs::write(&torrent_path, &torrent).unwrap();
    let hashes = Metainfo::parse(&torrent).unwrap().info_hashes();
    Fixture { dir, torrent, torrent_path, files, hashes }
}

impl Fixture {
    fn check(&self, out: &Path) {
        for (name, data) in &self.files {
            let got = std::fs::read(out.join("share").join(name)).unwrap_or_default();
            assert!(got == *data, "{name} under {} differs from the source", out.display());
        }
    }

    fn magnet(&self, v1: bool, v2: bool) -> String {
        let h =
            InfoHashes::from_parts(self.hashes.v1().filter(|_| v1), self.hashes.v2().filter(|_| v2)).unwrap();
        Magnet::new(h).to_string()
    }
}

fn settings() -> Settings {
    let mut s = Settings::default();
    s.trackers = false;
    s
}

/// Our seeder, `lt_fetch.py` downloading from it (by .torrent or a magnet link).
fn ours_to_libtorrent(version: Version, magnet: Option<(bool, bool)>) {
    let Some(lab) = lab("libtorrent") else { return };
    let f = fixture(version, None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let session = rt.block_on(Session::new(settings())).unwrap();
    rt.block_on(session.add_torrent(AddTorrent::torrent(f.torrent.clone(), f.dir.path().join("seed"))))
        .unwrap();
    let addr = session.listen_addr().unwrap();
    let out = f.dir.path().join("lt");
    let mut cmd = Command::new(lab.join("lt_fetch.py"));
    match magnet {
        Some((v1, v2)) => cmd.args(["--magnet", &f.magnet(v1, v2)]),
        None => cmd.args(["--torrent", f.torrent_path.to_str().unwrap()]),
    };
    cmd.args([
        "--save-dir",
        out.to_str().unwrap(),
        "--peer",
        &addr.to_string(),
        "--timeout",
        "60",
        "--no-trackers",
    ]);
    let r = rt.block_on(async { tokio::task::spawn_blocking(move || cmd.output()).await }).unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let line = stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("no RESULT line").to_owned();
    println!("{line}");
    if !r.status.success() {
        println!("{}", String::from_utf8_lossy(&r.stderr));
    }
    assert_eq!(field(&line, "status"), Some("ok"), "{line}");
    assert!(r.status.success());
    let stats = rt.block_on(async {
        let s = session.clone();
        s.shutdown().await;
        s
    });
    drop(stats);
    f.check(&out);
}

/// `lt_seed.py` seeding, our leecher downloading (by .torrent or a magnet link).
fn libtorrent_to_ours(version: Version, magnet: Option<(bool, bool)>) {
    let Some(lab) = lab("libtorrent") else { return };
    let f = fixture(version, None);
    let seed = Guard::spawn(Command::new(lab.join("lt_seed.py")).args([
        "--torrent",
        f.torrent_path.to_str().unwrap(),
        "--data-dir",
        f.dir.path().join("seed").to_str().unwrap(),
        "--port",
        "0",
        "--no-trackers",
        "--timeout",
        "120",
    ]));
    let ready = seed.wait_for("READY", Duration::from_secs(30));
    let port: u16 = field(&ready, "port").and_then(|p| p.parse().ok()).expect("READY port=");
    let peer: SocketAddr = ([127, 0, 0, 1], port).into();
    let out = f.dir.path().join("ours");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (secs, stats) = rt.block_on(async {
        let session = Session::new(settings()).await.unwrap();
        let add = match magnet {
            Some((v1, v2)) => AddTorrent::magnet(Magnet::parse(&f.magnet(v1, v2)).unwrap(), &out),
            None => AddTorrent::torrent(f.torrent.clone(), &out),
        };
        let start = std::time::Instant::now();
        let t = session.add_torrent(add.peer(peer)).await.unwrap();
        tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("download finished in time").unwrap();
        let secs = start.elapsed().as_secs_f64();
        let stats = t.stats();
        session.shutdown().await;
        (secs, stats)
    });
    println!(
        "RESULT client=piecework status=ok bytes={} seconds={secs:.3} hash_failures={} peer_client=libtorrent",
        stats.have_bytes, stats.hash_failures
    );
    assert_eq!(stats.hash_failures, 0);
    assert!(stats.complete);
    drop(seed);
    f.check(&out);
}

#[test]
fn ours_to_libtorrent_v1() {
    ours_to_libtorrent(Version::V1, None);
}

#[test]
fn ours_to_libtorrent_v2() {
    ours_to_libtorrent(Version::V2, None);
}

#[test]
fn ours_to_libtorrent_hybrid() {
    ours_to_libtorrent(Version::Hybrid, None);
}

#[test]
fn ours_to_libtorrent_magnet_btih_v1() {
    ours_to_libtorrent(Version::V1, Some((true, false)));
}

#[test]
fn ours_to_libtorrent_magnet_both_hybrid() {
    ours_to_libtorrent(Version::Hybrid, Some((true, true)));
}

/// A v2-only magnet: libtorrent gets the piece layers from us with BEP 52 hash requests.
#[test]
fn ours_to_libtorrent_magnet_btmh_v2() {
    ours_to_libtorrent(Version::V2, Some((false, true)));
}

#[test]
fn libtorrent_to_ours_v1() {
    libtorrent_to_ours(Version::V1, None);
}

#[test]
fn libtorrent_to_ours_v2() {
    libtorrent_to_ours(Version::V2, None);
}

#[test]
fn libtorrent_to_ours_hybrid() {
    libtorrent_to_ours(Version::Hybrid, None);
}

#[test]
fn libtorrent_to_ours_magnet_btih_v1() {
    libtorrent_to_ours(Version::V1, Some((true, false)));
}

#[test]
fn libtorrent_to_ours_magnet_btih_hybrid() {
    libtorrent_to_ours(Version::Hybrid, Some((true, false)));
}

#[test]
fn libtorrent_to_ours_magnet_btmh_hybrid() {
    libtorrent_to_ours(Version::Hybrid, Some((false, true)));
}

#[test]
fn libtorrent_to_ours_magnet_both_hybrid() {
    libtorrent_to_ours(Version::Hybrid, Some((true, true)));
}

/// A v2-only magnet: we get the piece layers from libtorrent with BEP 52 hash requests.
#[test]
fn libtorrent_to_ours_magnet_btmh_v2() {
    libtorrent_to_ours(Version::V2, Some((false, true)));
}

/// aria2 finds our seeder through opentracker (v1 only: aria2 1.36 gets hybrid hashes wrong).
#[test]
fn ours_to_aria2_via_opentracker() {
    let Some(lab) = lab("aria2c") else { return };
    if lab_has("opentracker").is_none() {
        return;
    }
    let port = 6969;
    let url = format!("http://127.0.0.1:{port}/announce");
    let f = fixture(Version::V1, Some(&url));
    let tracker = Guard::spawn(Command::new(lab.join("tracker.sh")).args([
        "--port",
        &port.to_string(),
        "--timeout",
        "120",
        "--torrent",
        f.torrent_path.to_str().unwrap(),
    ]));
    wait_port(port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut s = Settings::default();
    s.trackers = true;
    let session = rt.block_on(Session::new(s)).unwrap();
    let t = rt
        .block_on(session.add_torrent(AddTorrent::torrent(f.torrent.clone(), f.dir.path().join("seed"))))
        .unwrap();
    // Let the seeder's `started` announce land before aria2 asks for peers.
    std::thread::sleep(Duration::from_secs(1));
    let out = f.dir.path().join("aria2");
    let mut cmd = Command::new(lab.join("aria2_fetch.sh"));
    cmd.args([
        "--torrent",
        f.torrent_path.to_str().unwrap(),
        "--save-dir",
        out.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    let r = rt.block_on(async { tokio::task::spawn_blocking(move || cmd.output()).await }).unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let line = stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("no RESULT line").to_owned();
    println!("{line}");
    let st = t.stats();
    println!(
        "seeder uploaded {} bytes to {} peers, announces ok={} failed={}",
        st.uploaded, st.peers_max, st.announces_ok, st.announces_failed
    );
    assert_eq!(field(&line, "status"), Some("ok"), "{line}\n{}", String::from_utf8_lossy(&r.stderr));
    rt.block_on(session.shutdown());
    drop(tracker);
    f.check(&out);
}

fn lab_has(tool: &str) -> Option<()> {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { Some(()) } else { skip(&format!("{tool} is not installed")).map(|_| ()) }
}

fn wait_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Transmission downloads from our seeder; it never dials loopback peers, so we dial in.
#[test]
fn ours_to_transmission() {
    let Some(lab) = lab("transmission-daemon") else { return };
    let f = fixture(Version::V1, None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tport = 51413;
    let mut add = AddTorrent::torrent(f.torrent.clone(), f.dir.path().join("seed"));
    add = add.peer(([127, 0, 0, 1], tport).into());
    let mut s = settings();
    s.reconnect_interval = Duration::from_millis(250);
    let session = rt.block_on(Session::new(s)).unwrap();
    let t = rt.block_on(session.add_torrent(add)).unwrap();
    let out = f.dir.path().join("tr");
    let mut cmd = Command::new(lab.join("transmission_fetch.sh"));
    cmd.args([
        "--torrent",
        f.torrent_path.to_str().unwrap(),
        "--save-dir",
        out.to_str().unwrap(),
        "--port",
        &tport.to_string(),
        "--rpc-port",
        "9191",
        "--timeout",
        "90",
    ]);
    let r = rt.block_on(async { tokio::task::spawn_blocking(move || cmd.output()).await }).unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let line = stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("no RESULT line").to_owned();
    println!("{line}");
    assert_eq!(field(&line, "status"), Some("ok"), "{line}\n{}", String::from_utf8_lossy(&r.stderr));
    println!("seeder uploaded {} bytes", t.stats().uploaded);
    rt.block_on(session.shutdown());
    f.check(&out);
}

/// Transmission seeds; our leecher dials its peer port.
#[test]
fn transmission_to_ours() {
    let Some(lab) = lab("transmission-daemon") else { return };
    let f = fixture(Version::V1, None);
    let tport = 51414;
    let seed = Guard::spawn(Command::new(lab.join("transmission_fetch.sh")).args([
        "--seed",
        "--torrent",
        f.torrent_path.to_str().unwrap(),
        "--save-dir",
        f.dir.path().join("seed").to_str().unwrap(),
        "--port",
        &tport.to_string(),
        "--rpc-port",
        "9192",
        "--timeout",
        "120",
    ]));
    seed.wait_for("READY", Duration::from_secs(60));
    let out = f.dir.path().join("ours");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (secs, stats) = rt.block_on(async {
        let mut s = settings();
        s.reconnect_interval = Duration::from_millis(250);
        let session = Session::new(s).await.unwrap();
        let start = std::time::Instant::now();
        let t = session
            .add_torrent(AddTorrent::torrent(f.torrent.clone(), &out).peer(([127, 0, 0, 1], tport).into()))
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, t.wait_complete()).await.expect("download finished in time").unwrap();
        let secs = start.elapsed().as_secs_f64();
        let stats = t.stats();
        session.shutdown().await;
        (secs, stats)
    });
    println!(
        "RESULT client=piecework status=ok bytes={} seconds={secs:.3} hash_failures={} peer_client=transmission",
        stats.have_bytes, stats.hash_failures
    );
    assert_eq!(stats.hash_failures, 0);
    drop(seed);
    f.check(&out);
}
