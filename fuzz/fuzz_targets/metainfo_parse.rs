//! Torrent parsing: never panics; whatever loads has only safe paths that stay inside the
//! download folder, info-hashes over the raw info bytes, and re-encodes to a torrent that
//! loads again with the same hashes and files.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::{InfoHashV1, Metainfo};

fn inside(p: &piecework_metainfo::SafePath) {
    assert!(p.is_safe(), "{p:?}");
    let full = p.under(Path::new("/download"));
    assert!(full.starts_with("/download"));
    assert!(p.to_path_buf().is_relative());
    for c in p.to_path_buf().components() {
        assert!(matches!(c, Component::Normal(_)), "{p:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Metainfo::parse(data) else { return };
    for f in m.files() {
        inside(f.path());
        if let Some(t) = f.symlink_target() {
            inside(t);
        }
    }
    if let Some(v1) = m.info_hashes().v1() {
        assert_eq!(v1, InfoHashV1::of_info_bytes(m.info_bytes()));
    }
    assert!(m.total_length() > 0);
    let again = m.to_bytes();
    let m2 = Metainfo::parse(&again).expect("re-encoded torrent loads");
    assert_eq!(m2.info_hashes(), m.info_hashes());
    assert_eq!(m2.files(), m.files());
    assert_eq!(m2.to_bytes(), again, "re-encoding is stable");
});
