"""`cambrian eval ...`: score predictions that any system produced (more subcommands join this app later).

Nothing heavy is imported at module level: `cambrian --help` stays instant.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Evaluate models and score predictions.")


@app.callback()
def _group() -> None:
    """Evaluate models and score predictions."""  # a callback keeps `score` a subcommand while it is the only one


def _score_cvbench(bench_dir: str, predictions: Path, allow_missing: bool) -> tuple[dict, str]:
    from cambrian.cvbench.layout import load_cvbench
    from cambrian.cvbench.score import format_scores, read_predictions, score_cvbench

    scores = score_cvbench(load_cvbench(bench_dir, with_images=False), read_predictions(predictions), allow_missing)
    return scores, format_scores(scores)


# bench name -> scorer(bench argument, predictions file, allow_missing) -> (scores, printable summary)
SCORERS: dict[str, Callable[[str, Path, bool], tuple[dict, str]]] = {"cvbench": _score_cvbench}


def parse_bench(spec: str) -> tuple[str, str]:
    name, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise typer.BadParameter(f"expected NAME:PATH (e.g. cvbench:data/cvbench), got {spec!r}")
    if name not in SCORERS:
        raise typer.BadParameter(f"unknown benchmark {name!r}; known: {', '.join(sorted(SCORERS))}")
    return name, arg


@app.command()
def score(
    bench: str = typer.Option(..., help="NAME:PATH of the benchmark, e.g. cvbench:DIR (official CV-Bench layout)."),
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
    out.write_text(json.dumps(payload, indent=2) + "\n")
    typer.echo(summary)
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
