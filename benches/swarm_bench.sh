#!/bin/bash
# Swarm throughput over loopback: ours->ours, libtorrent->libtorrent, ours->libtorrent,
# libtorrent->ours, for v1 and hybrid torrents, RUNS runs each (interleaved), medians printed.
# Run inside the lab's namespace:
#   shared/interop/run-in-netns.sh --timeout 1800 benches/swarm_bench.sh [--size-mib 1024] [--runs 3]
# Needs a release `piecework` (PIECEWORK_BIN, default target/release/piecework) and the lab
# scripts (PIECEWORK_SHARED/interop, default ../shared/interop next to the repository).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PIECEWORK_BIN:-$here/target/release/piecework}
lab=${PIECEWORK_SHARED:-$here/../shared}/interop
size_mib=1024; runs=3; versions="v1 hybrid"
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --versions) versions="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "no piecework binary at $bin (cargo build --release -p piecework-cli)" >&2; exit 2; }
work=$(mktemp -d /tmp/swarm-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/seed"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/seed/bench.bin"
sync

# Waits (with a deadline) for a READY line in a log; prints the port.
ready_port() {
  local log=$1 i
  for i in $(seq 1 600); do
    if grep -q '^READY' "$log" 2>/dev/null; then
      grep '^READY' "$log" | head -1 | sed 's/.*port=\([0-9]*\).*/\1/'; return 0
    fi
    sleep 0.1
  done
  echo "no READY in $log" >&2; return 1
}

# Peak anonymous memory (KiB) of PID, sampled every 0.1 s until it exits, written to FILE.
sample_anon() {
  local pid=$1 out=$2 peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.1
  done
  echo "$peak" > "$out"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }

seed_ours() { "$bin" seed "$1" "$work/seed" --listen 127.0.0.1:0 --no-trackers --timeout 600 > "$2" 2>/dev/null & }
seed_lt() { "$lab/lt_seed.py" --torrent "$1" --data-dir "$work/seed" --port 0 --no-trackers --timeout 600 > "$2" 2>/dev/null & }

run_pair() { # seeder leecher torrent -> prints "MBps anon_kb"
  local seeder=$1 leecher=$2 t=$3 log=$work/seed.log out=$work/dl mbps anon=-
  rm -rf "$out"; : > "$log"
  # Start every transfer with no dirty pages left by the previous one: otherwise its
  # writeback (the kernel's flusher threads) runs on the same two cores during the next
  # measurement, whichever pair that is.
  sync
  if [ "$seeder" = ours ]; then seed_ours "$t" "$log"; else seed_lt "$t" "$log"; fi
  local spid=$!; pids+=("$spid")
  local port; port=$(ready_port "$log")
  if [ "$leecher" = ours ]; then
    "$bin" fetch "$t" --out "$out" --peer "127.0.0.1:$port" --json --no-trackers --timeout 300 > "$work/fetch.json" &
    local lpid=$!; pids+=("$lpid")
    sample_anon "$lpid" "$work/anon" &
    local apid=$!
    wait "$lpid"; wait "$apid"
    mbps=$(sed 's/.*"mb_per_s":\([0-9.]*\).*/\1/' "$work/fetch.json")
    anon=$(cat "$work/anon")
  else
    mbps=$("$lab/lt_fetch.py" --torrent "$t" --save-dir "$out" --peer "127.0.0.1:$port" --no-trackers --no-recheck --timeout 300 \
      | grep '^RESULT' | sed 's/.* MBps=\([0-9.]*\).*/\1/')
  fi
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  cmp -s "$work/seed/bench.bin" "$out/bench.bin" || mbps="CORRUPT"
  echo "$mbps $anon"
}

echo "# swarm_bench: ${size_mib} MiB, $runs runs, $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for v in $versions; do
  t=$work/bench-$v.torrent
  "$bin" create "--$v" -o "$t" "$work/seed/bench.bin" > /dev/null
  declare -A res=()
  for r in $(seq 1 "$runs"); do
    for pair in "ours ours" "lt lt" "ours lt" "lt ours"; do
      set -- $pair
      line=$(run_pair "$1" "$2" "$t")
      res["$1-$2"]+="${line%% *}"$'\n'
      [ "$2" = ours ] && res["$1-$2-anon"]+="${line##* }"$'\n'
      echo "run=$r version=$v seeder=$1 leecher=$2 MBps=${line%% *} leecher_anon_kb=${line##* } load=$(cut -d' ' -f1 /proc/loadavg)"
    done
  done
  oo=$(printf '%s' "${res[ours-ours]}" | median); ll=$(printf '%s' "${res[lt-lt]}" | median)
  ol=$(printf '%s' "${res[ours-lt]}" | median); lo=$(printf '%s' "${res[lt-ours]}" | median)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
  echo "MEDIAN version=$v ours_to_ours=$oo lt_to_lt=$ll ours_to_lt=$ol lt_to_ours=$lo" \
       "ratio_ours_ours=$(ratio "$oo" "$ll") ratio_ours_lt=$(ratio "$ol" "$ll") ratio_lt_ours=$(ratio "$lo" "$ll")" \
       "anon_kb_ours_ours=$(printf '%s' "${res[ours-ours-anon]}" | median) anon_kb_lt_ours=$(printf '%s' "${res[lt-ours-anon]}" | median)"
  unset res
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
