//! reqwest driver for [`ClientMachine`] (feature `client`).
//!
//! Streams each chunk from the file in small reads (never a whole chunk in
//! memory), reports progress, retries with backoff, and resumes: give it the
//! URL of an earlier attempt, or a `resume_file` where the URL is kept.
//!
//! On Linux, `PATCH`es to `http://` URLs go over the
//! [`patch_stream`](crate::patch_stream) transport instead (bodies sent with
//! `sendfile(2)`, two requests pipelined) unless
//! [`ClientConfig::sendfile`] is off; creation and `HEAD` stay on reqwest.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::Error;
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::client::{Action, ClientConfig, ClientMachine, ClientResponse};
use crate::file_range::{file_stream, read_range};
use crate::headers;
use crate::merkle::{MerkleBuilder, PiecesRoot};
use crate::server::PREFIX_ROOT;

/// One upload job.
#[derive(Debug, Clone)]
pub struct UploadJob {
    /// Creation endpoint, e.g. `http://127.0.0.1:1080/files/`.
    pub endpoint: String,
    /// File to send.
    pub path: PathBuf,
    /// Protocol settings.
    pub config: ClientConfig,
    /// Upload URL of an earlier attempt to resume.
    pub resume_url: Option<String>,
    /// File that keeps the upload URL between runs: read at start (if
    /// `resume_url` is unset), written as soon as the upload is created,
    /// removed when the upload completes.
    pub resume_file: Option<PathBuf>,
}

impl UploadJob {
    /// A job with default settings.
    pub fn new(endpoint: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: endpoint.into(),
            path: path.into(),
            config: ClientConfig::default(),
            resume_url: None,
            resume_file: None,
        }
    }
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(e.to_string()))
}

async fn checksum_of(path: &Path, offset: u64, len: u64, alg: ChecksumAlgorithm) -> Result<Checksum, Error> {
    let mut h = alg.hasher();
    read_range(path, offset, len, |b| h.update(b)).await?;
    Ok(h.finish())
}

async fn prefix_root(path: &Path, len: u64) -> Result<Option<PiecesRoot>, Error> {
    let mut m = MerkleBuilder::new();
    read_range(path, 0, len, |b| m.update(b)).await?;
    Ok(m.finish())
}

fn body_for(path: PathBuf, offset: u64, len: u64) -> reqwest::Body {
    reqwest::Body::wrap_stream(file_stream(path, offset, len))
}

/// State of the fast `PATCH` transport across steps of one upload.
#[cfg(target_os = "linux")]
struct Fast {
    file: Option<std::sync::Arc<std::fs::File>>,
    conn: Option<crate::patch_stream::PatchConnection>,
}

#[cfg(target_os = "linux")]
impl Fast {
    fn new() -> Self {
        Self { file: None, conn: None }
    }

    /// The request to send over the fast transport, if `action` is a `PATCH`
    /// to a plain `http://` URL and the transport is on.
    fn request(action: &Action, config: &ClientConfig) -> Option<crate::patch_stream::PatchRequest> {
        let Action::Patch { url, offset, len, checksum, headers } = action else { return None };
        let url = reqwest::Url::parse(url).ok().filter(|u| u.scheme() == "http" && config.sendfile)?;
        Some(crate::patch_stream::PatchRequest {
            url,
            offset: *offset,
            len: *len,
            checksum: *checksum,
            headers: headers.clone(),
        })
    }

    /// Sends `first` (just polled from `m`) and, pipelined behind it, each
    /// next `PATCH` the machine hands out, until nothing is in flight.
    async fn patch(
        &mut self,
        job: &UploadJob,
        m: &mut ClientMachine,
        first: crate::patch_stream::PatchRequest,
        total: u64,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<(), Error> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let f = std::sync::Arc::new(tokio::fs::File::open(&job.path).await?.into_std().await);
                self.file.insert(f).clone()
            }
        };
        let timeout = job.config.io_timeout;
        let mut requests = vec![first];
        loop {
            if let Some(next) = m.poll_pipelined() {
                match Self::request(&next, &job.config) {
                    Some(r) => requests.push(r),
                    // Not sendable here (another scheme): forget it unanswered.
                    None => return Err(Error::InvalidState("pipelined PATCH to another kind of URL")),
                }
            }
            let conn = self.conn.take();
            let f = file.clone();
            let (conn, answer) =
                tokio::task::spawn_blocking(move || crate::patch_stream::step(conn, &f, &requests, timeout))
                    .await
                    .map_err(io)?;
            requests = Vec::new();
            self.conn = conn;
            let now = SystemTime::now();
            let head = match answer {
                Ok(h) => h,
                Err(_) => {
                    self.conn = None;
                    return m.handle_error(now);
                }
            };
            let before = m.in_flight();
            m.handle_response(now, &head.response)?;
            progress(m.offset(), total);
            if m.in_flight() == 0 {
                if before > 1 {
                    // The pipelined request was discarded: its answer must never be read.
                    self.conn = None;
                }
                return Ok(());
            }
            if !head.keep_alive {
                // The server closed after this answer: the pipelined request was never read.
                return m.handle_unanswered();
            }
        }
    }
}

