//! Shares finished uploads: records a share in the server's store directory
//! and prints a signed, expiring download link.
//!
//! ```text
//! cargo run -p piecework-upload --features server --example upload_share -- \
//!     --dir /tmp/uploads --secret-file secret.bin --base http://127.0.0.1:1080 \
//!     [--expires-in SECS] [--password P] UPLOAD_ID[=NAME] ...
//! ```
//! Several ids make one share, downloaded as a tar stream.

use std::time::{SystemTime, UNIX_EPOCH};

use piecework_upload::UploadId;
use piecework_upload::http_server::{create_share, share_url};
use piecework_upload::share::PasswordParams;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut secret_file = None;
    let mut base = "http://127.0.0.1:1080".to_owned();
    let mut expires_in: u64 = 24 * 3600;
    let mut password = None;
    let mut files = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(value()?),
            "--secret-file" => secret_file = Some(value()?),
            "--base" => base = value()?,
            "--expires-in" => expires_in = value()?.parse()?,
            "--password" => password = Some(value()?),
            _ => {
                let (id, name) = match a.split_once('=') {
                    Some((i, n)) => (i.to_owned(), Some(n.to_owned())),
                    None => (a.clone(), None),
                };
                files.push((UploadId::new(&id)?, name));
            }
        }
    }
    let (Some(dir), Some(secret_file)) = (dir, secret_file) else {
        anyhow::bail!(
            "usage: upload_share --dir DIR --secret-file F [--base URL] [--expires-in S] [--password P] ID[=NAME]..."
        );
    };
    let secret = std::fs::read(secret_file)?;
    let share = create_share(dir.as_ref(), &files, password.as_deref(), PasswordParams::default())?;
    let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + expires_in;
    println!("{}", share_url(&base, &secret, &share, expires));
    Ok(())
}
