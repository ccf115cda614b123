//! `piecework upload`: send a file to a tus server, resuming an earlier attempt.
//!
//! Resume state is the upload URL, kept in `FILE.tus-url` beside the file (or, with
//! `--state-dir`, in `DIR/<hash of file path and endpoint>.tus-url`). It is written as soon
//! as the server creates the upload and removed once the upload completes, so running the
//! same command again after an interruption continues from the server's offset.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use piecework_upload::checksum::ChecksumAlgorithm;
use piecework_upload::http_client::{UploadJob, upload_file};
use sha2::Digest as _;

use super::upload_common::{parse_size, runtime};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The file to upload.
    file: PathBuf,
    /// The server's creation endpoint, e.g. `http://127.0.0.1:1080/files/`.
    url: String,
    /// Bytes per PATCH request (`8M`, `64M`, `1048576`).
    #[arg(long, value_parser = parse_chunk, default_value = "8M")]
    chunk_size: u64,
    /// Keep resume state in this directory instead of beside the file.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Send `Upload-Checksum` with every chunk (sha1, sha256, md5, crc32c).
    #[arg(long, value_parser = parse_checksum)]
    checksum: Option<ChecksumAlgorithm>,
    /// Send each PATCH only after the previous one is answered (for proxies that mishandle
    /// pipelined requests). By default the next chunk follows right behind the previous one,
    /// which hides the round trip per chunk.
    #[arg(long)]
    no_pipeline: bool,
    /// Do not draw a progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_chunk(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("chunk size must be at least 1 byte".into()),
        n => Ok(n),
    }
}

fn parse_checksum(s: &str) -> Result<ChecksumAlgorithm, String> {
    ChecksumAlgorithm::from_name(s)
        .ok_or_else(|| format!("unknown checksum {s:?} (sha1, sha256, md5, crc32c)"))
}

/// Where the upload URL of `file` to `endpoint` is kept between runs.
fn state_path(file: &Path, endpoint: &str, state_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(dir) = state_dir else {
        let mut name = file.as_os_str().to_owned();
        name.push(".tus-url");
        return Ok(PathBuf::from(name));
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let abs = std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let mut h = sha2::Sha256::new();
    h.update(abs.as_os_str().as_encoded_bytes());
    h.update(b"\n");
    h.update(endpoint.as_bytes());
    let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{hex}.tus-url")))
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{} is not a regular file", a.file.display());
    }
    let endpoint = reqwest_url(&a.url)?;
    let state = state_path(&a.file, &endpoint, a.state_dir.as_deref())?;
    let mut job = UploadJob::new(endpoint, &a.file);
    job.config.chunk_size = a.chunk_size;
    job.config.checksum = a.checksum;
    job.config.pipeline = !a.no_pipeline;
    if let Some(name) = a.file.file_name().and_then(|n| n.to_str()) {
        // A name the metadata rules refuse is simply not sent.
        let _ = job.config.metadata.insert("filename", name.as_bytes());
    }
    let resuming = state.exists();
    let state_shown = state.clone();
    job.resume_file = Some(state);

    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(meta.len()) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if resuming {
        // Plain stderr, not `bar.println`: a hidden bar (no terminal) would swallow it.
        let _ = writeln!(std::io::stderr(), "resuming the upload recorded in {}", state_shown.display());
    }
    let result = runtime()?.block_on(upload_file(job, |done, _total| bar.set_position(done)));
    bar.finish_and_clear();
    let url = result.with_context(|| format!("upload of {} failed", a.file.display()))?;
    out!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// Checks the endpoint is an http(s) URL before any request is made.
fn reqwest_url(s: &str) -> anyhow::Result<String> {
    let (scheme, rest) = s.split_once("://").with_context(|| format!("invalid URL {s:?}"))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.starts_with('/') {
        anyhow::bail!("invalid URL {s:?}: expected http://HOST:PORT/files/");
    }
    Ok(s.to_owned())
}
