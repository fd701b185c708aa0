"""Evaluation throughput: questions/s of batched greedy generation at batch 1 vs batch 16 (CPU by default).

    .venv/bin/python benchmarks/eval_throughput.py [--models cambrian-tiny,cambrian-nano] [--n 200] [--json OUT]

Both batch sizes answer the same N synthetic CV-Bench questions (rendered once, 384 px, `--synth-seed 3`) in the
same process, with the harness's own Generator and batching (sorted by prompt length, left-padded, greedy, CV-Bench
token budget 16). The answers must be identical; the script exits non-zero if they are not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from cambrian.cvbench.build import build_from_world
from cambrian.cvbench.synth import render_world
from cambrian.eval.benchmarks import get_benchmark, load_samples
from cambrian.eval.generation import Generator
from cambrian.eval.runner import batches, load_for_eval
from cambrian.eval.scoring import score_answers


def answer_all(generator: Generator, samples, batch_size: int, max_new_tokens: int) -> tuple[dict[int, str], float]:
    prompts = [generator.encode(s) for s in samples]  # images decoded up front: we time the model, not PNG decoding
    order = sorted(range(len(samples)), key=lambda i: (len(prompts[i].input_ids), i))
    answers = {}
    start = time.perf_counter()
    for batch in batches(order, batch_size):
        for i, text in zip(batch, generator.generate([prompts[i] for i in batch], max_new_tokens), strict=True):
            answers[samples[i].idx] = text
    return answers, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cambrian-tiny,cambrian-nano")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    bench = get_benchmark("cvbench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        render_world(f"{tmp}/world", max(args.n // 2, 8), seed=3, size=384)
        build_from_world(f"{tmp}/bench", f"{tmp}/world")
        samples = load_samples(bench, f"{tmp}/bench", args.n)
        if len(samples) < args.n:
            print(f"only {len(samples)} questions were generated", file=sys.stderr)
        for spec in args.models.split(","):
            model, tokenizer = load_for_eval(spec, seed=0, device="cpu")
            generator = Generator(model, tokenizer)
            generator.generate([generator.encode(samples[0])], 2)  # warm-up
            results = {b: answer_all(generator, samples, b, bench.max_new_tokens) for b in sizes}
            reference = results[sizes[0]][0]
            identical = all(r[0] == reference for r in results.values())
            accuracy = score_answers(bench, samples, reference).metrics["micro"]
            for b, (_, seconds) in results.items():
                rows.append({"model": spec, "batch_size": b, "questions": len(samples), "seconds": seconds,
                             "questions_per_s": len(samples) / seconds,
                             "speedup": results[sizes[0]][1] / seconds, "identical_answers": identical,
                             "accuracy_micro": accuracy})
                print(f"{spec:<14} batch {b:>3}: {len(samples) / seconds:7.2f} questions/s  ({seconds:6.1f} s)  "
                      f"x{results[sizes[0]][1] / seconds:4.2f}  identical answers: {identical}  "
                      f"CV-Bench micro acc {accuracy:.1f}")
            del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if all(r["identical_answers"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
