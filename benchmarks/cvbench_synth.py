"""Render speed of the synthetic CV-Bench world (numpy + PIL, CPU only).

    .venv/bin/python benchmarks/cvbench_synth.py [--n 200] [--size 384]

Times `render_world` end to end (scene sampling, ray casting, shading, PNG encoding, annotation files) with one
process and with one process per core, and the renderer alone (no PNG, no files) on one core.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from cambrian.cvbench.render import render_scene
from cambrian.cvbench.synth import render_world
from cambrian.cvbench.world import sample_scene, scene_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args()

    # wall-clock rates depend on what else runs on the machine; CPU time per image (1 process) does not, much
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    scenes = [sample_scene(scene_seed(0, i), i, args.size) for i in range(min(args.n, 50))]
    wall, cpu = time.perf_counter(), time.process_time()
    for scene in scenes:
        render_scene(scene)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"render_scene only         1 proc : {len(scenes) / wall:6.1f} images/s wall, "
          f"{1000 * cpu / len(scenes):5.1f} ms CPU per image")
    for workers in sorted({1, os.cpu_count() or 1}):
        with tempfile.TemporaryDirectory() as out:
            wall, cpu = time.perf_counter(), time.process_time()
            render_world(out, args.n, seed=0, size=args.size, workers=workers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu_note = f", {1000 * cpu / args.n:5.1f} ms CPU per image" if workers == 1 else ""
        print(f"render_world (+PNG, json) {workers} proc : {args.n / wall:6.1f} images/s wall{cpu_note}"
              f"   ({args.n} x {args.size} px)")


if __name__ == "__main__":
    main()
