//! Fast `PATCH` transport for plain `http://` URLs on Linux (feature `client`).
//!
//! [`http_client`](crate::http_client) uses it for every `PATCH` unless
//! [`ClientConfig::sendfile`](crate::client::ClientConfig::sendfile) is off.
//! A body goes from the file to the socket with `sendfile(2)`: no copy
//! through user space and no hop to a thread pool per read. The next `PATCH`
//! is written right behind the previous body, before its answer (see
//! [`ClientMachine::poll_pipelined`](crate::client::ClientMachine::poll_pipelined)),
//! so the link stays busy while the server syncs and answers.
//!
//! The codec half does no I/O: [`encode_patch_head`] writes a request head,
//! [`ResponseDecoder`] takes responses off a buffer. The connection is a
//! blocking std socket that the driver runs on Tokio's blocking pool.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf as _, BufMut, BytesMut};

use crate::Error;
use crate::checksum::ChecksumAlgorithm;
use crate::client::ClientResponse;
use crate::file_range::{read_range_at, shrank};
use crate::headers;

/// Limits on one response head, checked before anything is kept from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Largest status line plus headers, in bytes. Default 16 KiB.
    pub max_head: usize,
    /// Most header fields. Default 64.
    pub max_headers: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self { max_head: 16 * 1024, max_headers: 64 }
    }
}

/// A complete response to a `PATCH` (its body, if any, already skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status and the tus headers the client machine needs (`location` is
    /// always `None`: a `PATCH` answer carries none we use).
    pub response: ClientResponse,
    /// The server keeps the connection open for the next response: HTTP/1.1
    /// without `Connection: close`, and a body of known length.
    pub keep_alive: bool,
}

/// Takes `PATCH` responses off a byte buffer, oldest first.
///
/// A response is returned once its head is parsed and its body (bounded by
/// `Content-Length`, never buffered whole) has been consumed. A body without
/// a length (chunked, or up to the close) is not consumed: the head comes
/// back at once with `keep_alive: false`, and the connection must go.
/// After a response with `keep_alive: false` every later byte is dropped.
/// Interim `1xx` responses are skipped. Not for answers to `HEAD`.
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    limits: ResponseLimits,
    /// A parsed head whose body still has this many bytes to skip.
    skipping: Option<(ResponseHead, u64)>,
    /// A response ended the connection.
    closed: bool,
}

impl ResponseDecoder {
    /// A decoder with these limits.
    pub fn new(limits: ResponseLimits) -> Self {
        Self { limits, skipping: None, closed: false }
    }

    /// The next complete response, `Ok(None)` if more bytes are needed, or
    /// an error if the stream is not HTTP/1.x or exceeds the limits (the
    /// connection is then unusable).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseHead>, Error> {
        let r = self.decode_inner(buf);
        if let Ok(Some(h)) = &r {
            self.closed = !h.keep_alive;
        }
        r
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseHead>, Error> {
        if self.closed {
            buf.clear();
            return Ok(None);
        }
        loop {
            if let Some((_, left)) = &mut self.skipping {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                buf.advance(n);
                *left -= n as u64;
                if *left > 0 {
                    return Ok(None);
                }
                return Ok(self.skipping.take().map(|(h, _)| h));
            }
            let Some((head, used, body)) = parse_head(buf, &self.limits)? else {
                return Ok(None);
            };
            buf.advance(used);
            match body {
                Body::Interim => continue,
                Body::None => return Ok(Some(head)),
                Body::Length(n) => self.skipping = Some((head, n)),
                Body::UntilClose => return Ok(Some(ResponseHead { keep_alive: false, ..head })),
            }
        }
    }
}

enum Body {
    /// A `1xx`: another response follows.
    Interim,
    None,
    Length(u64),
    UntilClose,
}

