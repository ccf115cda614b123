//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use piecework_upload::http_server::{RunningServer, ServeConfig, spawn};

/// Deterministic, poorly compressible test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

pub fn config(dir: &Path) -> ServeConfig {
    let mut c = ServeConfig::new(dir);
    c.secret = SECRET.to_vec();
    c.idle_timeout = Duration::from_millis(500);
    c
}

pub async fn start(cfg: ServeConfig) -> RunningServer {
    spawn(cfg).await.expect("server starts")
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The id at the end of an upload URL.
pub fn id_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Bytes stored for upload `url` in store `dir`.
pub fn stored(dir: &Path, url: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{}.bin", id_of(url)))).unwrap()
}

/// Env var that turns the ignored `child_server_process` test of a test
/// binary into a server process (store dir in the value).
pub const CHILD_DIR: &str = "PIECEWORK_UPLOAD_CHILD_DIR";
/// Address the child binds (optional).
pub const CHILD_ADDR: &str = "PIECEWORK_UPLOAD_CHILD_ADDR";

/// Body of the ignored `child_server_process` helper test: serves `CHILD_DIR`
/// until killed (at most 300 s), printing `READY <addr>`.
pub fn child_server_main() {
    use std::io::Write as _;
    let dir = std::env::var(CHILD_DIR).expect("run only by spawn_server_process");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = config(Path::new(&dir));
        // Long enough that a stalled test body is cut by SIGKILL, not by this.
        cfg.idle_timeout = Duration::from_secs(120);
        if let Ok(a) = std::env::var(CHILD_ADDR) {
            cfg.listen = a.parse().unwrap();
        }
        let server = start(cfg).await;
        let mut out = std::io::stdout();
        writeln!(out, "READY {}", server.addr).unwrap();
        out.flush().unwrap();
        tokio::time::sleep(Duration::from_secs(300)).await;
    });
}

/// Our server in a child process (this test binary re-run as
/// `child_server_process`), so a test can SIGKILL it.
pub struct ChildServer {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl ChildServer {
    pub fn endpoint(&self) -> String {
        format!("http://{}/files/", self.addr)
    }

    /// SIGKILL, by the PID we spawned.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_server_process(dir: &Path, addr: Option<std::net::SocketAddr>) -> ChildServer {
    use std::io::BufRead as _;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_server_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(a) = addr {
        cmd.env(CHILD_ADDR, a.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("READY ") {
                let _ = tx.send(a.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => ChildServer { child, addr: a.parse().unwrap() },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server process did not start");
        }
    }
}
