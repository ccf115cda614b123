//! Runs the tus upload server.
//!
//! ```text
//! cargo run -p piecework-upload --features server --example upload_server -- \
//!     --listen 127.0.0.1:1080 --dir /tmp/uploads [--max-size N] \
//!     [--expire-after SECS] [--secret-file F] [--idle-timeout SECS] [--no-fsync]
//! ```
//! Prints `READY http://ADDR/files/` once listening.

use std::time::Duration;

use piecework_upload::http_server::{ServeConfig, serve};

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = arg_value(&args, "--dir").unwrap_or_else(|| "uploads".into());
    let mut cfg = ServeConfig::new(dir);
    if let Some(l) = arg_value(&args, "--listen") {
        cfg.listen = l.parse()?;
    }
    if let Some(m) = arg_value(&args, "--max-size") {
        cfg.server.max_size = m.parse()?;
    }
    if let Some(e) = arg_value(&args, "--expire-after") {
        cfg.server.expire_after = Some(Duration::from_secs(e.parse()?));
    }
    if let Some(t) = arg_value(&args, "--idle-timeout") {
        cfg.idle_timeout = Duration::from_secs(t.parse()?);
    }
    if args.iter().any(|a| a == "--no-fsync") {
        cfg.fsync = false;
    }
    if let Some(f) = arg_value(&args, "--secret-file") {
        cfg.secret = std::fs::read(f)?;
    }
    serve(cfg, |addr| println!("READY http://{addr}/files/")).await?;
    Ok(())
}
