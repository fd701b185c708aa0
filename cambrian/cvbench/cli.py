"""`cambrian cvbench ...`: render the synthetic world, build CV-Bench folders, inspect them.

Heavy modules are imported inside the commands so that `cambrian --help` stays instant.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="CV-Bench: the synthetic 3D world, question generation, the official layout.")


@app.command()
def synth(
    out: Path = typer.Option(..., help="Folder to write images/, annotations/ and scenes.jsonl into."),
    n: int = typer.Option(..., help="Number of scenes."),
    seed: int = typer.Option(0, help="World seed: image i depends only on (seed, i)."),
    size: int = typer.Option(384, help="Image side in pixels."),
    workers: int = typer.Option(0, help="Render processes (0: one per CPU core)."),
) -> None:
    """Render N scenes of the synthetic world with COCO and Omni3D annotations."""
    from cambrian.cvbench.synth import render_world

    start = time.perf_counter()
    paths = render_world(out, n, seed=seed, size=size, workers=workers)
    elapsed = time.perf_counter() - start
    typer.echo(f"rendered {len(paths)} images of {size}x{size} px to {out} in {elapsed:.2f} s "
               f"({len(paths) / elapsed:.1f} images/s)")


def _parse_overrides(pairs: list[str], config):
    """`--set key=value` pairs -> a copy of the dataclass `config` with those fields replaced (typed)."""
    known = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise typer.BadParameter(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        current = getattr(config, key)
        changes[key] = None if value.lower() == "none" else (type(current)(value) if current is not None
                                                             else int(value))
    return dataclasses.replace(config, **changes)


@app.command()
def build(
    out: Path = typer.Option(..., help="Folder for test.parquet, test.jsonl, img/ (the official CV-Bench layout)."),
    coco: Path | None = typer.Option(None, help="COCO instances json (2D tasks)."),
    coco_images: Path | None = typer.Option(None, help="Folder the COCO file_name entries are in."),
    ade20k: Path | None = typer.Option(None, help="Folder of ADE20K per-image .json + .jpg files (2D tasks)."),
    omni3d: Path | None = typer.Option(None, help="Omni3D json (3D tasks)."),
    omni3d_images: Path | None = typer.Option(None, help="Folder the Omni3D file_path entries are relative to."),
    synth_n: int = typer.Option(0, "--synth", help="Render this many synthetic scenes into OUT/world and use them."),
    synth_seed: int = typer.Option(0, help="Seed of the synthetic world (with --synth)."),
    size: int = typer.Option(384, help="Image size of the synthetic world (with --synth)."),
    seed: int = typer.Option(0, help="Seed of question sampling and letter balancing."),
    per_image: int = typer.Option(1, help="At most this many questions per task and image."),
    overrides: list[str] = typer.Option([], "--set", help="Threshold override KEY=VALUE (see BuildConfig)."),
) -> None:
    """Build CV-Bench questions (Relation, Count, Depth, Distance) from annotations."""
    from cambrian.cvbench.build import build_cvbench, summarize
    from cambrian.cvbench.questions import BuildConfig
    from cambrian.cvbench.synth import render_world

    config = _parse_overrides(overrides, BuildConfig(seed=seed, per_image=per_image))
    source_dataset = None
    if synth_n:
        if coco or omni3d:
            raise typer.BadParameter("--synth builds from its own world; do not combine it with --coco/--omni3d")
        world = out / "world"
        render_world(world, synth_n, seed=synth_seed, size=size, workers=0)
        coco, coco_images = world / "annotations" / "coco.json", world / "images"
        omni3d, omni3d_images = world / "annotations" / "omni3d.json", world
        source_dataset = "cambrian-synth"
    try:
        records = build_cvbench(out, coco=coco, coco_images=coco_images, ade20k=ade20k, omni3d=omni3d,
                                omni3d_images=omni3d_images, config=config, source_dataset=source_dataset)
    except (ValueError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summarize(records), indent=1))
    typer.echo(f"wrote {len(records)} questions to {out}")


@app.command()
def show(
    bench: Path = typer.Argument(..., help="A CV-Bench folder (official layout)."),
    idx: list[int] = typer.Option([], help="Sample idx to show (default: the first of each task)."),
) -> None:
    """Print the model prompt and answer of some samples, and where their images are."""
    from cambrian.cvbench.layout import load_cvbench

    records = load_cvbench(bench)
    if not idx:
        seen: dict[str, int] = {}
        for r in records:
            seen.setdefault(r.task, r.idx)
        idx = list(seen.values())
    by_idx = {r.idx: r for r in records}
    for i in idx:
        if i not in by_idx:
            raise typer.BadParameter(f"no sample with idx={i} in {bench}")
        r = by_idx[i]
        typer.echo(f"--- idx={r.idx} {r.type}/{r.task} {r.source} ({r.source_dataset}) {bench / r.filename}")
        typer.echo(r.model_prompt)
        typer.echo(f"answer: {r.answer}")


if __name__ == "__main__":
    app()
