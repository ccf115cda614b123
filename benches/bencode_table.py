#!/usr/bin/env python3
"""Print the `cargo bench --bench bencode` results as a markdown table.

Usage: python3 benches/bencode_table.py [CRITERION_DIR]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion when CARGO_TARGET_DIR is set, else
target/criterion at the workspace root. Reads every `<group>/<input>/<implementation>/new/`
`benchmark.json` (names, throughput) and `estimates.json` (median) of the bencode groups.

Columns: median time per call; MB/s (10^6 bytes per second of input, for the inputs that set a
byte throughput); and the speed relative to the fastest peer of the same group and input
(fastest peer median / this median: above 1.00 is faster than every peer). Implementations whose
name starts with "piecework" are ours; every other one is a peer.
"""

import json
import os
import sys
from pathlib import Path

GROUPS = ["decode_tree", "decode_struct", "validate", "encode"]
OURS = "piecework"


def default_dir() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def fmt_time(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.3f} ms"
    return f"{ns / 1e9:.3f} s"


def load(root: Path):
    rows = []
    for bench in sorted(root.glob("**/new/benchmark.json")):
        estimates = bench.with_name("estimates.json")
        if not estimates.is_file():
            continue
        meta = json.loads(bench.read_text())
        group_id = meta.get("group_id", "")
        group, _, input_name = group_id.partition("/")
        if group not in GROUPS:
            continue
        median = json.loads(estimates.read_text())["median"]["point_estimate"]
        throughput = meta.get("throughput") or {}
        nbytes = throughput.get("Bytes") or throughput.get("BytesDecimal")
        rows.append(
            {
                "group": group,
                "input": input_name,
                "impl": meta.get("function_id") or meta.get("value_str") or "?",
                "median_ns": median,
                "bytes": nbytes,
            }
        )
    return rows


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_dir()
    if not root.is_dir():
        print(f"no criterion results in {root}: run `cargo bench --bench bencode` first", file=sys.stderr)
        return 1
    rows = load(root)
    if not rows:
        print(f"no bencode benchmark results under {root}", file=sys.stderr)
        return 1

    print("| group | input | implementation | median | MB/s | vs fastest peer |")
    print("|---|---|---|---:|---:|---:|")
    keys = sorted({(r["group"], r["input"]) for r in rows}, key=lambda k: (GROUPS.index(k[0]), k[1]))
    for group, input_name in keys:
        cell = sorted(
            (r for r in rows if r["group"] == group and r["input"] == input_name),
            key=lambda r: r["median_ns"],
        )
        peers = [r["median_ns"] for r in cell if not r["impl"].startswith(OURS)]
        fastest_peer = min(peers) if peers else None
        for r in cell:
            ours = r["impl"].startswith(OURS)
            name = f"**{r['impl']}**" if ours else r["impl"]
            mbs = f"{r['bytes'] / r['median_ns'] * 1e3:,.0f}" if r["bytes"] else "-"
            ratio = f"{fastest_peer / r['median_ns']:.2f}x" if fastest_peer else "-"
            print(f"| {group} | {input_name} | {name} | {fmt_time(r['median_ns'])} | {mbs} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
