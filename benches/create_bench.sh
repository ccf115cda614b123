#!/bin/bash
# Torrent creation, whole process timed, page cache warm: piecework against mktorrent -t 2,
# transmission-create and libtorrent (the lab's lt_create.py), interleaved in one run.
#
#   benches/create_bench.sh [--size-mib 1024] [--runs 3]
#
# v1 rows use 256 KiB pieces everywhere; v2 and hybrid rows too (libtorrent's and ours).
# Prints one line per measurement, then medians (MB/s, peak RSS) and our ratios against each
# peer in the same run. Needs a release `piecework` (PIECEWORK_BIN, default
# target/release/piecework); peers that are missing are reported as SKIPPED.
# Nothing here touches the network.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PIECEWORK_BIN:-$here/target/release/piecework}
lab=${PIECEWORK_SHARED:-$here/../shared}/interop
size_mib=1024; runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "no piecework binary at $bin (cargo build --release -p piecework-cli)" >&2; exit 2; }
work=$(mktemp -d /tmp/create-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
f=$work/blob.bin
head -c $((size_mib * 1048576)) /dev/urandom > "$f"
cat "$f" > /dev/null # page cache
bytes=$((size_mib * 1048576))

have() { command -v "$1" > /dev/null 2>&1; }
lt_ok=0; /usr/bin/python3 -c 'import libtorrent' 2> /dev/null && [ -x "$lab/lt_create.py" ] && lt_ok=1

declare -A tools
tools[ours-v1]="$bin create --v1 --piece-length 262144 --no-date -o $work/out.torrent $f"
tools[ours-v2]="$bin create --v2 --piece-length 262144 --no-date -o $work/out.torrent $f"
tools[ours-hybrid]="$bin create --hybrid --piece-length 262144 --no-date -o $work/out.torrent $f"
have mktorrent && tools[mktorrent-v1]="mktorrent -t 2 -l 18 -o $work/out.torrent $f"
have transmission-create && tools[transmission-v1]="transmission-create -s 256 -o $work/out.torrent $f"
if [ "$lt_ok" = 1 ]; then
  for v in v1 v2 hybrid; do tools[libtorrent-$v]="$lab/lt_create.py $f -o $work/out.torrent --version $v --piece-size 256"; done
fi
order="ours-v1 mktorrent-v1 transmission-v1 libtorrent-v1 ours-v2 libtorrent-v2 ours-hybrid libtorrent-hybrid"
for name in $order; do [ -n "${tools[$name]:-}" ] || echo "SKIPPED $name (not installed)"; done

declare -A secs rss
echo "# create_bench: ${size_mib} MiB, $runs runs, $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$runs"); do
  for name in $order; do
    cmd=${tools[$name]:-}
    [ -n "$cmd" ] || continue
    rm -f "$work/out.torrent"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%e %M' -o "$work/t" timeout 600 $cmd > /dev/null 2> "$work/err" \
      || { echo "FAILED $name:"; cat "$work/err"; continue; }
    read -r e m < "$work/t"
    secs[$name]+="$e"$'\n'; rss[$name]+="$m"$'\n'
    echo "run=$r name=$name seconds=$e MBps=$(awk -v b=$bytes -v e="$e" 'BEGIN{printf "%.0f", (e>0)?b/e/1e6:0}') rss_kb=$m load=$(cut -d' ' -f1 /proc/loadavg)"
  done
done

median() { sort -n | awk 'NF {a[++n]=$1} END {if (n==0) print ""; else print a[int((n+1)/2)]}'; }
declare -A med
for name in $order; do
  [ -n "${secs[$name]:-}" ] || continue
  med[$name]=$(printf '%s' "${secs[$name]}" | median)
  echo "MEDIAN name=$name seconds=${med[$name]} MBps=$(awk -v b=$bytes -v e="${med[$name]}" 'BEGIN{printf "%.0f", b/e/1e6}') rss_kb=$(printf '%s' "${rss[$name]}" | median)"
done
ratio() { # ours peer: peer seconds / our seconds (>1: we are faster)
  [ -n "${med[$1]:-}" ] && [ -n "${med[$2]:-}" ] && echo "RATIO $1/$2 $(awk -v a="${med[$1]}" -v b="${med[$2]}" 'BEGIN{printf "%.2f", b/a}')"
  return 0
}
ratio ours-v1 mktorrent-v1; ratio ours-v1 transmission-v1; ratio ours-v1 libtorrent-v1
ratio ours-v2 libtorrent-v2; ratio ours-hybrid libtorrent-hybrid
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
