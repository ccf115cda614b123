//! Tracker announces through `piecework-tracker`: `started` at first, then at the tracker's
//! interval, `completed` when the download finishes, `stopped` at shutdown. Peers from the
//! replies join the torrent's dial list.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use piecework_tracker::client::{Client, ClientSettings};
use piecework_tracker::{Announce, Event, PeerId};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::engine::TorrentShared;

/// A finished announce: when to announce again, and to whom it went.
struct Done {
    tracker: usize,
    interval: Option<Duration>,
    ok: bool,
}

struct TrackerState {
    url: String,
    next: Instant,
    busy: bool,
    started: bool,
    failures: u32,
}

pub(crate) struct Announcer {
    client: Arc<Client>,
    trackers: Vec<TrackerState>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    was_complete: bool,
}

impl Announcer {
    pub(crate) fn new(torrent: &Arc<TorrentShared>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let trackers = if torrent.settings.trackers {
            torrent
                .trackers
                .iter()
                .map(|url| TrackerState {
                    url: url.clone(),
                    next: now,
                    busy: false,
                    started: false,
                    failures: 0,
                })
                .collect()
        } else {
            Vec::new()
        };
        Announcer {
            client: Arc::new(Client::new(ClientSettings::new())),
            trackers,
            done_tx,
            done_rx,
            was_complete: *torrent.complete.borrow(),
        }
    }

    fn announce(torrent: &TorrentShared, event: Event) -> Announce {
        let stats = torrent.stats_now();
        let mut a = Announce::new(
            torrent.handshake_hash,
            PeerId::from_bytes(*torrent.peer_id.as_bytes()),
            torrent.listen_port,
        );
        a.uploaded = torrent.uploaded.load(Ordering::Relaxed);
        a.downloaded = torrent.downloaded.load(Ordering::Relaxed);
        a.left = stats.total_bytes.saturating_sub(stats.have_bytes);
        a.event = event;
        a.num_want = Some(50);
        a
    }

    /// Starts the announces that are due. Never waits for a tracker.
    pub(crate) fn tick(&mut self, torrent: &Arc<TorrentShared>, now: Instant) {
        while let Ok(d) = self.done_rx.try_recv() {
            if let Some(t) = self.trackers.get_mut(d.tracker) {
                t.busy = false;
                if d.ok {
                    t.started = true;
                    t.failures = 0;
                } else {
                    t.failures += 1;
                }
                // Retry failures after 15 s, doubling (like BEP 15's schedule), up to an hour.
                let backoff = Duration::from_secs(15 << t.failures.min(8)).min(Duration::from_secs(3600));
                t.next = now
                    + if d.ok { d.interval.unwrap_or(torrent.settings.tracker_interval) } else { backoff };
            }
        }
        let complete = *torrent.complete.borrow();
        let just_completed = complete && !self.was_complete;
        self.was_complete = complete;
        for (i, t) in self.trackers.iter_mut().enumerate() {
            if t.busy || (t.next > now && !(just_completed && t.started)) {
                continue;
            }
            let event = if !t.started {
                Event::Started
            } else if just_completed {
                Event::Completed
            } else {
                Event::None
            };
            t.busy = true;
            let a = Self::announce(torrent, event);
            let url = t.url.clone();
            let client = self.client.clone();
            let done = self.done_tx.clone();
            let torrent = torrent.clone();
            tokio::spawn(async move {
                let r = client.announce(&url, &a).await;
                let (ok, interval) = match r {
                    Ok(resp) => {
                        debug!(%url, peers = resp.peers.len(), "announced");
                        torrent.add_peers(&resp.peers);
                        (true, Some(Duration::from_secs(u64::from(resp.interval.max(1)))))
                    }
                    Err(e) => {
                        warn!(%url, error = %e, "announce failed");
                        (false, None)
                    }
                };
                torrent.announced(ok);
                let _ = done.send(Done { tracker: i, interval, ok });
            });
        }
    }

    /// Sends `stopped` to the trackers that saw us start, waiting a little for each.
    pub(crate) async fn stopped(&mut self, torrent: &Arc<TorrentShared>) {
        for t in self.trackers.iter().filter(|t| t.started) {
            let a = Self::announce(torrent, Event::Stopped);
            let _ = tokio::time::timeout(Duration::from_secs(2), self.client.announce(&t.url, &a)).await;
        }
    }
}
