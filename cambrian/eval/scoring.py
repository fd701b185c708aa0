"""Judge every answer of one benchmark and aggregate: the model's score, the random-guess expectation, counts.

Used both by `cambrian eval` (answers from the model) and `cambrian eval score` (answers from any system).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cambrian.eval.benchmarks.base import Benchmark, Sample


@dataclass
class BenchResult:
    bench: Benchmark
    metrics: dict[str, Any]  # the aggregate of the judged values (may nest per-category tables)
    random: dict[str, Any]  # the same aggregate of each sample's chance: the random-guess expected score
    n: int
    n_unparsed: int  # answers no rule could read (refusals included), scored as wrong
    n_refused: int
    n_missing: int
    samples: list[dict] = field(default_factory=list)  # one record per sample, for the samples JSONL

    @property
    def score(self) -> float:
        return self.metrics[self.bench.primary]

    def paper(self, random: bool = False) -> dict[str, float]:
        """This benchmark's numbers under the paper's column names (e.g. {"MME-P": 1234.5})."""
        source = self.random if random else self.metrics
        return {column: source[key] for column, key in self.bench.paper.items() if source.get(key) is not None}

    def scalars(self) -> dict[str, float]:
        return {k: v for k, v in self.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def score_answers(bench: Benchmark, samples: list[Sample], answers: dict[int, str], allow_missing: bool = False,
                  prompts: dict[int, str] | None = None) -> BenchResult:
    """Judge `answers` ({idx: raw text}) against `samples`; unknown ids are errors, missing ones too unless allowed."""
    ids = {s.idx for s in samples}
    unknown = sorted(set(answers) - ids)
    if unknown:
        raise ValueError(f"{len(unknown)} predictions name an idx that {bench.name} lacks (first: {unknown[:5]})")
    missing = [s.idx for s in samples if s.idx not in answers]
    if missing and not allow_missing:
        raise ValueError(f"no prediction for {len(missing)} of {len(samples)} {bench.name} samples (first idx: "
                         f"{missing[:5]}); pass --allow-missing to score them as wrong")
    values, records, n_unparsed, n_refused = [], [], 0, 0
    for s in samples:
        text = answers.get(s.idx)
        judged = bench.judge(s, text) if text is not None else None
        value = judged.value if judged else 0.0
        values.append(value)
        if judged is not None and judged.parsed is None:
            n_unparsed += 1
            n_refused += judged.refused
        records.append({"bench": bench.name, "doc_id": s.idx, "target": s.target,
                        "input": prompts.get(s.idx, s.prompt) if prompts else s.prompt,
                        "resps": [[text]], "filtered_resps": [judged.parsed if judged else None], "score": value,
                        "status": "missing" if judged is None else "refused" if judged.refused else
                        "unparsed" if judged.parsed is None else "ok", **({"meta": s.meta} if s.meta else {})})
    return BenchResult(bench, bench.aggregate(samples, values), bench.aggregate(samples, [bench.chance(s)
                       for s in samples]), len(samples), n_unparsed, n_refused, len(missing), records)


def summary(result: BenchResult) -> str:
    """A few plain-text lines for the terminal."""
    fmt = lambda v: f"{v:8.2f}" if isinstance(v, float | int) and not isinstance(v, bool) else f"{v!s:>8}"  # noqa: E731
    lines = [f"{result.bench.title}  {result.bench.primary} {fmt(result.score)}   random "
             f"{fmt(result.random[result.bench.primary])}"]
    for key, value in result.scalars().items():
        if key != result.bench.primary:
            lines.append(f"  {key:<14}{fmt(value)}")
    lines.append(f"  n={result.n}  unparsed={result.n_unparsed} (refused {result.n_refused})  "
                 f"missing={result.n_missing}")
    return "\n".join(lines)
