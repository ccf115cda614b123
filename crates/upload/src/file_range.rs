//! Reading a byte range of a stored or local file in bounded chunks, shared by the server's
//! downloads and the client's PATCH bodies and checks: never a whole chunk in memory.

#[cfg(feature = "client")]
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;
#[cfg(feature = "client")]
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Largest single read of [`read_range`].
#[cfg(feature = "client")]
const READ_CHUNK: usize = 256 * 1024;

/// Largest read of [`file_stream`]: each read is one hop to the blocking
/// pool, so fewer, larger reads cost fewer context switches.
const STREAM_CHUNK: usize = 1 << 20;

pub(crate) fn shrank() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

/// `len` bytes of `path` from `start`, as a stream of chunks of at most 1 MiB. The file is
/// opened on the first poll. Reads go straight into each chunk's buffer on the blocking pool
/// (no zeroing, and not through `tokio::fs::File`'s own buffer, which would copy every byte
/// once more).
pub(crate) fn file_stream(
    path: PathBuf,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(
        (None::<std::fs::File>, path, start, len),
        |(file, path, pos, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(STREAM_CHUNK);
            let open = path.clone();
            let (f, buf) = tokio::task::spawn_blocking(move || {
                use std::io::{Read as _, Seek as _};
                let mut f = match file {
                    Some(f) => f,
                    None => {
                        let mut f = std::fs::File::open(&open)?;
                        f.seek(std::io::SeekFrom::Start(pos))?;
                        f
                    }
                };
                let mut buf = Vec::with_capacity(want);
                // `take` keeps the read inside the range; `read_to_end` fills the spare
                // capacity without zeroing it first.
                (&mut f).take(want as u64).read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>((f, buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            let n = buf.len();
            if n == 0 {
                return Err(shrank());
            }
            Ok(Some((Bytes::from(buf), (Some(f), path, pos + n as u64, left - n as u64))))
        },
    )
}

/// Feeds `len` bytes of `path` from `start` to `consume`, one bounded buffer at a time.
#[cfg(feature = "client")]
pub(crate) async fn read_range(
    path: &Path,
    start: u64,
    len: u64,
    mut consume: impl FnMut(&[u8]),
) -> Result<(), std::io::Error> {
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(start)).await?;
    let mut left = len;
    let mut buf = vec![0u8; READ_CHUNK];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = f.read(buf.get_mut(..want).unwrap_or(&mut [])).await?;
        if n == 0 {
            return Err(shrank());
        }
        consume(buf.get(..n).unwrap_or(&[]));
        left -= n as u64;
    }
    Ok(())
}

/// [`read_range`] over an open file, blocking, through `buf` (grown to [`READ_CHUNK`] once
/// and kept by the caller between calls).
#[cfg(all(feature = "client", target_os = "linux"))]
pub(crate) fn read_range_at(
    file: &std::fs::File,
    start: u64,
    len: u64,
    buf: &mut Vec<u8>,
    mut consume: impl FnMut(&[u8]),
) -> Result<(), std::io::Error> {
    use std::os::unix::fs::FileExt as _;
    buf.resize(READ_CHUNK, 0);
    let (mut pos, mut left) = (start, len);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let part = buf.get_mut(..want).unwrap_or(&mut []);
        let n = file.read_at(part, pos)?;
        if n == 0 {
            return Err(shrank());
        }
        consume(part.get(..n).unwrap_or(&[]));
        pos += n as u64;
        left -= n as u64;
    }
    Ok(())
}
