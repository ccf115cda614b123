//! The fast `PATCH` transport (sendfile, pipelined) against our server, with a
//! loopback proxy in between that watches pipelining and injects faults.
#![cfg(all(feature = "server", feature = "client", target_os = "linux"))]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use piecework_upload::checksum::ChecksumAlgorithm;
use piecework_upload::client::ClientConfig;
use piecework_upload::http_client::{UploadJob, upload_file};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What the proxy does to the first connection that starts with a `PATCH`.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Flip the byte at this position of the client's stream.
    Flip(usize),
    /// Close both sides once this many client bytes went through.
    Cut(usize),
}

#[derive(Default)]
struct Seen {
    patch_conns: AtomicUsize,
    /// Most requests a connection had sent with their answers not yet back.
    max_outstanding: AtomicI64,
    faulted: AtomicBool,
}

/// Counts occurrences of `needle` across reads.
struct Matcher {
    needle: &'static [u8],
    tail: Vec<u8>,
}

impl Matcher {
    fn new(needle: &'static [u8]) -> Self {
        Self { needle, tail: Vec::new() }
    }

    fn count(&mut self, data: &[u8]) -> i64 {
        let mut w = std::mem::take(&mut self.tail);
        w.extend_from_slice(data);
        let n = w.windows(self.needle.len()).filter(|x| *x == self.needle).count();
        let keep = w.len().saturating_sub(self.needle.len() - 1);
        self.tail = w[keep..].to_vec();
        n as i64
    }
}

async fn proxy(to: SocketAddr, fault: Fault) -> (SocketAddr, Arc<Seen>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = l.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(to).await.unwrap();
            let seen = s2.clone();
            tokio::spawn(relay(client, server, seen, fault));
        }
    });
    (addr, seen)
}

async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, seen: Arc<Seen>, fault: Fault) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let outstanding = Arc::new(AtomicI64::new(0));
    let o2 = outstanding.clone();
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut answers = Matcher::new(b"HTTP/1.1 ");
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            o2.fetch_sub(answers.count(&buf[..n]), Ordering::SeqCst);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    // Every request line, so answers to POST and HEAD balance too.
    let mut requests = Matcher::new(b" HTTP/1.1\r\n");
    let mut pos = 0usize;
    let mut armed = None;
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if pos == 0 && buf[..n].starts_with(b"PATCH") {
            seen.patch_conns.fetch_add(1, Ordering::SeqCst);
            if !seen.faulted.swap(true, Ordering::SeqCst) {
                armed = Some(fault);
            }
        }
        let added = requests.count(&buf[..n]);
        let now = outstanding.fetch_add(added, Ordering::SeqCst) + added;
        seen.max_outstanding.fetch_max(now, Ordering::SeqCst);
        match armed {
            Some(Fault::Flip(at)) if (pos..pos + n).contains(&at) => buf[at - pos] ^= 0x55,
            Some(Fault::Cut(at)) if pos + n >= at => break,
            _ => {}
        }
        pos += n;
        if sw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    drop(sw);
    if matches!(armed, Some(Fault::Cut(_))) {
        back.abort();
    } else {
        let _ = back.await;
    }
}

fn job(endpoint: &str, path: &std::path::Path, chunk: u64, sendfile: bool) -> UploadJob {
    let mut j = UploadJob::new(endpoint, path);
    j.config = ClientConfig {
        chunk_size: chunk,
        sendfile,
        backoff: vec![Duration::from_millis(10)],
        io_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_uploads_multi_chunk_files_pipelined() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(5 * 1024 * 1024 + 321, 7);
    let file = write_file(src.path(), "a.bin", &bytes);
    for (sendfile, checksum) in [(true, None), (true, Some(ChecksumAlgorithm::Sha256)), (false, None)] {
        let (addr, seen) = proxy(server.addr, Fault::None).await;
        let mut j = job(&format!("http://{addr}/files/"), &file, 512 * 1024, sendfile);
        j.config.checksum = checksum;
        let mut progress = Vec::new();
        let url = upload_file(j, |o, _| progress.push(o)).await.unwrap();
        assert_eq!(stored(store.path(), &url), bytes, "sendfile {sendfile} checksum {checksum:?}");
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
        // After creation, once per confirmed chunk (11 of them), once when done.
        assert_eq!(progress.len(), 13, "{progress:?}");
        assert_eq!(progress.last(), Some(&(bytes.len() as u64)));
        if sendfile {
            assert_eq!(seen.patch_conns.load(Ordering::SeqCst), 1, "one kept-alive fast connection");
        }
        let most = seen.max_outstanding.load(Ordering::SeqCst);
        assert_eq!(most, if sendfile { 2 } else { 1 }, "pipelined (two at most) only on the fast path");
    }
    server.task.abort();
}

/// Uploads `len` bytes in `chunk`-byte PATCHes through a proxy that injects `fault`,
/// checks that the stored bytes are the source's, and returns how many connections
/// started with a PATCH.
async fn upload_through(
    fault: Fault,
    len: usize,
    seed: u64,
    chunk: usize,
    checksum: Option<ChecksumAlgorithm>,
) -> usize {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(len, seed);
    let file = write_file(src.path(), "f.bin", &bytes);
    let (addr, seen) = proxy(server.addr, fault).await;
    let mut j = job(&format!("http://{addr}/files/"), &file, chunk as u64, true);
    j.config.checksum = checksum;
    let url = upload_file(j, |_, _| {}).await.unwrap();
    assert_eq!(stored(store.path(), &url), bytes);
    server.task.abort();
    seen.patch_conns.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_chunk_rejected_then_upload_completes() {
    let chunk = 256 * 1024;
    // Inside the second chunk's body (each head is under 300 bytes): that
    // chunk fails its checksum (460), the one pipelined behind it gets 409.
    let fault = Fault::Flip(chunk + chunk / 2);
    let conns = upload_through(fault, 2 * 1024 * 1024 + 5, 8, chunk, Some(ChecksumAlgorithm::Crc32c)).await;
    assert!(conns >= 2, "the connection was dropped and a new one made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_pipeline_resumes() {
    let chunk = 256 * 1024;
    let conns = upload_through(Fault::Cut(3 * chunk + 100), 2 * 1024 * 1024, 9, chunk, None).await;
    assert!(conns >= 2);
}
