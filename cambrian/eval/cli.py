"""`cambrian eval ...`: run a model on benchmarks, or score predictions that any system produced.

    cambrian eval --model PATH_OR_PRESET --bench NAME[:DIR],... --out DIR [--batch-size N] [--no-vision]
                  [--limit N] [--resume] [--dtype fp32|bf16]
    cambrian eval score --bench NAME[:DIR] --predictions FILE

Nothing heavy is imported at module level: `cambrian --help` stays instant.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Evaluate models and score predictions.")


@app.callback(invoke_without_command=True)
def evaluate(
    ctx: typer.Context,
    model: str | None = typer.Option(None, help="A preset (cambrian-tiny, cambrian-nano...) or a saved model folder."),
    bench: str | None = typer.Option(None, help="Comma-separated NAME[:DIR], e.g. mme:data/MME,cvbench:bench,easyvqa. "
                                     "Names: see `cambrian eval list`."),
    out: Path | None = typer.Option(None, help="Output folder: results.json, samples.jsonl, results.md, predictions/."),
    batch_size: int = typer.Option(8, min=1, help="Questions per generate call (left-padded, greedy)."),
    no_vision: bool = typer.Option(False, "--no-vision", help="Same model, no image: the vision-disabled baseline."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N samples of each benchmark."),
    resume: bool = typer.Option(False, help="Reuse the prediction cache in OUT/predictions (after a crash or kill)."),
    template: str | None = typer.Option(None, help="Chat template name (default: the model's, else the tokenizer's)."),
    max_new_tokens: int | None = typer.Option(None, min=1, help="Override each benchmark's answer budget."),
    dtype: str = typer.Option("fp32", help="Compute precision: fp32, or bf16 (model cast to bfloat16, fp32 LM head)."),
) -> None:
    """Evaluate models and score predictions. Without a subcommand: run --model on --bench, write to --out."""
    if ctx.invoked_subcommand is not None:
        return
    if not (model and bench and out):
        typer.echo(ctx.get_help())
        raise typer.Exit(0 if not (model or bench or out) else 2)
    from cambrian.eval.cache import CacheMismatch
    from cambrian.eval.runner import EvalConfig, run_eval

    try:
        config = EvalConfig(model=model, benches=[b for b in bench.split(",") if b.strip()], out=out,
                            batch_size=batch_size, vision=not no_vision, limit=limit, resume=resume, template=template,
                            max_new_tokens=max_new_tokens, dtype=dtype)
        run = run_eval(config, log=lambda m: typer.echo(m, err=True))
    except (ValueError, KeyError, FileNotFoundError, CacheMismatch) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(run.files["markdown"].read_text())
    for kind, path in run.files.items():
        typer.echo(f"wrote {kind}: {path}")


def _score_cvbench(bench_dir: str, predictions: Path, allow_missing: bool) -> tuple[dict, str]:
    from cambrian.cvbench.layout import load_cvbench
    from cambrian.cvbench.score import format_scores, read_predictions, score_cvbench

    scores = score_cvbench(load_cvbench(bench_dir, with_images=False), read_predictions(predictions), allow_missing)
    return scores, format_scores(scores)


def _registry_scorer(name: str) -> Callable[[str, Path, bool], tuple[dict, str]]:
    def score_bench(folder: str, predictions: Path, allow_missing: bool) -> tuple[dict, str]:
        from cambrian.cvbench.score import read_predictions
        from cambrian.eval.benchmarks import get_benchmark, load_samples
        from cambrian.eval.scoring import score_answers, summary

        bench = get_benchmark(name)
        result = score_answers(bench, load_samples(bench, Path(folder) if folder else None),
                               read_predictions(predictions), allow_missing)
        scores = {"benchmark": name, "score": result.score, "metrics": result.metrics, "random": result.random,
                  "paper": result.paper(), "n": result.n, "n_unparsed": result.n_unparsed,
                  "n_refused": result.n_refused, "n_missing": result.n_missing, "samples": result.samples}
        return scores, summary(result)

    return score_bench


def _all_scorers() -> dict[str, Callable[[str, Path, bool], tuple[dict, str]]]:
    from cambrian.eval.benchmarks.registry import BENCHMARKS

    scorers = {name: _registry_scorer(name) for name in BENCHMARKS}
    scorers["cvbench"] = _score_cvbench  # the CV-Bench engineer's scorer: same numbers, its own summary
    return scorers


# bench name -> scorer(bench argument, predictions file, allow_missing) -> (scores, printable summary)
SCORERS: dict[str, Callable[[str, Path, bool], tuple[dict, str]]] = _all_scorers()
NO_DIR = {"easyvqa"}  # benchmarks read from an installed package, scored as `--bench easyvqa`


def parse_bench(spec: str) -> tuple[str, str]:
    name, sep, arg = spec.partition(":")
    if name not in SCORERS:
        raise typer.BadParameter(f"unknown benchmark {name!r}; known: {', '.join(sorted(SCORERS))}")
    if (not sep or not arg) and name not in NO_DIR:
        raise typer.BadParameter(f"expected NAME:PATH (e.g. cvbench:data/cvbench), got {spec!r}")
    return name, arg


@app.command()
def score(
    bench: str = typer.Option(..., help="NAME:PATH of the benchmark, e.g. cvbench:DIR (official CV-Bench layout), "
                              "mme:DIR, or easyvqa."),
    predictions: Path = typer.Option(..., exists=True, dir_okay=False,
                                     help='JSONL, one {"idx": 12, "text": "<raw answer>"} per sample.'),
    out: Path | None = typer.Option(None, help="Where to write the scores JSON (default: next to the predictions)."),
    allow_missing: bool = typer.Option(False, help="Score samples without a prediction as wrong instead of failing."),
) -> None:
    """Score a predictions file against a benchmark; print the scores and write them as JSON."""
    name, arg = parse_bench(bench)
    try:
        scores, summary = SCORERS[name](arg, predictions, allow_missing)
    except (ValueError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    out = out or predictions.with_name(f"{predictions.stem}.{name}_scores.json")
    samples = scores.pop("samples", None)
    payload = {"benchmark": name, "bench": arg, "predictions": str(predictions),
               "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               "results": scores, "samples": samples}
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    typer.echo(summary)
    typer.echo(f"wrote {out}")


@app.command("list")
def list_benchmarks() -> None:
    """The benchmark names, their paper columns and the public layout each reads."""
    from cambrian.eval.benchmarks.registry import BENCHMARKS

    for b in BENCHMARKS.values():
        columns = ", ".join(b.paper) or "-"
        typer.echo(f"{b.name:<12} {b.title:<22} paper: {columns:<26} {b.source}")


if __name__ == "__main__":
    app()
