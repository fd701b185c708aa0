"""`cambrian data ...`: validate a data file, curate a pool, build the offset index.

Imports stay inside the commands: `cambrian --help` must not pay for torch or transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Instruction data: validate, curate, index.")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="JSONL, JSON, parquet (file or folder) or .tar shard")],
    image_root: Annotated[Path | None, typer.Option(help="folder the records' image paths are relative to")] = None,
    on_error: Annotated[
        str, typer.Option(help="report: list bad records; skip: also write them to --rejects")
    ] = "report",
    rejects: Annotated[Path | None, typer.Option(help="rejects JSONL (default with skip: FILE.rejects.jsonl)")] = None,
    tokenizer: Annotated[str, typer.Option(help="tokenizer name/path; 'smollm2' = packaged default")] = "smollm2",
    template: Annotated[
        str, typer.Option(help="chat template (llama_3, llama_3_meta, vicuna_v1, chatml_direct, phi3, tokenizer)")
    ] = "tokenizer",
    max_length: Annotated[int, typer.Option(help="max tokens, images counted tokens_per_image each")] = 2048,
    tokens_per_image: Annotated[int, typer.Option(help="visual tokens one image expands to")] = 576,
    max_pixels: Annotated[int, typer.Option(help="images above this many pixels are rejected")] = 64_000_000,
) -> None:
    """Check every record with the checks training and evaluation use; exit 1 if any record is bad."""
    from cambrian.data.datasets import ExampleBuilder
    from cambrian.data.tokenizer import load_tokenizer
    from cambrian.data.validate import validate_file

    if on_error not in ("report", "skip"):
        raise typer.BadParameter("--on-error must be 'report' or 'skip'")
    if on_error == "skip" and rejects is None:
        rejects = file.with_name(file.name + ".rejects.jsonl")
    builder = ExampleBuilder(
        load_tokenizer(tokenizer), template, image_root, None, max_length, tokens_per_image, max_pixels
    )
    report = validate_file(file, builder, rejects if on_error == "skip" else None, echo=typer.echo)
    typer.echo(f"\n{report.total} records, {report.total - len(report.errors)} good, {len(report.errors)} bad")
    for reason, count in sorted(report.by_reason.items()):
        typer.echo(f"  {reason:<22} {count}")
    if on_error == "skip" and report.errors:
        typer.echo(f"rejected records written to {rejects}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def curate(
    pools: Annotated[list[Path], typer.Argument(help="one or more JSONL pools (records with source, category)")],
    out: Annotated[Path, typer.Option(help="output folder: curated.jsonl, stats.json, sources.png, categories.png")],
    cap: Annotated[int, typer.Option(help="max samples per source, t (0 = no cap)")] = 350_000,
    ratios: Annotated[str, typer.Option(help="'cambrian7m', 'none', or 'General=34.5,OCR=27.2,...'")] = "none",
    target_size: Annotated[int, typer.Option(help="curated size with --ratios (0 = largest possible)")] = 0,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 0,
    system_prompts: Annotated[bool, typer.Option(help="add short-answer prompts (Section 5.3)")] = True,
    dedup: Annotated[bool, typer.Option(help="drop exact and near-duplicate (pHash) records")] = True,
    image_root: Annotated[Path | None, typer.Option(help="image folder: enables pHash dedup and leakage")] = None,
    benchmark_images: Annotated[list[Path] | None, typer.Option(help="benchmark image folder (repeatable)")] = None,
    leak_distance: Annotated[int, typer.Option(help="pHash Hamming distance counted as the same image")] = 4,
    drop_leaked: Annotated[bool, typer.Option(help="also drop records whose image leaks a benchmark image")] = False,
    plots: Annotated[bool, typer.Option(help="write the two figures")] = True,
    workers: Annotated[
        int, typer.Option(help="processes per pass (0 = all CPUs); the output does not depend on it")
    ] = 0,
) -> None:
    """Cap sources, mix categories, add system prompts, dedup, report leakage. Deterministic for a seed."""
    import time

    from cambrian.data.curate import CurateConfig, parse_ratios
    from cambrian.data.curate import curate as run_curate

    config = CurateConfig(
        source_cap=cap or None,
        ratios=parse_ratios(ratios),
        target_size=target_size or None,
        seed=seed,
        system_prompts=system_prompts,
        dedup=dedup,
        image_root=image_root,
        benchmark_images=benchmark_images or [],
        leak_distance=leak_distance,
        drop_leaked=drop_leaked,
    )
    start = time.perf_counter()
    stats = run_curate(pools, out, config, plots=plots, workers=workers or None)
    typer.echo(
        f"{stats['records_in']:,} records in, {stats['records_out']:,} out "
        f"({time.perf_counter() - start:.1f} s); malformed {stats['malformed']}, "
        f"exact duplicates {stats.get('duplicates_exact', 0)}, near-duplicate images "
        f"{stats.get('duplicates_near_image', 0)}, leaked {stats['leakage']['leaked_records']}"
    )
    typer.echo(
        f"system prompts added to {stats['system_prompts']['records_with_prompt']:,} records "
        f"{stats['system_prompts']['prompts_by_kind']}"
    )
    for name, row in sorted(stats["categories"].items(), key=lambda item: -item[1]["final"]):
        target = f" (target {row['target_share']:.2f}%)" if "target_share" in row else ""
        typer.echo(f"  {name:<12} {row['before']:>10,} -> {row['final']:>10,}  {row['final_share']:6.2f}%{target}")
    typer.echo(f"wrote {out / 'curated.jsonl'}, stats.json" + (", sources.png, categories.png" if plots else ""))


@app.command()
def index(
    file: Annotated[Path, typer.Argument(help="JSONL or JSON array file")],
    rebuild: Annotated[bool, typer.Option(help="rebuild even if a fresh index exists")] = False,
) -> None:
    """Build (or check) the offset index cached beside FILE."""
    import time

    from cambrian.data.index import JsonlIndex

    start = time.perf_counter()
    idx = JsonlIndex(file, rebuild=rebuild)
    typer.echo(f"{len(idx):,} records, index {idx.index_path} ({time.perf_counter() - start:.2f} s)")
