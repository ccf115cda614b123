//! A streaming ZIP layout for multi-file shares ([APPNOTE 6.3.10]), sans-IO.
//!
//! Entries are *stored* (method 0): shared uploads are usually already
//! compressed, and stored entries let the whole archive length be known
//! before the first byte, so a download gets a `Content-Length`. The CRC-32
//! of a file is not known in advance (the store keeps a SHA-256 merkle root,
//! not a CRC), so each entry sets general purpose bit 3 and is followed by a
//! data descriptor carrying the CRC the sender computed while streaming it;
//! the central directory repeats it. Memory is one `u32` per entry, never file
//! data.
//!
//! ZIP64 records are written where a size or an offset does not fit 32 bits:
//! an entry of 4 GiB or more carries a ZIP64 extra field in its local and
//! central headers and 8-byte sizes in its data descriptor; an entry whose
//! local header starts at 4 GiB or later gets its offset in a central ZIP64
//! extra field; a central directory past 4 GiB (or too many entries) adds the
//! ZIP64 end of central directory record and locator.
//!
//! How to drive it: build a [`ZipPlan`], send [`ZipPlan::local_header`], the
//! file's bytes (feeding a [`Crc32`]), [`ZipPlan::data_descriptor`] for each
//! entry in order, then [`ZipPlan::central_directory`]. The byte count is
//! [`ZipPlan::len`].
//!
//! [APPNOTE 6.3.10]: https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// CRC-32 (IEEE 802.3, reflected, as ZIP uses it), slice-by-8.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh checksum.
    pub fn new() -> Self {
        Self(!0)
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut c = self.0;
        let mut chunks = data.chunks_exact(8);
        for b in &mut chunks {
            let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ c;
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][b[4] as usize]
                ^ t[2][b[5] as usize]
                ^ t[1][b[6] as usize]
                ^ t[0][b[7] as usize];
        }
        for &b in chunks.remainder() {
            c = (c >> 8) ^ t[0][((c ^ u32::from(b)) & 0xFF) as usize];
        }
        self.0 = c;
    }

    /// The checksum of everything fed.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

/// Bit 3: CRC and sizes follow the data; bit 11: the name is UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;
const VERSION_PLAIN: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// "Made by" Unix (3), so the external attributes carry a file mode.
const MADE_BY_UNIX: u16 = 3 << 8;
const MASK32: u64 = 0xFFFF_FFFF;
/// Regular file, rw-r--r--.
const EXTERNAL_ATTRS: u32 = 0o100_644 << 16;

const LOCAL_FIXED: u64 = 30;
const CENTRAL_FIXED: u64 = 46;
const ZIP64_EOCD_LEN: u64 = 56;
const ZIP64_LOCATOR_LEN: u64 = 20;
const EOCD_LEN: u64 = 22;

/// Longest entry name in bytes (the field is 16 bits; keep it sane).
pub const MAX_NAME_LEN: usize = 1024;

#[derive(Debug, Clone)]
struct Planned {
    name: String,
    size: u64,
    offset: u64,
    /// Sizes need ZIP64 (local extra, 8-byte descriptor, central extra).
    big: bool,
}

impl Planned {
    fn far(&self, force: bool) -> bool {
        force || self.offset >= MASK32
    }
    fn local_len(&self) -> u64 {
        LOCAL_FIXED + self.name.len() as u64 + if self.big { 20 } else { 0 }
    }
    fn descriptor_len(&self) -> u64 {
        if self.big { 24 } else { 16 }
    }
    fn central_extra_len(&self, force: bool) -> u64 {
        let fields = if self.big { 2 } else { 0 } + u64::from(self.far(force));
        if fields == 0 { 0 } else { 4 + 8 * fields }
    }
}

/// The layout of one stored, streamed ZIP archive.
#[derive(Debug, Clone)]
pub struct ZipPlan {
    entries: Vec<Planned>,
    time: u16,
    date: u16,
    force_zip64: bool,
    cd_offset: u64,
    cd_len: u64,
}

