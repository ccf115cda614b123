//! Resume data: which pieces are verified, and the size and modification time of each file
//! when that was true.
//!
//! Format (bencode, version 1), keys in canonical order:
//!
//! ```text
//! d
//!   8:bitfield   <ceil(pieces / 8) bytes, BEP 3 bitfield layout>
//!   5:files      l (l <size> <mtime secs> <mtime nanos> e | le for a missing file) ... e
//!   9:info hash  <20 or 32 bytes: the v2 info-hash if the torrent has one, else v1>
//!   6:pieces     <piece count>
//!   7:version    i1e
//! e
//! ```
//!
//! Pad files, symlinks and empty files have an entry like any other (their metadata is not
//! compared).

use std::io::{Read as _, Write as _};
use std::path::Path;

use piecework_bencode::{DecodeOptions, Encoder};
use piecework_metainfo::Bitfield;

use crate::Error;
use crate::backend::FileMeta;

/// The resume format version this crate writes and reads.
pub const RESUME_VERSION: i64 = 1;

/// Decoded resume data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    /// The info-hash of the torrent (v2 if present, else v1).
    pub info_hash: Vec<u8>,
    /// Verified pieces.
    pub have: Bitfield,
    /// Per file of the layout: its metadata when the bitfield was taken, `None` if missing.
    pub files: Vec<Option<FileMeta>>,
}

fn bad(reason: &'static str) -> Error {
    Error::InvalidResume { reason }
}

impl ResumeData {
    /// Encodes to bencode.
    pub fn encode(&self) -> Vec<u8> {
        let mut e =
            Encoder::new(Vec::with_capacity(64 + self.have.len() as usize / 8 + self.files.len() * 32));
        // Keys are written in order and values are well formed, so the encoder cannot fail;
        // an error would only drop the output, which `decode` then refuses.
        let _ = (|| -> Result<(), piecework_bencode::Error> {
            e.begin_dict()?;
            e.key(b"bitfield")?;
            e.bytes(&self.have.to_bytes())?;
            e.key(b"files")?;
            e.begin_list()?;
            for f in &self.files {
                e.begin_list()?;
                if let Some(m) = f {
                    e.int(i64::try_from(m.size).unwrap_or(i64::MAX))?;
                    e.int(m.mtime_secs)?;
                    e.int(i64::from(m.mtime_nanos))?;
                }
                e.end()?;
            }
            e.end()?;
            e.key(b"info hash")?;
            e.bytes(&self.info_hash)?;
            e.key(b"pieces")?;
            e.int(i64::from(self.have.len()))?;
            e.key(b"version")?;
            e.int(RESUME_VERSION)?;
            e.end()
        })();
        e.finish().unwrap_or_default()
    }

