//! Bad requests against our server over 127.0.0.1: the tus status code every
//! time, and the stored bytes never corrupted.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Req {
    method: &'static str,
    /// Path; `{u}` = an unfinished upload holding 10 of 100 bytes, `{f}` a
    /// final upload, `{p}` a finished partial, `{q}` an unfinished partial.
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    status: u16,
}

const T: (&str, &str) = ("Tus-Resumable", "1.0.0");
const CT: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

#[rustfmt::skip]
const TABLE: &[Req] = &[
    Req { method: "OPTIONS", path: "/files/", headers: &[], body: b"", status: 204 },
    Req { method: "POST", path: "/files/", headers: &[("Upload-Length", "5")], body: b"", status: 412 },
    Req { method: "POST", path: "/files/", headers: &[("Tus-Resumable", "0.2.2"), ("Upload-Length", "5")], body: b"", status: 412 },
    Req { method: "POST", path: "/files/", headers: &[T, T, ("Upload-Length", "5")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "-5")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "+5")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "99999999999999999999999")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "5"), ("Upload-Length", "5")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "5"), ("Upload-Defer-Length", "1")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Defer-Length", "2")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "1048577")], body: b"", status: 413 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "5"), ("Upload-Metadata", "name !!notbase64")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "5"), ("Upload-Metadata", "a YQ==,a YQ==")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Concat", "final;/files/doesnotexist")], body: b"", status: 404 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Concat", "final;/files/{q}")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Concat", "final;/files/{u}")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Concat", "final;/files/{p}"), ("Upload-Length", "3")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Concat", "final;/files/../../etc")], body: b"", status: 400 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "3"), CT], body: b"abcd", status: 413 },
    Req { method: "POST", path: "/files/", headers: &[T, ("Upload-Length", "3"), CT, ("Upload-Checksum", "md5 AAAAAAAAAAAAAAAAAAAAAA==")], body: b"abc", status: 460 },
    Req { method: "HEAD", path: "/files/doesnotexist", headers: &[T], body: b"", status: 404 },
    Req { method: "HEAD", path: "/files/..%2F..%2Fetc%2Fpasswd", headers: &[T], body: b"", status: 404 },
    Req { method: "HEAD", path: "/files/a.b", headers: &[T], body: b"", status: 404 },
    Req { method: "HEAD", path: "/files/{u}", headers: &[], body: b"", status: 412 },
    Req { method: "HEAD", path: "/files/{u}", headers: &[T], body: b"", status: 200 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, ("Upload-Offset", "10"), ("Content-Type", "text/plain")], body: b"x", status: 415 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT], body: b"x", status: 400 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "11")], body: b"x", status: 409 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "5")], body: b"x", status: 409 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "-10")], body: b"x", status: 400 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "10"), ("Upload-Offset", "10")], body: b"x", status: 400 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "10")], body: &[b'z'; 91], status: 413 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "10"), ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=")], body: b"x", status: 460 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "10"), ("Upload-Checksum", "crc32 AAAAAA==")], body: b"x", status: 400 },
    Req { method: "PATCH", path: "/files/{u}", headers: &[T, CT, ("Upload-Offset", "10"), ("Upload-Length", "50")], body: b"x", status: 400 },
    Req { method: "PATCH", path: "/files/{f}", headers: &[T, CT, ("Upload-Offset", "3")], body: b"", status: 403 },
    Req { method: "PATCH", path: "/files/doesnotexist", headers: &[T, CT, ("Upload-Offset", "0")], body: b"x", status: 404 },
    Req { method: "DELETE", path: "/files/doesnotexist", headers: &[T], body: b"", status: 404 },
    Req { method: "DELETE", path: "/files/{u}", headers: &[], body: b"", status: 412 },
];

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http.request(m, format!("{base}{path}")).body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

