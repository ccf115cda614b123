//! Interop: our HTTP and UDP clients against opentracker on loopback.
//!
//! Runs only inside the lab's loopback-only network namespace:
//!
//! ```sh
//! cargo test -p piecework-tracker --all-features --no-run
//! ../shared/interop/run-in-netns.sh --timeout 300 \
//!     cargo test --offline -p piecework-tracker --all-features --test opentracker -- --nocapture
//! ```
//!
//! Skips (prints why and passes) when opentracker, the lab scripts or the namespace are missing;
//! fails instead when `PIECEWORK_INTEROP=require`.
#![cfg(feature = "tokio")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use piecework_metainfo::{InfoHashV1, InfoHashV2};
use piecework_tracker::client::{Client, ClientSettings};
use piecework_tracker::{Announce, AnnounceResponse, Error, Event, PeerId, UdpSettings};

// Arbitrary, whitelisted in the tracker we start.
const HTTP_HASH: &str = "1111111111111111111111111111111111111111";
const UDP_HASH: &str = "2222222222222222222222222222222222222222";
// Never whitelisted.
const UNLISTED_HASH: &str = "3333333333333333333333333333333333333333";
// A v2 info-hash: trackers see its first 20 bytes (tracker.sh whitelists 40 hex digits of it).
const V2_HASH: &str = "4444444444444444444444444444444444444444555555555555555555555555";

fn v2_truncated_hex() -> String {
    V2_HASH.parse::<InfoHashV2>().expect("hex").truncated_id().to_hex()
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("PIECEWORK_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// Returns why the lab is unusable here, if it is.
fn lab_missing(tracker_sh: &std::path::Path) -> Option<String> {
    if !tracker_sh.is_file() {
        return Some(format!("{} not found (set PIECEWORK_SHARED)", tracker_sh.display()));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("opentracker").is_file()))
        .unwrap_or(false);
    if !on_path {
        return Some("opentracker is not installed (apt-get install opentracker)".into());
    }
    // Inside run-in-netns.sh the only interface is lo.
    // (/proc/self/net follows our namespace; /sys/class/net shows the mounter's.)
    let ifaces: Vec<String> = match std::fs::read_to_string("/proc/self/net/dev") {
        Ok(d) => d.lines().skip(2).filter_map(|l| l.split(':').next()).map(|i| i.trim().to_owned()).collect(),
        Err(e) => return Some(format!("cannot list network interfaces: {e}")),
    };
    if ifaces.iter().any(|i| i != "lo") {
        return Some(format!(
            "not inside a loopback-only namespace (interfaces: {}); run under shared/interop/run-in-netns.sh",
            ifaces.join(", ")
        ));
    }
    None
}

/// Kills the tracker (by PID, politely first so `timeout` passes it on) when dropped.
struct Tracker {
    child: Child,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for both TCP and UDP");
}

fn start_tracker(tracker_sh: &std::path::Path, port: u16) -> Tracker {
    let mut child = Command::new(tracker_sh)
        .args(["--port", &port.to_string(), "--timeout", "240", "--hash", HTTP_HASH, "--hash", UDP_HASH])
        .args(["--hash", V2_HASH])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracker.sh");
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[tracker.sh] {line}");
            }
        });
    }
    let tracker = Tracker { child };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "opentracker did not listen on {addr} within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    tracker
}

