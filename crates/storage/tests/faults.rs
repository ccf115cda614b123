//! Environment faults: a full disk, a read-only file system, a file in the way, a file that
//! grew. Each is a typed error, nothing panics, and nothing already verified is lost.
//!
//! The tests run as root in CI, where `chmod` denies nothing; permission errors come from a
//! tmpfs remounted read-only (`EROFS`), and path errors from a regular file standing where a
//! directory must be (`ENOTDIR`). Tests that need `mount` say SKIPPED when it is refused.

mod common;

use std::time::Duration;

use common::*;
use piecework_metainfo::{PieceIndex, Version};
use piecework_storage::{Error, FileBackend, Settings, Storage};

#[test]
fn disk_full_is_typed_and_keeps_verified_pieces() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let (t, data) = torrent(Version::V1, 262_144, &[3 << 20], 1);
    let layout = parse(&t);
    let space = piece_space(&layout, &data);
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(fs.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let mut failed_at = None;
    for p in 0..layout.piece_count() {
        if let Err(e) = write_piece(&s, p, piece(&layout, &space, p)) {
            assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
            assert!(e.is_environment());
            failed_at = Some(p);
            break;
        }
    }
    let failed_at = failed_at.expect("a 1 MiB tmpfs cannot hold 3 MiB");
    assert!(s.wait_idle(Duration::from_secs(60)));
    // Pieces written before the disk filled verified and still read back right.
    for p in 0..failed_at {
        assert!(s.has_piece(PieceIndex::new(p)), "piece {p}");
        let mut buf = vec![0u8; 1000];
        s.read_block(PieceIndex::new(p), 5000, &mut buf).unwrap();
        assert_eq!(buf, piece(&layout, &space, p)[5000..6000]);
    }
    assert!(!s.has_piece(PieceIndex::new(failed_at)));
}

#[test]
fn preallocation_reports_disk_full_at_once() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let (t, data) = torrent(Version::V2, 262_144, &[3 << 20], 1);
    let layout = parse(&t);
    let space = piece_space(&layout, &data);
    let mut settings = Settings::default();
    settings.preallocate = true;
    let s = Storage::new(layout.clone(), FileBackend::new(fs.path(), &layout, &settings).unwrap(), settings)
        .unwrap();
    let e = write_piece(&s, 0, piece(&layout, &space, 0)).unwrap_err();
    assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
}

#[test]
fn read_only_file_system_is_permission_denied() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let (t, data) = torrent(Version::Hybrid, 32768, &[100_000, 50_000], 2);
    let layout = parse(&t);
    let space = piece_space(&layout, &data);
    // Download the first piece, save resume data, then make the file system read-only.
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(fs.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    write_piece(&s, 0, piece(&layout, &space, 0)).unwrap();
    assert!(s.wait_idle(Duration::from_secs(60)));
    assert!(s.has_piece(PieceIndex::new(0)));
    drop(s);
    if !fs.remount_read_only() {
        eprintln!("SKIPPED: cannot remount read-only");
        return;
    }
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(fs.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let e = write_piece(&s, 1, piece(&layout, &space, 1)).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    let e = s.save_resume_file(&fs.path().join("t.resume")).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
    // Reading still works: the recheck finds piece 0.
    let have = s.recheck(&mut |_| {}).unwrap();
    assert!(have.get(PieceIndex::new(0)));
    assert_eq!(have.count_ones(), 1);
}

#[test]
fn regular_file_in_the_path_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (t, data) = torrent(Version::V1, 32768, &[100_000], 1);
    let layout = parse(&t);
    let space = piece_space(&layout, &data);
    // The torrent's directory `t` is a regular file.
    std::fs::write(dir.path().join("t"), b"mine").unwrap();
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(dir.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let e = write_piece(&s, 0, piece(&layout, &space, 0)).unwrap_err();
    assert!(matches!(e, Error::NotADirectory { .. }), "{e:?}");
    assert_eq!(std::fs::read(dir.path().join("t")).unwrap(), b"mine");
    // Root itself being a file is the same error.
    let file_root = dir.path().join("t");
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(&file_root, &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let e = write_piece(&s, 0, piece(&layout, &space, 0)).unwrap_err();
    assert!(matches!(e, Error::NotADirectory { .. }), "{e:?}");
}

#[test]
fn file_larger_than_the_torrent_says_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, data) = torrent(Version::V1, 32768, &[40_000], 1);
    let layout = parse(&t);
    let space = piece_space(&layout, &data);
    let path = layout.files()[0].path().under(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![1u8; 50_000]).unwrap();
    let s = Storage::new(
        layout.clone(),
        FileBackend::new(dir.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let e = write_piece(&s, 0, piece(&layout, &space, 0)).unwrap_err();
    assert!(matches!(e, Error::FileTooLarge { expected: 40_000, found: 50_000, .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![1u8; 50_000]);
    assert_eq!(s.recheck(&mut |_| {}).unwrap().count_ones(), 0);
}

#[test]
fn non_empty_file_where_the_torrent_has_an_empty_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = torrent(Version::V1, 32768, &[100, 0], 1);
    let layout = parse(&t);
    let empty = layout.files().iter().find(|f| f.length() == 0).unwrap();
    let path = empty.path().under(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"user data").unwrap();
    let e = Storage::new(
        layout.clone(),
        FileBackend::new(dir.path(), &layout, &Settings::default()).unwrap(),
        Settings::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::FileTooLarge { expected: 0, found: 9, .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"user data");
}