async fn new_upload(http: &reqwest::Client, base: &str, h: &[(&str, &str)]) -> String {
    let mut all = vec![T];
    all.extend_from_slice(h);
    let r = send(http, base, "POST", "/files/", &all, vec![]).await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["Location"].to_str().unwrap();
    loc.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let store = tempfile::tempdir().unwrap();
    let mut cfg = config(store.path());
    cfg.server.max_size = 1 << 20;
    let server = start(cfg).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let u = new_upload(&http, &base, &[("Upload-Length", "100")]).await;
    let prefix = data(10, 9);
    let r =
        send(&http, &base, "PATCH", &format!("/files/{u}"), &[T, CT, ("Upload-Offset", "0")], prefix.clone())
            .await;
    assert_eq!(r.status(), 204);
    let p = new_upload(&http, &base, &[("Upload-Length", "3"), ("Upload-Concat", "partial")]).await;
    let r = send(
        &http,
        &base,
        "PATCH",
        &format!("/files/{p}"),
        &[T, CT, ("Upload-Offset", "0")],
        b"abc".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);
    let q = new_upload(&http, &base, &[("Upload-Length", "3"), ("Upload-Concat", "partial")]).await;
    let fin = format!("final;/files/{p}");
    let f = new_upload(&http, &base, &[("Upload-Concat", &fin)]).await;

    for (i, req) in TABLE.iter().enumerate() {
        let sub = |s: &str| s.replace("{u}", &u).replace("{f}", &f).replace("{p}", &p).replace("{q}", &q);
        let path = sub(req.path);
        let owned: Vec<(String, String)> = req.headers.iter().map(|(k, v)| (k.to_string(), sub(v))).collect();
        let hs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = send(&http, &base, req.method, &path, &hs, req.body.to_vec()).await;
        assert_eq!(r.status().as_u16(), req.status, "row {i}: {} {path} {:?}", req.method, req.headers);
        if req.status == 412 {
            assert_eq!(r.headers()["Tus-Version"], "1.0.0", "row {i}");
        }
        // Whatever happened, the unfinished upload still holds its 10 bytes.
        assert_eq!(std::fs::read(store.path().join(format!("{u}.bin"))).unwrap(), prefix, "row {i}");
    }
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "10");
    let r = send(&http, &base, "OPTIONS", "/files/", &[], vec![]).await;
    assert_eq!(r.headers()["Tus-Max-Size"], "1048576");
    assert_eq!(r.headers()["Tus-Checksum-Algorithm"], "sha1,sha256,md5,crc32c");
    let r = send(&http, &base, "DELETE", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.status(), 204);
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.status(), 404);
    assert!(!store.path().join(format!("{u}.bin")).exists());
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_is_410_then_gone() {
    let store = tempfile::tempdir().unwrap();
    let mut cfg = config(store.path());
    cfg.server.expire_after = Some(Duration::ZERO);
    cfg.expire_interval = Duration::from_secs(3600);
    let server = start(cfg).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let u = new_upload(&http, &base, &[("Upload-Length", "5")]).await;
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.status(), 410);
    assert!(!store.path().join(format!("{u}.bin")).exists(), "cleaned up");
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.status(), 404);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_is_cut_off_and_prefix_kept() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await; // idle timeout 500 ms
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let u = new_upload(&http, &base, &[("Upload-Length", "1000")]).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = raw_patch_head(&u, 1000);
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[7u8; 300]).await.unwrap();
    // Then nothing: the server must give up and free the connection.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "server closed or answered the stalled connection");
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "300");
    assert_eq!(std::fs::read(store.path().join(format!("{u}.bin"))).unwrap(), vec![7u8; 300]);
    // And the upload carries on from there.
    let r = send(
        &http,
        &base,
        "PATCH",
        &format!("/files/{u}"),
        &[T, CT, ("Upload-Offset", "300")],
        vec![7u8; 700],
    )
    .await;
    assert_eq!(r.status(), 204);
    server.task.abort();
}