fn peer(n: u8, hash: &str, port: u16, left: u64) -> Announce {
    let mut id = *b"-PW0001-000000000000";
    id[19] = b'0' + n;
    let mut a = Announce::new(hash.parse::<InfoHashV1>().expect("hex"), PeerId::from_bytes(id), port);
    a.left = left;
    a.event = Event::Started;
    a.num_want = Some(50);
    a.key = Some(u32::from(n) * 1000);
    a
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn show(what: &str, r: &AnnounceResponse) {
    println!(
        "{what}: interval={} min_interval={:?} complete={:?} incomplete={:?} peers={:?}",
        r.interval, r.min_interval, r.complete, r.incomplete, r.peers
    );
}

/// Two peers announce on `url`; each must see the other, and a scrape must count one seeder and
/// one leecher.
async fn two_peers(client: &Client, url: &str, hash: &str, ports: (u16, u16)) {
    let leecher = peer(1, hash, ports.0, 1000);
    let seeder = peer(2, hash, ports.1, 0);
    let r = client.announce(url, &leecher).await.expect("leecher announce");
    show(&format!("{url} leecher started"), &r);
    assert!(r.interval > 0);
    let r = client.announce(url, &seeder).await.expect("seeder announce");
    show(&format!("{url} seeder started"), &r);
    assert!(r.peers.contains(&local(ports.0)), "seeder does not see the leecher: {:?}", r.peers);
    let mut again = leecher.clone();
    again.event = Event::None;
    let r = client.announce(url, &again).await.expect("leecher re-announce");
    show(&format!("{url} leecher again"), &r);
    assert!(r.peers.contains(&local(ports.1)), "leecher does not see the seeder: {:?}", r.peers);
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));

    let ih: InfoHashV1 = hash.parse().expect("hex");
    let s = client.scrape(url, &[ih]).await.expect("scrape");
    println!("{url} scrape: {:?}", s.files);
    let stats = s.get(&ih).expect("scraped hash present");
    assert_eq!((stats.complete, stats.incomplete), (1, 1));

    // Leaving: the seeder stops, and the scrape no longer counts it.
    let mut stop = seeder.clone();
    stop.event = Event::Stopped;
    client.announce(url, &stop).await.expect("stopped announce");
    let stats = client.scrape(url, &[ih]).await.expect("scrape").get(&ih).expect("present");
    println!("{url} scrape after stop: {stats:?}");
    assert_eq!((stats.complete, stats.incomplete), (0, 1));

    // The leecher finishes: it becomes the one seeder, and the download is counted.
    let mut done = leecher.clone();
    done.event = Event::Completed;
    done.left = 0;
    done.downloaded = 1000;
    client.announce(url, &done).await.expect("completed announce");
    let stats = client.scrape(url, &[ih]).await.expect("scrape").get(&ih).expect("present");
    println!("{url} scrape after completed: {stats:?}");
    assert_eq!((stats.complete, stats.incomplete, stats.downloaded), (1, 0, 1));
}

#[test]
fn opentracker_http_and_udp() {
    let require = std::env::var("PIECEWORK_INTEROP").is_ok_and(|v| v == "require");
    let tracker_sh = shared_dir().join("interop/tracker.sh");
    if let Some(why) = lab_missing(&tracker_sh) {
        assert!(!require, "PIECEWORK_INTEROP=require but the lab is unusable: {why}");
        println!("SKIP opentracker_http_and_udp: {why}");
        return;
    }
    let port = free_port();
    let _tracker = start_tracker(&tracker_sh, port);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let settings = ClientSettings::new()
            .http_timeout(Duration::from_secs(10))
            .udp(UdpSettings::new().base_timeout(Duration::from_secs(1)).max_retransmits(3))
            .bind(local(0), "[::1]:0".parse().expect("v6"));
        let client = Client::new(settings);
        let http = format!("http://127.0.0.1:{port}/announce");
        let udp = format!("udp://127.0.0.1:{port}/announce");
        two_peers(&client, &http, HTTP_HASH, (6001, 6002)).await;
        two_peers(&client, &udp, UDP_HASH, (6011, 6012)).await;

        // A v2 torrent announces its truncated hash, over both protocols.
        let v2 = v2_truncated_hex();
        let r = client.announce(&http, &peer(5, &v2, 6031, 0)).await.expect("v2 over HTTP");
        show(&format!("{http} v2 truncated {v2}"), &r);
        let r = client.announce(&udp, &peer(6, &v2, 6032, 0)).await.expect("v2 over UDP");
        show(&format!("{udp} v2 truncated {v2}"), &r);
        assert!(r.peers.contains(&local(6031)), "{:?}", r.peers);
        assert_eq!(r.complete, Some(2));

        // The whitelist refuses other torrents: over HTTP with a failure reason; over UDP
        // opentracker sends nothing at all, so the client must give up on its own.
        let r = client.announce(&http, &peer(3, UNLISTED_HASH, 6021, 1)).await;
        println!("{http} unlisted hash: {r:?}");
        assert!(matches!(r, Err(Error::TrackerFailure { .. })), "{r:?}");
        let impatient = Client::new(
            ClientSettings::new()
                .udp(UdpSettings::new().base_timeout(Duration::from_millis(200)).max_retransmits(2))
                .bind(local(0), "[::1]:0".parse().expect("v6")),
        );
        let started = Instant::now();
        let r = impatient.announce(&udp, &peer(3, UNLISTED_HASH, 6021, 1)).await;
        println!("{udp} unlisted hash: {r:?} after {:?}", started.elapsed());
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    });
    println!("opentracker interop: HTTP and UDP announce/scrape OK on 127.0.0.1:{port}");
}
