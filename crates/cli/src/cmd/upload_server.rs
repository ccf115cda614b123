//! `piecework upload-server`: the tus 1.0 upload server over a store directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use piecework_upload::http_server::{ServeConfig, serve};

use super::upload_common::{parse_duration, parse_size, read_secret, runtime};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free one (printed in the READY line).
    #[arg(long, default_value = "127.0.0.1:1080")]
    listen: SocketAddr,
    /// Store directory (created if missing); uploads found there are resumed.
    #[arg(long)]
    dir: PathBuf,
    /// Largest upload accepted (`Tus-Max-Size`), e.g. `10G`.
    #[arg(long, value_parser = parse_size)]
    max_size: Option<u64>,
    /// Unfinished uploads expire this long after their last write (`90s`, `30m`, `12h`, `7d`).
    #[arg(long, value_parser = parse_duration)]
    expire_after: Option<Duration>,
    /// HMAC key for share links (at least 16 bytes); without it downloads are off.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// A request body that sends nothing for this long is cut off (its bytes are kept), and a
    /// request's headers must arrive within this long (stalled or idle connections are closed).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    idle_timeout: Duration,
    /// Acknowledge bytes without fsync (tmpfs or benchmarks only: a crash can lose acknowledged bytes).
    #[arg(long)]
    no_fsync: bool,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = ServeConfig::new(&a.dir);
    cfg.listen = a.listen;
    if let Some(m) = a.max_size {
        cfg.server.max_size = m;
    }
    cfg.server.expire_after = a.expire_after;
    cfg.idle_timeout = a.idle_timeout;
    cfg.fsync = !a.no_fsync;
    if let Some(f) = &a.secret_file {
        cfg.secret = read_secret(f)?;
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("cannot create {}", a.dir.display()))?;
    runtime()?.block_on(async move {
        let server = serve(cfg, |addr| {
            out!("READY http://{addr}/files/");
        });
        tokio::select! {
            r = server => r.with_context(|| format!("upload server on {} stopped", a.listen))?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
