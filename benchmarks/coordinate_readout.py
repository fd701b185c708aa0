"""Can a readout that knows where each grid cell lies answer CV-Bench from the frozen tower grid? (issue 7)

The SVA gives each of its L x L queries one window of the grid, and nothing in a visual token says where its window
lies but its place in the sequence; relating two drawn boxes is then left to the LLM (or to relate layers,
`cvbench_answer_alignment.py`), and neither learned it in the time measured. This probe puts the "where" into the
readout itself: K attention maps over the 16 x 16 cells of the 256 px tower (a linear score per cell, softmax over
the cells), each pooling the cells' (x, y) coordinates (and, with `--values V`, V numbers read off each cell), and an
MLP over the K pooled vectors that scores the answer words (the model's `CoordinateReadout`, its word scores alone).
Trained with the questions' answers (cross-entropy over each question's options), without the LLM, on the Depth,
Distance and Relation questions of a train world; scored on the held-out test world's questions of a finished
quickstart run. The image alone fixes these answers (the boxes are
drawn on it; Relation's red box's side answers 92 % of the test world's questions: `cvbench_box_rules.py`), so the
readout does not see the question; Count needs the question's class, and is left out.

`--target colour` answers Depth and Distance with the colour of the right option's box ("red", "blue", "green"),
`--target word` with its class word ("sofa"), which needs the object recognised too. `--train-world N` renders a new
train world of N images (each Depth / Distance / Relation question has its own image, boxes drawn) instead of the
run's 300-image one. `--loss options` (as in session 18) takes the softmax over each question's options only;
`--loss group` over the right answer's group of words (the Depth / Distance words, left / right, above / below), as
the model's readout makes its tokens (session 19: with `options` the mass on the group's other words is free, and a
token made from the whole group need not say either option). Both are scored as the LLM compares the options (the
right option above the others); `group` also reports the mean mass of the group's softmax on the right word.
`--predictions FILE` writes the test questions' answers (image key -> words) for
`cvbench_oracle.py --tokens readout`, which asks whether the LLM turns them into letters.

    .venv/bin/python benchmarks/coordinate_readout.py --run runs/quickstart [--train-world 3000] \\
        [--target colour|word] [--loss options|group] [--steps 600] [--heads 8] [--values 0] [--predictions FILE] \\
        [--threads 2] [--out /tmp/coordinate-readout]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from box_outline_probe import cell_features  # noqa: E402
from cvbench_answer_alignment import answer_items, new_train_bench  # noqa: E402

from cambrian.models.connectors.coordinate_readout import CoordinateReadout  # noqa: E402
from cambrian.quickstart_lib.readout import ReadoutQuestion  # noqa: E402
from cambrian.quickstart_lib.readout import option_masks as readout_option_masks  # noqa: E402

TASKS = ("Depth", "Distance", "Relation")
DIRECTION_GROUPS = (("left", "right"), ("above", "below"))


def readout_items(bench: Path, target: str) -> list[tuple[str, list[str], str, str]]:
    """(image, options, right option, task): Depth and Distance in the `target`'s words, Relation's directions."""
    return answer_items(bench, target, ("Depth", "Distance")) + answer_items(bench, "word", ("Relation",))


def option_masks(items, vocabulary: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(questions, words) additive mask that leaves each question's options, and the right option's index."""
    return readout_option_masks([ReadoutQuestion(image, choices, right) for image, choices, right, _ in items],
                                vocabulary)


def group_masks(items, vocabulary: list[str]) -> torch.Tensor:
    """(questions, words) additive mask leaving the right answer's group: its direction pair, else every word that
    is not a direction (the Depth / Distance answers)."""
    directions = {w for pair in DIRECTION_GROUPS for w in pair}
    mask = torch.full((len(items), len(vocabulary)), float("-inf"))
    for row, (_, _, right, _) in enumerate(items):
        group = next((pair for pair in DIRECTION_GROUPS if right in pair), None)
        kept = group or [w for w in vocabulary if w not in directions]
        mask[row, [vocabulary.index(w) for w in kept if w in vocabulary]] = 0.0
    return mask


def grid_features(tower, items, cache: Path) -> torch.Tensor:
    """(questions, cells, C) tower grids of the items' images, kept in `cache` (the tower's pass is the slow part)."""
    if cache.exists():
        return torch.load(cache, weights_only=True)
    features = cell_features(tower, [Path(path) for path, *_ in items])
    features = features.view(len(items), -1, features.shape[-1]).to(torch.bfloat16)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(features, cache)
    return features


def per_task_accuracy(readout, features, mask, right, items, mean, std) -> dict[str, float]:
    with torch.no_grad():
        predicted = torch.cat([
            (readout.word_logits((features[s:s + 256].float() - mean) / std) + mask[s:s + 256]).argmax(-1)
            for s in range(0, len(items), 256)])
    hits = (predicted == right).tolist()
    tasks = sorted({task for *_, task in items})
    return {task: round(100 * sum(h for h, (*_, t) in zip(hits, items, strict=True) if t == task)
                        / sum(1 for *_, t in items if t == task), 1) for task in tasks}


