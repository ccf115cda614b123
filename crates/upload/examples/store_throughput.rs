//! The upload server's path without the network: PATCH bodies in 256 KiB frames, handed by
//! one thread (the socket reader's place) to another that hashes and stores them
//! ([`Server::begin_patch`], `write`, `finish_patch`, as the HTTP adapter does), into a
//! durable [`FileStore`]. Its rate is what the server could reach if the network cost
//! nothing: `benches/tus_compare.sh` prints it beside the disk's own rate and the
//! client-to-server rate.
//!
//! ```text
//! cargo run --release -p piecework-upload --example store_throughput -- DIR [SIZE_MIB=1024] [CHUNK=8M]
//! ```
//! Prints one line: `STORE_THROUGHPUT {"chunk": ..., "mb_per_s": ..., "cpu_s_per_gib": ...}`.

use std::sync::mpsc;
use std::time::{Instant, SystemTime};

use piecework_upload::store::FileStore;
use piecework_upload::{BodyEnd, Server, ServerConfig, UploadId};

/// Frames as large as the server's read buffer hands out.
const FRAME: usize = 256 * 1024;

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    Ok(num.parse::<u64>()? << shift)
}

/// CPU seconds of this process so far (user + system).
fn process_cpu() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((tick(11) + tick(12)) / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir =
        args.first().ok_or_else(|| anyhow::anyhow!("usage: store_throughput DIR [SIZE_MIB] [CHUNK]"))?;
    let size = args.get(1).map_or(Ok(1024), |s| s.parse::<u64>())? << 20;
    let chunk_arg = args.get(2).map_or("8M", String::as_str);
    let chunk = parse_size(chunk_arg)?;
    anyhow::ensure!(chunk > 0 && chunk % FRAME as u64 == 0, "CHUNK must be a multiple of 256K");

    let mut server = Server::open(ServerConfig::default(), FileStore::open(dir)?)?;
    let id = UploadId::new("throughput")?;
    let now = SystemTime::now();
    let len = size.to_string();
    server.handle_create(
        now,
        id.clone(),
        &[("Tus-Resumable", "1.0.0"), ("Upload-Length", len.as_str())][..],
    )?;

    // Pseudo-random bytes (xorshift), so nothing on the way can shortcut them; frames cycle
    // through 64 MiB.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let source: Vec<u8> = (0..(64usize << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let (frames, incoming) = mpsc::sync_channel::<Vec<u8>>(4);
    let (give_back, spare) = mpsc::channel::<Vec<u8>>();
    for _ in 0..6 {
        give_back.send(vec![0u8; FRAME])?;
    }
    let cpu0 = process_cpu()?;
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut at = 0usize;
        let mut left = size;
        while left > 0 {
            let mut frame = spare.recv()?;
            let n = FRAME.min(usize::try_from(left).unwrap_or(FRAME));
            frame.resize(n, 0);
            if at + n > source.len() {
                at = 0;
            }
            frame.copy_from_slice(&source[at..at + n]);
            at += n;
            left -= n as u64;
            frames.send(frame)?;
        }
        Ok(())
    });
    let mut offset = 0u64;
    while offset < size {
        let body_len = chunk.min(size - offset);
        let off = offset.to_string();
        let patch = [
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", off.as_str()),
        ];
        let mut body = server.begin_patch(SystemTime::now(), id.as_str(), &patch[..])?;
        let mut got = 0u64;
        while got < body_len {
            // Whole frames: the size (whole MiB) and the chunk are multiples of one.
            let frame = incoming.recv()?;
            body.write(&frame)?;
            got += frame.len() as u64;
            let _ = give_back.send(frame);
        }
        body.sync()?;
        let r = server.finish_patch(SystemTime::now(), body, BodyEnd::Complete { trailer: None })?;
        anyhow::ensure!(r.status == 204, "PATCH answered {}", r.status);
        offset += body_len;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = process_cpu()? - cpu0;
    reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    anyhow::ensure!(server.pieces_root(&id).is_some(), "no pieces root");
    server.handle_delete(SystemTime::now(), id.as_str(), &[("Tus-Resumable", "1.0.0")][..])?;
    println!(
        "STORE_THROUGHPUT {{\"chunk\": \"{chunk_arg}\", \"size_mib\": {}, \"mb_per_s\": {:.1}, \"cpu_s_per_gib\": {:.3}}}",
        size >> 20,
        size as f64 / secs / 1e6,
        cpu / (size as f64 / f64::from(1u32 << 30)),
    );
    Ok(())
}
