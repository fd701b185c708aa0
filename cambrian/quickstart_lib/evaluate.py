"""Evaluation of the quickstart model through the project's harness (`cambrian.eval`): easy-VQA test and the
synthetic CV-Bench of the test world, each with vision on and off; random-guess expectations come with the scores.

The quickstart evaluates its saved model in a fresh Python process (`evaluate_in_fresh_process`, which runs this
module): in the process that trained, the same evaluation of the same model took 59.7 s against 34.3 s in a new
process (docs/quickstart.md, session 13); the time kept for it is timed before training, in a process that has not
trained yet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PROBE_QUESTIONS = 16  # one batch of each evaluation run, timed before training
PROBE_NEW_TOKENS = 3  # a trained model's answers: a word or a letter, then the end of the turn
SCORES_FILE = "scores.json"  # what the evaluation's own process writes for the quickstart to read


EvalRunSpec = tuple[str, str, int | None, bool]  # benchmark name, bench spec, question limit, vision


def evaluation_runs(bench_dir: Path, n_easyvqa: int | None, n_cvbench: int | None) -> list[EvalRunSpec]:
    """Every run the quickstart evaluates, in order: each benchmark with vision on, then off."""
    return [(name, spec, limit, vision)
            for name, spec, limit in (("easyvqa", "easyvqa", n_easyvqa), ("cvbench", f"cvbench:{bench_dir}", n_cvbench))
            for vision in (True, False)]


def evaluate(model, tokenizer, model_dir: Path, bench_dir: Path, out: Path, n_easyvqa: int | None,
             n_cvbench: int | None, dtype: str = "fp32", log=print) -> dict:
    """Every run of `evaluation_runs`; the model is cast in place to `dtype` first (cambrian.eval.precision)."""
    from cambrian.eval.precision import to_compute_dtype
    from cambrian.eval.runner import EvalConfig, run_eval

    to_compute_dtype(model, dtype)
    scores: dict[str, dict] = {}
    for name, spec, limit, vision in evaluation_runs(bench_dir, n_easyvqa, n_cvbench):
        entry = scores.setdefault(name, {})
        # a folder per benchmark: results.json / samples.jsonl are per run, and each run has one benchmark
        config = EvalConfig(model=str(model_dir), benches=[spec], out=out / name, batch_size=16, vision=vision,
                            limit=limit, dtype=dtype)
        run = run_eval(config, model=model, tokenizer=tokenizer, log=log)
        result = run.results[0]
        key = "vision_on" if vision else "vision_off"
        entry[key] = result.score
        entry[f"{key}_metrics"] = _scalars(result.metrics)
        entry[f"{key}_seconds"] = run.seconds[result.bench.name]
        entry["random"] = result.random[result.bench.primary]
        entry["random_metrics"] = _scalars(result.random)
        entry["n"] = result.n
        entry[f"{key}_unparsed"] = result.n_unparsed
        if vision:
            entry["samples"] = result.samples[:50]
    return scores


def evaluate_in_fresh_process(model_dir: Path, bench_dir: Path, out: Path, n_easyvqa: int | None,
                              n_cvbench: int | None, dtype: str, device: str, threads: int, log=print) -> dict:
    """`evaluate` on the model saved in `model_dir`, run by a new Python process (this module's `main`); its log
    lines are passed to `log` as they come. -> the scores `evaluate` returns (also in OUT/scores.json)."""
    command = [sys.executable, "-m", "cambrian.quickstart_lib.evaluate", "--model", str(model_dir),
               "--bench", str(bench_dir), "--out", str(out), "--easyvqa", _limit_arg(n_easyvqa),
               "--cvbench", _limit_arg(n_cvbench), "--dtype", dtype, "--device", device, "--threads", str(threads)]
    scores_file = out / SCORES_FILE
    scores_file.unlink(missing_ok=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        for line in process.stdout:
            log(line.rstrip("\n"))
    if process.returncode != 0:
        raise RuntimeError(f"the evaluation process exited with {process.returncode} (its output is above); the "
                           f"model is saved, so the evaluation can be rerun alone: {' '.join(command)}")
    return json.loads(scores_file.read_text())


def _limit_arg(limit: int | None) -> str:
    return "all" if limit is None else str(limit)


def _limit(text: str) -> int | None:
    return None if text == "all" else int(text)


def main(argv: list[str] | None = None) -> None:
    """python -m cambrian.quickstart_lib.evaluate --model DIR --bench DIR --out DIR ...: what the quickstart runs."""
    import torch
    import transformers

    from cambrian.models.builder import load_model
    from cambrian.quickstart_lib.cpu import keep_freed_memory

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a folder written by save_model")
    parser.add_argument("--bench", type=Path, required=True, help="the synthetic CV-Bench folder of the test world")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--easyvqa", type=_limit, default=300, help="questions of easy-VQA test, or 'all'")
    parser.add_argument("--cvbench", type=_limit, default=None, help="questions of the CV-Bench folder, or 'all'")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    if args.device == "cpu":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the quickstart's log
    model, tokenizer = load_model(args.model)
    model.to(args.device)
    scores = evaluate(model, tokenizer, args.model, args.bench, args.out, args.easyvqa, args.cvbench, args.dtype,
                      log=lambda message: print(message, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / f".{SCORES_FILE}.partial"
    partial.write_text(json.dumps(scores))
    os.replace(partial, args.out / SCORES_FILE)


def time_evaluation(model, tokenizer, bench_dir: Path, n_easyvqa: int | None, n_cvbench: int | None,
                    dtype: str = "fp32", earlier: dict | None = None) -> dict:
    """How long `evaluate` will take on this machine, measured now: one batch of each run, answered by a copy of the
    model in `dtype` with answers cut at PROBE_NEW_TOKENS tokens, scaled to the run's question count. With the
    `earlier` result of this function, each run keeps the fastest of its timings: a timing taken while the machine was
    briefly slower is not the evaluation's speed (on this 2-core machine one run's timing came out 1.7x the run's
    before, and its evaluation then took 0.74 of that timing).
    -> {"seconds": predicted total, "per_question": {run: fastest seconds}, "timings": [{run: seconds} per call]}."""
    import copy
    import tempfile

    from cambrian.eval.benchmarks import load_samples, parse_bench_spec
    from cambrian.eval.precision import to_compute_dtype
    from cambrian.eval.runner import EvalConfig, run_eval

    probe = to_compute_dtype(copy.deepcopy(model), dtype).eval()
    counts, now = {}, {}
    with tempfile.TemporaryDirectory(prefix="cambrian-eval-probe-") as scratch:
        for name, spec, limit, vision in evaluation_runs(bench_dir, n_easyvqa, n_cvbench):
            bench, folder = parse_bench_spec(spec)
            key = f"{name} vision {'on' if vision else 'off'}"
            counts[key] = len(load_samples(bench, folder, limit))
            config = EvalConfig(model="probe", benches=[spec], out=Path(scratch) / key.replace(" ", "-"),
                                batch_size=16, vision=vision, limit=min(PROBE_QUESTIONS, counts[key]),
                                max_new_tokens=PROBE_NEW_TOKENS, dtype=dtype)
            run = run_eval(config, model=probe, tokenizer=tokenizer, log=lambda *a: None)
            now[key] = run.seconds[bench.name] / config.limit
    del probe
    timings = (earlier["timings"] if earlier else []) + [now]
    per_question = {key: min(t[key] for t in timings) for key in now}
    return {"seconds": sum(counts[key] * per_question[key] for key in now), "per_question": per_question,
            "timings": timings}


def _scalars(metrics: dict) -> dict:
    """Flatten one level (per-category / per-task tables) to name -> float."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    flat[f"{key}/{sub}"] = float(v)
    return flat


def visual_token_spread(model, image_paths: list) -> float:
    """Across-image std of the visual tokens over their overall std, on the same images: ~0.3 for a freshly built
    cambrian-nano, near 0 when training has collapsed the connector to one output for every image (the failure
    docs/quickstart.md describes), so the report shows whether the LLM is still being shown the pictures."""
    import torch

    from cambrian.quickstart_lib.train import load_image

    was_training = model.training
    model.eval()
    with torch.no_grad():
        encoded = model.encode_images(**model.image_inputs([load_image(p) for p in image_paths]))
    model.train(was_training)
    tokens = torch.stack(encoded.tokens).float()  # (images, tokens, d); same-size images give same-length rows
    return float(tokens.std(dim=0).mean() / tokens.std())


if __name__ == "__main__":
    main()