/// Uploads (or resumes) `job`; `progress(confirmed_offset, total)` runs after
/// every confirmed step. Returns the upload URL.
pub async fn upload_file(job: UploadJob, mut progress: impl FnMut(u64, u64)) -> Result<String, Error> {
    let total = tokio::fs::metadata(&job.path).await?.len();
    let mut resume = job.resume_url.clone();
    if resume.is_none()
        && let Some(rf) = &job.resume_file
        && let Ok(text) = tokio::fs::read_to_string(rf).await
    {
        resume = Some(text.trim().to_owned()).filter(|s| !s.is_empty());
    }
    let endpoint = reqwest::Url::parse(&job.endpoint).map_err(io)?;
    // Loopback-friendly and predictable: ignore proxy environment variables.
    let http = reqwest::Client::builder().no_proxy().build().map_err(io)?;
    let mut m = ClientMachine::new(job.config.clone(), total, resume);
    #[cfg(target_os = "linux")]
    let mut fast = Fast::new();
    loop {
        let now = SystemTime::now();
        let action = m.poll_action(now)?;
        #[cfg(target_os = "linux")]
        if let Some(first) = Fast::request(&action, &job.config) {
            fast.patch(&job, &mut m, first, total, &mut progress).await?;
            continue;
        }
        let mut is_head = false;
        let sent = match action {
            Action::Done { url } => {
                if let Some(rf) = &job.resume_file {
                    let _ = tokio::fs::remove_file(rf).await;
                }
                progress(total, total);
                return Ok(url);
            }
            Action::Wait { until } => {
                let d = until.duration_since(now).unwrap_or_default();
                tokio::time::sleep(d).await;
                continue;
            }
            Action::Create { headers: h } => {
                let mut rb = http.post(endpoint.clone());
                for (k, v) in h {
                    rb = rb.header(k, v);
                }
                rb.send().await
            }
            Action::Head { url, headers: h } => {
                is_head = true;
                let mut rb = http.head(&url);
                for (k, v) in h {
                    rb = rb.header(k, v);
                }
                rb.send().await
            }
            Action::Patch { url, offset, len, checksum, headers: h } => {
                let mut rb = http.patch(&url).header("Content-Length", len.to_string()).body(body_for(
                    job.path.clone(),
                    offset,
                    len,
                ));
                for (k, v) in h {
                    rb = rb.header(k, v);
                }
                if let Some(alg) = checksum {
                    let c = checksum_of(&job.path, offset, len, alg).await?;
                    rb = rb.header(headers::UPLOAD_CHECKSUM, headers::encode_checksum(&c));
                }
                rb.send().await
            }
        };
        let now = SystemTime::now();
        match sent {
            Err(_) => m.handle_error(now)?,
            Ok(resp) => {
                let get = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let location = get("Location")
                    .map(|l| endpoint.join(&l).map(|u| u.to_string()))
                    .transpose()
                    .map_err(io)?;
                let mut status = resp.status().as_u16();
                if is_head
                    && status == 200
                    && job.config.verify_prefix
                    && let (Some(want), Some(off)) = (get(PREFIX_ROOT), get(headers::UPLOAD_OFFSET))
                    && let Ok(off) = headers::parse_u64(headers::UPLOAD_OFFSET, off.as_bytes())
                    && off <= total
                    && prefix_root(&job.path, off).await?.map(|r| r.to_hex()).as_deref()
                        != Some(want.as_str())
                {
                    // The server holds other bytes than our file's prefix:
                    // treat the upload as gone so the machine starts over.
                    status = 404;
                }
                let r = ClientResponse {
                    status,
                    location,
                    upload_offset: get(headers::UPLOAD_OFFSET),
                    upload_length: get(headers::UPLOAD_LENGTH),
                };
                let had_url = m.url().is_some();
                m.handle_response(now, &r)?;
                if !had_url && let (Some(url), Some(rf)) = (m.url(), &job.resume_file) {
                    tokio::fs::write(rf, url).await?;
                }
                progress(m.offset(), total);
            }
        }
    }
}
