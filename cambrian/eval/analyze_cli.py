"""`cambrian analyze RESULTS.json... --out DIR`: the benchmark analysis of cambrian.eval.analyze as a command."""

from __future__ import annotations

from pathlib import Path

import typer


def analyze(
    results: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="results*.json of `cambrian eval`."),
    out: Path = typer.Option(..., help="Folder for vision_on_off.png, pca.png, correlation.png and analysis.md."),
) -> None:
    """Vision on/off/random chart, PCA of benchmarks across models, correlation matrix, per-category rankings."""
    from cambrian.eval.analyze import analyze as run

    try:
        files = run(results, out)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    for kind, path in files.items():
        typer.echo(f"wrote {kind}: {path}")


def register(app: typer.Typer) -> None:
    """Called by cambrian/cli.py: adds the top-level `cambrian analyze`."""
    app.command("analyze")(analyze)


app = typer.Typer(add_completion=False, help="Analyze benchmark results across models.")
register(app)


if __name__ == "__main__":
    app()