/// MS-DOS time and date of `t` (UTC), clamped to 1980..=2107.
fn dos_time(t: SystemTime) -> (u16, u16) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = ((rem / 3600) << 11) | (((rem / 60) % 60) << 5) | ((rem % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (u16::try_from(time).unwrap_or(0), u16::try_from(date).unwrap_or(0))
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// A 32-bit field, or the ZIP64 marker if the value lives in an extra field.
fn field32(v: u64, in_extra: bool) -> u32 {
    if in_extra { u32::MAX } else { u32::try_from(v).unwrap_or(u32::MAX) }
}

impl ZipPlan {
    /// Plans an archive of `(name, size)` entries in order, all stamped with
    /// `mtime`. Names must be 1 to [`MAX_NAME_LEN`] bytes.
    pub fn new(entries: &[(String, u64)], mtime: SystemTime) -> Result<Self, Error> {
        Self::build(entries, mtime, false)
    }

    /// Like [`ZipPlan::new`], but writes every ZIP64 record even where the
    /// numbers fit 32 bits. Readers must accept that (APPNOTE 4.3.9.2); it
    /// lets tests check the ZIP64 layout on small data.
    pub fn new_zip64(entries: &[(String, u64)], mtime: SystemTime) -> Result<Self, Error> {
        Self::build(entries, mtime, true)
    }

    fn build(entries: &[(String, u64)], mtime: SystemTime, force: bool) -> Result<Self, Error> {
        let (time, date) = dos_time(mtime);
        let mut planned = Vec::with_capacity(entries.len());
        let mut offset = 0u64;
        let overflow = || Error::InvalidState("zip archive larger than 2^64 bytes");
        for (name, size) in entries {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(Error::InvalidState("zip entry name empty or too long"));
            }
            let p = Planned { name: name.clone(), size: *size, offset, big: force || *size >= MASK32 };
            offset = offset
                .checked_add(p.local_len())
                .and_then(|o| o.checked_add(*size))
                .and_then(|o| o.checked_add(p.descriptor_len()))
                .ok_or_else(overflow)?;
            planned.push(p);
        }
        let cd_len = planned
            .iter()
            .map(|p| CENTRAL_FIXED + p.name.len() as u64 + p.central_extra_len(force))
            .sum::<u64>();
        let mut plan =
            Self { entries: planned, time, date, force_zip64: force, cd_offset: offset, cd_len: 0 };
        plan.cd_len = cd_len;
        offset.checked_add(plan.tail_len()).ok_or_else(overflow)?;
        Ok(plan)
    }

    fn needs_zip64_end(&self) -> bool {
        self.force_zip64 || self.entries.len() >= 0xFFFF || self.cd_offset >= MASK32 || self.cd_len >= MASK32
    }

    /// Central directory plus end records.
    fn tail_len(&self) -> u64 {
        let z = if self.needs_zip64_end() { ZIP64_EOCD_LEN + ZIP64_LOCATOR_LEN } else { 0 };
        self.cd_len + z + EOCD_LEN
    }

    /// Total archive length in bytes.
    pub fn len(&self) -> u64 {
        self.cd_offset + self.tail_len()
    }

    /// True if the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    fn entry(&self, i: usize) -> Result<&Planned, Error> {
        self.entries.get(i).ok_or(Error::InvalidState("no such zip entry"))
    }

    /// The local file header that goes before entry `i`'s bytes.
    pub fn local_header(&self, i: usize) -> Result<Vec<u8>, Error> {
        let e = self.entry(i)?;
        let mut out = Vec::with_capacity(usize::try_from(e.local_len()).unwrap_or(0));
        put32(&mut out, LOCAL_SIG);
        put16(&mut out, if e.big { VERSION_ZIP64 } else { VERSION_PLAIN });
        put16(&mut out, FLAGS);
        put16(&mut out, 0); // stored
        put16(&mut out, self.time);
        put16(&mut out, self.date);
        // Bit 3: CRC and sizes are zero here and come in the data descriptor.
        put32(&mut out, 0);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put16(&mut out, u16::try_from(e.name.len()).unwrap_or(u16::MAX));
        put16(&mut out, if e.big { 20 } else { 0 });
        out.extend_from_slice(e.name.as_bytes());
        if e.big {
            // Its presence tells readers the descriptor has 8-byte sizes.
            put16(&mut out, 0x0001);
            put16(&mut out, 16);
            put64(&mut out, 0);
            put64(&mut out, 0);
        }
        Ok(out)
    }

    /// The data descriptor that follows entry `i`'s bytes.
    pub fn data_descriptor(&self, i: usize, crc: u32) -> Result<Vec<u8>, Error> {
        let e = self.entry(i)?;
        let mut out = Vec::with_capacity(24);
        put32(&mut out, DESCRIPTOR_SIG);
        put32(&mut out, crc);
        if e.big {
            put64(&mut out, e.size);
            put64(&mut out, e.size);
        } else {
            put32(&mut out, field32(e.size, false));
            put32(&mut out, field32(e.size, false));
        }
        Ok(out)
    }

    /// The central directory and end records; `crcs` has one CRC per entry.
    pub fn central_directory(&self, crcs: &[u32]) -> Result<Vec<u8>, Error> {
        if crcs.len() != self.entries.len() {
            return Err(Error::InvalidState("one CRC per zip entry"));
        }
        let force = self.force_zip64;
        let mut out = Vec::with_capacity(usize::try_from(self.tail_len()).unwrap_or(0));
        for (e, &crc) in self.entries.iter().zip(crcs) {
            let far = e.far(force);
            let version = if e.big || far { VERSION_ZIP64 } else { VERSION_PLAIN };
            put32(&mut out, CENTRAL_SIG);
            put16(&mut out, MADE_BY_UNIX | version);
            put16(&mut out, version);
            put16(&mut out, FLAGS);
            put16(&mut out, 0);
            put16(&mut out, self.time);
            put16(&mut out, self.date);
            put32(&mut out, crc);
            put32(&mut out, field32(e.size, e.big));
            put32(&mut out, field32(e.size, e.big));
            put16(&mut out, u16::try_from(e.name.len()).unwrap_or(u16::MAX));
            put16(&mut out, u16::try_from(e.central_extra_len(force)).unwrap_or(0));
            put16(&mut out, 0); // comment
            put16(&mut out, 0); // disk
            put16(&mut out, 0); // internal attributes
            put32(&mut out, EXTERNAL_ATTRS);
            put32(&mut out, field32(e.offset, far));
            out.extend_from_slice(e.name.as_bytes());
            let extra = e.central_extra_len(force);
            if extra > 0 {
                // Fixed order: uncompressed, compressed, offset; only those
                // whose 32-bit field holds the marker.
                put16(&mut out, 0x0001);
                put16(&mut out, u16::try_from(extra - 4).unwrap_or(0));
                if e.big {
                    put64(&mut out, e.size);
                    put64(&mut out, e.size);
                }
                if far {
                    put64(&mut out, e.offset);
                }
            }
        }
        let count = self.entries.len() as u64;
        let zip64 = self.needs_zip64_end();
        if zip64 {
            let eocd64_at = self.cd_offset + self.cd_len;
            put32(&mut out, ZIP64_EOCD_SIG);
            put64(&mut out, ZIP64_EOCD_LEN - 12);
            put16(&mut out, MADE_BY_UNIX | VERSION_ZIP64);
            put16(&mut out, VERSION_ZIP64);
            put32(&mut out, 0);
            put32(&mut out, 0);
            put64(&mut out, count);
            put64(&mut out, count);
            put64(&mut out, self.cd_len);
            put64(&mut out, self.cd_offset);
            put32(&mut out, ZIP64_LOCATOR_SIG);
            put32(&mut out, 0);
            put64(&mut out, eocd64_at);
            put32(&mut out, 1);
        }
        let count16 =
            if force || count >= 0xFFFF { u16::MAX } else { u16::try_from(count).unwrap_or(u16::MAX) };
        put32(&mut out, EOCD_SIG);
        put16(&mut out, 0);
        put16(&mut out, 0);
        put16(&mut out, count16);
        put16(&mut out, count16);
        put32(&mut out, field32(self.cd_len, force || self.cd_len >= MASK32));
        put32(&mut out, field32(self.cd_offset, force || self.cd_offset >= MASK32));
        put16(&mut out, 0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// Builds a whole archive in memory (small data only).
    fn archive(plan: &ZipPlan, data: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut crcs = Vec::new();
        for (i, d) in data.iter().enumerate() {
            out.extend(plan.local_header(i).unwrap());
            out.extend_from_slice(d);
            let mut c = Crc32::new();
            c.update(d);
            crcs.push(c.finish());
            out.extend(plan.data_descriptor(i, c.finish()).unwrap());
        }
        out.extend(plan.central_directory(&crcs).unwrap());
        out
    }

    #[test]
    fn crc32_check_value_and_any_split() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut whole = Crc32::new();
        whole.update(&data);
        for split in [0, 1, 7, 8, 9, 500, 999] {
            let mut c = Crc32::new();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.finish(), whole.finish(), "split {split}");
        }
        // Bytewise oracle.
        let mut naive = !0u32;
        for &b in &data {
            naive ^= u32::from(b);
            for _ in 0..8 {
                naive = if naive & 1 != 0 { 0xEDB8_8320 ^ (naive >> 1) } else { naive >> 1 };
            }
        }
        assert_eq!(whole.finish(), !naive);
    }

    #[test]
    fn dos_time_of_known_dates() {
        // 2026-11-27 19:42:56 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_808_576);
        let (time, date) = dos_time(t);
        assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (46, 11, 27));
        assert_eq!((time >> 11, (time >> 5) & 63, (time & 31) * 2), (19, 42, 56));
        assert_eq!(dos_time(UNIX_EPOCH), (0, 0x21));
        // 2000-02-29.
        let (_, d) = dos_time(UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!((d >> 9, (d >> 5) & 15, d & 31), (20, 2, 29));
    }

    #[test]
    fn plain_layout_lengths_add_up() {
        let entries = vec![("a.txt".to_owned(), 5), ("ü.bin".to_owned(), 0)];
        let plan = ZipPlan::new(&entries, UNIX_EPOCH).unwrap();
        let z = archive(&plan, &[b"hello", b""]);
        assert_eq!(z.len() as u64, plan.len());
        assert_eq!(u32_at(&z, 0), LOCAL_SIG);
        assert_eq!(u16_at(&z, 6), FLAGS);
        // EOCD: 2 entries, no ZIP64 records.
        let eocd = z.len() - 22;
        assert_eq!(u32_at(&z, eocd), EOCD_SIG);
        assert_eq!(u16_at(&z, eocd + 10), 2);
        let cd_off = u32_at(&z, eocd + 16) as usize;
        assert_eq!(u32_at(&z, cd_off), CENTRAL_SIG);
        assert_eq!(u32_at(&z, cd_off + 16), 0x3610_A686, "crc of hello");
        assert!(!z.windows(4).any(|w| w == ZIP64_EOCD_SIG.to_le_bytes()));
    }

    #[test]
    fn big_entry_and_far_offset_get_zip64_records() {
        // No data is built: only the records, checked field by field.
        let size = 5 << 30;
        let entries = vec![("big".to_owned(), size), ("after".to_owned(), 3)];
        let plan = ZipPlan::new(&entries, UNIX_EPOCH).unwrap();
        let lh = plan.local_header(0).unwrap();
        assert_eq!(u16_at(&lh, 4), 45);
        assert_eq!(u16_at(&lh, 28), 20, "zip64 extra in the local header");
        assert_eq!(u16_at(&lh, 30 + 3), 1);
        let dd = plan.data_descriptor(0, 7).unwrap();
        assert_eq!(dd.len(), 24);
        assert_eq!(u64_at(&dd, 8), size);
        assert_eq!(u64_at(&dd, 16), size);
        // The second entry is small but starts past 4 GiB.
        let lh1 = plan.local_header(1).unwrap();
        assert_eq!(u16_at(&lh1, 28), 0);
        assert_eq!(plan.data_descriptor(1, 0).unwrap().len(), 16);
        let second_at = 30 + 3 + 20 + size + 24;
        let cd = plan.central_directory(&[7, 9]).unwrap();
        assert_eq!(cd.len() as u64, plan.len() - plan.cd_offset);
        // Entry 0: sizes marked and in the extra field; offset 0 fits.
        assert_eq!(u32_at(&cd, 20), u32::MAX);
        assert_eq!(u32_at(&cd, 24), u32::MAX);
        assert_eq!(u32_at(&cd, 42), 0);
        assert_eq!(u16_at(&cd, 30), 20);
        let x = 46 + 3;
        assert_eq!((u16_at(&cd, x), u16_at(&cd, x + 2)), (1, 16));
        assert_eq!((u64_at(&cd, x + 4), u64_at(&cd, x + 12)), (size, size));
        // Entry 1: sizes fit, the offset does not.
        let c1 = x + 20;
        assert_eq!(u32_at(&cd, c1), CENTRAL_SIG);
        assert_eq!(u32_at(&cd, c1 + 20), 3);
        assert_eq!(u32_at(&cd, c1 + 42), u32::MAX);
        let x1 = c1 + 46 + 5;
        assert_eq!((u16_at(&cd, x1), u16_at(&cd, x1 + 2)), (1, 8));
        assert_eq!(u64_at(&cd, x1 + 4), second_at);
        // ZIP64 end record and locator, then the classic end record.
        let z64 = x1 + 12;
        assert_eq!(u32_at(&cd, z64), ZIP64_EOCD_SIG);
        assert_eq!(u64_at(&cd, z64 + 4), 44);
        assert_eq!(u64_at(&cd, z64 + 24), 2);
        assert_eq!(u64_at(&cd, z64 + 40), z64 as u64);
        assert_eq!(u64_at(&cd, z64 + 48), plan.cd_offset);
        let loc = z64 + 56;
        assert_eq!(u32_at(&cd, loc), ZIP64_LOCATOR_SIG);
        assert_eq!(u64_at(&cd, loc + 8), plan.cd_offset + z64 as u64);
        let eocd = loc + 20;
        assert_eq!(u32_at(&cd, eocd), EOCD_SIG);
        assert_eq!(u32_at(&cd, eocd + 16), u32::MAX, "cd offset lives in the zip64 record");
        assert_eq!(eocd + 22, cd.len());
    }

    #[test]
    fn forced_zip64_lengths_add_up() {
        let entries = vec![("x".to_owned(), 4), ("y".to_owned(), 2)];
        let plan = ZipPlan::new_zip64(&entries, UNIX_EPOCH).unwrap();
        let z = archive(&plan, &[b"abcd", b"ef"]);
        assert_eq!(z.len() as u64, plan.len());
        assert!(z.windows(4).any(|w| w == ZIP64_LOCATOR_SIG.to_le_bytes()));
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        assert!(ZipPlan::new(&[(String::new(), 1)], UNIX_EPOCH).is_err());
        assert!(ZipPlan::new(&[("n".repeat(MAX_NAME_LEN + 1), 1)], UNIX_EPOCH).is_err());
        assert!(ZipPlan::new(&[("a".into(), u64::MAX)], UNIX_EPOCH).is_err());
        let plan = ZipPlan::new(&[("a".into(), 1)], UNIX_EPOCH).unwrap();
        assert!(plan.local_header(1).is_err());
        assert!(plan.central_directory(&[]).is_err());
    }
}
