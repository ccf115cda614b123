//! Per-chunk zstd (feature `zstd`): each chunk becomes one independent zstd
//! frame, so a concatenation of chunks is a valid zstd stream. Chunks that do
//! not compress are wrapped in a frame of raw blocks without running the
//! compressor over them (a 4 KiB probe decides).

/// Bytes probed to decide whether a chunk is worth compressing.
pub const PROBE_LEN: usize = 4096;
/// Largest raw block zstd allows.
const MAX_BLOCK: usize = 128 * 1024;

/// Wraps `data` in a zstd frame of raw (stored) blocks.
pub fn raw_frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16 + data.len() / MAX_BLOCK * 3);
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Single segment, 4-byte frame content size, no checksum, no dictionary.
    out.push(0b1010_0000);
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&size.to_le_bytes());
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(b) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        // Block_Type 0 (raw); b.len() <= 128 KiB fits the 21-bit size.
        let header = last | ((b.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(b);
    }
    out
}

/// True if a level-1 probe of the first bytes saves less than 1/16.
pub fn looks_incompressible(data: &[u8]) -> bool {
    let probe = data.get(..PROBE_LEN).unwrap_or(data);
    match zstd::bulk::compress(probe, 1) {
        Ok(c) => c.len() + probe.len() / 16 >= probe.len(),
        Err(_) => true,
    }
}

/// One zstd frame for `data` at `level`: compressed if that pays, else raw.
/// `data` must be under 4 GiB (chunks are a few hundred KiB).
pub fn zstd_chunk(data: &[u8], level: i32) -> Vec<u8> {
    if looks_incompressible(data) {
        return raw_frame(data);
    }
    match zstd::bulk::compress(data, level) {
        Ok(c) if c.len() < data.len() => c,
        _ => raw_frame(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_decode() {
        for len in [0usize, 1, 1000, MAX_BLOCK, MAX_BLOCK + 1, 3 * MAX_BLOCK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            let f = raw_frame(&data);
            assert_eq!(zstd::decode_all(&f[..]).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn chunks_concatenate_and_skip_incompressible() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(5000);
        let mut noise = vec![0u8; 200_000];
        let mut x = 0x1234_5678_9abc_def1u64;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 32) as u8;
        }
        let a = zstd_chunk(&text, 3);
        let b = zstd_chunk(&noise, 3);
        assert!(a.len() < text.len() / 10, "text compresses");
        assert!(looks_incompressible(&noise));
        assert_eq!(b, raw_frame(&noise), "noise stored raw");
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut want = text.clone();
        want.extend_from_slice(&noise);
        assert_eq!(zstd::decode_all(&stream[..]).unwrap(), want);
    }
}
