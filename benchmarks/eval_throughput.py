"""Evaluation throughput: questions/s of batched greedy generation at batch 1 vs batch 16 (CPU by default).

    .venv/bin/python benchmarks/eval_throughput.py [--models cambrian-tiny,cambrian-nano] [--n 200] [--threads N]
        [--dtype fp32|bf16] [--device cpu|cuda] [--save-bench DIR | --bench-dir DIR] [--json OUT]

Both batch sizes answer the same N synthetic CV-Bench questions (rendered once, 384 px, world seed 3) in the same
process, alternating chunk by chunk so that both see the same machine load, with the harness's own Generator and
batching (sorted by prompt length, left-padded, greedy, CV-Bench token budget 16). Wall and process CPU time are
both reported. The answers must be identical; the script exits non-zero if they are not, and says how many answer
texts and how many parsed choices differ from batch 1's.

`--dtype bf16` runs the model as `cambrian eval --dtype bf16` does (cambrian/eval/precision.py). `--device cuda` runs
it on the GPU, with TF32 off for matmuls and convolutions so that fp32 means fp32 there too.

`--threads` fixes torch's CPU threads for both batch sizes: on a 2-core machine shared with other jobs, 2 OpenMP
threads spin at every op's barrier while the other core is taken, which slows batch 1 (hundreds of small ops per
token) far more than batch 16 and makes the ratio a measure of the machine's load rather than of batching.
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


def answer_interleaved(generator: Generator, samples, sizes: list[int], max_new_tokens: int) -> dict[int, dict]:
    """Answer every question at each batch size, alternating the sizes chunk by chunk (a chunk = the largest batch)
    so that both see the same machine load; the batches are exactly those of an uninterrupted run at that size."""
    prompts = [generator.encode(s) for s in samples]  # images decoded up front: we time the model, not PNG decoding
    order = sorted(range(len(samples)), key=lambda i: (len(prompts[i].input_ids), i))
    out = {b: {"answers": {}, "wall": 0.0, "cpu": 0.0} for b in sizes}
    for chunk in batches(order, max(sizes)):
        for b in sizes:
            wall, cpu = time.perf_counter(), time.process_time()
            for batch in batches(chunk, b):
                texts = generator.generate([prompts[i] for i in batch], max_new_tokens)
                out[b]["answers"].update({samples[i].idx: t for i, t in zip(batch, texts, strict=True)})
            out[b]["wall"] += time.perf_counter() - wall
            out[b]["cpu"] += time.process_time() - cpu
    return out


def parsed_choices(bench, samples, answers: dict[int, str]) -> dict[int, object]:
    """idx -> the answer the benchmark's matching reads from the text (None when unparsable)."""
    return {s.idx: record["filtered_resps"][0]
            for s, record in zip(samples, score_answers(bench, samples, answers).samples, strict=True)}


def render_bench(out: str, n: int) -> str:
    """The benchmark's questions: a synthetic world (seed 3, 384 px, ~2 questions per image) made into CV-Bench."""
    with tempfile.TemporaryDirectory() as tmp:
        render_world(f"{tmp}/world", max(n // 2, 8), seed=3, size=384)
        build_from_world(out, f"{tmp}/world")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cambrian-tiny,cambrian-nano")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="compute precision")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bench-dir", default=None,
                        help="a CV-Bench folder made earlier by this script's recipe (`--save-bench`), instead of "
                             "rendering one (for a machine without the `datasets` package)")
    parser.add_argument("--save-bench", default=None, help="render the questions into this folder and stop")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    hardware = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {hardware}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}, dtype {args.dtype}")
    bench = get_benchmark("cvbench")
    rows = []
    if args.save_bench:
        render_bench(args.save_bench, args.n)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bench_dir = args.bench_dir or render_bench(f"{tmp}/bench", args.n)
        samples = load_samples(bench, bench_dir, args.n)
        if len(samples) < args.n:
            print(f"only {len(samples)} questions were generated", file=sys.stderr)
        for spec in args.models.split(","):
            model, tokenizer = load_for_eval(spec, seed=0, device=args.device, dtype=args.dtype)
            generator = Generator(model, tokenizer)
            generator.generate([generator.encode(samples[0])], 2)  # warm-up
            results = answer_interleaved(generator, samples, sizes, bench.max_new_tokens)
            reference = results[sizes[0]]["answers"]
            reference_choices = parsed_choices(bench, samples, reference)
            identical = all(r["answers"] == reference for r in results.values())
            base = results[sizes[0]]
            for b, r in results.items():
                same_texts = sum(r["answers"][s.idx] == reference[s.idx] for s in samples)
                choices = parsed_choices(bench, samples, r["answers"])
                same_choices = sum(choices[s.idx] == reference_choices[s.idx] for s in samples)
                accuracy = score_answers(bench, samples, r["answers"]).metrics["micro"]
                rows.append({"model": spec, "dtype": args.dtype, "device": hardware, "batch_size": b,
                             "questions": len(samples),
                             "seconds": r["wall"], "cpu_seconds": r["cpu"], "questions_per_s": len(samples) / r["wall"],
                             "speedup": base["wall"] / r["wall"], "cpu_speedup": base["cpu"] / r["cpu"],
                             "identical_answers": identical, "same_texts_as_batch1": same_texts,
                             "same_choices_as_batch1": same_choices, "accuracy_micro": accuracy,
                             "load_average": os.getloadavg()[0]})
                print(f"{spec:<14} {args.dtype} batch {b:>3}: {len(samples) / r['wall']:7.2f} questions/s "
                      f"({r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU)  x{base['wall'] / r['wall']:5.2f} wall, "
                      f"x{base['cpu'] / r['cpu']:5.2f} CPU  same as batch {sizes[0]}: {same_texts}/{len(samples)} "
                      f"texts, {same_choices}/{len(samples)} parsed choices  CV-Bench micro acc {accuracy:.1f}",
                      flush=True)
            print(f"load average now {os.getloadavg()[0]:.2f}", flush=True)
            del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if all(r["identical_answers"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