    /// Decodes resume data, refusing input longer than `max_size` bytes before parsing it.
    ///
    /// Strict bencode; every field is checked (types, bitfield length against the piece count,
    /// spare bits zero). Whether the data fits a torrent is checked by
    /// [`Storage::load_resume`](crate::Storage::load_resume).
    pub fn decode(input: &[u8], max_size: usize) -> Result<Self, Error> {
        if input.len() > max_size {
            return Err(bad("larger than max_resume_size"));
        }
        let doc = DecodeOptions::new()
            .max_depth(4)
            .max_input_len(max_size)
            .decode(input)
            .map_err(|_| bad("not valid bencode"))?;
        let root = doc.root().as_dict().ok_or(bad("not a dictionary"))?;
        let version = root.get(b"version").and_then(|n| n.as_int()).ok_or(bad("no version"))?;
        if version != RESUME_VERSION {
            return Err(Error::ResumeMismatch { reason: "unsupported resume version" });
        }
        let pieces = root.get(b"pieces").and_then(|n| n.as_int()).ok_or(bad("no piece count"))?;
        let pieces = u32::try_from(pieces).map_err(|_| bad("piece count out of range"))?;
        let bits = root.get(b"bitfield").and_then(|n| n.as_bytes()).ok_or(bad("no bitfield"))?;
        let have = Bitfield::from_bytes(bits, pieces).map_err(|_| bad("bitfield length or spare bits"))?;
        let info_hash = root.get(b"info hash").and_then(|n| n.as_bytes()).ok_or(bad("no info hash"))?;
        if info_hash.len() != 20 && info_hash.len() != 32 {
            return Err(bad("info hash is not 20 or 32 bytes"));
        }
        let list = root.get(b"files").and_then(|n| n.as_list()).ok_or(bad("no file list"))?;
        // Each entry is at least 2 input bytes, so this is bounded by the input size.
        let mut files = Vec::with_capacity(list.len());
        for entry in list.iter() {
            let e = entry.as_list().ok_or(bad("file entry is not a list"))?;
            if e.is_empty() {
                files.push(None);
                continue;
            }
            let int = |i| e.get(i).and_then(|n| n.as_int()).ok_or(bad("file entry field"));
            if e.len() != 3 {
                return Err(bad("file entry has the wrong length"));
            }
            let size = u64::try_from(int(0)?).map_err(|_| bad("negative file size"))?;
            let nanos = u32::try_from(int(2)?).ok().filter(|n| *n < 1_000_000_000);
            let mtime_nanos = nanos.ok_or(bad("mtime nanoseconds out of range"))?;
            files.push(Some(FileMeta { size, mtime_secs: int(1)?, mtime_nanos }));
        }
        Ok(Self { info_hash: info_hash.to_vec(), have, files })
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
    /// rename over `path`, fsync of the directory. A crash leaves the old or the new file,
    /// never a mix.
    pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let io = |op| move |e| Error::from_io(path, op, e);
        let mut f = std::fs::File::create(&tmp).map_err(io("create temporary"))?;
        f.write_all(bytes).map_err(io("write"))?;
        f.sync_all().map_err(io("fsync"))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io("rename"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory"))?;
        Ok(())
    }

    /// Reads a resume file, refusing one larger than `max_size` without reading it all.
    pub fn read_file(path: &Path, max_size: usize) -> Result<Vec<u8>, Error> {
        let f = std::fs::File::open(path).map_err(|e| Error::from_io(path, "open", e))?;
        let mut out = Vec::new();
        f.take(max_size as u64 + 1).read_to_end(&mut out).map_err(|e| Error::from_io(path, "read", e))?;
        if out.len() > max_size {
            return Err(bad("larger than max_resume_size"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use piecework_metainfo::PieceIndex;
    use proptest::prelude::*;

    fn sample() -> ResumeData {
        let mut have = Bitfield::new(13);
        have.set(PieceIndex::new(0));
        have.set(PieceIndex::new(12));
        ResumeData {
            info_hash: vec![7; 32],
            have,
            files: vec![Some(FileMeta { size: 5, mtime_secs: -3, mtime_nanos: 999 }), None],
        }
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let d = sample();
        let bytes = d.encode();
        assert_eq!(ResumeData::decode(&bytes, 1 << 20).unwrap(), d);
        assert!(piecework_bencode::decode(&bytes).is_ok());
    }

    #[test]
    fn bad_input_is_typed() {
        let good = sample().encode();
        assert!(matches!(ResumeData::decode(&good, 10), Err(Error::InvalidResume { .. })));
        for cut in 0..good.len() {
            assert!(ResumeData::decode(&good[..cut], 1 << 20).is_err());
        }
        let replace = |from: &[u8], to: &[u8]| {
            let at = good.windows(from.len()).position(|w| w == from).unwrap();
            let mut v = good.clone();
            v.splice(at..at + from.len(), to.iter().copied());
            v
        };
        let v2 = replace(b"7:versioni1e", b"7:versioni2e");
        assert!(matches!(ResumeData::decode(&v2, 1 << 20), Err(Error::ResumeMismatch { .. })));
        let wrong_count = replace(b"6:piecesi13e", b"6:piecesi99e");
        assert!(matches!(ResumeData::decode(&wrong_count, 1 << 20), Err(Error::InvalidResume { .. })));
    }

    #[test]
    fn file_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.resume");
        ResumeData::write_file(&p, b"one").unwrap();
        ResumeData::write_file(&p, b"two").unwrap();
        assert_eq!(ResumeData::read_file(&p, 10).unwrap(), b"two");
        assert!(matches!(ResumeData::read_file(&p, 2), Err(Error::InvalidResume { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ResumeData::decode(&bytes, 1 << 20);
        }

        #[test]
        fn encode_decode_round_trip(len in 0u32..300, set in proptest::collection::vec(any::<u32>(), 0..20),
                                    metas in proptest::collection::vec(proptest::option::of((any::<u32>(), any::<i64>(), 0u32..1_000_000_000)), 0..10)) {
            let mut have = Bitfield::new(len);
            for s in set { if len > 0 { have.set(PieceIndex::new(s % len)); } }
            let files = metas.into_iter().map(|m| m.map(|(s, t, n)| FileMeta { size: u64::from(s), mtime_secs: t, mtime_nanos: n })).collect();
            let d = ResumeData { info_hash: vec![1; 20], have, files };
            prop_assert_eq!(ResumeData::decode(&d.encode(), 1 << 20).unwrap(), d);
        }
    }
}
