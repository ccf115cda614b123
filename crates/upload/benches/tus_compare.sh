#!/usr/bin/env bash
# Side-by-side tus throughput in one run (run it inside ../shared/interop/run-in-netns.sh):
#   1. tuspy -> @tus/server        (../shared/tus/tus_bench.sh)
#   2. tuspy -> our server         (same script, TUS_BENCH_URL)
#   3. our client -> our server    (`piecework upload`, timed here)
# and our server's peak RSS (VmHWM) and CPU seconds per GiB received.
# usage: tus_compare.sh [SIZE_MIB=1024] [RUNS=3] [CHUNKS="8M 64M"]
# env: PIECEWORK_BIN (default target-upload/release/piecework), TUS_DIR (default /work/shared/tus),
#      SERVER_ARGS (extra upload-server flags, e.g. --no-fsync), SKIP_TUSPY=1 (only our client).
set -euo pipefail
SIZE="${1:-1024}"; RUNS="${2:-3}"; CHUNKS="${3:-8M 64M}"
BIN="${PIECEWORK_BIN:-target-upload/release/piecework}"
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

head -c $((SIZE << 20)) /dev/urandom > "$W/src.bin"
sync
cat "$W/src.bin" > /dev/null
for C in $CHUNKS; do
  vals=(); cpus=()
  for r in $(seq "$RUNS"); do
    rm -rf "$W/state"
    c0=$(cpu_s "$SP"); t0=$(date +%s.%N)
    u=$(timeout 600 "$BIN" upload "$W/src.bin" "$URL" --chunk-size "$C" --quiet --state-dir "$W/state" | tail -1)
    t1=$(date +%s.%N); c1=$(cpu_s "$SP")
    vals+=("$(python3 -c "import sys; print(round((int(sys.argv[1]) << 20) / (float(sys.argv[3]) - float(sys.argv[2])) / 1e6, 1))" "$SIZE" "$t0" "$t1")")
    cpus+=("$(python3 -c "import sys; print(round((float(sys.argv[2])-float(sys.argv[1]))/(int(sys.argv[3])/1024),3))" "$c0" "$c1" "$SIZE")")
    curl -s -m 30 -o /dev/null -X DELETE -H 'Tus-Resumable: 1.0.0' "$u" || true
  done
  python3 - "$C" "$SIZE" "${vals[*]}" "${cpus[*]}" <<'PY'
import json, statistics, sys
c, size, vals, cpus = sys.argv[1], int(sys.argv[2]), [float(v) for v in sys.argv[3].split()], [float(v) for v in sys.argv[4].split()]
print("BENCH_OURS_TO_OURS " + json.dumps({"chunk": c, "size_mib": size, "runs_mb_per_s": vals,
      "median_mb_per_s": statistics.median(vals), "server_cpu_s_per_gib": cpus}))
PY
done
echo "OURS_SERVER_VMHWM $(grep VmHWM "/proc/$SP/status" | awk '{print $2, $3}')"
echo "LOAD_AFTER $(cut -d' ' -f1-3 /proc/loadavg)"
