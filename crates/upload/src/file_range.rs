//! Reading a byte range of a stored or local file in bounded chunks, shared by the server's
//! downloads and the client's PATCH bodies and checks: never a whole chunk in memory.

#[cfg(feature = "client")]
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Largest single read.
const READ_CHUNK: usize = 256 * 1024;

fn shrank() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

/// `len` bytes of `path` from `start`, as a stream of chunks of at most 256 KiB. The file is
/// opened on the first poll.
pub(crate) fn file_stream(
    path: PathBuf,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(
        (None::<tokio::fs::File>, path, start, len),
        |(file, path, pos, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut f = match file {
                Some(f) => f,
                None => {
                    let mut f = tokio::fs::File::open(&path).await?;
                    f.seek(std::io::SeekFrom::Start(pos)).await?;
                    f
                }
            };
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
            let mut buf = vec![0u8; want];
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Err(shrank());
            }
            buf.truncate(n);
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
