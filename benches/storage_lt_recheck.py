#!/usr/bin/python3
"""Times libtorrent's force_recheck of existing data (page cache warm), for benches/storage_bench.sh.

Adds the torrent over the data (libtorrent checks it once: the warm-up), then calls
force_recheck() --runs times and prints one RESULT line per run. Loopback-only session from
shared/interop/lt_common.py (no DHT/LSD/UPnP/NAT-PMP/PEX, no trackers); run it inside
run-in-netns.sh.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.environ.get("INTEROP_DIR", "/work/shared/interop"))
import libtorrent as lt  # noqa: E402
import lt_common  # noqa: E402


def wait_checked(ses, deadline):
    """Waits for torrent_checked_alert (the check of every piece is done)."""
    while time.monotonic() < deadline:
        ses.wait_for_alert(1000)
        for al in ses.pop_alerts():
            if isinstance(al, lt.torrent_checked_alert):
                return
            if isinstance(al, (lt.file_error_alert, lt.torrent_error_alert)):
                raise SystemExit("libtorrent error: %s" % al.message())
    raise SystemExit("timeout while checking")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-path", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hashing-threads", type=int, default=os.cpu_count() or 1,
                    help="libtorrent hashing_threads (default: one per core; 0 keeps libtorrent's default)")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    ses = lt_common.make_session("127.0.0.1", 0)
    if a.hashing_threads > 0:
        ses.apply_settings({"hashing_threads": a.hashing_threads})
    threads = ses.get_settings()["hashing_threads"]
    ti = lt.torrent_info(a.torrent)
    size = lt_common.payload_bytes(ti)
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = a.save_path
    p.flags = lt_common.NO_DISCOVERY | lt.torrent_flags.upload_mode
    t0 = time.monotonic()
    h = ses.add_torrent(p)
    wait_checked(ses, deadline)
    st = h.status()
    print("WARMUP seconds=%.3f pieces=%d/%d" % (time.monotonic() - t0, st.num_pieces, ti.num_pieces()), flush=True)
    for i in range(a.runs):
        t0 = time.monotonic()
        c0 = sum(os.times()[:2])
        h.force_recheck()
        wait_checked(ses, deadline)
        st = h.status()
        secs = time.monotonic() - t0
        cpu = sum(os.times()[:2]) - c0
        print("RESULT client=libtorrent-%s op=force_recheck run=%d bytes=%d seconds=%.3f MBps=%.1f cpu_seconds=%.2f pieces=%d/%d hashing_threads=%d"
              % (lt.__version__, i, size, secs, size / secs / 1e6, cpu, st.num_pieces, ti.num_pieces(), threads),
              flush=True)
    if st.num_pieces != ti.num_pieces():
        sys.exit(2)


if __name__ == "__main__":
    main()
