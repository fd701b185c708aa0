"""Curation throughput and memory: `cambrian data curate` against a plain orjson parse of the same pool.

    python benchmarks/curate.py              # 2M-record pool
    python benchmarks/curate.py --full       # 10M records (Cambrian-10M scale)

Each measured command runs in its own process; peak memory is the peak of the sum over that process and its
children (the curate workers, the plotting process), as PSS (shared pages split between processes, not counted
twice), sampled from /proc every 100 ms (a sample costs ~3 ms of CPU: sampling faster would slow what it measures on
a small machine). The plain parse is timed again right before each curate run and each run is compared with that
one, so that a drift in the machine's load between runs does not bias the ratio. Targets (issue 3): peak memory
under 1 GB whatever the pool size; curate throughput at least 50% of the plain parse.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARSE = """
import sys, orjson
n = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        orjson.loads(line)
        n += 1
print(n)
"""


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (a forked worker's copy-on-write view of its parent) split, not doubled."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def tree_rss_mb(pid: int) -> float:
    """Memory (PSS) of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = 0
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += pss_kb(current) * 1024 if current in rss else 0
        stack += children.get(current, [])
    return total / 2**20


def measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak tree RSS (MB), stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": "."})
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_rss_mb(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"{command} failed with {process.returncode}:\n{out}")
    return wall, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--full", action="store_true", help="10M records")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--cap", type=int, default=150_000, help="source cap t (scaled: the pool is 1/5 of 10M)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    records = 10_000_000 if args.full else args.records
    cap = args.cap * records // 2_000_000 if args.full else args.cap

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        pool = Path(tmp) / "pool.jsonl"
        start = time.perf_counter()
        sys.path.insert(0, ".")
        from cambrian.data.synthetic import write_synthetic_pool

        write_synthetic_pool(pool, records, seed=0)
        generated = time.perf_counter() - start
        size_mb = pool.stat().st_size / 1e6
        parse = [sys.executable, "-c", PARSE, str(pool)]
        curate_cmd = [
            sys.executable,
            "-c",
            "from cambrian.data.cli import app; app()",
            "curate",
            str(pool),
            "--out",
            str(Path(tmp) / "out"),
            "--cap",
            str(cap),
            "--ratios",
            "cambrian7m",
        ]
        results = {}
        for workers in sorted({1, args.workers}):
            parse_s, parse_rss, _ = measure(parse)
            wall, rss, out = measure(curate_cmd + ["--workers", str(workers)])
            results[workers] = (parse_s, parse_rss, wall, rss)
            print(out)
        stats = json.loads((Path(tmp) / "out" / "stats.json").read_text())

    print(f"pool: {records:,} records, {size_mb:,.0f} MB (generated in {generated:.1f} s), cpus {os.cpu_count()}")
    for workers, (parse_s, parse_rss, wall, rss) in results.items():
        print(
            f"plain orjson parse     : {parse_s:7.1f} s  {records / parse_s / 1e3:8.0f} k rec/s  "
            f"peak RSS {parse_rss:6.0f} MB"
        )
        print(
            f"curate, {workers:>2} worker(s)  : {wall:7.1f} s  {records / wall / 1e3:8.0f} k rec/s  "
            f"peak RSS {rss:6.0f} MB  throughput {100 * parse_s / wall:5.1f}% of plain parse"
        )
    print(
        f"curated: {stats['records_out']:,} records; cap {cap:,}; exact duplicates {stats['duplicates_exact']:,}; "
        f"prompts added to {stats['system_prompts']['records_with_prompt']:,}"
    )


if __name__ == "__main__":
    main()
