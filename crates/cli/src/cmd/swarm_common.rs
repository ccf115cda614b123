//! Shared by `seed`, `fetch` and `demo`: the tokio runtime, the progress display and the
//! JSON summary.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use piecework_metainfo::InfoHashes;
use piecework_swarm::{Stats, TorrentHandle};

/// A multi-threaded runtime with one worker per core (two on the reference machine).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Parses `1GiB`, `64MiB`, `500M`, `4096` (bytes).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit in {s:?}")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

/// A progress bar over the payload, updated from [`TorrentHandle::stats`].
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub(crate) fn new(label: &str, hidden: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if hidden { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
        );
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{label} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{msg}} ETA {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress { bar }
    }

    pub(crate) fn update(&self, s: &Stats) {
        self.bar.set_length(s.total_bytes);
        self.bar.set_position(s.have_bytes);
        let meta = if s.has_metadata { "" } else { " (fetching metadata)" };
        self.bar.set_message(format!(
            "{:.1} MB/s down {:.1} MB/s up, {} peers{meta}",
            s.download_rate / 1e6,
            s.upload_rate / 1e6,
            s.peers
        ));
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Waits for completion, drawing progress every 200 ms; gives up after `timeout`.
pub(crate) async fn wait_with_progress(
    t: &TorrentHandle,
    progress: &Progress,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let done = t.wait_complete();
    tokio::pin!(done);
    loop {
        tokio::select! {
            r = &mut done => {
                progress.update(&t.stats());
                return r.map_err(Into::into);
            }
            _ = tick.tick() => progress.update(&t.stats()),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                anyhow::bail!("timed out before the download completed");
            }
        }
    }
}

/// The summary of a finished transfer, as printed by `--json`.
pub(crate) fn summary(hashes: InfoHashes, stats: &Stats, started: Instant) -> serde_json::Value {
    let seconds = started.elapsed().as_secs_f64();
    serde_json::json!({
        "bytes": stats.have_bytes,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "mb_per_s": ((stats.have_bytes as f64 / 1e6 / seconds.max(1e-9)) * 10.0).round() / 10.0,
        "peers": stats.peers_max,
        "info_hash_v1": hashes.v1().map(|h| h.to_hex()),
        "info_hash_v2": hashes.v2().map(|h| h.to_hex()),
    })
}
