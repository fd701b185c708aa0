"""`cambrian eval`: run a model on benchmarks, batched and resumable, and write results like lmms-eval's.

Batches are fixed before generation: samples sorted by prompt length (then position), cut into chunks of
`batch_size`. A resumed run forms exactly the same batches and skips those already in the cache, so its answers
(and results) are identical to an uninterrupted run's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cambrian.eval.benchmarks import load_samples, parse_bench_spec
from cambrian.eval.cache import PredictionCache
from cambrian.eval.precision import compute_dtype, to_compute_dtype
from cambrian.eval.report import write_outputs
from cambrian.eval.scoring import BenchResult, score_answers


@dataclass
class EvalConfig:
    model: str
    benches: list[str]  # "NAME:DIR" or "NAME"
    out: Path
    batch_size: int = 8
    vision: bool = True
    limit: int | None = None
    resume: bool = False
    template: str | None = None  # None: the model's template, else the tokenizer's chat template
    max_new_tokens: int | None = None  # None: each benchmark's own budget
    seed: int = 0  # random-init presets (cambrian-tiny) are built under this seed
    device: str = "auto"
    dtype: str = "fp32"  # compute precision, "fp32" or "bf16" (precision.py)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        compute_dtype(self.dtype)
        self.out = Path(self.out)

    @property
    def suffix(self) -> str:
        return "" if self.vision else ".novision"


@dataclass
class EvalRun:
    config: EvalConfig
    results: list[BenchResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def load_for_eval(spec: str, seed: int = 0, device: str = "auto", dtype: str = "fp32"):
    import torch

    from cambrian.models.builder import build_model

    torch.manual_seed(seed)
    model, tokenizer = build_model(spec)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return to_compute_dtype(model.to(device), dtype).eval(), tokenizer


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def run_eval(config: EvalConfig, model=None, tokenizer=None,
             log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> EvalRun:
    from cambrian.eval.generation import Generator

    specs = [parse_bench_spec(s) for s in config.benches]  # fail on a bad name before loading the model
    if model is None:
        model, tokenizer = load_for_eval(config.model, config.seed, config.device, config.dtype)
    elif model.dtype != compute_dtype(config.dtype):
        raise ValueError(f"the model given runs in {model.dtype}, the config asks for {config.dtype}: "
                         "cast it with cambrian.eval.precision.to_compute_dtype, or let run_eval load it")
    generator = Generator(model, tokenizer, config.template, vision=config.vision)
    run = EvalRun(config)
    for bench, folder in specs:
        samples = load_samples(bench, folder, config.limit)
        max_new = config.max_new_tokens or bench.max_new_tokens
        prompts = [generator.encode(s, with_images=False) for s in samples]
        order = sorted(range(len(samples)), key=lambda i: (len(prompts[i].input_ids), i))
        meta = {"model": config.model, "bench": bench.name, "folder": str(folder) if folder else None,
                "vision": config.vision, "dtype": config.dtype, "template": generator.template,
                "batch_size": config.batch_size, "max_new_tokens": max_new, "limit": config.limit, "seed": config.seed,
                "n": len(samples), "ids_head": [s.idx for s in samples[:5]]}
        cache = PredictionCache(config.out / "predictions" / f"{bench.name}{config.suffix}.jsonl", meta,
                                config.resume)
        todo = [b for b in batches(order, config.batch_size) if any(samples[i].idx not in cache for i in b)]
        log(f"{bench.name}: {len(samples)} samples, {len(samples) - len(cache.answers)} to answer in {len(todo)} "
            f"batches of {config.batch_size}" + ("" if config.vision else " (vision disabled)"))
        start = time.perf_counter()
        for k, batch in enumerate(todo, 1):
            inputs = [generator.encode(samples[i]) for i in batch]
            answers = generator.generate(inputs, max_new)
            cache.add([(samples[i].idx, a) for i, a in zip(batch, answers, strict=True)
                       if samples[i].idx not in cache])
            if k % 10 == 0 or k == len(todo):
                log(f"  {bench.name}: batch {k}/{len(todo)}  {time.perf_counter() - start:.1f}s")
        run.seconds[bench.name] = time.perf_counter() - start
        result = score_answers(bench, samples, cache.answers,
                               prompts={s.idx: generator.user_text(s) for s in samples})
        run.results.append(result)
    run.files = write_outputs(run.results, config_payload(config, generator), config.out, config.suffix)
    return run


def config_payload(config: EvalConfig, generator) -> dict:
    payload = asdict(config)
    payload["out"] = str(config.out)
    payload["template"] = generator.template
    payload["model_args"] = f"pretrained={config.model},dtype={config.dtype}"
    return payload