/// A PATCH request head at offset 0 announcing `len` body bytes.
fn raw_patch_head(id: &str, len: u64) -> String {
    format!(
        "PATCH /files/{id} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Reads until the server closes the connection; the time it took.
async fn wait_closed(s: &mut tokio::net::TcpStream) -> Duration {
    let t0 = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "server did not close the stalled connection");
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_are_cut_off_and_nothing_moves() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await; // idle timeout 500 ms
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let u = new_upload(&http, &base, &[("Upload-Length", "1000")]).await;
    let r =
        send(&http, &base, "PATCH", &format!("/files/{u}"), &[T, CT, ("Upload-Offset", "0")], vec![5; 100])
            .await;
    assert_eq!(r.status(), 204);
    // Half a request head, then nothing.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!("PATCH /files/{u} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Off").as_bytes(),
    )
    .await
    .unwrap();
    let took = wait_closed(&mut s).await;
    assert!(took >= Duration::from_millis(300), "closed after the timeout, not at once ({took:?})");
    // A connection that never sends a byte is closed too.
    let mut quiet = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    wait_closed(&mut quiet).await;
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "100");
    assert_eq!(std::fs::read(store.path().join(format!("{u}.bin"))).unwrap(), vec![5u8; 100]);
    // Not locked: the upload carries on.
    let r =
        send(&http, &base, "PATCH", &format!("/files/{u}"), &[T, CT, ("Upload-Offset", "100")], vec![6; 900])
            .await;
    assert_eq!(r.status(), 204);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_offset_is_durable_across_a_restart() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await; // idle timeout 500 ms
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let u = new_upload(&http, &base, &[("Upload-Length", "1000000")]).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = raw_patch_head(&u, 1000000);
    s.write_all(head.as_bytes()).await.unwrap();
    // More than the store's write buffer, in pieces, then a stall.
    for i in 0..5u8 {
        s.write_all(&[i; 70_000]).await.unwrap();
    }
    wait_closed(&mut s).await;
    let want: Vec<u8> = (0..5u8).flat_map(|i| [i; 70_000]).collect();
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "350000");
    server.task.abort();
    let _ = server.task.await;
    // A fresh server on the same directory sees the same offset and bytes.
    let server = start(config(store.path())).await;
    let base = format!("http://{}", server.addr);
    let r = send(&http, &base, "HEAD", &format!("/files/{u}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "350000");
    assert_eq!(std::fs::read(store.path().join(format!("{u}.bin"))).unwrap(), want);
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_limit_wait_their_turn() {
    let store = tempfile::tempdir().unwrap();
    let mut cfg = config(store.path());
    cfg.idle_timeout = Duration::from_secs(2);
    cfg.max_active_bodies = 1;
    let server = start(cfg).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let slow = new_upload(&http, &base, &[("Upload-Length", "1000000")]).await;
    let fast = new_upload(&http, &base, &[("Upload-Length", "10")]).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = raw_patch_head(&slow, 1000000);
    s.write_all(head.as_bytes()).await.unwrap();
    // Past the 256 KiB write buffer, so the file shows the body is streaming.
    s.write_all(&[3u8; 300_000]).await.unwrap();
    s.flush().await.unwrap();
    // Let the stalled body take the only slot.
    let mut streaming = false;
    for _ in 0..400 {
        if std::fs::metadata(store.path().join(format!("{slow}.bin"))).map_or(0, |m| m.len()) > 0 {
            streaming = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(streaming, "stalled body holds the slot");
    let r =
        send(&http, &base, "PATCH", &format!("/files/{fast}"), &[T, CT, ("Upload-Offset", "0")], vec![1; 10])
            .await;
    assert_eq!(r.status(), 204);
    // The second body only ran after the stalled one was cut and committed.
    let r = send(&http, &base, "HEAD", &format!("/files/{slow}"), &[T], vec![]).await;
    assert_eq!(r.headers()["Upload-Offset"], "300000");
    drop(s);
    server.task.abort();
}
