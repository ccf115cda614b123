#!/usr/bin/env bash
# Our client -> our server through a proxy that adds a round trip (delay_proxy.py): PATCHes
# pipelined (the default) against one at a time (`--no-pipeline`), same build, alternating.
# Run it inside ../shared/interop/run-in-netns.sh.
# usage: tus_rtt.sh [SIZE_MIB=256] [RUNS=2] [ONE_WAY_DELAYS="0 0.01 0.025"] [CHUNK=8M]
# env: PIECEWORK_BIN (default target/release/piecework).
set -euo pipefail
SIZE="${1:-256}"; RUNS="${2:-2}"; DELAYS="${3:-0 0.01 0.025}"; CHUNK="${4:-8M}"
BIN="${PIECEWORK_BIN:-target/release/piecework}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W="$(mktemp -d /tmp/tus_rtt.XXXXXX)"; SP=""; PP=""
cleanup() { for p in $SP $PP; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
head -c $((SIZE << 20)) /dev/urandom > "$W/src.bin"
"$BIN" upload-server --listen 127.0.0.1:18097 --dir "$W/store" > "$W/srv.log" 2>&1 & SP=$!
for _ in $(seq 100); do grep -q READY "$W/srv.log" && break; sleep 0.1; done
for d in $DELAYS; do
  python3 "$HERE/delay_proxy.py" 18098 18097 "$d" > "$W/proxy.log" 2>&1 & PP=$!
  for _ in $(seq 100); do grep -q READY "$W/proxy.log" && break; sleep 0.1; done
  for r in $(seq "$RUNS"); do
    for v in pipelined one_at_a_time; do
      flag=(); [ "$v" = one_at_a_time ] && flag=(--no-pipeline)
      rm -rf "$W/state"; sync
      t0=$(date +%s.%N)
      timeout 600 "$BIN" upload "$W/src.bin" http://127.0.0.1:18098/files/ --chunk-size "$CHUNK" --quiet \
        --state-dir "$W/state" "${flag[@]}" > /dev/null
      t1=$(date +%s.%N)
      echo "BENCH_RTT {\"rtt_ms\": $(python3 -c "print(round(2000*$d))"), \"client\": \"$v\", \"chunk\": \"$CHUNK\", \"mb_per_s\": $(python3 -c "print(round(($SIZE << 20) / ($t1 - $t0) / 1e6, 1))")}"
    done
  done
  kill "$PP"; wait "$PP" 2>/dev/null || true; PP=""
done
