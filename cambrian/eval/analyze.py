"""Benchmark analysis across evaluated models (paper Section 3.1, Fig. 3 and Fig. 15, Table 2 style rankings).

Input: results JSON files written by `cambrian eval` (vision on or off). Output in one folder:

    vision_on_off.png   per benchmark: mean score with vision, without vision, and the random-guess expectation,
                        sorted by the vision-on minus vision-off gap (Fig. 3 left)
    pca.png             benchmarks as points in the first two principal components of their scores across models,
                        coloured by category, sized by sample count (Fig. 3 right)
    correlation.png     Pearson correlation of benchmark scores across models (Fig. 15)
    analysis.md         the same numbers as tables, and a ranking of the models per category (Table 2 style)

MME-P is divided by 20 everywhere here, so every benchmark is on a 0-100 scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cambrian.eval.metrics import CATEGORIES, MME_P_DIVISOR

COLOURS = {"General": "tab:green", "Knowledge": "goldenrod", "OCR & Chart": "tab:red", "Vision-Centric": "tab:blue",
           "Other": "tab:gray"}


def category_of(column: str) -> str:
    return next((c for c, names in CATEGORIES.items() if column in names), "Other")


@dataclass
class Run:
    label: str
    model: str
    vision: bool
    scores: dict[str, float]  # column -> 0-100 score
    random: dict[str, float]
    sizes: dict[str, int]


def _columns(details: dict, key: str) -> dict[str, float]:
    """A benchmark's numbers under paper column names (MME-P / 20), or under its title when it has none."""
    out = {}
    for d in details.values():
        source = d["metrics"] if key == "metrics" else d["random_metrics"]
        if d["paper"]:
            for column, metric in d["paper_metrics"].items():
                value = source.get(metric)
                if value is not None:
                    out[column] = value / MME_P_DIVISOR if column == "MME-P" else value
        elif source.get(d["primary"]) is not None:
            out[d["title"]] = source[d["primary"]]
    return out


def load_run(path: str | Path) -> Run:
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        details, config = payload["cambrian"]["benchmarks"], payload["config"]
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{path}: not a `cambrian eval` results JSON ({error})") from None
    vision = bool(payload["cambrian"].get("vision", True))
    model = str(config.get("model", path.parent.name))
    label = Path(model).name + ("" if vision else " (no vision)")
    sizes = {}
    for d in details.values():
        for column in d["paper"] or {d["title"]: None}:
            sizes[column] = d["n"]
    return Run(label, model, vision, _columns(details, "metrics"), _columns(details, "random"), sizes)


def _unique_labels(runs: list[Run]) -> None:
    """Models that share a folder name (every quickstart saves to `.../model`) are told apart by as many parent
    folders as it takes ("qs_a/model", "qs_b/model"); the same path twice gets "#2"."""
    def label(run: Run, parts: int) -> str:
        return "/".join(Path(run.model).parts[-parts:]) + ("" if run.vision else " (no vision)")

    for parts in range(1, max(len(Path(r.model).parts) for r in runs) + 1):
        if len({label(r, parts) for r in runs}) == len({(r.model, r.vision) for r in runs}):
            break
    seen: dict[str, int] = {}
    for run in runs:
        run.label = label(run, parts)
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} #{seen[run.label]}"


def ordered_columns(runs: list[Run]) -> list[str]:
    present = {c for r in runs for c in r.scores}
    paper = [c for names in CATEGORIES.values() for c in names if c in present]
    return paper + sorted(present - set(paper))


def vision_table(runs: list[Run]) -> list[tuple[str, float | None, float | None, float | None]]:
    """(column, mean with vision, mean without vision, random guess), sorted by the vision gap (largest first)."""
    rows = []
    for column in ordered_columns(runs):
        on = [r.scores[column] for r in runs if r.vision and column in r.scores]
        off = [r.scores[column] for r in runs if not r.vision and column in r.scores]
        rand = [r.random[column] for r in runs if column in r.random]
        rows.append((column, float(np.mean(on)) if on else None, float(np.mean(off)) if off else None,
                     float(np.mean(rand)) if rand else None))
    gap = lambda row: (row[1] - row[2]) if row[1] is not None and row[2] is not None else float("-inf")  # noqa: E731
    return sorted(rows, key=gap, reverse=True)


def score_matrix(runs: list[Run]) -> tuple[list[str], np.ndarray]:
    """Benchmarks x models, for the benchmarks every model has."""
    columns = [c for c in ordered_columns(runs) if all(c in r.scores for r in runs)]
    return columns, np.array([[r.scores[c] for r in runs] for c in columns], dtype=float)


