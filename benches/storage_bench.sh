#!/usr/bin/env bash
# Storage benchmark, piecework and libtorrent side by side in one run:
#   1. piecework: write 1 GiB as 16 KiB blocks in random piece order with verification,
#      then recheck it (page cache warm), PW_BENCH_RUNS times;
#   2. libtorrent (python3-libtorrent): force_recheck of the same files, same number of runs,
#      inside shared/interop/run-in-netns.sh (no traffic can leave the machine);
#   3. piecework recheck again, so each side runs both before and after the other.
# Data lives under PW_BENCH_DIR (default /tmp/pw-storage-bench) and is deleted at the end.
#
# Usage: benches/storage_bench.sh     (env: PW_BENCH_MIB, PW_BENCH_PIECE_KIB, PW_BENCH_RUNS,
#                                      CARGO_TARGET_DIR, INTEROP_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
export PW_BENCH_DIR=${PW_BENCH_DIR:-/tmp/pw-storage-bench}
export PW_BENCH_RUNS=${PW_BENCH_RUNS:-3}
INTEROP_DIR=${INTEROP_DIR:-/work/shared/interop}
trap 'rm -rf "$PW_BENCH_DIR"' EXIT

cargo bench --bench storage --no-run
PW_BENCH_KEEP=1 timeout 900 cargo bench --bench storage 2>/dev/null | grep RESULT

if /usr/bin/python3 -c 'import libtorrent' 2>/dev/null; then
    # One hashing thread per core (as piecework uses), then libtorrent's own default.
    for threads in "$(nproc)" 0; do
        timeout 900 "$INTEROP_DIR/run-in-netns.sh" --timeout 800 /usr/bin/python3 benches/storage_lt_recheck.py \
            --torrent "$PW_BENCH_DIR/bench.torrent" --save-path "$PW_BENCH_DIR/dl" --runs "$PW_BENCH_RUNS" \
            --hashing-threads "$threads" | grep -E 'RESULT|WARMUP'
    done
else
    echo "SKIPPED libtorrent: /usr/bin/python3 cannot import libtorrent (apt-get install python3-libtorrent)"
fi

PW_BENCH_KEEP=1 PW_BENCH_MODE=recheck timeout 900 cargo bench --bench storage 2>/dev/null \
    | grep RESULT
