//! A minimal, strict HTTP/1.1 client codec: one `GET` with `Connection: close`, and a response
//! parser that is fed the bytes received so far.
//!
//! Enough for trackers: status line, headers, and a body framed by `Content-Length`,
//! `Transfer-Encoding: chunked` or the end of the connection. Lines must end in CRLF, header
//! names must be tokens, and conflicting lengths are refused (request-smuggling hygiene).
//! Redirects are not followed.

use std::borrow::Cow;

use crate::{Error, TrackerUrl};

/// Longest status line plus headers accepted.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// The bytes of a `GET target HTTP/1.1` request for `url`'s host, with `Connection: close`.
///
/// `target` is a path and query such as [`TrackerUrl::announce_target`] returns. It must contain
/// no spaces or control characters (those methods guarantee that).
pub fn get_request(url: &TrackerUrl, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: piecework/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes()
}

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The status code.
    pub status: u16,
    /// The body: borrowed from the input unless it was chunked.
    pub body: Cow<'a, [u8]>,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parses a response from the bytes received so far.
///
/// Returns `Ok(None)` while more bytes are needed; `eof` says the peer closed the connection
/// (which completes a body without a length, and makes any other incomplete response an error).
/// A body longer than `max_body` is [`Error::TooLarge`]; a head longer than [`MAX_HEAD_LEN`] too.
pub fn parse_response(buf: &[u8], eof: bool, max_body: usize) -> Result<Option<Response<'_>>, Error> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD_LEN {
            return Err(Error::TooLarge { limit: MAX_HEAD_LEN });
        }
        return if eof { Err(Error::MalformedHttp { offset: buf.len() }) } else { Ok(None) };
    };
    if head_end > MAX_HEAD_LEN {
        return Err(Error::TooLarge { limit: MAX_HEAD_LEN });
    }
    let head = &buf[..head_end];
    let mut lines = LineIter { buf: head, pos: 0 };
    let (start, status_line) = lines.next().unwrap_or((0, &[]));
    let status = parse_status_line(status_line).ok_or(Error::MalformedHttp { offset: start })?;

    let mut length: Option<usize> = None;
    let mut chunked = false;
    for (off, line) in lines {
        let colon = line.iter().position(|&b| b == b':').ok_or(Error::MalformedHttp { offset: off })?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Error::MalformedHttp { offset: off });
        }
        if !value.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80) {
            return Err(Error::MalformedHttp { offset: off + colon + 1 });
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(Error::MalformedHttp { offset: off + colon + 1 })?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::MalformedHttp { offset: off });
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only "chunked" (optionally after "identity") is understood.
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or_default();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(Error::MalformedHttp { offset: off + colon + 1 });
            }
            chunked = true;
        }
    }
    let framing = match (chunked, length) {
        (true, Some(_)) => return Err(Error::MalformedHttp { offset: 0 }),
        (true, None) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) if status == 204 || status == 304 => Framing::Length(0),
        (false, None) => Framing::UntilClose,
    };
    let body_start = head_end + 4;
    let rest = buf.get(body_start..).unwrap_or_default();
    match framing {
        Framing::Length(n) => {
            if n > max_body {
                return Err(Error::TooLarge { limit: max_body });
            }
            match rest.get(..n) {
                Some(body) => Ok(Some(Response { status, body: Cow::Borrowed(body) })),
                None if eof => Err(Error::MalformedHttp { offset: buf.len() }),
                None => Ok(None),
            }
        }
        Framing::UntilClose => {
            if rest.len() > max_body {
                return Err(Error::TooLarge { limit: max_body });
            }
            Ok(eof.then_some(Response { status, body: Cow::Borrowed(rest) }))
        }
        Framing::Chunked => match dechunk(rest, body_start, max_body)? {
            Some(body) => Ok(Some(Response { status, body: Cow::Owned(body) })),
            None if eof => Err(Error::MalformedHttp { offset: buf.len() }),
            None => Ok(None),
        },
    }
}

