//! Interop with real tus peers from `shared/tus/` (loopback only):
//! tuspy and tus-js-client against our server, our client against
//! @tus/server. Skips with a printed message when a tool is missing; fails
//! instead when `PIECEWORK_INTEROP=require`. Run inside a loopback-only
//! network namespace (see `shared/interop/run-in-netns.sh`) after
//! `shared/tus/tus_setup.sh`. `PIECEWORK_INTEROP_MIB` sets the file size
//! (default 16).
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use piecework_upload::client::ClientConfig;
use piecework_upload::http_client::{UploadJob, upload_file};

fn shared_dir() -> PathBuf {
    let p = match std::env::var_os("PIECEWORK_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    // Resolve `..` through symlinks here, not lexically in the peers.
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn lab_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("PIECEWORK_LAB_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    base.join("piecework-lab")
}

/// `true` = go on; `false` = skipped (printed). Panics under `require`.
fn available(what: &str, ok: bool, hint: &str) -> bool {
    if ok {
        return true;
    }
    let msg = format!("SKIP interop: {what} not available ({hint})");
    if std::env::var("PIECEWORK_INTEROP").as_deref() == Ok("require") {
        panic!("{msg} and PIECEWORK_INTEROP=require");
    }
    // Straight to stderr so the test harness does not swallow it.
    let _ = writeln!(std::io::stderr(), "{msg}");
    false
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn tuspy_ready() -> bool {
    let script = shared_dir().join("tus/tus_upload.py");
    available(
        "tuspy",
        script.exists() && runs("python3", "--version") && lab_cache().join("tus-venv/bin/python").exists(),
        "needs python3 and shared/tus/tus_setup.sh run once",
    )
}

fn node_ready() -> bool {
    let nm = lab_cache().join("tus/node_modules");
    available(
        "node tus packages",
        shared_dir().join("tus/tus_server.sh").exists()
            && runs("node", "--version")
            && nm.join("@tus/server").exists()
            && nm.join("tus-js-client").exists(),
        "needs node >= 20.19 and shared/tus/tus_setup.sh run once",
    )
}

fn size() -> usize {
    std::env::var("PIECEWORK_INTEROP_MIB").ok().and_then(|s| s.parse().ok()).unwrap_or(16usize) << 20
}

/// Waits for `child` up to `limit`, killing it (by its PID) past that.
fn wait_bounded(mut child: Child, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut so) = child.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut so, &mut out);
            }
            return (status.success(), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peer did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tus_result(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("TUS_RESULT "))
        .unwrap_or_else(|| panic!("no TUS_RESULT in {out:?}"));
    serde_json::from_str(line).unwrap()
}

fn tuspy(endpoint: &str, file: &Path, extra: &[&str]) -> Child {
    Command::new("python3")
        .arg(shared_dir().join("tus/tus_upload.py"))
        .arg(endpoint)
        .arg(file)
        .args(extra)
        .args(["--timeout", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn tus_js(endpoint: &str, file: &Path, extra: &[&str]) -> Child {
    Command::new(shared_dir().join("tus/tus_upload_js.sh"))
        .arg(endpoint)
        .arg(file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn run_peer(child: Child) -> (bool, serde_json::Value) {
    let (ok, out) =
        tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(300))).await.unwrap();
    (ok, tus_result(&out))
}

/// The single `.bin` upload with the most bytes in `dir`.
fn largest_upload(dir: &Path) -> Option<(PathBuf, u64)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .max_by_key(|(_, l)| *l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_to_our_server_plain_and_checksum() {
    if !tuspy_ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(size(), 11);
    let file = write_file(src.path(), "src.bin", &bytes);
    for extra in [&["--chunk-size", "4M"][..], &["--chunk-size", "4M", "--checksum"]] {
        let (ok, r) = run_peer(tuspy(&server.endpoint(), &file, extra)).await;
        assert!(ok, "{r}");
        assert_eq!(r["final_offset"], bytes.len());
        let url = r["url"].as_str().unwrap();
        assert_eq!(stored(store.path(), url), bytes, "{extra:?}");
    }
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_killed_midway_resumes_on_our_server() {
    if !tuspy_ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(size().max(32 << 20), 12);
    let file = write_file(src.path(), "src.bin", &bytes);
    let urls = src.path().join("urls.json");
    let urls_s = urls.to_str().unwrap().to_owned();
    let args = ["--chunk-size", "1M", "--resume-from-url-store", &urls_s];
    let mut child = tuspy(&server.endpoint(), &file, &args);
    let half = bytes.len() as u64 / 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = largest_upload(store.path()).map_or(0, |(_, l)| l);
        if got >= half || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "client finished before it could be killed");
    child.kill().unwrap(); // SIGKILL to the PID we spawned
    child.wait().unwrap();
    let (ok, r) = run_peer(tuspy(&server.endpoint(), &file, &args)).await;
    assert!(ok, "{r}");
    assert_eq!(r["resumed"], true);
    assert!(r["start_offset"].as_u64().unwrap() > 0);
    assert_eq!(stored(store.path(), r["url"].as_str().unwrap()), bytes);
    server.task.abort();
}

#[test]
#[ignore = "helper: the server process that SIGKILL tests spawn"]
fn child_server_process() {
    child_server_main();
}

#[test]
fn tuspy_resumes_after_our_server_is_sigkilled_mid_patch() {
    if !tuspy_ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let bytes = data(size().max(32 << 20), 13);
    let file = write_file(src.path(), "src.bin", &bytes);
    let urls = src.path().join("urls.json");
    let urls_s = urls.to_str().unwrap().to_owned();
    let args = ["--chunk-size", "8M", "--resume-from-url-store", &urls_s];
    let server = spawn_server_process(store.path(), None);
    let addr = server.addr;
    let endpoint = server.endpoint();
    let mut child = tuspy(&endpoint, &file, &args);
    let half = bytes.len() as u64 / 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while largest_upload(store.path()).map_or(0, |(_, l)| l) < half
        && child.try_wait().unwrap().is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill(); // SIGKILL mid-transfer
    let _ = wait_bounded(child, Duration::from_secs(120));
    let server = spawn_server_process(store.path(), Some(addr));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (ok, r) = run_peer(tuspy(&endpoint, &file, &args)).await;
        assert!(ok, "{r}");
        assert_eq!(r["resumed"], true);
        assert_eq!(stored(store.path(), r["url"].as_str().unwrap()), bytes);
    });
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_plain_and_parallel_concatenation() {
    if !node_ready() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(size(), 14);
    let file = write_file(src.path(), "src.bin", &bytes);
    for extra in [&["--chunk-size", "4194304"][..], &["--parallel", "4"]] {
        let (ok, r) = run_peer(tus_js(&server.endpoint(), &file, extra)).await;
        assert!(ok, "{extra:?}: {r}");
        let url = r["url"].as_str().unwrap();
        assert_eq!(stored(store.path(), url), bytes, "{extra:?}");
    }
    server.task.abort();
}

struct NodeServer {
    child: Child,
    endpoint: String,
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_server(dir: &Path, env: &[(&str, &str)]) -> NodeServer {
    let mut child = Command::new(shared_dir().join("tus/tus_server.sh"))
        .arg("0")
        .arg(dir)
        .env("TUS_SERVER_TIMEOUT", "300")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("READY ") {
                let _ = tx.send(rest.split(' ').next().unwrap_or("").to_owned());
            }
        }
    });
    let endpoint = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(e) => e,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("@tus/server did not print READY");
        }
    };
    NodeServer { child, endpoint }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_uploads_to_tus_node_server_and_resumes() {
    if !node_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let node = node_server(dir.path(), &[("TUS_EXPIRATION_MS", "600000")]);
    let bytes = data(size(), 15);
    let file = write_file(src.path(), "src.bin", &bytes);

    // Plain upload.
    let mut job = UploadJob::new(&node.endpoint, &file);
    job.config = ClientConfig { chunk_size: 1 << 20, ..ClientConfig::default() };
    let url = upload_file(job.clone(), |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join(id_of(&url))).unwrap(), bytes);

    // Killed half-way, then resumed from the kept URL.
    job.resume_file = Some(src.path().join("url"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let j1 = job.clone();
    let task = tokio::spawn(async move {
        upload_file(j1, move |o, _| {
            let _ = tx.send(o);
        })
        .await
    });
    let mut reached = 0;
    while reached < bytes.len() as u64 / 2 {
        reached = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.unwrap().unwrap();
    }
    task.abort();
    let _ = task.await;
    let mut first = None;
    let url2 = upload_file(job, |o, _| {
        first.get_or_insert(o);
    })
    .await
    .unwrap();
    assert!(first.unwrap() > 0, "resumed");
    assert_eq!(std::fs::read(dir.path().join(id_of(&url2))).unwrap(), bytes);

    // Termination and expiration headers as @tus/server sends them.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(&node.endpoint)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["Location"].to_str().unwrap().to_owned();
    let exp = r.headers()["Upload-Expires"].as_bytes().to_vec();
    assert!(piecework_upload::headers::parse_expires(&exp).is_ok());
    let r = http.delete(&loc).header("Tus-Resumable", "1.0.0").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.head(&loc).header("Tus-Resumable", "1.0.0").send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 404 | 410));
}