fn too_large(limits: &ResponseLimits) -> Error {
    Error::ResponseTooLarge { max_head: limits.max_head, max_headers: limits.max_headers }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Strict `1*DIGIT`, no sign, no overflow.
fn parse_len(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

fn parse_head(buf: &[u8], limits: &ResponseLimits) -> Result<Option<(ResponseHead, usize, Body)>, Error> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut r = httparse::Response::new(&mut fields);
    let used = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head => n,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_head => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(too_large(limits)),
        Err(_) => return Err(Error::MalformedResponse),
    };
    let status = r.code.ok_or(Error::MalformedResponse)?;
    let mut response = ClientResponse { status, ..ClientResponse::default() };
    let mut keep_alive = r.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let text = |v: &[u8]| std::str::from_utf8(v).ok().map(|s| s.trim().to_owned());
    for h in r.headers.iter() {
        if eq(h.name, "Content-Length") {
            let n = parse_len(h.value).ok_or(Error::MalformedResponse)?;
            // Two different lengths would let the body hide a response.
            if length.is_some_and(|l| l != n) {
                return Err(Error::MalformedResponse);
            }
            length = Some(n);
        } else if eq(h.name, "Transfer-Encoding") {
            chunked = true;
        } else if eq(h.name, "Connection") {
            let close = h.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            keep_alive &= !close;
        } else if eq(h.name, headers::UPLOAD_OFFSET) && response.upload_offset.is_none() {
            response.upload_offset = text(h.value);
        } else if eq(h.name, headers::UPLOAD_LENGTH) && response.upload_length.is_none() {
            response.upload_length = text(h.value);
        }
    }
    let body = match status {
        101 => return Err(Error::MalformedResponse),
        100..=199 => Body::Interim,
        204 | 304 => Body::None,
        _ if chunked => Body::UntilClose,
        _ => match length {
            Some(0) => Body::None,
            Some(n) => Body::Length(n),
            None => Body::UntilClose,
        },
    };
    Ok(Some((ResponseHead { response, keep_alive }, used, body)))
}

fn visible(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic())
}

