"""How much of a synthetic CV-Bench do rules on the drawn boxes' coordinates answer, without the pixels? (issue 7)

Each rule reads only the boxes a question draws (its `bbox`: red first, then blue, then green), the image size and
which object the question puts in which box:

- Relation, red box's side: "left" when the red box's centre is in the left half of the image, else "right" ("above"
  / "below": the upper / lower half). It ignores the other object, which the question names but does not box.
- Depth, lower bottom edge: the object whose box's bottom edge is lower in the image is the closer one (on a flat
  ground seen from above, the nearer foot point is lower).
- Depth, red box low: the red object is the closer one when its box's bottom edge is below 60 % of the image height
  (one box alone, no comparison).
- Distance, nearer foot point: of the blue and green objects, the one whose box's bottom centre lies nearer the red
  box's bottom centre in the image is the one closer to the red object.
- Count, always 1: the option "1" (a prior on the answers; a text-only model could learn it as well).

A rule on one box (the red box's side, the red box low) asks the connector where one thing is; a rule that compares
boxes asks it to relate two. `cvbench_answer_alignment.py` measures what the connector learns of each.

    .venv/bin/python benchmarks/cvbench_box_rules.py BENCH_DIR [BENCH_DIR ...]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cambrian.cvbench import load_cvbench
from cambrian.cvbench.layout import CVBenchRecord
from cambrian.cvbench.questions import LETTERS, boxed_objects

LOW_SHARE = 0.6  # "Depth, red box low": the red box's bottom edge below this share of the image height


def _foot(box: list[float]) -> tuple[float, float]:
    """The bottom centre of a box [x0, y0, x1, y1]."""
    return (box[0] + box[2]) / 2, box[3]


def rule_answers(record: CVBenchRecord, size: tuple[int, int]) -> dict[str, str]:
    """Rule name -> the option text it picks, for the rules of this question's task."""
    width, height = size
    task, choices, boxes = record.task, record.choices, record.bbox or []
    if task == "Count":
        return {"Count, always 1": "1"}
    if task == "Relation":
        x0, y0, x1, y1 = boxes[0]
        if set(choices) <= {"left", "right"}:
            return {"Relation, red box's side": "left" if (x0 + x1) / 2 < width / 2 else "right"}
        return {"Relation, red box's side": "above" if (y0 + y1) / 2 < height / 2 else "below"}
    name_of = {colour: name for name, colour in boxed_objects(record.question).items()}
    if task == "Depth":
        red, blue = boxes[0], boxes[1]
        return {"Depth, lower bottom edge": name_of["red" if red[3] > blue[3] else "blue"],
                "Depth, red box low": name_of["red" if red[3] > LOW_SHARE * height else "blue"]}
    if task == "Distance":
        anchor, blue, green = (_foot(box) for box in boxes[:3])
        nearer = "blue" if math.dist(anchor, blue) < math.dist(anchor, green) else "green"
        return {"Distance, nearer foot point": name_of[nearer]}
    return {}


def rule_accuracy(bench_dir: Path) -> dict[str, tuple[float, int]]:
    """Rule name -> (% of its task's questions it answers right, number of those questions). Any official-layout
    CV-Bench folder (`load_cvbench`: parquet or jsonl + img/)."""
    hits: dict[str, list[bool]] = {}
    for record in load_cvbench(bench_dir):
        right = record.choices[LETTERS.index(record.answer_letter)]
        for rule, answer in rule_answers(record, record.image().size).items():
            hits.setdefault(rule, []).append(answer == right)
    return {rule: (100 * sum(h) / len(h), len(h)) for rule, h in sorted(hits.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benches", type=Path, nargs="+", help="CV-Bench folders (test.parquet, or test.jsonl and img/)")
    args = parser.parse_args()
    for bench in args.benches:
        print(bench)
        for rule, (accuracy, n) in rule_accuracy(bench).items():
            print(f"  {rule:30s} {accuracy:5.1f} %  of {n}")


if __name__ == "__main__":
    main()
