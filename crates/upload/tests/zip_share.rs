//! Multi-file shares downloaded as one zip stream, checked by real readers:
//! Python's `zipfile` and Info-ZIP `unzip -t`. A missing tool skips its check
//! with a message, or fails the test under `PIECEWORK_INTEROP=require`.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use piecework_upload::UploadId;
use piecework_upload::http_server::{create_share, share_url};
use piecework_upload::share::PasswordParams;
use piecework_upload::zip::{Crc32, ZipPlan};
use sha2::{Digest as _, Sha256};

const CHEAP: PasswordParams = PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

fn skip(msg: &str) {
    if std::env::var("PIECEWORK_INTEROP").as_deref() == Ok("require") {
        panic!("{msg} and PIECEWORK_INTEROP=require");
    }
    eprintln!("SKIPPED: {msg}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const PY_CHECK: &str = r#"
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    out = {"bad": bad, "files": []}
    for i in z.infolist():
        h = hashlib.sha256()
        with z.open(i) as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        out["files"].append([i.filename, i.file_size, h.hexdigest()])
print(json.dumps(out))
"#;

/// Python's view of the archive: `(name, size, sha256 hex)` per entry, after
/// `testzip()` checked every CRC. `None` if python3 is missing.
fn python_reads(zip: &Path) -> Option<Vec<(String, u64, String)>> {
    let out = match Command::new("python3").arg("-c").arg(PY_CHECK).arg(zip).output() {
        Ok(o) => o,
        Err(_) => {
            skip("python3 not found: zipfile check not run");
            return None;
        }
    };
    assert!(out.status.success(), "python zipfile failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["bad"].is_null(), "testzip found a bad CRC in {}", v["bad"]);
    Some(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (f[0].as_str().unwrap().to_owned(), f[1].as_u64().unwrap(), f[2].as_str().unwrap().to_owned())
            })
            .collect(),
    )
}

/// `unzip -t` tests every entry (CRC and structure).
fn unzip_tests(zip: &Path) {
    match Command::new("unzip").arg("-tq").arg(zip).output() {
        Ok(o) => assert!(
            o.status.success(),
            "unzip -t failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => skip("unzip not found: unzip -t check not run"),
    }
}

fn expected(files: &[(&str, &[u8])]) -> Vec<(String, u64, String)> {
    files.iter().map(|(n, d)| ((*n).to_owned(), d.len() as u64, hex(&Sha256::digest(d)))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_share_as_zip_reads_back_in_python_and_unzip() {
    let store = tempfile::tempdir().unwrap();
    let server = start(config(store.path())).await;
    let ep = server.endpoint();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Sizes around the 256 KiB read chunk, one empty file, a UTF-8 name.
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("report.pdf", data(300_000, 1)),
        ("empty.txt", Vec::new()),
        ("grüße.bin", data(262_144, 2)),
        ("tiny", data(1, 3)),
    ];
    let mut ids = Vec::new();
    for (name, bytes) in &files {
        let len = bytes.len().to_string();
        let r = http
            .post(&ep)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let url = r.headers()["Location"].to_str().unwrap().to_owned();
        let url = if url.starts_with("http") { url } else { format!("http://{}{url}", server.addr) };
        if !bytes.is_empty() {
            let r = http
                .patch(&url)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", "0")
                .header("Content-Type", "application/offset+octet-stream")
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        ids.push((UploadId::new(&id_of(&url)).unwrap(), Some((*name).to_owned())));
    }
    let share = create_share(store.path(), &ids, None, CHEAP).unwrap();
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    let link = share_url(&format!("http://{}", server.addr), SECRET, &share, exp);

    let r = http.get(format!("{link}&format=zip")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["Content-Type"], "application/zip");
    let declared: u64 = r.headers()["Content-Length"].to_str().unwrap().parse().unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, declared, "Content-Length matches the stream");
    let zip_path = store.path().join("share.zip");
    std::fs::write(&zip_path, &body).unwrap();

    let want = expected(&files.iter().map(|(n, d)| (*n, d.as_slice())).collect::<Vec<_>>());
    if let Some(got) = python_reads(&zip_path) {
        assert_eq!(got, want);
    }
    unzip_tests(&zip_path);

    // Tar is still the default; an unknown format is a 400, not a guess.
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.headers()["Content-Type"], "application/x-tar");
    let r = http.get(format!("{link}&format=rar")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // A single-file share can be asked for as a zip too.
    let one = create_share(store.path(), &ids[..1], None, CHEAP).unwrap();
    let link = share_url(&format!("http://{}", server.addr), SECRET, &one, exp);
    let body = http.get(format!("{link}&format=zip")).send().await.unwrap().bytes().await.unwrap();
    std::fs::write(&zip_path, &body).unwrap();
    if let Some(got) = python_reads(&zip_path) {
        assert_eq!(got, want[..1].to_vec());
    }
    server.task.abort();
}

/// Writes an archive from `plan`, entry data and CRCs given.
fn write_archive(path: &Path, plan: &ZipPlan, crcs: &[u32], data: &[&[u8]]) {
    let mut f = std::fs::File::create(path).unwrap();
    for (i, d) in data.iter().enumerate() {
        f.write_all(&plan.local_header(i).unwrap()).unwrap();
        f.write_all(d).unwrap();
        f.write_all(&plan.data_descriptor(i, crcs[i]).unwrap()).unwrap();
    }
    f.write_all(&plan.central_directory(crcs).unwrap()).unwrap();
    assert_eq!(f.stream_position().unwrap(), plan.len());
}

#[test]
fn forced_zip64_records_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![("a.bin", data(70_000, 9)), ("b", b"xyz".to_vec())];
    let entries: Vec<(String, u64)> = files.iter().map(|(n, d)| ((*n).to_owned(), d.len() as u64)).collect();
    let plan = ZipPlan::new_zip64(&entries, SystemTime::now()).unwrap();
    let crcs: Vec<u32> = files
        .iter()
        .map(|(_, d)| {
            let mut c = Crc32::new();
            c.update(d);
            c.finish()
        })
        .collect();
    let path = dir.path().join("z64.zip");
    let data: Vec<&[u8]> = files.iter().map(|(_, d)| d.as_slice()).collect();
    write_archive(&path, &plan, &crcs, &data);
    if let Some(got) = python_reads(&path) {
        assert_eq!(got, expected(&files.iter().map(|(n, d)| (*n, d.as_slice())).collect::<Vec<_>>()));
    }
    unzip_tests(&path);
}

/// A real >4 GiB archive (sparse on disk): a 4 GiB + 1 byte entry of zeros,
/// then a small one whose header lies past 4 GiB. Reading it back checks
/// ~4 GiB of CRC in each tool, so it runs only with `PIECEWORK_ZIP64_BIG=1`.
#[test]
fn over_4gib_sparse_archive_reads_back() {
    if std::env::var("PIECEWORK_ZIP64_BIG").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set PIECEWORK_ZIP64_BIG=1 for the >4 GiB zip check");
        return;
    }
    let big = (4u64 << 30) + 1;
    // CRC-32 of `big` zero bytes, from Python's zlib (C speed) in chunks.
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import zlib\nc=0\nz=bytes(1<<24)\nn={big}\nwhile n:\n k=min(n,len(z));c=zlib.crc32(z[:k] if k<len(z) else z,c);n-=k\nprint(c)"
        ))
        .output();
    let Ok(out) = out else {
        skip("python3 not found: >4 GiB zip check not run");
        return;
    };
    let zero_crc: u32 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    let small = b"after the big one".to_vec();
    let mut c = Crc32::new();
    c.update(&small);
    let entries = vec![("zeros.bin".to_owned(), big), ("small.txt".to_owned(), small.len() as u64)];
    let plan = ZipPlan::new(&entries, SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    // Entry 0's zeros are skipped over (sparse), not written.
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&plan.local_header(0).unwrap()).unwrap();
    file.seek(SeekFrom::Current(i64::try_from(big).unwrap())).unwrap();
    file.write_all(&plan.data_descriptor(0, zero_crc).unwrap()).unwrap();
    file.write_all(&plan.local_header(1).unwrap()).unwrap();
    file.write_all(&small).unwrap();
    file.write_all(&plan.data_descriptor(1, c.finish()).unwrap()).unwrap();
    file.write_all(&plan.central_directory(&[zero_crc, c.finish()]).unwrap()).unwrap();
    assert_eq!(file.stream_position().unwrap(), plan.len());
    drop(file);
    let started = std::time::Instant::now();
    if let Some(got) = python_reads(&path) {
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.as_str(), got[0].1), ("zeros.bin", big));
        assert_eq!(got[1], expected(&[("small.txt", &small)])[0]);
    }
    unzip_tests(&path);
    assert!(started.elapsed() < Duration::from_secs(600));
}