def pca_2d(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (benchmarks) standardised across models, projected on the first two principal components."""
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)
    z = z - z.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    coords = np.zeros((matrix.shape[0], 2))
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    explained = np.zeros(2)
    explained[:k] = (s[:k] ** 2) / max((s ** 2).sum(), 1e-12)
    return coords, explained


def correlation(matrix: np.ndarray) -> np.ndarray:
    """Pearson correlation between benchmark rows; NaN where a benchmark is constant across models."""
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = centred @ centred.T / np.outer(norm, norm)
    corr[np.outer(norm, norm) < 1e-12] = np.nan
    return corr


def rankings(runs: list[Run]) -> dict[str, list[tuple[str, float, int]]]:
    """Per category (and overall): (model, mean over the category's benchmarks it has, how many), best first."""
    out = {}
    for category, names in {**CATEGORIES, "Average": tuple(c for n in CATEGORIES.values() for c in n)}.items():
        rows = []
        for r in runs:
            vals = [r.scores[c] for c in names if c in r.scores]
            if vals:
                rows.append((r.label, float(np.mean(vals)), len(vals)))
        if rows:
            out[category] = sorted(rows, key=lambda row: -row[1])
    other = [c for c in ordered_columns(runs) if category_of(c) == "Other"]
    if other:
        out["Other"] = sorted([(r.label, float(np.mean([r.scores[c] for c in other if c in r.scores])),
                                sum(c in r.scores for c in other)) for r in runs if any(c in r.scores for c in other)],
                              key=lambda row: -row[1])
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2f}"


def analyze(result_files: list[str | Path], out: str | Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(p) for p in result_files]
    if len(runs) < 2:
        raise ValueError(f"need the results of at least two models (or one with and without vision), got {len(runs)}")
    _unique_labels(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / f"{k}.png" for k in ("vision_on_off", "pca", "correlation")} | {"markdown": out / "analysis.md"}

    table = vision_table(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(table) + 2), 4.2))
    x = np.arange(len(table))
    for offset, (name, index, colour) in zip((-0.27, 0, 0.27), (("vision on", 1, "tab:blue"),
                                             ("vision off", 2, "tab:orange"), ("random guess", 3, "tab:gray")),
                                             strict=True):
        ax.bar(x + offset, [np.nan if row[index] is None else row[index] for row in table], 0.27, label=name,
               color=colour)
    ax.set_xticks(x, [row[0] for row in table], rotation=45, ha="right")
    ax.set_ylabel("score (MME-P / 20)")
    ax.set_title("Vision on vs off vs random guess\n(sorted by the on - off gap)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(files["vision_on_off"], dpi=120)
    plt.close(fig)

    columns, matrix = score_matrix(runs)
    if len(columns) < 2:
        raise ValueError("need at least two benchmarks that every results file has, for the PCA and correlations")
    coords, explained = pca_2d(matrix)
    coords[np.abs(coords) < 1e-9] = 0.0  # a component with no variance is exactly 0, not float noise
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for category, colour in COLOURS.items():
        pick = [i for i, c in enumerate(columns) if category_of(c) == category]
        if pick:
            sizes = [40 + 8 * np.sqrt(max(runs[0].sizes.get(columns[i], 1), 1)) for i in pick]
            ax.scatter(coords[pick, 0], coords[pick, 1], s=sizes, c=colour, alpha=0.6, label=category)
    labels: dict[tuple[float, float], list[str]] = {}
    for i, c in enumerate(columns):  # benchmarks at the same point share one label
        labels.setdefault((round(coords[i, 0], 6), round(coords[i, 1], 6)), []).append(c)
    for (x0, y0), names in labels.items():
        ax.annotate(", ".join(names), (x0, y0), fontsize=8, xytext=(4, 4), textcoords="offset points")
    span = max(float(np.abs(coords).max()), 1e-6) * 1.3
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f} %)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f} %)")
    ax.set_title(f"PCA of benchmark scores across {len(runs)} models (bubble size ~ samples)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(files["pca"], dpi=120)
    plt.close(fig)

    corr = correlation(matrix)
    side = max(5.0, 1.5 + 0.55 * len(columns))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(np.ma.masked_invalid(corr), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(columns)), columns, fontsize=8)
    for i in range(len(columns)):
        for j in range(len(columns)):
            dark = not np.isnan(corr[i, j]) and abs(corr[i, j]) > 0.6
            ax.text(j, i, _fmt(corr[i, j]), ha="center", va="center", fontsize=8 if len(columns) < 10 else 6,
                    color="white" if dark else "black")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(f"Benchmark correlation\n(Pearson, across {len(runs)} models)")
    fig.tight_layout()
    fig.savefig(files["correlation"], dpi=120)
    plt.close(fig)

    lines = ["# Benchmark analysis", "", "Models: " + ", ".join(f"`{r.label}`" for r in runs), "",
             "## Vision on / off / random guess", "", "![vision](vision_on_off.png)", "",
             "| benchmark | category | vision on | vision off | random guess | on - off |",
             "|---|---|---:|---:|---:|---:|"]
    for column, on, off, rand in table:
        gap = on - off if on is not None and off is not None else None
        lines.append(f"| {column} | {category_of(column)} | {_fmt(on)} | {_fmt(off)} | {_fmt(rand)} | {_fmt(gap)} |")
    lines += ["", "## PCA of benchmark scores", "", "![pca](pca.png)", "", "| benchmark | category | PC1 | PC2 |",
              "|---|---|---:|---:|"]
    lines += [f"| {c} | {category_of(c)} | {coords[i, 0]:.3f} | {coords[i, 1]:.3f} |" for i, c in enumerate(columns)]
    lines += ["", "## Correlation matrix", "", "![correlation](correlation.png)", "",
              "| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {c} | " + " | ".join(_fmt(v) for v in corr[i]) + " |" for i, c in enumerate(columns)]
    lines += ["", "## Ranking per category", ""]
    for category, rows in rankings(runs).items():
        lines += [f"### {category}", "", "| rank | model | mean | benchmarks |", "|---:|---|---:|---:|"]
        lines += [f"| {k} | {label} | {value:.2f} | {n} |" for k, (label, value, n) in enumerate(rows, 1)]
        lines.append("")
    files["markdown"].write_text("\n".join(lines))
    return files
