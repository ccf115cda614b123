//! Every torrent of libtorrent's test corpus (`shared/conformance/`) decodes or fails with a
//! typed error that points inside the file; none panics. The metainfo crate checks the rest.

use std::path::PathBuf;

use piecework_bencode::{DecodeOptions, Error};

fn corpus_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("PIECEWORK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("conformance/libtorrent-torrents");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("PIECEWORK_INTEROP").as_deref() == Ok("require") {
        panic!("conformance corpus not found at {} (PIECEWORK_INTEROP=require)", dir.display());
    }
    eprintln!("SKIPPED: conformance corpus not found at {}", dir.display());
    None
}

#[test]
fn libtorrent_corpus_decodes_or_fails_typed() {
    let Some(dir) = corpus_dir() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "torrent"))
        .collect();
    files.sort();
    assert!(files.len() >= 100, "expected libtorrent's ~108 torrents, found {}", files.len());
    let (mut strict_ok, mut lenient_ok) = (0, 0);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        for opts in [DecodeOptions::new(), DecodeOptions::lenient()] {
            match opts.decode(&data) {
                Ok(doc) => {
                    assert_eq!(doc.root().raw(), &data[..], "{}", path.display());
                    // The tree and the validator agree with the tape.
                    assert!(opts.validate(&data).is_ok());
                    let _ = doc.root().to_value();
                    if opts.is_lenient() {
                        lenient_ok += 1;
                    } else {
                        strict_ok += 1;
                    }
                }
                Err(e) => {
                    let offset = e.offset().expect("decode errors carry an offset");
                    assert!(offset <= data.len(), "{}: {e:?}", path.display());
                    assert_eq!(opts.validate(&data).err(), Some(e.clone()), "{}", path.display());
                    assert!(!matches!(e, Error::Custom { .. } | Error::EncoderState(_)));
                }
            }
        }
    }
    eprintln!("{} files: {strict_ok} decode strictly, {lenient_ok} leniently", files.len());
    // Lenient accepts everything strict does; the corpus is mostly well-formed bencode.
    assert!(lenient_ok >= strict_ok);
    assert!(strict_ok >= files.len() * 3 / 4, "only {strict_ok} of {} decode strictly", files.len());
}
