//! Resume-file parsing: never panics; whatever decodes re-encodes to bytes that decode to the
//! same value (and are stable under a second round trip); loading it into a storage either
//! fails with a typed error or leaves a bitfield of the torrent's length whose pieces are all
//! accounted for in the report.
#![no_main]

use std::io::Read as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use piecework_metainfo::{InputFile, Metainfo, TorrentBuilder, Version};
use piecework_storage::{Layout, MemoryBackend, ResumeData, Settings, Storage};

fn storage() -> &'static Storage<MemoryBackend> {
    static S: OnceLock<Storage<MemoryBackend>> = OnceLock::new();
    S.get_or_init(|| {
        let files = (0..3u8)
            .map(|i| {
                InputFile::from_reader(
                    vec![format!("f{i}")],
                    20_000 * u64::from(i),
                    std::io::repeat(i).take(20_000 * u64::from(i)),
                )
            })
            .collect();
        let t = TorrentBuilder::new(Version::Hybrid)
            .piece_length(Some(16_384))
            .creation_date(None)
            .build_files("t", files, &mut |_, _| {})
            .expect("fixed torrent builds");
        let layout =
            Layout::from_metainfo(&Metainfo::parse(&t).expect("fixed torrent parses")).expect("layout");
        let mut settings = Settings::default();
        settings.hash_threads = 1;
        settings.spot_checks = 2;
        Storage::new(layout.clone(), MemoryBackend::new(&layout), settings).expect("storage")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = ResumeData::decode(data, 1 << 20) {
        let once = d.encode();
        let again = ResumeData::decode(&once, 1 << 20).expect("re-encoded resume data decodes");
        assert_eq!(again, d);
        assert_eq!(again.encode(), once);
    }
    let s = storage();
    let pieces = s.layout().piece_count();
    match s.load_resume(data) {
        Ok(r) => {
            assert!(r.failed <= r.rechecked);
            assert_eq!(s.have().len(), pieces);
            assert_eq!(s.have().count_ones(), r.trusted + r.rechecked - r.failed);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
