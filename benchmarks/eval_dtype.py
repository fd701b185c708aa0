"""The quickstart's evaluation in fp32 and in bf16: seconds per question and answers that differ (issue 7).

A trained quickstart model (`--run`, a `cambrian quickstart --out` folder) answers the first `--n` easy-VQA test
questions and its test world's CV-Bench with vision on, once as loaded (fp32) and once cast as `cambrian eval --dtype
bf16` casts it (cambrian/eval/precision.py: bf16 weights, an fp32 LM head). The two copies take turns batch by batch
(16 questions, the harness's own Generator, batching and token budgets), so a machine that slows down or speeds up
affects both alike. Reported per benchmark: seconds per question, the bf16 / fp32 ratio, the accuracy of each, and how
many answers differ.

    .venv/bin/python benchmarks/eval_dtype.py --run runs/quickstart [--n 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from cambrian.eval.benchmarks import load_samples, parse_bench_spec
from cambrian.eval.generation import Generator
from cambrian.eval.precision import to_compute_dtype
from cambrian.eval.runner import batches
from cambrian.eval.scoring import score_answers
from cambrian.models.builder import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `cambrian quickstart --out` folder")
    parser.add_argument("--n", type=int, default=300, help="easy-VQA test questions (CV-Bench: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tokenizer = load_model(args.run / "model")
    models = {"fp32": model.eval(), "bf16": to_compute_dtype(copy.deepcopy(model), "bf16").eval()}
    print(f"threads {args.threads}, batch 16; seconds per question, accuracy (%), answers that differ")
    print(f"{'benchmark':22s} {'fp32 s/q':>9s} {'bf16 s/q':>9s} {'ratio':>6s} {'fp32 acc':>9s} {'bf16 acc':>9s} "
          f"{'differ':>7s}")
    for spec, limit in (("easyvqa", args.n), (f"cvbench:{args.run / 'data' / 'cvbench-test'}", None)):
        bench, folder = parse_bench_spec(spec)
        samples = load_samples(bench, folder, limit)
        for vision in (True, False):
            generators = {name: Generator(m, tokenizer, vision=vision) for name, m in models.items()}
            prompts = {name: [g.encode(s) for s in samples] for name, g in generators.items()}
            order = sorted(range(len(samples)), key=lambda i: (len(prompts["fp32"][i].input_ids), i))
            answers = {name: {} for name in models}
            seconds = dict.fromkeys(models, 0.0)
            for batch in batches(order, 16):
                for name, generator in generators.items():
                    start = time.perf_counter()
                    texts = generator.generate([prompts[name][i] for i in batch], bench.max_new_tokens)
                    seconds[name] += time.perf_counter() - start
                    answers[name].update({samples[i].idx: t for i, t in zip(batch, texts, strict=True)})
            score = {name: score_answers(bench, samples, a).score for name, a in answers.items()}
            differ = sum(answers["fp32"][s.idx] != answers["bf16"][s.idx] for s in samples)
            per = {name: seconds[name] / len(samples) for name in models}
            label = f"{bench.name} vision {'on' if vision else 'off'} ({len(samples)})"
            print(f"{label:22s} {per['fp32']:9.3f} {per['bf16']:9.3f} {per['bf16'] / per['fp32']:6.2f} "
                  f"{score['fp32']:9.1f} {score['bf16']:9.1f} {differ:7d}", flush=True)


if __name__ == "__main__":
    main()
