//! The sans-IO tus client state machine.
//!
//! Call [`ClientMachine::poll_action`] to learn the next request, perform it,
//! then report the outcome with [`ClientMachine::handle_response`] or
//! [`ClientMachine::handle_error`]. Time is passed in; a
//! [`Action::Wait`] means "call `poll_action` again at `until`".
//!
//! # Pipelining
//!
//! While a `PATCH` is in flight, [`ClientMachine::poll_pipelined`] hands out
//! the `PATCH` that follows it if it succeeds, so a driver can write it on the
//! same connection before the first answer arrives (at most two requests
//! outstanding). This is safe in tus because `Upload-Offset` guards every
//! `PATCH`: if the first fails, the server refuses the second with 409 and
//! stores nothing from it. Responses are reported oldest first; any answer to
//! the first other than 204 with the expected offset, or a transport error,
//! discards the pipelined request (the driver drops the connection and
//! ignores its answer) and the machine re-syncs as usual.

use std::time::{Duration, SystemTime};

use crate::Error;
use crate::checksum::ChecksumAlgorithm;
use crate::headers::{self, Metadata};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bytes per PATCH. Default 8 MiB.
    pub chunk_size: u64,
    /// Waits between consecutive failed attempts; the last one repeats.
    /// Default 0.5 s, 1 s, 2 s, 4 s, 8 s.
    pub backoff: Vec<Duration>,
    /// Consecutive failures tolerated before giving up. Default 8.
    pub max_retries: u32,
    /// Send `Upload-Checksum` with every PATCH. Default none. The driver
    /// reads each chunk twice then (once to hash, once to send), so memory
    /// stays bounded.
    pub checksum: Option<ChecksumAlgorithm>,
    /// `Upload-Metadata` sent at creation.
    pub metadata: Metadata,
    /// When resuming from a server that reports a prefix root, hash the
    /// local prefix and start over on a mismatch (the file changed). Reads the
    /// prefix once. Default `false`.
    pub verify_prefix: bool,
    /// Let [`ClientMachine::poll_pipelined`] hand out the next `PATCH`
    /// before the previous one is answered. Default `true`.
    pub pipeline: bool,
    /// Send `PATCH` bodies with `sendfile(2)` over a plain socket (and
    /// pipeline them) for `http://` URLs on Linux; `false` sends every
    /// request through reqwest. Default `true`.
    pub sendfile: bool,
    /// Fast `PATCH` transport only: longest wait for a connect, a socket
    /// write, or a response to make progress before the attempt counts as
    /// a transport failure. Default 60 s (a server may fsync a large chunk
    /// before answering).
    pub io_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            chunk_size: 8 << 20,
            backoff: [500, 1000, 2000, 4000, 8000].into_iter().map(Duration::from_millis).collect(),
            max_retries: 8,
            checksum: None,
            metadata: Metadata::new(),
            verify_prefix: false,
            pipeline: true,
            sendfile: true,
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `POST` to the creation endpoint with these headers.
    Create {
        /// Request headers.
        headers: Vec<(&'static str, String)>,
    },
    /// `HEAD` the upload URL.
    Head {
        /// Upload URL.
        url: String,
        /// Request headers.
        headers: Vec<(&'static str, String)>,
    },
    /// `PATCH` bytes `offset..offset+len` of the file to the upload URL.
    Patch {
        /// Upload URL.
        url: String,
        /// First byte to send.
        offset: u64,
        /// Bytes to send.
        len: u64,
        /// Algorithm for `Upload-Checksum` over these bytes, if configured.
        checksum: Option<ChecksumAlgorithm>,
        /// Request headers (without the checksum).
        headers: Vec<(&'static str, String)>,
    },
    /// Nothing to do before `until`.
    Wait {
        /// When to poll again.
        until: SystemTime,
    },
    /// The upload is complete.
    Done {
        /// Upload URL.
        url: String,
    },
}

/// The parts of a response the client needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientResponse {
    /// HTTP status.
    pub status: u16,
    /// `Location` (already resolved against the creation URL).
    pub location: Option<String>,
    /// `Upload-Offset`, raw.
    pub upload_offset: Option<String>,
    /// `Upload-Length`, raw (from `HEAD`).
    pub upload_length: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Head,
    Patch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready(Step),
    InFlight(Step, u64),
    Waiting(SystemTime, Step),
    Done,
    Failed,
}

/// Client-side upload of one file of known length.
#[derive(Debug, Clone)]
pub struct ClientMachine {
    config: ClientConfig,
    file_len: u64,
    url: Option<String>,
    offset: u64,
    state: State,
    failures: u32,
    /// Length of the `PATCH` written behind the one in flight; it starts
    /// where the in-flight one ends.
    pipelined: Option<u64>,
}

impl ClientMachine {
    /// A new upload; with `resume_url` it starts by asking the server for
    /// its offset (`HEAD`) instead of creating.
    pub fn new(config: ClientConfig, file_len: u64, resume_url: Option<String>) -> Self {
        let state = State::Ready(if resume_url.is_some() { Step::Head } else { Step::Create });
        Self { config, file_len, url: resume_url, offset: 0, state, failures: 0, pipelined: None }
    }

    /// Confirmed offset on the server.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The upload URL once known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// True once every byte is confirmed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Requests sent and not yet answered: 0, 1, or 2 with a pipelined
    /// `PATCH`.
    pub fn in_flight(&self) -> usize {
        match self.state {
            State::InFlight(..) => 1 + usize::from(self.pipelined.is_some()),
            _ => 0,
        }
    }

    fn base() -> Vec<(&'static str, String)> {
        vec![(headers::TUS_RESUMABLE, headers::TUS_VERSION.to_owned())]
    }

    /// Bytes of the `PATCH` that starts at `start` (at most a chunk, never past the file).
    fn chunk_at(&self, start: u64) -> u64 {
        self.file_len.saturating_sub(start).min(self.config.chunk_size.max(1))
    }

    fn patch_action(&self, url: String, offset: u64, len: u64) -> Action {
        let mut h = Self::base();
        h.push((headers::CONTENT_TYPE, headers::OFFSET_OCTET_STREAM.to_owned()));
        h.push((headers::UPLOAD_OFFSET, offset.to_string()));
        Action::Patch { url, offset, len, checksum: self.config.checksum, headers: h }
    }

    /// The `PATCH` that follows the one in flight if that one succeeds, now
    /// counted as sent: write it on the same connection right behind the
    /// in-flight one. `None` when pipelining is off, the in-flight request is
    /// not a `PATCH`, one is already pipelined, or the in-flight `PATCH`
    /// carries the last bytes.
    ///
    /// Its answer is reported with [`handle_response`](Self::handle_response)
    /// after the in-flight one's, and only if that one was a 204 with the
    /// expected offset; otherwise it is discarded here and the driver must
    /// drop the connection so its answer is never read.
    pub fn poll_pipelined(&mut self) -> Option<Action> {
        let State::InFlight(Step::Patch, len) = self.state else { return None };
        if !self.config.pipeline || self.pipelined.is_some() {
            return None;
        }
        let url = self.url.clone()?;
        let start = self.offset.checked_add(len).filter(|&s| s < self.file_len)?;
        let next = self.chunk_at(start);
        self.pipelined = Some(next);
        Some(self.patch_action(url, start, next))
    }

    /// Reports that the request in flight (and any pipelined one) will never
    /// be answered and may not have been processed, without it counting as a
    /// failure: the server announced `Connection: close` on the previous
    /// answer. The next [`poll_action`](Self::poll_action) repeats it
    /// (`Upload-Offset` makes a repeat harmless).
    pub fn handle_unanswered(&mut self) -> Result<(), Error> {
        let State::InFlight(step, _) = self.state else {
            return Err(Error::InvalidState("no request in flight"));
        };
        self.pipelined = None;
        self.state = State::Ready(step);
        Ok(())
    }

    /// The next request. Errors if a request is already in flight, or the
    /// machine gave up.
    pub fn poll_action(&mut self, now: SystemTime) -> Result<Action, Error> {
        let step = match self.state {
            State::Done => {
                return Ok(Action::Done { url: self.url.clone().unwrap_or_default() });
            }
            State::Failed => return Err(Error::RetriesExhausted { attempts: self.failures }),
            State::InFlight(..) => return Err(Error::InvalidState("request in flight")),
            State::Waiting(until, _) if now < until => return Ok(Action::Wait { until }),
            State::Waiting(_, step) | State::Ready(step) => step,
        };
        let url = self.url.clone();
        let (action, len) = match (step, url) {
            (Step::Create, _) | (_, None) => {
                let mut h = Self::base();
                h.push((headers::UPLOAD_LENGTH, self.file_len.to_string()));
                if !self.config.metadata.is_empty() {
                    h.push((headers::UPLOAD_METADATA, self.config.metadata.encode()));
                }
                (Action::Create { headers: h }, 0)
            }
            (Step::Head, Some(url)) => (Action::Head { url, headers: Self::base() }, 0),
            (Step::Patch, Some(url)) => {
                let len = self.chunk_at(self.offset);
                (self.patch_action(url, self.offset, len), len)
            }
        };
        let step = match &action {
            Action::Create { .. } => Step::Create,
            Action::Head { .. } => Step::Head,
            _ => Step::Patch,
        };
        self.state = State::InFlight(step, len);
        Ok(action)
    }

    fn after_progress(&mut self) {
        self.failures = 0;
        self.state = if self.offset >= self.file_len { State::Done } else { State::Ready(Step::Patch) };
    }

    fn parse_offset(&self, r: &ClientResponse) -> Result<u64, Error> {
        let v = r.upload_offset.as_deref().ok_or(Error::MissingHeader { name: headers::UPLOAD_OFFSET })?;
        let o = headers::parse_u64(headers::UPLOAD_OFFSET, v.as_bytes())?;
        if o > self.file_len {
            return Err(Error::MalformedHeader { name: headers::UPLOAD_OFFSET });
        }
        Ok(o)
    }

    /// Reports the response to the request from the last `poll_action`.
    /// Retryable statuses schedule a backoff; others are returned as errors.
    ///
    /// With a pipelined `PATCH` outstanding, a 204 whose offset is the end of
    /// the in-flight `PATCH` makes the pipelined one the request in flight;
    /// any other answer discards it.
    pub fn handle_response(&mut self, now: SystemTime, r: &ClientResponse) -> Result<(), Error> {
        let State::InFlight(step, len) = self.state else {
            return Err(Error::InvalidState("no request in flight"));
        };
        if let Some(next) = self.pipelined.take()
            && step == Step::Patch
            && r.status == 204
            && let Ok(o) = self.parse_offset(r)
            && Some(o) == self.offset.checked_add(len)
        {
            self.offset = o;
            self.failures = 0;
            self.state = State::InFlight(Step::Patch, next);
            return Ok(());
        }
        match (step, r.status) {
            (Step::Create, 201) => {
                let loc = r.location.clone().ok_or(Error::MissingHeader { name: "Location" })?;
                self.url = Some(loc);
                self.offset =
                    r.upload_offset.as_ref().map(|_| self.parse_offset(r)).transpose()?.unwrap_or(0);
                self.after_progress();
            }
            (Step::Head, 200)
                if r.upload_length.as_deref().is_some_and(|l| {
                    headers::parse_u64(headers::UPLOAD_LENGTH, l.as_bytes()).ok() != Some(self.file_len)
                }) =>
            {
                // The stored upload is for a file of another size: start over.
                self.url = None;
                self.offset = 0;
                self.state = State::Ready(Step::Create);
            }
            (Step::Head, 200) | (Step::Patch, 204) => {
                let o = self.parse_offset(r)?;
                if step == Step::Patch && o < self.offset {
                    return Err(Error::MalformedHeader { name: headers::UPLOAD_OFFSET });
                }
                self.offset = o;
                self.after_progress();
            }
            (Step::Head, 404 | 410) => {
                // The server forgot the upload: start over.
                self.url = None;
                self.offset = 0;
                self.state = State::Ready(Step::Create);
            }
            // Offset conflict or a corrupted chunk: re-sync, then resend.
            (Step::Patch, 409 | 460) | (_, 423 | 429 | 500..=599) => self.backoff(now, false)?,
            (_, status) => {
                self.state = State::Failed;
                return Err(Error::UnexpectedStatus { status });
            }
        }
        Ok(())
    }

    /// Reports a transport failure (connection refused, reset, timeout).
    pub fn handle_error(&mut self, now: SystemTime) -> Result<(), Error> {
        if !matches!(self.state, State::InFlight(..)) {
            return Err(Error::InvalidState("no request in flight"));
        }
        self.pipelined = None;
        self.backoff(now, true)
    }

    fn backoff(&mut self, now: SystemTime, _transport: bool) -> Result<(), Error> {
        self.failures += 1;
        if self.failures > self.config.max_retries {
            self.state = State::Failed;
            return Err(Error::RetriesExhausted { attempts: self.failures });
        }
        let i = usize::try_from(self.failures - 1).unwrap_or(usize::MAX);
        let wait = self.config.backoff.get(i).or(self.config.backoff.last()).copied().unwrap_or_default();
        let next = if self.url.is_some() { Step::Head } else { Step::Create };
        self.state = State::Waiting(now.checked_add(wait).unwrap_or(now), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn ok(status: u16, offset: Option<u64>) -> ClientResponse {
        ClientResponse {
            status,
            location: Some("http://127.0.0.1/files/x".into()),
            upload_offset: offset.map(|o| o.to_string()),
            upload_length: None,
        }
    }

    #[test]
    fn head_for_another_length_restarts() {
        let mut m = ClientMachine::new(ClientConfig::default(), 10, Some("u".into()));
        m.poll_action(t(0)).unwrap();
        let r = ClientResponse { upload_length: Some("11".into()), ..ok(200, Some(3)) };
        m.handle_response(t(0), &r).unwrap();
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Create { .. }));
        assert_eq!(m.offset(), 0);
    }

    #[test]
    fn create_then_chunks() {
        let cfg = ClientConfig { chunk_size: 4, ..ClientConfig::default() };
        let mut m = ClientMachine::new(cfg, 10, None);
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Create { .. }));
        assert!(m.poll_action(t(0)).is_err(), "one request at a time");
        m.handle_response(t(0), &ok(201, None)).unwrap();
        let mut sent = vec![];
        while let Action::Patch { offset, len, .. } = m.poll_action(t(0)).unwrap() {
            sent.push((offset, len));
            m.handle_response(t(0), &ok(204, Some(offset + len))).unwrap();
        }
        assert_eq!(sent, vec![(0, 4), (4, 4), (8, 2)]);
        assert!(m.is_done());
    }

    #[test]
    fn resume_and_backoff() {
        let mut m = ClientMachine::new(ClientConfig::default(), 10, Some("http://127.0.0.1/files/x".into()));
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Head { .. }));
        m.handle_response(t(0), &ok(200, Some(6))).unwrap();
        let Action::Patch { offset, .. } = m.poll_action(t(0)).unwrap() else { panic!("expected patch") };
        assert_eq!(offset, 6);
        m.handle_error(t(10)).unwrap();
        let Action::Wait { until } = m.poll_action(t(10)).unwrap() else { panic!("expected wait") };
        assert_eq!(until, t(10) + Duration::from_millis(500));
        assert!(matches!(m.poll_action(until).unwrap(), Action::Head { .. }));
        m.handle_response(until, &ok(200, Some(6))).unwrap();
        assert!(matches!(m.poll_action(until).unwrap(), Action::Patch { .. }));
        m.handle_response(until, &ok(460, None)).unwrap();
        assert!(matches!(m.poll_action(t(99)).unwrap(), Action::Head { .. }));
        m.handle_response(t(99), &ok(200, Some(10))).unwrap();
        assert!(m.is_done());
    }

    #[test]
    fn gives_up_and_rejects_bad_offsets() {
        let cfg = ClientConfig { max_retries: 1, ..ClientConfig::default() };
        let mut m = ClientMachine::new(cfg, 10, None);
        m.poll_action(t(0)).unwrap();
        m.handle_error(t(0)).unwrap();
        m.poll_action(t(5)).unwrap();
        assert!(matches!(m.handle_error(t(5)), Err(Error::RetriesExhausted { .. })));
        let mut m = ClientMachine::new(ClientConfig::default(), 10, Some("u".into()));
        m.poll_action(t(0)).unwrap();
        assert!(m.handle_response(t(0), &ok(200, Some(11))).is_err());
        let mut m = ClientMachine::new(ClientConfig::default(), 10, Some("u".into()));
        m.poll_action(t(0)).unwrap();
        assert!(matches!(
            m.handle_response(t(0), &ok(403, None)),
            Err(Error::UnexpectedStatus { status: 403 })
        ));
    }

    fn patch_of(a: Option<Action>) -> Option<(u64, u64, String)> {
        match a {
            Some(Action::Patch { offset, len, headers, .. }) => {
                let h = headers.iter().find(|(k, _)| *k == headers::UPLOAD_OFFSET).map(|(_, v)| v.clone());
                Some((offset, len, h.unwrap_or_default()))
            }
            _ => None,
        }
    }

    fn uploading(chunk: u64, len: u64) -> ClientMachine {
        let cfg = ClientConfig { chunk_size: chunk, ..ClientConfig::default() };
        let mut m = ClientMachine::new(cfg, len, None);
        m.poll_action(t(0)).unwrap();
        m.handle_response(t(0), &ok(201, None)).unwrap();
        m
    }

    #[test]
    fn pipelined_chunks_in_order() {
        let mut m = uploading(4, 10);
        assert_eq!(m.poll_pipelined(), None, "nothing in flight");
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Patch { offset: 0, len: 4, .. }));
        assert_eq!(m.in_flight(), 1);
        assert_eq!(patch_of(m.poll_pipelined()), Some((4, 4, "4".into())));
        assert_eq!(m.in_flight(), 2);
        assert_eq!(m.poll_pipelined(), None, "at most two outstanding");
        assert!(m.poll_action(t(0)).is_err(), "requests in flight");
        m.handle_response(t(0), &ok(204, Some(4))).unwrap();
        assert_eq!((m.offset(), m.in_flight()), (4, 1));
        assert_eq!(patch_of(m.poll_pipelined()), Some((8, 2, "8".into())));
        m.handle_response(t(0), &ok(204, Some(8))).unwrap();
        assert_eq!(m.poll_pipelined(), None, "the in-flight one carries the last bytes");
        m.handle_response(t(0), &ok(204, Some(10))).unwrap();
        assert!(m.is_done());
        assert_eq!(m.in_flight(), 0);
    }

    #[test]
    fn failed_chunk_discards_the_pipelined_one() {
        let mut m = uploading(4, 12);
        m.poll_action(t(0)).unwrap();
        m.poll_pipelined().unwrap();
        m.handle_response(t(0), &ok(460, None)).unwrap();
        assert_eq!((m.offset(), m.in_flight()), (0, 0));
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Wait { .. }));
        assert!(matches!(m.poll_action(t(9)).unwrap(), Action::Head { .. }));
        m.handle_response(t(9), &ok(200, Some(0))).unwrap();
        assert!(matches!(m.poll_action(t(9)).unwrap(), Action::Patch { offset: 0, .. }));

        // A short 204 (the server kept fewer bytes) resends from its offset.
        let mut m = uploading(4, 12);
        m.poll_action(t(0)).unwrap();
        m.poll_pipelined().unwrap();
        m.handle_response(t(0), &ok(204, Some(3))).unwrap();
        assert_eq!((m.offset(), m.in_flight()), (3, 0));
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Patch { offset: 3, len: 4, .. }));

        // A transport error drops both.
        let mut m = uploading(4, 12);
        m.poll_action(t(0)).unwrap();
        m.poll_pipelined().unwrap();
        m.handle_error(t(0)).unwrap();
        assert_eq!(m.in_flight(), 0);
        assert!(m.handle_response(t(0), &ok(204, Some(8))).is_err(), "its answer is not expected");
    }

    #[test]
    fn unanswered_is_resent_without_a_failure() {
        let cfg = ClientConfig { chunk_size: 4, max_retries: 0, ..ClientConfig::default() };
        let mut m = ClientMachine::new(cfg, 12, Some("u".into()));
        m.poll_action(t(0)).unwrap();
        m.handle_response(t(0), &ok(200, Some(0))).unwrap();
        m.poll_action(t(0)).unwrap();
        m.poll_pipelined().unwrap();
        m.handle_response(t(0), &ok(204, Some(4))).unwrap();
        m.handle_unanswered().unwrap();
        assert_eq!(m.in_flight(), 0);
        assert!(matches!(m.poll_action(t(0)).unwrap(), Action::Patch { offset: 4, len: 4, .. }));
        assert!(m.handle_unanswered().is_ok());
        assert!(m.handle_unanswered().is_err(), "nothing in flight");
    }

    #[test]
    fn pipelining_off_and_not_for_other_requests() {
        let mut m = uploading(4, 12);
        m.config.pipeline = false;
        m.poll_action(t(0)).unwrap();
        assert_eq!(m.poll_pipelined(), None);
        let mut m = ClientMachine::new(ClientConfig::default(), 12, Some("u".into()));
        m.poll_action(t(0)).unwrap();
        assert_eq!(m.poll_pipelined(), None, "not behind a HEAD");
    }

    proptest::proptest! {
        /// Any mix of answers keeps the pipelined request right behind the
        /// in-flight one and never goes past the file.
        #[test]
        fn pipelined_always_follows(len in 1u64..64, chunk in 1u64..16, answers in proptest::collection::vec(0u8..4, 1..64)) {
            let cfg = ClientConfig { chunk_size: chunk, max_retries: 1000, ..ClientConfig::default() };
            let mut m = ClientMachine::new(cfg, len, Some("u".into()));
            let mut now = t(0);
            let mut sent: Vec<(u64, u64)> = vec![];
            for a in answers {
                now += Duration::from_secs(60);
                if m.in_flight() == 0 {
                    match m.poll_action(now).unwrap() {
                        Action::Patch { offset, len, .. } => sent = vec![(offset, len)],
                        Action::Done { .. } => break,
                        _ => sent.clear(),
                    }
                }
                if let Some((offset, l, _)) = patch_of(m.poll_pipelined()) {
                    let (o0, l0) = sent[0];
                    proptest::prop_assert_eq!(offset, o0 + l0);
                    proptest::prop_assert!(offset + l <= len && l > 0);
                    sent.push((offset, l));
                }
                let end = sent.first().map_or(m.offset(), |(o, l)| o + l);
                let r = match a {
                    0 => ok(204, Some(end)),
                    1 => ok(409, None),
                    2 => ok(200, Some(m.offset())),
                    _ => {
                        m.handle_error(now).unwrap();
                        proptest::prop_assert_eq!(m.in_flight(), 0);
                        continue;
                    }
                };
                let promoted = sent.len() == 2 && a == 0;
                if m.handle_response(now, &r).is_err() {
                    // A 409 to a HEAD is fatal.
                    break;
                }
                if promoted {
                    proptest::prop_assert_eq!((m.in_flight(), m.offset()), (1, end));
                    sent.remove(0);
                } else {
                    proptest::prop_assert_eq!(m.in_flight(), 0);
                }
                proptest::prop_assert!(m.offset() <= len);
            }
        }
    }
}
