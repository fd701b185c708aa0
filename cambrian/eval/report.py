"""Outputs of an evaluation: a results JSON shaped like lmms-eval's, a samples JSONL, and a Markdown table.

    results[.novision].json   {"results": {task: {"alias", "<metric>,none": value}}, "config", "git_hash", "date",
                               "n-samples", "higher_is_better", "versions",
                               "cambrian": {per-benchmark details, paper columns, random-guess scores,
                                            category averages (MME-P / 20)}}
    samples[.novision].jsonl   one line per sample: bench, doc_id, target, input, resps, filtered_resps, score
    results[.novision].md      the table a human reads
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

from cambrian.eval.metrics import CATEGORIES, category_averages
from cambrian.eval.scoring import BenchResult

VERSION = 1


def git_hash() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def results_payload(results: list[BenchResult], config: dict) -> dict:
    paper, random_paper = {}, {}
    for r in results:
        paper.update(r.paper())
        random_paper.update(r.paper(random=True))
    details = {}
    for r in results:
        details[r.bench.name] = {
            "title": r.bench.title, "primary": r.bench.primary, "score": r.score,
            "random": r.random[r.bench.primary], "metrics": r.metrics, "random_metrics": r.random,
            "paper": r.paper(), "paper_metrics": dict(r.bench.paper), "n": r.n, "n_unparsed": r.n_unparsed,
            "n_refused": r.n_refused,
            "n_missing": r.n_missing,
        }
    return {
        "results": {r.bench.name: {"alias": r.bench.title, **{f"{k},none": v for k, v in r.scalars().items()},
                                   "n_unparsed,none": r.n_unparsed} for r in results},
        "config": config,
        "git_hash": git_hash(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "n-samples": {r.bench.name: {"original": r.n, "effective": r.n} for r in results},
        "higher_is_better": {r.bench.name: dict.fromkeys(r.scalars(), True) for r in results},
        "versions": {r.bench.name: VERSION for r in results},
        "cambrian": {
            "vision": config.get("vision", True),
            "benchmarks": details,
            "paper_scores": paper,
            "random_scores": random_paper,
            "category_averages": category_averages(paper),
            "random_category_averages": category_averages(random_paper),
        },
    }


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(payload: dict) -> str:
    c = payload["cambrian"]
    config = payload["config"]
    title = f"# {config.get('model', 'predictions')}" + ("" if c["vision"] else " (vision disabled)")
    lines = [title, "", "| benchmark | metric | score | random guess | n | unparsed (refused) |",
             "|---|---|---:|---:|---:|---:|"]
    for d in c["benchmarks"].values():
        lines.append(f"| {d['title']} | {d['primary']} | {_fmt(d['score'])} | {_fmt(d['random'])} | {d['n']} | "
                     f"{d['n_unparsed']} ({d['n_refused']}) |")
    cats, rand = c["category_averages"], c["random_category_averages"]
    have = [col for names in CATEGORIES.values() for col in names if col in c["paper_scores"]]
    if have:
        lines += ["", "Paper columns (MME-P enters the averages divided by 20):", "",
                  "| " + " | ".join(have) + " |", "|" + "---:|" * len(have),
                  "| " + " | ".join(_fmt(c["paper_scores"][col]) for col in have) + " |"]
        lines += ["", "| category | average | random guess |", "|---|---:|---:|"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(rand[k])} |" for k, v in cats.items()]
        if any(v is None for v in cats.values()):
            lines += ["", "A category average needs all four of its benchmarks (`-` otherwise)."]
    lines += ["", f"git {payload['git_hash']}, {payload['date']}"]
    return "\n".join(lines) + "\n"


def write_outputs(results: list[BenchResult], config: dict, out: Path, suffix: str = "") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    payload = results_payload(results, config)
    files = {"results": out / f"results{suffix}.json", "samples": out / f"samples{suffix}.jsonl",
             "markdown": out / f"results{suffix}.md"}
    files["results"].write_text(json.dumps(payload, indent=2) + "\n")
    with open(files["samples"], "w") as f:
        for r in results:
            for record in r.samples:
                f.write(json.dumps(record, default=str) + "\n")
    files["markdown"].write_text(markdown(payload))
    return files
