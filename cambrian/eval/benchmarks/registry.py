"""Benchmark name -> Benchmark. Names are lowercase; a few aliases follow lmms-eval's task names."""

from __future__ import annotations

from pathlib import Path

from cambrian.eval.benchmarks import general, knowledge, ocr, vision
from cambrian.eval.benchmarks.base import Benchmark, Sample

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b for b in general.BENCHMARKS + knowledge.BENCHMARKS + ocr.BENCHMARKS + vision.BENCHMARKS
}
ALIASES = {
    "mmbench_en": "mmbench", "mmbench_en_dev": "mmbench", "seedbench": "seed", "seed_image": "seed",
    "scienceqa_img": "sqa", "scienceqa": "sqa", "mmmu_val": "mmmu", "mathvista_testmini": "mathvista",
    "textvqa_val": "textvqa", "docvqa_val": "docvqa", "rwqa": "realworldqa", "cv_bench": "cvbench",
    "cv_bench_2d": "cvbench-2d", "cv_bench_3d": "cvbench-3d", "cvbench_2d": "cvbench-2d", "cvbench_3d": "cvbench-3d",
    "easy_vqa": "easyvqa", "easy-vqa": "easyvqa",
}


def get_benchmark(name: str) -> Benchmark:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]


def parse_bench_spec(spec: str) -> tuple[Benchmark, Path | None]:
    """ "NAME:DIR" or "NAME" (for benchmarks that need no folder) -> (benchmark, folder)."""
    name, sep, folder = spec.partition(":")
    bench = get_benchmark(name.strip())
    if bench.needs_dir and not folder:
        raise ValueError(f"benchmark {bench.name!r} reads a local folder: give {bench.name}:DIR ({bench.source})")
    return bench, Path(folder) if folder else None


def load_samples(bench: Benchmark, folder: Path | None, limit: int | None = None) -> list[Sample]:
    samples = bench.load(folder)
    ids = [s.idx for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{bench.name} ({folder}): sample ids are not unique")
    return samples[:limit] if limit else samples
