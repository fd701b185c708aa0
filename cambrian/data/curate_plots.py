"""The two curation figures: per-source counts with the cap (paper Fig. 10), category composition (Fig. 9)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def plot_curation(stats: dict, out_dir: Path) -> None:
    plot_sources(stats, out_dir / "sources.png")
    plot_categories(stats, out_dir / "categories.png")


def plot_in_background(stats: dict, out_dir: Path) -> Callable[[], None]:
    """Draw both figures in a child process and return the function that waits for it (and raises if it failed).

    The figures need only the selection's counts, so they are drawn while pass 2 writes: importing matplotlib and
    laying out the tick labels costs ~1.5 s, as much as parsing half a million records.
    """
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    process = multiprocessing.get_context(method).Process(target=plot_curation, args=(stats, out_dir), daemon=True)
    process.start()

    def wait() -> None:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"drawing the curation figures failed (exit code {process.exitcode})")

    return wait


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sources(stats: dict, path: Path) -> None:
    """Sources sorted by size: counts before and after the cap (log scale), cumulative sum from tail to head."""
    plt = _pyplot()
    sources = sorted(stats["sources"].items(), key=lambda item: (-item[1]["before"], item[0]))
    names = [name for name, _ in sources]
    before = np.array([row["before"] for _, row in sources])
    after = np.array([row["after_cap"] for _, row in sources])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 4.5))
    ax.bar(x, before, color="#c6dbef", label="before cap")
    ax.bar(x, after, width=0.5, color="#2171b5", label="after cap")
    if stats.get("source_cap"):
        ax.axhline(stats["source_cap"], color="#cb181d", linestyle="--", label=f"threshold t = {stats['source_cap']:,}")
    ax.set_yscale("log")
    ax.set_ylabel("samples per source")
    ax.set_xticks(x, names, rotation=75, fontsize=7)
    twin = ax.twinx()  # cumulative sum of counts from the tail (smallest source) to the head
    twin.plot(x, np.cumsum(before[::-1])[::-1], color="#6a51a3", marker=".", label="cumulative (before)")
    twin.plot(x, np.cumsum(after[::-1])[::-1], color="#238b45", marker=".", label="cumulative (after)")
    twin.set_ylabel("cumulative samples, tail to head")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right")
    ax.set_title("Data balancing: per-source counts and threshold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_categories(stats: dict, path: Path) -> None:
    """Nested donut: inner ring the pool, outer ring the curated set, by category."""
    plt = _pyplot()
    names = sorted(stats["categories"], key=lambda n: -stats["categories"][n]["before"])
    before = [stats["categories"][n]["before"] for n in names]
    final = [stats["categories"][n]["final"] for n in names]
    colors = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
    fig, ax = plt.subplots(figsize=(7, 6))
    total_before, total_final = max(sum(before), 1), max(sum(final), 1)
    ax.pie(
        final,
        radius=1.0,
        colors=colors,
        wedgeprops={"width": 0.3, "edgecolor": "white"},
        labels=[f"{n} {100 * v / total_final:.1f}%" if v else "" for n, v in zip(names, final, strict=True)],
        labeldistance=1.05,
        textprops={"fontsize": 8},
    )
    ax.pie(
        before,
        radius=0.7,
        colors=colors,
        wedgeprops={"width": 0.3, "edgecolor": "white"},
        labels=[f"{100 * v / total_before:.1f}%" if v else "" for v in before],
        labeldistance=0.55,
        textprops={"fontsize": 7},
    )
    ax.set_title(f"Category mix: pool {total_before:,} (inner) -> curated {total_final:,} (outer)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
