#!/usr/bin/env bash
# Side-by-side tus throughput in one run (run it inside ../shared/interop/run-in-netns.sh):
#   1. tuspy -> @tus/server        (../shared/tus/tus_bench.sh)
#   2. tuspy -> our server         (same script, TUS_BENCH_URL)
#   3. our client -> our server    (`piecework upload`, timed here)
# and our server's peak RSS (VmHWM) and CPU seconds per GiB received. Before each of our
# client's runs it measures the disk's own durable write rate and the server's store path
# without the network (examples/store_throughput.rs): the two ceilings under the upload; and,
# if fio is installed, the disk's best case (deep queue, no sync until the end).
# usage: tus_compare.sh [SIZE_MIB=1024] [RUNS=3] [CHUNKS="8M 64M"]
# env: PIECEWORK_BIN (default target-upload/release/piecework), PIECEWORK_CLIENT_BIN (the client
#      of runs 3, default PIECEWORK_BIN), TUS_DIR (default /work/shared/tus),
#      SERVER_ARGS (extra upload-server flags, e.g. --no-fsync), SKIP_TUSPY=1 (only our client),
#      STORE_BIN (default target-upload/release/examples/store_throughput; build it with
#      `cargo build --release -p piecework-upload --example store_throughput`).
set -euo pipefail
SIZE="${1:-1024}"; RUNS="${2:-3}"; CHUNKS="${3:-8M 64M}"
BIN="${PIECEWORK_BIN:-target-upload/release/piecework}"
CLIENT_BIN="${PIECEWORK_CLIENT_BIN:-$BIN}"
STORE_BIN="${STORE_BIN:-target-upload/release/examples/store_throughput}"
TUS="${TUS_DIR:-/work/shared/tus}"
W="$(mktemp -d /tmp/tus_cmp.XXXXXX)"; SP=""
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
echo "LOAD_BEFORE $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${SKIP_TUSPY:-0}" != 1 ]; then
"$TUS/tus_bench.sh" "$SIZE" "$RUNS" 18082 "$CHUNKS" | sed 's/^BENCH_RESULT /BENCH_TUSPY_TO_TUS_NODE /'
fi
# @tus/server leaves its bodies in the page cache; flush them now rather than during our
# server's runs (their writeback would share the same two cores).
sync

# shellcheck disable=SC2086
"$BIN" upload-server --listen 127.0.0.1:18090 --dir "$W/store" ${SERVER_ARGS:-} > "$W/srv.log" 2>&1 & SP=$!
for _ in $(seq 100); do grep -q READY "$W/srv.log" && break; sleep 0.1; done
grep -q READY "$W/srv.log" || { cat "$W/srv.log" >&2; exit 1; }
URL="http://127.0.0.1:18090/files/"
if [ "${SKIP_TUSPY:-0}" != 1 ]; then
c0=$(cpu_s "$SP")
TUS_BENCH_URL="$URL" "$TUS/tus_bench.sh" "$SIZE" "$RUNS" 18090 "$CHUNKS" | sed 's/^BENCH_RESULT /BENCH_TUSPY_TO_OURS /'
c1=$(cpu_s "$SP")
echo "OURS_SERVER_CPU_S_PER_GIB_TUSPY $(python3 -c "import sys; print(round((float(sys.argv[2])-float(sys.argv[1]))/(int(sys.argv[3])*int(sys.argv[4])/1024*len(sys.argv[5].split())),3))" "$c0" "$c1" "$SIZE" "$RUNS" "$CHUNKS")"
fi

# The disk's own rate for the durable pattern our server follows: 1 MiB O_DIRECT writes to
# a fresh file beside the store, one fdatasync per chunk. A shared disk's rate moves between
# runs, so it is measured right before each of our client's runs.
disk_rate() {
  python3 - "$W/disk.bin" "$SIZE" "$1" <<'PY'
import mmap, os, sys, time
path, size, chunk = sys.argv[1], int(sys.argv[2]) << 20, sys.argv[3]
chunk = int(chunk[:-1]) << {"K": 10, "M": 20, "G": 30}[chunk[-1]] if chunk[-1] in "KMG" else int(chunk)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
buf = mmap.mmap(-1, 1 << 20)
t = time.monotonic()
for off in range(0, size, 1 << 20):
    os.pwrite(fd, buf, off)
    if (off + (1 << 20)) % chunk == 0 or off + (1 << 20) >= size:
        os.fdatasync(fd)
print(round(size / (time.monotonic() - t) / 1e6, 1))
os.close(fd)
os.unlink(path)
PY
}