/// Decodes a chunked body; `Ok(None)` if incomplete. `base` is the body's offset for errors.
fn dechunk(mut rest: &[u8], base: usize, max_body: usize) -> Result<Option<Vec<u8>>, Error> {
    let mut body = Vec::new();
    let mut pos = base;
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            // A size line is short; a long one is garbage, not a slow peer.
            return if rest.len() > 1024 { Err(Error::MalformedHttp { offset: pos }) } else { Ok(None) };
        };
        let size_field = rest[..eol].split(|&b| b == b';').next().unwrap_or_default();
        let size = parse_hex(trim(size_field)).ok_or(Error::MalformedHttp { offset: pos })?;
        rest = &rest[eol + 2..];
        pos += eol + 2;
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            let mut lines = rest;
            loop {
                let Some(eol) = find(lines, b"\r\n") else {
                    return if lines.len() > MAX_HEAD_LEN {
                        Err(Error::TooLarge { limit: MAX_HEAD_LEN })
                    } else {
                        Ok(None)
                    };
                };
                if eol == 0 {
                    return Ok(Some(body));
                }
                lines = &lines[eol + 2..];
            }
        }
        if size > max_body.saturating_sub(body.len()) {
            return Err(Error::TooLarge { limit: max_body });
        }
        let Some(chunk) = rest.get(..size) else { return Ok(None) };
        match rest.get(size..size + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(Error::MalformedHttp { offset: pos + size }),
        }
        body.extend_from_slice(chunk);
        rest = &rest[size + 2..];
        pos += size + 2;
    }
}

fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !matches!(minor, b'0' | b'1') {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return None;
    }
    match rest.get(3) {
        None | Some(b' ') => {}
        Some(_) => return None,
    }
    Some(code.iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0')))
}

fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &d| acc.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(v as usize)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|&b| b != b' ' && b != b'\t') {
        Some(i) => &s[i..],
        None => return &[],
    };
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    &s[..end]
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lines of the head, split on CRLF, with their offsets. A bare LF stays inside a line and is
/// then refused by the header checks.
struct LineIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        let start = self.pos;
        match find(rest, b"\r\n") {
            Some(i) => {
                self.pos += i + 2;
                Some((start, &rest[..i]))
            }
            None => {
                self.pos = self.buf.len() + 1;
                Some((start, rest))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_splits(resp: &[u8], max: usize) -> Response<'static> {
        // A prefix is never a complete response, except at the end of an until-close body.
        for i in 0..resp.len() {
            match parse_response(&resp[..i], false, max) {
                Ok(None) => {}
                other => panic!("prefix {i}: {other:?}"),
            }
        }
        let r = parse_response(resp, true, max).unwrap().unwrap();
        Response { status: r.status, body: Cow::Owned(r.body.into_owned()) }
    }

    #[test]
    fn content_length() {
        let resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
        let r = all_splits(resp, 100);
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        // Extra bytes after the body are not part of it.
        let mut more = resp.to_vec();
        more.extend_from_slice(b"junk");
        assert_eq!(&parse_response(&more, false, 100).unwrap().unwrap().body[..], b"hello");
    }

    #[test]
    fn chunked() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\n";
        let r = all_splits(resp, 100);
        assert_eq!(&r.body[..], b"hello, world!!!");
        assert!(matches!(parse_response(resp, true, 7), Err(Error::TooLarge { limit: 7 })));
    }

    #[test]
    fn until_close() {
        let resp = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nd8:intervali1ee";
        assert!(matches!(parse_response(resp, false, 100), Ok(None)));
        let r = parse_response(resp, true, 100).unwrap().unwrap();
        assert_eq!(&r.body[..], b"d8:intervali1ee");
        assert!(matches!(parse_response(resp, true, 3), Err(Error::TooLarge { limit: 3 })));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response(bad, true, 100), Err(Error::MalformedHttp { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Truncated at EOF.
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", true, 100),
            Err(Error::MalformedHttp { .. })
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", false, 100),
            Err(Error::TooLarge { limit: 100 })
        ));
        let huge_head = vec![b'a'; MAX_HEAD_LEN + 1];
        assert!(matches!(parse_response(&huge_head, false, 100), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn request_bytes() {
        let u = TrackerUrl::parse("http://127.0.0.1:6969/announce").unwrap();
        let req = String::from_utf8(get_request(&u, "/announce?x=1")).unwrap();
        assert!(req.starts_with("GET /announce?x=1 HTTP/1.1\r\nHost: 127.0.0.1:6969\r\n"));
        assert!(req.ends_with("Connection: close\r\n\r\n"));
    }
}