/// Field values may hold spaces, tabs and non-ASCII, never CR, LF or NUL.
fn field_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn token(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Appends the head of a `PATCH` of `len` bytes to `out`: request line,
/// `Host`, `headers` (as [`Action::Patch`](crate::client::Action::Patch)
/// gives them), `Upload-Checksum` if given, and `Content-Length`.
///
/// `target` is the origin-form path and query (`/files/abc`), `host` the
/// URL's authority. Values that could split the head (CR, LF, NUL, spaces in
/// the target) are refused, since URLs come from the server's `Location`.
pub fn encode_patch_head(
    out: &mut impl BufMut,
    target: &str,
    host: &str,
    len: u64,
    headers: &[(&'static str, String)],
    checksum: Option<&str>,
) -> Result<(), Error> {
    if !target.starts_with('/') || !visible(target) {
        return Err(Error::MalformedHeader { name: "request-target" });
    }
    if !visible(host) {
        return Err(Error::MalformedHeader { name: "Host" });
    }
    let extra = checksum.map(|c| (headers::UPLOAD_CHECKSUM, c));
    let all = headers.iter().map(|(k, v)| (*k, v.as_str())).chain(extra);
    if let Some((name, _)) = all.clone().find(|(k, v)| !token(k) || !field_value(v)) {
        return Err(Error::MalformedHeader { name });
    }
    out.put_slice(b"PATCH ");
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\nHost: ");
    out.put_slice(host.as_bytes());
    for (k, v) in all {
        out.put_slice(b"\r\n");
        out.put_slice(k.as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
    }
    out.put_slice(b"\r\nContent-Length: ");
    out.put_slice(len.to_string().as_bytes());
    out.put_slice(b"\r\n\r\n");
    Ok(())
}

/// One `PATCH` to send: the fields of an [`Action::Patch`](crate::client::Action::Patch).
#[derive(Debug, Clone)]
pub(crate) struct PatchRequest {
    pub(crate) url: reqwest::Url,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) checksum: Option<ChecksumAlgorithm>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// Bytes read from the socket at once (responses are small).
const READ_CHUNK: usize = 8 * 1024;
/// Largest single `sendfile` call; the kernel caps it near 2 GiB anyway.
const SENDFILE_MAX: usize = 1 << 30;

/// A keep-alive HTTP/1.1 connection that sends `PATCH` bodies with
/// `sendfile(2)`. Blocking: run it on a blocking thread.
#[derive(Debug)]
pub(crate) struct PatchConnection {
    stream: TcpStream,
    /// `host:port` it is connected to.
    authority: (String, u16),
    buf: BytesMut,
    decoder: ResponseDecoder,
    head: Vec<u8>,
    scratch: Vec<u8>,
}

fn authority(url: &reqwest::Url) -> Option<(String, u16)> {
    Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
}

impl PatchConnection {
    /// Connects to `url`'s host with `timeout` on the connect and on every
    /// later read and write.
    pub(crate) fn connect(url: &reqwest::Url, timeout: Duration) -> io::Result<Self> {
        let authority = authority(url).ok_or_else(|| io::Error::other("URL without host"))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolves to no address");
        let mut stream = None;
        for a in url.socket_addrs(|| None)? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        // The head is written on its own; Nagle would hold it for an ACK.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self {
            stream,
            authority,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: ResponseDecoder::new(ResponseLimits::default()),
            head: Vec::with_capacity(512),
            scratch: Vec::new(),
        })
    }

    /// Whether requests to `url` can go over this connection.
    pub(crate) fn serves(&self, url: &reqwest::Url) -> bool {
        authority(url).as_ref() == Some(&self.authority)
    }

    /// Writes one `PATCH`: the head, then `req.len` bytes of `file` from
    /// `req.offset` straight from the page cache.
    pub(crate) fn send(&mut self, req: &PatchRequest, file: &File) -> Result<(), Error> {
        let checksum = match req.checksum {
            Some(alg) => Some(headers::encode_checksum(&self.checksum(file, req.offset, req.len, alg)?)),
            None => None,
        };
        let mut target = req.url.path().to_owned();
        if let Some(q) = req.url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host = match (req.url.host_str(), req.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        self.head.clear();
        encode_patch_head(&mut self.head, &target, &host, req.len, &req.headers, checksum.as_deref())?;
        self.stream.write_all(&self.head)?;
        let end = req.offset.checked_add(req.len).ok_or_else(shrank)?;
        let mut pos = req.offset;
        while pos < end {
            let want = usize::try_from(end - pos).unwrap_or(usize::MAX).min(SENDFILE_MAX);
            match rustix::fs::sendfile(&self.stream, file, Some(&mut pos), want) {
                Ok(0) => return Err(shrank().into()),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        Ok(())
    }

    fn checksum(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        alg: ChecksumAlgorithm,
    ) -> io::Result<crate::checksum::Checksum> {
        let mut h = alg.hasher();
        read_range_at(file, offset, len, &mut self.scratch, |b| h.update(b))?;
        Ok(h.finish())
    }

    /// Reads the oldest unanswered response.
    pub(crate) fn read_response(&mut self) -> Result<ResponseHead, Error> {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if let Some(h) = self.decoder.decode(&mut self.buf)? {
                return Ok(h);
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }
}

/// Outcome of one blocking step: the connection if it may be reused, and the
/// answer to the oldest request (or why there is none).
pub(crate) type StepResult = (Option<PatchConnection>, Result<ResponseHead, Error>);

/// Writes `requests` (the in-flight `PATCH` if not yet written, and the
/// pipelined one) and reads the answer to the oldest unanswered request.
/// Connects first when `conn` is gone or points elsewhere.
pub(crate) fn step(
    conn: Option<PatchConnection>,
    file: &File,
    requests: &[PatchRequest],
    timeout: Duration,
) -> StepResult {
    let mut conn = match conn {
        Some(c) if requests.first().is_none_or(|r| c.serves(&r.url)) => c,
        _ => match requests.first().map(|r| PatchConnection::connect(&r.url, timeout)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return (None, Err(e.into())),
            None => return (None, Err(Error::InvalidState("nothing to send or read"))),
        },
    };
    for r in requests {
        if let Err(e) = conn.send(r, file) {
            // A server that refuses a request early answers, then closes
            // without reading the body: the answer is worth more than the
            // broken pipe.
            let refused = matches!(&e, Error::Io(io) if matches!(io.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset));
            if refused && let Ok(h) = conn.read_response() {
                return (None, Ok(h));
            }
            return (None, Err(e));
        }
    }
    match conn.read_response() {
        Ok(h) if h.keep_alive => (Some(conn), Ok(h)),
        r => (None, r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], limits: ResponseLimits) -> Result<Vec<ResponseHead>, Error> {
        let mut d = ResponseDecoder::new(limits);
        let mut buf = BytesMut::from(bytes);
        let mut out = vec![];
        while let Some(h) = d.decode(&mut buf)? {
            out.push(h);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    /// Fed whole, one byte at a time, and split at every point.
    fn decode_split(bytes: &[u8]) -> Result<Vec<ResponseHead>, Error> {
        let whole = decode_all(bytes, ResponseLimits::default());
        let mut feeds: Vec<Vec<&[u8]>> = (0..=bytes.len()).map(|i| vec![&bytes[..i], &bytes[i..]]).collect();
        feeds.push(bytes.chunks(1).collect());
        for feed in feeds {
            let mut d = ResponseDecoder::new(ResponseLimits::default());
            let mut buf = BytesMut::new();
            let mut out = vec![];
            let mut err = None;
            for part in feed {
                buf.extend_from_slice(part);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Some(h)) => out.push(h),
                        Ok(None) => break,
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                if err.is_some() {
                    break;
                }
            }
            match (&whole, err) {
                (Ok(w), None) => assert_eq!(&out, w),
                (Err(_), Some(_)) => {}
                (w, e) => panic!("split decode differs: {w:?} vs {e:?}"),
            }
        }
        whole
    }

    fn head(status: u16, offset: Option<&str>, keep_alive: bool) -> ResponseHead {
        ResponseHead {
            response: ClientResponse {
                status,
                upload_offset: offset.map(str::to_owned),
                ..ClientResponse::default()
            },
            keep_alive,
        }
    }

    #[test]
    fn pipelined_answers_with_bodies_and_interim() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\nupload-offset: 8\r\n\r\n\
            HTTP/1.1 409 Conflict\r\nContent-Length: 12\r\nUpload-Offset: 8\r\n\r\nwrong offset\
            HTTP/1.1 204 No Content\r\nUpload-Offset: 16\r\nConnection: keep-alive, Close\r\n\r\n";
        assert_eq!(
            decode_split(bytes).unwrap(),
            vec![head(204, Some("8"), true), head(409, Some("8"), true), head(204, Some("16"), false)]
        );
    }

    #[test]
    fn bodies_without_a_length_end_the_connection() {
        let chunked = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(decode_split(chunked).unwrap(), vec![head(500, None, false)]);
        let until_close = b"HTTP/1.1 460 Checksum Mismatch\r\n\r\nbad";
        assert_eq!(decode_split(until_close).unwrap(), vec![head(460, None, false)]);
        let old = b"HTTP/1.0 204 No Content\r\nUpload-Offset: 3\r\n\r\n";
        assert_eq!(decode_split(old).unwrap(), vec![head(204, Some("3"), false)]);
        // The length of a 204 is ignored: it has no body.
        let odd = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(decode_split(odd).unwrap(), vec![head(204, None, true)]);
    }

    #[test]
    fn malformed_responses_are_refused() {
        for bad in [
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/2 204 No Content\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nBad Header: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(
                matches!(decode_split(bad), Err(Error::MalformedResponse)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Equal repeated lengths are fine.
        let same = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(decode_split(same).unwrap(), vec![head(200, None, true)]);
    }

    #[test]
    fn oversized_heads_are_refused_before_they_are_whole() {
        let limits = ResponseLimits { max_head: 64, max_headers: 4 };
        let long = format!("HTTP/1.1 204 No Content\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert!(matches!(decode_all(long.as_bytes(), limits), Err(Error::ResponseTooLarge { .. })));
        // Refused while still partial: a peer cannot make us buffer forever.
        let mut d = ResponseDecoder::new(limits);
        let mut buf = BytesMut::from(&long.as_bytes()[..80]);
        assert!(matches!(d.decode(&mut buf), Err(Error::ResponseTooLarge { .. })));
        let many = "HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
        let limits = ResponseLimits { max_head: 1024, max_headers: 4 };
        assert!(matches!(decode_all(many.as_bytes(), limits), Err(Error::ResponseTooLarge { .. })));
        let limits = ResponseLimits { max_head: 1024, max_headers: 5 };
        assert_eq!(decode_all(many.as_bytes(), limits).unwrap().len(), 1);
    }

    #[test]
    fn huge_declared_body_is_skipped_not_buffered() {
        let mut d = ResponseDecoder::new(ResponseLimits::default());
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 500 Err\r\nContent-Length: 18446744073709551615\r\n\r\nxyz"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty(), "body bytes are dropped as they come");
    }

    fn tus_headers(offset: u64) -> Vec<(&'static str, String)> {
        vec![
            (headers::TUS_RESUMABLE, "1.0.0".into()),
            (headers::CONTENT_TYPE, headers::OFFSET_OCTET_STREAM.into()),
            (headers::UPLOAD_OFFSET, offset.to_string()),
        ]
    }

    #[test]
    fn patch_head_is_exact_and_parses_back() {
        let mut out = Vec::new();
        encode_patch_head(
            &mut out,
            "/files/abc?x=1",
            "127.0.0.1:1080",
            8,
            &tus_headers(16),
            Some("sha1 AAAA"),
        )
        .unwrap();
        let text = "PATCH /files/abc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:1080\r\nTus-Resumable: 1.0.0\r\n\
            Content-Type: application/offset+octet-stream\r\nUpload-Offset: 16\r\n\
            Upload-Checksum: sha1 AAAA\r\nContent-Length: 8\r\n\r\n";
        assert_eq!(String::from_utf8(out.clone()).unwrap(), text);
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut fields);
        assert_eq!(req.parse(&out).unwrap(), httparse::Status::Complete(out.len()));
        assert_eq!((req.method, req.path), (Some("PATCH"), Some("/files/abc?x=1")));
    }

    #[test]
    fn patch_head_refuses_injection() {
        let mut out = Vec::new();
        let r = encode_patch_head(&mut out, "/a b", "h", 1, &[], None);
        assert!(matches!(r, Err(Error::MalformedHeader { name: "request-target" })));
        assert!(encode_patch_head(&mut out, "files", "h", 1, &[], None).is_err());
        assert!(matches!(
            encode_patch_head(&mut out, "/a", "h\r\nX: y", 1, &[], None),
            Err(Error::MalformedHeader { name: "Host" })
        ));
        let bad = vec![(headers::UPLOAD_OFFSET, "1\r\nEvil: 1".to_owned())];
        assert!(matches!(
            encode_patch_head(&mut out, "/a", "h", 1, &bad, None),
            Err(Error::MalformedHeader { name: headers::UPLOAD_OFFSET })
        ));
        assert!(encode_patch_head(&mut out, "/a", "h", 1, &[], Some("sha1 \n")).is_err());
        assert!(out.is_empty(), "nothing written on refusal");
    }

    /// A one-connection HTTP peer on loopback: reads each request head and
    /// its body, then answers with `answer(offset, len)`.
    fn peer(answers: Vec<&'static [u8]>) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = vec![];
            let mut buf = vec![];
            let mut chunk = [0u8; 4096];
            for a in answers {
                loop {
                    let mut fields = [httparse::EMPTY_HEADER; 16];
                    let mut req = httparse::Request::new(&mut fields);
                    if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                        let len: usize = req
                            .headers
                            .iter()
                            .find(|h| h.name == "Content-Length")
                            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                            .unwrap();
                        if buf.len() >= n + len {
                            got.extend_from_slice(&buf[n..n + len]);
                            buf.drain(..n + len);
                            break;
                        }
                    }
                    let k = s.read(&mut chunk).unwrap();
                    assert!(k > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..k]);
                }
                s.write_all(a).unwrap();
            }
            got
        });
        (addr, t)
    }

    #[test]
    fn sendfile_pipelines_two_requests_on_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let (addr, t) = peer(vec![
            b"HTTP/1.1 204 No Content\r\nUpload-Offset: 200000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nUpload-Offset: 300000\r\n\r\n",
        ]);
        let url: reqwest::Url = format!("http://{addr}/files/x").parse().unwrap();
        let req = |offset, len| PatchRequest {
            url: url.clone(),
            offset,
            len,
            checksum: Some(ChecksumAlgorithm::Crc32c),
            headers: tus_headers(offset),
        };
        let timeout = Duration::from_secs(10);
        let (conn, r) = step(None, &file, &[req(0, 200_000), req(200_000, 100_000)], timeout);
        assert_eq!(r.unwrap(), head(204, Some("200000"), true));
        let (conn, r) = step(conn, &file, &[], timeout);
        assert_eq!(r.unwrap(), head(204, Some("300000"), true));
        assert!(conn.is_some());
        assert_eq!(t.join().unwrap(), data);
    }

    #[test]
    fn shrunk_file_is_a_transport_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 10]).unwrap();
        let file = File::open(&path).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url: reqwest::Url = format!("http://{}/files/x", l.local_addr().unwrap()).parse().unwrap();
        let r = PatchRequest { url, offset: 5, len: 10, checksum: None, headers: tus_headers(5) };
        let (conn, r) = step(None, &file, &[r], Duration::from_secs(5));
        assert!(conn.is_none());
        assert!(matches!(r, Err(Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
    }
}
