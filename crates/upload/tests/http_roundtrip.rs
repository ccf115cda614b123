//! Our client against our server over 127.0.0.1.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use piecework_upload::checksum::{Checksum, ChecksumAlgorithm};
use piecework_upload::client::ClientConfig;
use piecework_upload::headers::encode_checksum;
use piecework_upload::http_client::{UploadJob, upload_file};
use piecework_upload::http_server::{create_share, share_url};
use piecework_upload::merkle::pieces_root_of;
use piecework_upload::share::{PasswordParams, sign_link};
use piecework_upload::{UploadId, UploadInfo};

const CHEAP: PasswordParams = PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

fn job(endpoint: &str, path: &std::path::Path, chunk: u64) -> UploadJob {
    let mut j = UploadJob::new(endpoint, path);
    j.config = ClientConfig { chunk_size: chunk, ..ClientConfig::default() };
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_roundtrip_with_pieces_root() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(3 * 1024 * 1024 + 123, 1);
    let file = write_file(src.path(), "a.bin", &bytes);
    let mut seen = Vec::new();
    let url = upload_file(job(&server.endpoint(), &file, 512 * 1024), |o, _| seen.push(o)).await.unwrap();
    assert_eq!(stored(store.path(), &url), bytes);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress only grows");
    assert_eq!(seen.last(), Some(&(bytes.len() as u64)));
    let info = std::fs::read_to_string(store.path().join(format!("{}.info", id_of(&url)))).unwrap();
    let info = UploadInfo::decode(&info).unwrap();
    assert_eq!(info.root, pieces_root_of(&bytes));
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_killed_midway_resumes() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(4 * 1024 * 1024, 2);
    let file = write_file(src.path(), "b.bin", &bytes);
    let resume = src.path().join("b.url");
    let mut j = job(&server.endpoint(), &file, 256 * 1024);
    j.resume_file = Some(resume.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let j1 = j.clone();
    let task = tokio::spawn(async move {
        upload_file(j1, move |o, _| {
            let _ = tx.send(o);
        })
        .await
    });
    let total = bytes.len() as u64;
    let mut reached = 0;
    while reached < total / 2 {
        reached = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("progress")
            .expect("upload running");
    }
    task.abort();
    let _ = task.await;
    let url = std::fs::read_to_string(&resume).expect("url kept for resume");
    assert!(stored(store.path(), &url).len() < bytes.len(), "stopped early");
    let mut first = None;
    let url2 = upload_file(j, |o, _| {
        first.get_or_insert(o);
    })
    .await
    .unwrap();
    assert_eq!(url2, url);
    assert!(first.unwrap() >= total / 2, "resumed, did not restart");
    assert_eq!(stored(store.path(), &url), bytes);
    assert!(!resume.exists(), "resume file removed when done");
    server.task.abort();
}

#[test]
#[ignore = "helper: the server process that SIGKILL tests spawn"]
fn child_server_process() {
    child_server_main();
}

#[test]
fn server_sigkilled_mid_patch_then_resume() {
    let store = tempfile::tempdir().unwrap();
    let bytes = data(6 * 1024 * 1024, 3);
    let half = bytes.len() / 2;
    let rt = tokio::runtime::Runtime::new().unwrap();
    // First server life, in its own process: create, one good chunk, then a
    // PATCH that is cut when the server is SIGKILLed.
    let server = spawn_server_process(store.path(), None);
    let addr = server.addr;
    let loc = rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .post(server.endpoint())
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", bytes.len().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let loc = r.headers()["Location"].to_str().unwrap().to_owned();
        let r = http
            .patch(format!("http://{addr}{loc}"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes[..half].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {half}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            bytes.len() - half
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&bytes[half..half + 2_500_000]).await.unwrap();
        s.flush().await.unwrap();
        // Wait until part of the body is on disk (past the write buffers: two
        // 1 MiB O_DIRECT ones fill) but not acknowledged.
        let bin = store.path().join(format!("{}.bin", id_of(&loc)));
        let mut on_disk = 0;
        for _ in 0..500 {
            on_disk = std::fs::metadata(&bin).map_or(0, |m| m.len());
            if on_disk > half as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(on_disk > half as u64, "unacknowledged bytes reached the disk");
        server.kill();
        drop(s);
        loc
    });
    // Second life on the same directory and address.
    let server = spawn_server_process(store.path(), Some(addr));
    rt.block_on(async {
        let url = format!("http://{}{}", server.addr, loc);
        let src = tempfile::tempdir().unwrap();
        let file = write_file(src.path(), "c.bin", &bytes);
        let mut j = job(&server.endpoint(), &file, 256 * 1024);
        j.resume_url = Some(url.clone());
        let mut first = None;
        upload_file(j, |o, _| {
            first.get_or_insert(o);
        })
        .await
        .unwrap();
        assert_eq!(first, Some(half as u64), "resumed at the acknowledged offset");
        assert_eq!(stored(store.path(), &url), bytes);
    });
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_body_unlocks_and_keeps_prefix() {
    let store = tempfile::tempdir().unwrap();
    let mut cfg = config(store.path());
    cfg.idle_timeout = Duration::from_secs(60);
    let server = start(cfg).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(server.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1000")
        .send()
        .await
        .unwrap();
    let loc = r.headers()["Location"].to_str().unwrap().to_owned();
    let url = format!("http://{}{}", server.addr, loc);
    {
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&[1u8; 400]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    } // connection closed mid-body
    let mut offset = None;
    for _ in 0..200 {
        let r = http.head(&url).header("Tus-Resumable", "1.0.0").send().await.unwrap();
        offset = r.headers().get("Upload-Offset").map(|v| v.to_str().unwrap().to_owned());
        if offset.as_deref() == Some("400") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(offset.as_deref(), Some("400"));
    let r = http
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "400")
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![1u8; 600])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "not left locked");
    assert_eq!(stored(store.path(), &url), vec![1u8; 1000]);
    server.task.abort();
}

async fn create(http: &reqwest::Client, endpoint: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = http.post(endpoint).header("Tus-Resumable", "1.0.0");
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

fn location(base: &str, r: &reqwest::Response) -> String {
    let loc = r.headers()["Location"].to_str().unwrap();
    format!("{}{}", base.trim_end_matches("/files/"), loc)
}

async fn patch(
    http: &reqwest::Client,
    url: &str,
    offset: u64,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut rb = http
        .patch(url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body);
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

async fn head_offset(http: &reqwest::Client, url: &str) -> (u16, Option<String>) {
    let r = http.head(url).header("Tus-Resumable", "1.0.0").send().await.unwrap();
    let o = r.headers().get("Upload-Offset").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_is_460_and_offset_stays() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let ep = server.endpoint();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = create(&http, &ep, &[("Upload-Length", "100000")]).await;
    let url = location(&ep, &r);
    let body = data(100_000, 4);
    for alg in ChecksumAlgorithm::ALL {
        let wrong = encode_checksum(&Checksum::of(alg, b"something else"));
        let r = patch(&http, &url, 0, body.clone(), &[("Upload-Checksum", &wrong)]).await;
        assert_eq!(r.status(), 460, "{alg:?}");
        assert_eq!(head_offset(&http, &url).await, (200, Some("0".into())));
    }
    let good = encode_checksum(&Checksum::of(ChecksumAlgorithm::Sha256, &body));
    let r = patch(&http, &url, 0, body.clone(), &[("Upload-Checksum", &good)]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(stored(store.path(), &url), body);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concatenation_then_tar_share() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let ep = server.endpoint();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let parts = [data(70_000, 5), data(33_333, 6), data(1, 7)];
    let mut urls = Vec::new();
    for p in &parts {
        let len = p.len().to_string();
        let r = create(&http, &ep, &[("Upload-Length", &len), ("Upload-Concat", "partial")]).await;
        assert_eq!(r.status(), 201);
        let url = location(&ep, &r);
        assert_eq!(patch(&http, &url, 0, p.clone(), &[]).await.status(), 204);
        urls.push(url);
    }
    let fin = format!("final;{}", urls.join(" "));
    let r = create(&http, &ep, &[("Upload-Concat", &fin)]).await;
    assert_eq!(r.status(), 201);
    let final_url = location(&ep, &r);
    let joined: Vec<u8> = parts.concat();
    assert_eq!(stored(store.path(), &final_url), joined);

    // Multi-file share of two parts and the final upload, as a tar stream.
    let ids: Vec<(UploadId, Option<String>)> = [&urls[0], &urls[1], &final_url]
        .iter()
        .enumerate()
        .map(|(i, u)| (UploadId::new(&id_of(u)).unwrap(), Some(format!("f{i}.bin"))))
        .collect();
    let share = create_share(store.path(), &ids, None, CHEAP).unwrap();
    let exp = now_secs() + 3600;
    let link = share_url(&format!("http://{}", server.addr), SECRET, &share, exp);
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let tar_bytes = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut got = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
        got.push((name, buf));
    }
    assert_eq!(
        got,
        vec![
            ("f0.bin".to_owned(), parts[0].clone()),
            ("f1.bin".to_owned(), parts[1].clone()),
            ("f2.bin".to_owned(), joined),
        ]
    );
    server.task.abort();
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_links_password_range() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let bytes = data(50_000, 8);
    let file = write_file(src.path(), "s.bin", &bytes);
    let url = upload_file(job(&server.endpoint(), &file, 1 << 20), |_, _| {}).await.unwrap();
    let id = UploadId::new(&id_of(&url)).unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let open = create_share(store.path(), &[(id.clone(), None)], None, CHEAP).unwrap();
    let exp = now_secs() + 600;
    let link = share_url(&base, SECRET, &open, exp);
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), bytes);

    // Range.
    let r = http.get(&link).header("Range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["Content-Range"], "bytes 100-199/50000");
    assert_eq!(r.bytes().await.unwrap(), bytes[100..200]);
    let r = http.get(&link).header("Range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), bytes[bytes.len() - 10..]);
    let r = http.get(&link).header("Range", "bytes=60000-").send().await.unwrap();
    assert_eq!(r.status(), 416);

    // Tampered: another expiry, another share id, a flipped signature.
    let tampered = link.replace(&format!("exp={exp}"), &format!("exp={}", exp + 1));
    assert_eq!(http.get(&tampered).send().await.unwrap().status(), 403);
    let sig = sign_link(SECRET, open.as_str(), exp);
    let mut bad = sig.clone().into_bytes();
    bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let r = http.get(link.replace(&sig, &bad)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = http.get(format!("{base}/shares/{}", open.as_str())).send().await.unwrap();
    assert_eq!(r.status(), 403, "no signature");

    // Expired but genuine.
    let old = share_url(&base, SECRET, &open, now_secs() - 1);
    assert_eq!(http.get(&old).send().await.unwrap().status(), 410);

    // Password.
    let locked = create_share(store.path(), &[(id, None)], Some("s3cret"), CHEAP).unwrap();
    let link = share_url(&base, SECRET, &locked, exp);
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("WWW-Authenticate"));
    assert!(r.bytes().await.unwrap().is_empty());
    let r = http.get(&link).basic_auth("x", Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.bytes().await.unwrap().is_empty(), "no bytes on a wrong password");
    let r = http.get(&link).basic_auth("x", Some("s3cret")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    // The manifest keeps only an Argon2id hash.
    let manifest =
        std::fs::read_to_string(store.path().join("shares").join(format!("{}.share", locked.as_str())))
            .unwrap();
    assert!(manifest.contains("$argon2id$") && !manifest.contains("s3cret"));
    server.task.abort();
}

#[cfg(feature = "zstd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_download_compresses_text_and_passes_noise() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let mut bytes = b"piecework ".repeat(100_000);
    bytes.extend(data(300_000, 21));
    let file = write_file(src.path(), "z.bin", &bytes);
    let url = upload_file(job(&server.endpoint(), &file, 1 << 20), |_, _| {}).await.unwrap();
    let id = UploadId::new(&id_of(&url)).unwrap();
    let share = create_share(store.path(), &[(id, None)], None, CHEAP).unwrap();
    let link = share_url(&format!("http://{}", server.addr), SECRET, &share, now_secs() + 60);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http.get(&link).header("Accept-Encoding", "gzip, zstd").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["Content-Encoding"], "zstd");
    let wire = r.bytes().await.unwrap();
    assert!(wire.len() < 400_000, "text part compressed: {}", wire.len());
    assert!(wire.len() > 300_000, "noise part not inflated away");
    assert_eq!(zstd::decode_all(&wire[..]).unwrap(), bytes);
    // Ranges and clients that refuse zstd get identity.
    let r = http.get(&link).header("Accept-Encoding", "zstd;q=0").send().await.unwrap();
    assert!(r.headers().get("Content-Encoding").is_none());
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let r =
        http.get(&link).header("Accept-Encoding", "zstd").header("Range", "bytes=0-9").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &bytes[..10]);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_checks_the_prefix_and_restarts_when_the_file_changed() {
    let store = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let old = data(100_000, 30);
    let r = create(&http, &server.endpoint(), &[("Upload-Length", "100000")]).await;
    let url = location(&server.endpoint(), &r);
    assert_eq!(patch(&http, &url, 0, old[..40_000].to_vec(), &[]).await.status(), 204);
    // The local file changed in the part already sent.
    let mut new = old.clone();
    new[10] ^= 0xff;
    let file = write_file(src.path(), "f.bin", &new);
    let mut j = job(&server.endpoint(), &file, 16 * 1024);
    j.resume_url = Some(url.clone());
    j.config.verify_prefix = true;
    let url2 = upload_file(j.clone(), |_, _| {}).await.unwrap();
    assert_ne!(url2, url, "started over");
    assert_eq!(stored(store.path(), &url2), new);
    // An unchanged prefix resumes in place.
    let r = create(&http, &server.endpoint(), &[("Upload-Length", "100000")]).await;
    let url3 = location(&server.endpoint(), &r);
    assert_eq!(patch(&http, &url3, 0, new[..40_000].to_vec(), &[]).await.status(), 204);
    j.resume_url = Some(url3.clone());
    let mut first = None;
    let url4 = upload_file(j, |o, _| {
        first.get_or_insert(o);
    })
    .await
    .unwrap();
    assert_eq!((url4, first), (url3.clone(), Some(40_000)));
    assert_eq!(stored(store.path(), &url3), new);
    server.task.abort();
}

/// Sends a chunked PATCH of `body` at offset 0 to `path` with an `Upload-Checksum` trailer;
/// returns the response.
async fn patch_with_trailer(addr: std::net::SocketAddr, path: &str, body: &[u8], checksum: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (a, b) = body.split_at(body.len() / 2);
    let mut req = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Upload-Checksum\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in [a, b] {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("0\r\nUpload-Checksum: {checksum}\r\n\r\n").as_bytes());
    sock.write_all(&req).await.unwrap();
    let mut head = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut head)).await.unwrap().unwrap();
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_in_a_trailer() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let http = reqwest::Client::new();
    let bytes = data(300_000, 9);
    let len = bytes.len().to_string();
    let created = create(&http, &server.endpoint(), &[("Upload-Length", &len)]).await;
    let (url, path) =
        (location(&server.endpoint(), &created), created.headers()["Location"].to_str().unwrap());
    let bad = encode_checksum(&Checksum::of(ChecksumAlgorithm::Sha1, b"something else"));
    let r = patch_with_trailer(server.addr, path, &bytes, &bad).await;
    assert!(r.starts_with("HTTP/1.1 460"), "{r}");
    assert!(stored(store.path(), &url).is_empty(), "a mismatch keeps nothing");
    let good = encode_checksum(&Checksum::of(ChecksumAlgorithm::Sha1, &bytes));
    let r = patch_with_trailer(server.addr, path, &bytes, &good).await;
    assert!(r.starts_with("HTTP/1.1 204") && r.to_ascii_lowercase().contains("upload-offset: 300000"), "{r}");
    assert_eq!(stored(store.path(), &url), bytes);
    server.task.abort();
}
