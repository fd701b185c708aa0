"""Evaluation of the quickstart model through the project's harness (`cambrian.eval`): easy-VQA test and the
synthetic CV-Bench of the test world, each with vision on and off; random-guess expectations come with the scores."""

from __future__ import annotations

from pathlib import Path


def evaluate(model, tokenizer, model_dir: Path, bench_dir: Path, out: Path, n_easyvqa: int, n_cvbench: int,
             log=print) -> dict:
    from cambrian.eval.runner import EvalConfig, run_eval

    scores: dict[str, dict] = {}
    for name, spec, limit in (("easyvqa", "easyvqa", n_easyvqa), ("cvbench", f"cvbench:{bench_dir}", n_cvbench)):
        entry: dict = {}
        for vision in (True, False):
            # a folder per benchmark: results.json / samples.jsonl are per run, and each run has one benchmark
            config = EvalConfig(model=str(model_dir), benches=[spec], out=out / name, batch_size=16, vision=vision,
                                limit=limit)
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
        scores[name] = entry
    return scores


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
