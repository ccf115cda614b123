//! Uploads a file to a tus server, resuming an earlier attempt.
//!
//! ```text
//! cargo run -p piecework-upload --features client --example upload_client -- \
//!     FILE http://127.0.0.1:1080/files/ [--chunk-size N]
//! ```
//! The upload URL is kept in `FILE.tus-url` until the upload completes, so
//! running the same command again resumes.

use piecework_upload::http_client::{UploadJob, upload_file};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(url)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: upload_client FILE URL [--chunk-size N]");
    };
    let mut job = UploadJob::new(url.clone(), file.clone());
    job.resume_file = Some(format!("{file}.tus-url").into());
    if let Some(i) = args.iter().position(|a| a == "--chunk-size")
        && let Some(n) = args.get(i + 1)
    {
        job.config.chunk_size = n.parse()?;
    }
    let mut last = 0;
    let url = upload_file(job, |done, total| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct != last {
            last = pct;
            eprint!("\r{pct:3}% {done}/{total}");
        }
    })
    .await?;
    eprintln!();
    println!("{url}");
    Ok(())
}
