"""The benchmark registry: each of the paper's 16 benchmarks (plus CV-Bench combined and easy-VQA) with its public
layout, official prompt suffix, answer judge, random-guess chance and aggregate."""

from cambrian.eval.benchmarks.base import Benchmark, Judged, Sample
from cambrian.eval.benchmarks.registry import BENCHMARKS, get_benchmark, load_samples, parse_bench_spec

__all__ = ["BENCHMARKS", "Benchmark", "Judged", "Sample", "get_benchmark", "load_samples", "parse_bench_spec"]
