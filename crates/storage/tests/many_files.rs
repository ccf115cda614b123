//! A 100,000-file torrent under `RLIMIT_NOFILE` = 64 with a 16-descriptor cache.
//!
//! The work runs in a child process (this test binary re-run with one test selected) so the
//! descriptor limit does not affect other tests.

mod common;

use std::time::Duration;

use common::*;
use piecework_metainfo::{PieceIndex, Version};
use piecework_storage::{FileBackend, ResumeData, Settings, Storage};

const FILES: usize = 100_000;
const FD_LIMIT: u64 = 64;

#[test]
fn hundred_thousand_files_with_sixteen_descriptors() {
    // On a tmpfs when we may mount one: creating and deleting 100,000 files on a busy disk
    // takes minutes.
    let tmpfs = Tmpfs::mount("512m");
    let dir = tempfile::tempdir().unwrap();
    let path = tmpfs.as_ref().map_or(dir.path(), |t| t.path());
    let out = self_command("many_files_child", ("PW_MANY_FILES_DIR", path)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("MANY_FILES_OK"), "{stdout}");
}

#[test]
#[ignore = "run by hundred_thousand_files_with_sixteen_descriptors in a child process"]
fn many_files_child() {
    let Some(dir) = path_env("PW_MANY_FILES_DIR") else { return };
    let lim = rustix::process::Rlimit { current: Some(FD_LIMIT), maximum: Some(FD_LIMIT) };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();

    let sizes: Vec<usize> = (0..FILES).map(|i| 1 + i % 61).collect();
    let (t, data) = torrent(Version::V1, 16384, &sizes, 100);
    let layout = parse(&t);
    assert_eq!(layout.files().len(), FILES);
    let space = piece_space(&layout, &data);
    let mut settings = Settings::default();
    settings.fd_cache_size = 16;
    settings.hash_threads = 2;
    let s =
        Storage::new(layout.clone(), FileBackend::new(&dir, &layout, &settings).unwrap(), settings.clone())
            .unwrap();
    let n = layout.piece_count();
    // Pieces in a scrambled order.
    for k in 0..n {
        let p = (k * 7919) % n;
        write_piece(&s, p, piece(&layout, &space, p)).unwrap();
        assert!(s.backend().open_files() <= 16);
    }
    assert!(s.wait_idle(Duration::from_secs(300)));
    assert!(s.is_complete(), "{:?}", s.have());
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    assert!(fds <= FD_LIMIT, "{fds} descriptors open");
    // Every file holds its bytes.
    for (i, f) in layout.files().iter().enumerate().step_by(997) {
        let name: usize = f.path().components().last().unwrap().trim_start_matches('f').parse().unwrap();
        assert_eq!(std::fs::read(f.path().under(&dir)).unwrap(), data[name], "file {i}");
    }
    let resume = dir.join("t.resume");
    s.save_resume_file(&resume).unwrap();
    drop(s);
    // Resume (100,000 stats) and a full recheck under the same limit.
    let s =
        Storage::new(layout.clone(), FileBackend::new(&dir, &layout, &settings).unwrap(), settings).unwrap();
    let r = s.load_resume(&ResumeData::read_file(&resume, 64 << 20).unwrap()).unwrap();
    assert_eq!((r.trusted, r.failed), (n, 0));
    let have = s.recheck(&mut |_| {}).unwrap();
    assert!(have.is_full());
    assert!(s.has_piece(PieceIndex::new(n - 1)));
    println!("MANY_FILES_OK pieces={n}");
}
