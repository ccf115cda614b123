//! `futures` adapter: [`PeerStream`] reads messages from an `AsyncRead`, [`PeerSink`] writes
//! them to an `AsyncWrite`.
//!
//! Both are thin: the stream feeds a [`Decoder`] from its read buffer, the sink queues encoded
//! headers and piece blocks as separate chunks and writes them with vectored writes, so a
//! block goes from its [`Bytes`] to the socket without a copy.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures::io::{AsyncRead, AsyncWrite};
use futures::{Sink, Stream};

use crate::{Decoder, Error, Handshake, Message};

/// How much the stream asks the reader for at a time.
const READ_CHUNK: usize = 32 * 1024;
/// Most chunks handed to one vectored write.
const MAX_IOV: usize = 64;

/// A `Stream` of [`Message`]s read from `R`.
///
/// Read the peer's handshake first with [`read_handshake`](Self::read_handshake); bytes that
/// arrived after it stay buffered for the messages.
#[derive(Debug)]
pub struct PeerStream<R> {
    reader: R,
    buf: BytesMut,
    decoder: Decoder,
    eof: bool,
}

impl<R: AsyncRead + Unpin> PeerStream<R> {
    /// Wraps a reader with the given decoder.
    pub fn new(reader: R, decoder: Decoder) -> Self {
        PeerStream { reader, buf: BytesMut::new(), decoder, eof: false }
    }

    /// The decoder, for example to call [`Decoder::set_piece_count`] once metadata is known.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// The reader and any bytes read but not yet decoded.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.reader, self.buf)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let res = Pin::new(&mut self.reader).poll_read(cx, &mut self.buf[start..]);
        let n = match &res {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.buf.truncate(start + n);
        res
    }

    /// Reads the 68-byte handshake.
    pub async fn read_handshake(&mut self) -> Result<Handshake, Error> {
        loop {
            if let Some(h) = Handshake::decode(&mut self.buf)? {
                return Ok(h);
            }
            let n = futures::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for PeerStream<R> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.decoder.decode(&mut this.buf) {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(None) => {}
            }
            if this.eof {
                return Poll::Ready(if this.buf.is_empty() {
                    None
                } else {
                    Some(Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())))
                });
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) => this.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }
}

/// A `Sink` of [`Message`]s written to `W`.
///
/// Messages are queued as chunks (small messages are encoded together into one chunk, piece
/// blocks are queued as the caller's [`Bytes`]) and written with vectored writes on flush.
#[derive(Debug)]
pub struct PeerSink<W> {
    writer: W,
    pending: BytesMut,
    chunks: std::collections::VecDeque<Bytes>,
}

impl<W: AsyncWrite + Unpin> PeerSink<W> {
    /// Wraps a writer.
    pub fn new(writer: W) -> Self {
        PeerSink { writer, pending: BytesMut::new(), chunks: Default::default() }
    }

    /// Queues the handshake (written on the next flush).
    pub fn queue_handshake(&mut self, h: &Handshake) {
        h.encode(&mut self.pending);
    }

    /// The writer (queued bytes not yet flushed are dropped).
    pub fn into_inner(self) -> W {
        self.writer
    }

    fn queue(&mut self, m: Message) -> Result<(), Error> {
        match m {
            Message::Piece(p) => {
                let header = p.header().ok_or(Error::Encode { field: "length" })?;
                self.pending.extend_from_slice(&header);
                self.chunks.push_back(self.pending.split().freeze());
                if !p.data.is_empty() {
                    self.chunks.push_back(p.data);
                }
                Ok(())
            }
            other => other.encode(&mut self.pending),
        }
    }

    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.pending.is_empty() {
            self.chunks.push_back(self.pending.split().freeze());
        }
        while !self.chunks.is_empty() {
            let slices: Vec<IoSlice<'_>> =
                self.chunks.iter().take(MAX_IOV).map(|c| IoSlice::new(c)).collect();
            let n = ready!(Pin::new(&mut self.writer).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())));
            }
            let mut left = n;
            while left > 0 {
                let Some(front) = self.chunks.front_mut() else { break };
                if front.len() <= left {
                    left -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> Sink<Message> for PeerSink<W> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // Keep the queue short: flush once a few blocks are waiting.
        if this.chunks.len() >= MAX_IOV || this.pending.len() >= READ_CHUNK {
            return this.poll_write_all(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_write_all(cx))?;
        Pin::new(&mut this.writer).poll_flush(cx).map_err(Error::from)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_write_all(cx))?;
        Pin::new(&mut this.writer).poll_close(cx).map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Piece, PieceIndex};
    use futures::{SinkExt, StreamExt};

    #[test]
    fn sink_and_stream_round_trip_over_a_pipe() {
        futures::executor::block_on(async {
            let mut wire = futures::io::Cursor::new(Vec::new());
            let mut sink = PeerSink::new(&mut wire);
            let block = Bytes::from(vec![9u8; 16 * 1024]);
            let msgs = vec![
                Message::Unchoke,
                Message::Piece(Piece { index: PieceIndex::new(4), begin: 16384, data: block }),
                Message::Have(PieceIndex::new(4)),
            ];
            for m in msgs.clone() {
                sink.feed(m).await.unwrap();
            }
            sink.flush().await.unwrap();
            let bytes = wire.into_inner();
            let mut expected = Vec::new();
            for m in &msgs {
                m.encode(&mut expected).unwrap();
            }
            assert_eq!(bytes, expected);
            let stream = PeerStream::new(futures::io::Cursor::new(bytes), Decoder::new());
            let got: Vec<Message> = stream.map(|r| r.unwrap()).collect().await;
            assert_eq!(got, msgs);
        });
    }

    #[test]
    fn truncated_stream_is_an_error() {
        futures::executor::block_on(async {
            let mut s =
                PeerStream::new(futures::io::Cursor::new(b"\0\0\0\x05\x04\0".to_vec()), Decoder::new());
            assert!(matches!(s.next().await, Some(Err(Error::Io(_)))));
        });
    }
}
