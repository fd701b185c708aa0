"""Do the frozen tower grids show where CV-Bench's drawn boxes are? (issue 7)

A synthetic Depth question is answered by "the box whose bottom edge is lower is closer" (99.6-100 %), so a model
that reads where the red and blue outlines run could answer it. This probe asks whether cambrian-nano's 256 px tower
grid carries that, before any connector: a logistic regression on each grid cell's features (standardised) predicts
whether the red box's outline passes through the cell, whether the blue box's does, and whether the red box's bottom
edge does. It is fitted on the cells of the first `--train` Depth images of a CV-Bench folder and scored on the cells
of the next `--test` images (AUC; accuracy against always answering the majority label).

    .venv/bin/python benchmarks/box_outline_probe.py --bench runs/quickstart/data/cvbench-train \\
        [--view 3,4@16] [--train 600] [--test 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

OUTLINE_PX = 2  # cambrian.cvbench.build.draw_boxes: max(2, round(side / 160)) for the 256 px worlds


def depth_items(bench: Path) -> list[tuple[Path, list[list[float]]]]:
    """(image, [red box, blue box]) for every Depth question of a CV-Bench folder."""
    items = []
    for line in open(bench / "test.jsonl"):
        row = json.loads(line)
        if row["task"] == "Depth":
            items.append((bench / row["filename"], row["bbox"]))
    return items


def outline_cells(box: list[float], side: int, grid: int, bottom_only: bool = False) -> torch.Tensor:
    """(grid, grid) bool: the cells of a side x side image that the box's drawn outline (OUTLINE_PX wide, inside the
    box as PIL draws it) passes through; with bottom_only, its bottom edge alone."""
    x1, y1, x2, y2 = (round(v) for v in box)
    ink = torch.zeros(side, side, dtype=torch.bool)
    w = OUTLINE_PX
    ink[max(0, y2 - w):y2, x1:x2] = True
    if not bottom_only:
        ink[y1:y1 + w, x1:x2] = True
        ink[y1:y2, x1:x1 + w] = True
        ink[y1:y2, max(0, x2 - w):x2] = True
    cell = side // grid
    return ink[:grid * cell, :grid * cell].view(grid, cell, grid, cell).any(dim=3).any(dim=1)


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Probability that a positive cell scores above a negative one (ties broken arbitrarily: scores are floats)."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = torch.cat([pos, neg]).argsort().argsort().double() + 1  # ranks 1..n (ties broken arbitrarily)
    return float((order[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_logistic(x: torch.Tensor, y: torch.Tensor, steps: int = 300, weight_decay: float = 1e-3) -> torch.nn.Linear:
    probe = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    positive_weight = (len(y) - y.sum()) / y.sum().clamp(min=1)  # balanced: outline cells are the minority

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(probe(x).squeeze(1), y.float(), pos_weight=positive_weight)
        loss = loss + weight_decay * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


@torch.no_grad()
def cell_features(tower, images: list[Path], batch: int = 32) -> torch.Tensor:
    """(images * grid * grid, C): the tower's grid of each image, one row per cell."""
    from PIL import Image

    rows = []
    for start in range(0, len(images), batch):
        pixels = torch.stack([tower.transform(Image.open(p)) for p in images[start:start + batch]])
        rows.append(tower(pixels).flatten(0, 2))
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, required=True, help="a CV-Bench folder with Depth questions")
    parser.add_argument("--view", default="3,4@16", help="the 256 px tower's EfficientNet stages @ grid")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from cambrian.models.towers.registry import build_tower, resolve_tower

    stages, grid = args.view.split("@")
    tower = build_tower(resolve_tower("efficientnet-lite0-res256", stages=[int(s) for s in stages.split(",")],
                                      grid_size=int(grid)), load_weights=True).eval()
    items = depth_items(args.bench)[:args.train + args.test]
    if len(items) < args.train + args.test:
        raise SystemExit(f"{args.bench} has {len(items)} Depth questions; --train + --test asks for "
                         f"{args.train + args.test}")
    side = tower.config.image_size
    split = args.train * tower.grid_size ** 2  # the train images' cells come first
    features = cell_features(tower, [path for path, _ in items])
    features = (features - features[:split].mean(0)) / (features[:split].std(0) + 1e-6)
    targets = {
        "red outline": [outline_cells(boxes[0], side, tower.grid_size) for _, boxes in items],
        "blue outline": [outline_cells(boxes[1], side, tower.grid_size) for _, boxes in items],
        "red bottom edge": [outline_cells(boxes[0], side, tower.grid_size, bottom_only=True) for _, boxes in items],
    }
    print(f"view {args.view}: {tower.grid_size}x{tower.grid_size} grid, {features.shape[1]} channels; cells of "
          f"{args.train} train / {args.test} test Depth images of {args.bench}")
    for name, cells in targets.items():
        y = torch.stack(cells).flatten()
        probe = fit_logistic(features[:split], y[:split])
        with torch.no_grad():
            scores = probe(features[split:]).squeeze(1)
        test = y[split:]
        accuracy = float(((scores > 0) == test).float().mean())
        majority = max(float(test.float().mean()), 1 - float(test.float().mean()))
        print(f"  {name:16s} test AUC {auc(scores, test):.3f}, accuracy {100 * accuracy:.1f} % (majority "
              f"{100 * majority:.1f} %, {int(test.sum())} of {len(test)} cells positive)")


if __name__ == "__main__":
    main()
