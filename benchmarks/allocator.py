"""The quickstart's stage-2 step with glibc's default allocator settings and with freed memory kept (issue 7).

`cambrian.quickstart_lib.cpu.keep_freed_memory` asks glibc to serve blocks of up to 32 MB from the heap and not to
trim it below 1 GB, so a step's activations reuse the pages the last step freed instead of faulting fresh ones in.
glibc reads these settings once per process and they cannot be undone cleanly, so each variant runs in its own
process: `optimizer_step.py --variants fused+frozen-embedding` (the quickstart's step: fused AdamW, word embedding
frozen), with and without `--keep-freed-memory`, taking turns for `--rounds` rounds so that a machine that slows
down or speeds up affects both alike. Reported: the median step of each process, the median over rounds, the ratio,
and the minor page faults of each process (model building included).

    .venv/bin/python benchmarks/allocator.py [--rounds 3] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from pathlib import Path

VARIANTS = {"glibc default": [], "keep freed memory": ["--keep-freed-memory"]}


def run_once(extra: list[str], steps: int, threads: int) -> tuple[float, int]:
    """-> (median seconds per step, minor page faults) of one optimizer_step.py process."""
    script = Path(__file__).with_name("optimizer_step.py")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    done = subprocess.run([sys.executable, str(script), "--variants", "fused+frozen-embedding", "--steps", str(steps),
                           "--threads", str(threads), *extra], capture_output=True, text=True, check=True)
    faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
    row = next(line for line in done.stdout.splitlines() if line.startswith("fused+frozen-embedding"))
    return float(row.split()[4]), faults  # columns: variant, forward, backward, optimizer, step, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per process (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    results: dict[str, list[tuple[float, int]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, extra in VARIANTS.items():
            results[name].append(run_once(extra, args.steps, args.threads))
            step, faults = results[name][-1]
            print(f"round {round_ + 1}: {name:18s} step {step:.3f} s, {faults / 1e6:.2f}M minor page faults",
                  flush=True)
    print(f"threads {args.threads}, {args.steps} steps per process, {args.rounds} rounds (medians over rounds)")
    print(f"{'allocator':18s} {'step (s)':>9s} {'ratio':>6s} {'page faults':>12s}")
    base = statistics.median(step for step, _ in results["glibc default"])
    for name, rows in results.items():
        step = statistics.median(s for s, _ in rows)
        faults = statistics.median(f for _, f in rows)
        print(f"{name:18s} {step:9.3f} {step / base:6.2f} {faults / 1e6:11.2f}M")


if __name__ == "__main__":
    main()
