//! The sans-IO tus client state machine.
//!
//! Call [`ClientMachine::poll_action`] to learn the next request, perform it,
//! then report the outcome with [`ClientMachine::handle_response`] or
//! [`ClientMachine::handle_error`]. Time is passed in; a
//! [`Action::Wait`] means "call `poll_action` again at `until`".

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
}

impl ClientMachine {
    /// A new upload; with `resume_url` it starts by asking the server for
    /// its offset (`HEAD`) instead of creating.
    pub fn new(config: ClientConfig, file_len: u64, resume_url: Option<String>) -> Self {
        let state = State::Ready(if resume_url.is_some() { Step::Head } else { Step::Create });
        Self { config, file_len, url: resume_url, offset: 0, state, failures: 0 }
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

    fn base() -> Vec<(&'static str, String)> {
        vec![(headers::TUS_RESUMABLE, headers::TUS_VERSION.to_owned())]
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
                let len = (self.file_len - self.offset).min(self.config.chunk_size.max(1));
                let mut h = Self::base();
                h.push((headers::CONTENT_TYPE, headers::OFFSET_OCTET_STREAM.to_owned()));
                h.push((headers::UPLOAD_OFFSET, self.offset.to_string()));
                (
                    Action::Patch {
                        url,
                        offset: self.offset,
                        len,
                        checksum: self.config.checksum,
                        headers: h,
                    },
                    len,
                )
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
    pub fn handle_response(&mut self, now: SystemTime, r: &ClientResponse) -> Result<(), Error> {
        let State::InFlight(step, _) = self.state else {
            return Err(Error::InvalidState("no request in flight"));
        };
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
}
