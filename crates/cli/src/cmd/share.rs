//! `piecework share`: record a share of finished uploads and print its signed link.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use piecework_upload::UploadId;
use piecework_upload::http_server::{create_share, share_url};
use piecework_upload::share::PasswordParams;

use super::upload_common::{parse_duration, read_secret};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Uploads to share: ids or upload URLs, each optionally `=NAME` for the download name.
    /// Several make one share, downloaded as a tar stream (or zip: see `--zip`).
    #[arg(required = true, value_name = "UPLOAD[=NAME]")]
    uploads: Vec<String>,
    /// The server's store directory.
    #[arg(long)]
    dir: PathBuf,
    /// The server's HMAC key (the same file given to `upload-server --secret-file`).
    #[arg(long)]
    secret_file: PathBuf,
    /// Server base URL the link starts with.
    #[arg(long, default_value = "http://127.0.0.1:1080")]
    base: String,
    /// How long the link stays valid (`90s`, `30m`, `12h`, `7d`).
    #[arg(long, value_parser = parse_duration, default_value = "1d")]
    expires_in: Duration,
    /// Require this password on download (HTTP Basic auth; stored as an Argon2id hash).
    #[arg(long, conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the password from this file's first line (keeps it out of the process list).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Print a link that downloads the share as one zip stream (`&format=zip`).
    #[arg(long)]
    zip: bool,
}

/// `ID`, `URL` or either with `=NAME`: the id is the URL's last path segment.
fn parse_upload(s: &str) -> anyhow::Result<(UploadId, Option<String>)> {
    let (target, name) = match s.rsplit_once('=') {
        Some((t, n)) if !t.is_empty() && !t.contains('?') => (t, Some(n.to_owned())),
        _ => (s, None),
    };
    let id = match target.split_once("://") {
        Some(_) => target.trim_end_matches('/').rsplit('/').next().unwrap_or(target),
        None => target,
    };
    let id = UploadId::new(id).with_context(|| format!("invalid upload id in {s:?}"))?;
    Ok((id, name.filter(|n| !n.is_empty())))
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let secret = read_secret(&a.secret_file)?;
    let files = a.uploads.iter().map(|u| parse_upload(u)).collect::<anyhow::Result<Vec<_>>>()?;
    let password = match &a.password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            Some(text.lines().next().unwrap_or("").to_owned())
        }
        None => a.password.clone(),
    };
    if password.as_deref() == Some("") {
        anyhow::bail!("the password is empty");
    }
    if !a.dir.is_dir() {
        anyhow::bail!("{} is not a directory", a.dir.display());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("clock before 1970")?;
    let expires = now.checked_add(a.expires_in).context("expiry too far in the future")?.as_secs();
    let share = create_share(&a.dir, &files, password.as_deref(), PasswordParams::default())
        .context("cannot create the share")?;
    let format = if a.zip { "&format=zip" } else { "" };
    out!("{}{format}", share_url(&a.base, &secret, &share, expires));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_arguments() {
        let (id, name) = parse_upload("http://127.0.0.1:1/files/abc123").unwrap();
        assert_eq!((id.as_str(), name), ("abc123", None));
        let (id, name) = parse_upload("abc=report.pdf").unwrap();
        assert_eq!((id.as_str(), name.as_deref()), ("abc", Some("report.pdf")));
        assert!(parse_upload("../etc").is_err());
        assert!(parse_upload("").is_err());
    }
}