# The disk's best case, with fio if it is installed: 1 MiB O_DIRECT writes four deep and no
# fdatasync until the end; no durable upload can beat it. 0 when fio is missing.
disk_best() {
  if command -v fio > /dev/null; then
    fio --name=best --filename="$W/fio.bin" --rw=write --bs=1M --iodepth=4 --ioengine=libaio \
      --direct=1 --end_fsync=1 --size="${SIZE}M" --output-format=json 2> /dev/null \
      | python3 -c "import json, sys; print(round(json.load(sys.stdin)['jobs'][0]['write']['bw_bytes'] / 1e6, 1))"
    rm -f "$W/fio.bin"
  else
    echo 0
  fi
}

head -c $((SIZE << 20)) /dev/urandom > "$W/src.bin"
sync
cat "$W/src.bin" > /dev/null
# The server's own path (hashing, the O_DIRECT pipeline, fdatasync per PATCH) fed from
# memory by a second thread: what the server could do if the network cost nothing.
store_rate() {
  if [ -x "$STORE_BIN" ]; then
    "$STORE_BIN" "$W/store_only" "$SIZE" "$1" | sed -n 's/^STORE_THROUGHPUT //p' \
      | python3 -c "import json, sys; print(json.load(sys.stdin)['mb_per_s'])"
    rm -rf "$W/store_only"
  else
    echo "store path: $STORE_BIN missing, not measured" >&2
    echo 0
  fi
}

for C in $CHUNKS; do
  vals=(); cpus=(); disk=(); store=(); best=()
  for r in $(seq "$RUNS"); do
    best+=("$(disk_best)")
    disk+=("$(disk_rate "$C")")
    store+=("$(store_rate "$C")")
    sync
    rm -rf "$W/state"
    c0=$(cpu_s "$SP"); t0=$(date +%s.%N)
    u=$(timeout 600 "$CLIENT_BIN" upload "$W/src.bin" "$URL" --chunk-size "$C" --quiet --state-dir "$W/state" | tail -1)
    t1=$(date +%s.%N); c1=$(cpu_s "$SP")
    vals+=("$(python3 -c "import sys; print(round((int(sys.argv[1]) << 20) / (float(sys.argv[3]) - float(sys.argv[2])) / 1e6, 1))" "$SIZE" "$t0" "$t1")")
    cpus+=("$(python3 -c "import sys; print(round((float(sys.argv[2])-float(sys.argv[1]))/(int(sys.argv[3])/1024),3))" "$c0" "$c1" "$SIZE")")
    curl -s -m 30 -o /dev/null -X DELETE -H 'Tus-Resumable: 1.0.0' "$u" || true
  done
  python3 - "$C" "$SIZE" "${vals[*]}" "${cpus[*]}" "${disk[*]}" "${store[*]}" "${best[*]}" <<'PY'
import json, statistics, sys
c, size = sys.argv[1], int(sys.argv[2])
vals, cpus, disk, store, best = ([float(v) for v in a.split()] for a in sys.argv[3:8])
out = {"chunk": c, "size_mib": size, "runs_mb_per_s": vals,
       "median_mb_per_s": statistics.median(vals), "server_cpu_s_per_gib": cpus,
       "disk_direct_mb_per_s": disk, "median_share_of_disk": round(statistics.median(
           v / d for v, d in zip(vals, disk)), 3)}
if all(store):
    out["store_path_mb_per_s"] = store
    out["median_share_of_store_path"] = round(statistics.median(v / s for v, s in zip(vals, store)), 3)
if all(best):
    out["disk_best_case_mb_per_s"] = best
print("BENCH_OURS_TO_OURS " + json.dumps(out))
PY
done
echo "OURS_SERVER_VMHWM $(grep VmHWM "/proc/$SP/status" | awk '{print $2, $3}')"
echo "LOAD_AFTER $(cut -d' ' -f1-3 /proc/loadavg)"