def right_word_mass(readout, features, group_mask, right, mean, std) -> float:
    """Mean probability of the right word in the softmax over its group: what the model's token for that group
    would be made of."""
    with torch.no_grad():
        logits = readout.word_logits((features.float() - mean) / std) + group_mask
    return round(float(logits.softmax(-1).gather(1, right[:, None]).mean()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `cambrian quickstart --out` folder")
    parser.add_argument("--train-world", type=int, default=None, help="train on a new world of this many images")
    parser.add_argument("--world-seed", type=int, default=11)
    parser.add_argument("--target", choices=("colour", "word"), default="colour")
    parser.add_argument("--loss", choices=("options", "group"), default="options")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--phases", type=int, default=3, help="score the test questions this many times")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--values", type=int, default=0, help="numbers each head pools besides (x, y)")
    parser.add_argument("--noise", type=float, default=0.5, help="Gaussian noise on the standardised features")
    parser.add_argument("--predictions", type=Path, default=None, help="write the test answers here (JSON)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/coordinate-readout"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from cambrian.models.towers.registry import build_tower, resolve_tower

    tower = build_tower(resolve_tower("efficientnet-lite0-res256", stages=[3, 4], grid_size=16),
                        load_weights=True).eval()
    train_bench = (new_train_bench(args.out, args.train_world, args.world_seed) if args.train_world
                   else args.run / "data" / "cvbench-train")
    test_bench = args.run / "data" / "cvbench-test"
    train_items, test_items = readout_items(train_bench, args.target), readout_items(test_bench, args.target)
    start = time.perf_counter()
    train = grid_features(tower, train_items, args.out / "features" / f"{train_bench.name}-{args.target}.pt")
    test = grid_features(tower, test_items, args.out / "features" / f"{test_bench.name}-{args.run.name}.pt")
    features_s = time.perf_counter() - start
    mean, std = train.float().mean((0, 1)), train.float().std((0, 1)) + 1e-6
    vocabulary = sorted({c for _, choices, _, _ in train_items + test_items for c in choices})
    train_mask, train_right = option_masks(train_items, vocabulary)
    test_mask, test_right = option_masks(test_items, vocabulary)
    train_loss_mask = train_mask if args.loss == "options" else group_masks(train_items, vocabulary)
    test_group = group_masks(test_items, vocabulary)
    readout = CoordinateReadout(train.shape[-1], tower.grid_size, len(vocabulary), 1, args.heads, args.values)
    optimizer = torch.optim.AdamW(readout.parameters(), lr=3e-3, weight_decay=0.05)
    print(f"{len(train_items)} train questions ({train_bench}), {len(test_items)} test; tower grids in "
          f"{features_s:.0f} s; {len(vocabulary)} words; {sum(p.numel() for p in readout.parameters())} parameters")
    rows, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, len(train_items), (64,))
        cells = (train[batch].float() - mean) / std
        loss = F.cross_entropy(readout.word_logits(cells + args.noise * torch.randn_like(cells))
                               + train_loss_mask[batch], train_right[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, args.steps // args.phases) == 0 or step == args.steps:
            rows.append({"step": step, "seconds": round(time.perf_counter() - start), "loss": round(loss.item(), 3),
                         "train": per_task_accuracy(readout, train, train_mask, train_right, train_items, mean, std),
                         "test": per_task_accuracy(readout, test, test_mask, test_right, test_items, mean, std),
                         "test_right_word_mass": right_word_mass(readout, test, test_group, test_right, mean, std)})
            print(json.dumps(rows[-1]), flush=True)
    summary = {"run": str(args.run), "train_bench": str(train_bench), "target": args.target, "loss": args.loss,
               "heads": args.heads, "values": args.values, "train_questions": len(train_items),
               "tower_seconds": round(features_s), "phases": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coordinate_readout.json").write_text(json.dumps(summary, indent=1))
    if args.predictions:
        write_predictions(readout, test, test_mask, test_items, vocabulary, mean, std, args.predictions)


def write_predictions(readout, features, mask, items, vocabulary, mean, std, path: Path) -> None:
    """image key (cvbench_oracle.image_key) -> the predicted words, for every test question the readout answers."""
    from cvbench_oracle import image_key
    from PIL import Image

    with torch.no_grad():
        predicted = (readout.word_logits((features.float() - mean) / std) + mask).argmax(-1).tolist()
    answers = {image_key(Image.open(image)): vocabulary[k] for (image, *_), k in zip(items, predicted, strict=True)}
    path.write_text(json.dumps(answers, indent=1))
    print(f"wrote {len(answers)} answers to {path}")


if __name__ == "__main__":
    main()
