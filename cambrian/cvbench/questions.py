"""The four CV-Bench tasks (paper Section 3.2), generated from ground-truth annotations by explicit rules.

The paper's authors inspected every question by hand; here automatic filters stand in for that inspection, with
thresholds in `BuildConfig` (the paper publishes none, see official-cambrian.md Section 10):

- Relation (2D): target A (red box) and anchor B of two distinct categories, B the only instance of its category (it
  has no box); left/right or above/below by the dominant axis of the centre displacement A - B, kept only if that
  axis dominates by `relation_axis_ratio` and the displacement exceeds `relation_margin` of the image size.
- Count (2D): every instance of the class large enough to see and none a crowd region; choices are consecutive
  integers around the truth; some questions ask for a class absent from the image (answer 0, an existence check).
- Depth (3D): A (red) is closer to the camera than B (blue) only if A's farthest 3D-box vertex is closer than B's
  nearest vertex by `depth_offset` metres (distances from the camera centre).
- Distance (3D): A (blue) is closer to the anchor (red) than B (green) only if the farthest of A's vertices from
  the anchor's centre is nearer than the nearest of B's vertices by `distance_offset` metres.

All pairs must pass a minimum box size and a maximum box overlap (IoU), and no other object's box may cover much of
a boxed object's box (else the drawn box could point at either). Answer letters are balanced per task.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from cambrian.cvbench.annotations import AnnotatedImage, Box, Instance

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
TASK_TYPE = {"Relation": "2D", "Count": "2D", "Depth": "3D", "Distance": "3D"}
LETTERS = "ABCDEFGH"

RELATION = ("Considering the relative positions of the {a} (annotated by the red box) and the {b} in the image "
            "provided, where is the {a} (annotated by the red box) located with respect to the {b}?")
COUNT = "How many {plural} are in the image?"
DEPTH = ("Which object is closer to the camera taking this photo, the {a} (highlighted by a red box) or the {b} "
         "(highlighted by a blue box)?")
DISTANCE = ("Estimate the real-world distances between objects in this image. Which object is closer to the "
            "{anchor} (highlighted by a red box), the {a} (highlighted by a blue box) or the {b} (highlighted by a "
            "green box)?")

# "the tent (highlighted by a blue box)": the name is what follows the last "the" before the parenthesis (any
# characters but parentheses: "t-shirt", "traffic light")
BOXED_OBJECT = re.compile(r"\bthe ((?:(?!\bthe\b)[^()])+?) "
                          r"\((?:highlighted|annotated) by (?:a|the) (red|blue|green) box\)")


def boxed_objects(question: str) -> dict[str, str]:
    """Object name -> the colour of the box a question (one of the templates above) draws around it, read off its
    text: "the tent (highlighted by a blue box)" -> {"tent": "blue"}."""
    return dict(BOXED_OBJECT.findall(question))


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    min_box_side: float = 0.04  # of the longer image side (15 px at 384 px)
    min_area: float = 0.003  # visible area, of the image area (~21 x 21 px at 384 px)
    max_box_area: float = 0.5  # larger boxes are scenery (wall, floor, sky), not objects to ask about
    max_pair_iou: float = 0.2
    max_covered: float = 0.5  # a boxed object: no other object's box may cover more than this share of its box
    relation_axis_ratio: float = 1.5
    relation_margin: float = 0.08
    count_max: int = 8
    count_choices: int = 4
    absent_probability: float = 0.15  # chance per image of an existence check (count 0)
    depth_offset: float = 0.3  # metres
    distance_offset: float = 0.3  # metres
    min_visibility: float = 0.5  # 3D objects must be at least this visible when the format says
    per_image: int = 1  # questions per task per image
    max_per_task: int | None = None  # per task and source


@dataclass
class Question:
    task: str
    image: AnnotatedImage
    question: str
    answer: str  # the correct choice text
    distractors: list[str]
    boxes: list[tuple[Box, tuple[int, int, int]]]  # drawn on the image, in question order (red, blue, green)
    instance_ids: list[str]
    target_class: str | None = None
    target_size: int | None = None
    fixed_order: list[str] | None = None  # choices that keep their order (A/B) unless letters need a swap
    evidence: dict = field(default_factory=dict)  # the numbers the rule used, written to provenance.jsonl
    choices: list[str] = field(default_factory=list)
    letter: str = ""


_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
              "foot": "feet", "tooth": "teeth", "sheep": "sheep", "fish": "fish", "deer": "deer", "skis": "skis",
              "scissors": "scissors", "glasses": "glasses", "knife": "knives", "shelf": "shelves", "leaf": "leaves"}


def plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "sh", "ch", "x", "z")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def big_enough(inst: Instance, im: AnnotatedImage, cfg: BuildConfig) -> bool:
    x1, y1, x2, y2 = inst.box
    side = min(x2 - x1, y2 - y1)
    frac = (x2 - x1) * (y2 - y1) / (im.width * im.height)
    return (side >= cfg.min_box_side * max(im.width, im.height) and inst.area >= cfg.min_area * im.width * im.height
            and frac <= cfg.max_box_area and not inst.iscrowd)


def covered(box: Box, other: Box) -> float:
    """Share of `box` that `other` covers."""
    iw = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    ih = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return iw * ih / area if area > 0 else 1.0


def boxable(inst: Instance, im: AnnotatedImage, cfg: BuildConfig) -> bool:
    """A red/blue/green box around `inst` points at it alone: no other object's box covers much of it."""
    return all(covered(inst.box, o.box) <= cfg.max_covered for o in im.instances if o is not inst
               and (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) / (im.width * im.height) <= cfg.max_box_area)


def _center(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def relation_answer(target: Box, anchor: Box, width: int, height: int, cfg: BuildConfig) -> str | None:
    """'left' / 'right' / 'above' / 'below' of target w.r.t. anchor, or None when the rule finds it ambiguous."""
    (tx, ty), (ax, ay) = _center(target), _center(anchor)
    dx, dy = tx - ax, ty - ay
    if abs(dx) >= cfg.relation_axis_ratio * abs(dy) and abs(dx) >= cfg.relation_margin * width:
        return "left" if dx < 0 else "right"
    if abs(dy) >= cfg.relation_axis_ratio * abs(dx) and abs(dy) >= cfg.relation_margin * height:
        return "above" if dy < 0 else "below"
    return None


def closer_to(point: np.ndarray, a: np.ndarray, b: np.ndarray, offset: float) -> int | None:
    """0 if all of corners `a` are nearer to `point` than all of `b` by `offset`, 1 for the reverse, else None."""
    da, db = np.linalg.norm(a - point, axis=1), np.linalg.norm(b - point, axis=1)
    if da.max() + offset < db.min():
        return 0
    if db.max() + offset < da.min():
        return 1
    return None


def relation_questions(im: AnnotatedImage, cfg: BuildConfig, rng: np.random.Generator) -> list[Question]:
    usable = [i for i in im.instances if big_enough(i, im, cfg)]
    counts: dict[str, int] = {}
    for inst in im.instances:
        counts[inst.category] = counts.get(inst.category, 0) + (2 if inst.iscrowd else 1)
    out = []
    for a, b in itertools.permutations(usable, 2):
        if a.category == b.category or counts[b.category] != 1 or iou(a.box, b.box) > cfg.max_pair_iou:
            continue
        if not boxable(a, im, cfg):
            continue
        answer = relation_answer(a.box, b.box, im.width, im.height, cfg)
        if answer is None:
            continue
        pair = ["left", "right"] if answer in ("left", "right") else ["above", "below"]
        out.append(Question(
            "Relation", im, RELATION.format(a=a.category, b=b.category), answer, [p for p in pair if p != answer],
            [(a.box, RED)], [a.id, b.id], target_class=a.category, target_size=round(a.area), fixed_order=pair,
            evidence={"target_center": _center(a.box), "anchor_center": _center(b.box)},
        ))
    return out


def count_questions(im: AnnotatedImage, cfg: BuildConfig, rng: np.random.Generator) -> list[Question]:
    by_class: dict[str, list[Instance]] = {}
    for inst in im.instances:
        by_class.setdefault(inst.category, []).append(inst)
    out = []
    for name, insts in sorted(by_class.items()):
        if len(insts) > cfg.count_max or not all(big_enough(i, im, cfg) for i in insts):
            continue
        out.append(_count_question(im, name, len(insts), [i.id for i in insts], round(sum(i.area for i in insts)),
                                   cfg, rng))
    absent = [c for c in im.vocabulary if c not in by_class]
    if absent and rng.random() < cfg.absent_probability:
        name = absent[int(rng.integers(len(absent)))]
        out = [_count_question(im, name, 0, [], 0, cfg, rng)]  # an existence check replaces this image's counts
    return out


def _count_question(im, name, n, ids, size, cfg, rng) -> Question:
    k = cfg.count_choices
    start = max(0, n - int(rng.integers(0, k)))
    values = [str(v) for v in range(start, start + k)]
    return Question("Count", im, COUNT.format(plural=plural(name)), str(n), [v for v in values if v != str(n)],
                    [], ids, target_class=name, target_size=size)


def _depth_ok(inst: Instance, im: AnnotatedImage, cfg: BuildConfig) -> bool:
    return (inst.corners is not None and big_enough(inst, im, cfg) and boxable(inst, im, cfg)
            and (inst.visibility is None or inst.visibility >= cfg.min_visibility))


def depth_questions(im: AnnotatedImage, cfg: BuildConfig, rng: np.random.Generator) -> list[Question]:
    usable = [i for i in im.instances if _depth_ok(i, im, cfg)]
    out = []
    for a, b in itertools.permutations(usable, 2):
        if a.category == b.category or iou(a.box, b.box) > cfg.max_pair_iou:
            continue
        closer = closer_to(np.zeros(3), a.corners, b.corners, cfg.depth_offset)
        if closer is None:
            continue
        names = [a.category, b.category]
        out.append(Question(
            "Depth", im, DEPTH.format(a=a.category, b=b.category), names[closer], [names[1 - closer]],
            [(a.box, RED), (b.box, BLUE)], [a.id, b.id], fixed_order=names,
        ))
    return out


def distance_questions(im: AnnotatedImage, cfg: BuildConfig, rng: np.random.Generator) -> list[Question]:
    usable = [i for i in im.instances if _depth_ok(i, im, cfg)]
    out = []
    for anchor, a, b in itertools.permutations(usable, 3):
        if len({anchor.category, a.category, b.category}) < 3 or b.id < a.id:  # (a, b) and (b, a) are one question
            continue
        if max(iou(anchor.box, a.box), iou(anchor.box, b.box), iou(a.box, b.box)) > cfg.max_pair_iou:
            continue
        closer = closer_to(anchor.center, a.corners, b.corners, cfg.distance_offset)
        if closer is None:
            continue
        names = [a.category, b.category]
        out.append(Question(
            "Distance", im, DISTANCE.format(anchor=anchor.category, a=a.category, b=b.category), names[closer],
            [names[1 - closer]], [(anchor.box, RED), (a.box, BLUE), (b.box, GREEN)], [anchor.id, a.id, b.id],
            fixed_order=names,
        ))
    return out


GENERATORS = {"Relation": relation_questions, "Count": count_questions, "Depth": depth_questions,
              "Distance": distance_questions}


def generate(images: list[AnnotatedImage], tasks: tuple[str, ...], cfg: BuildConfig) -> list[Question]:
    """Questions for `tasks` over `images`: at most `per_image` per task and image, then balanced letters."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xC5]))
    by_task: dict[str, list[Question]] = {t: [] for t in tasks}
    for im in images:
        for task in tasks:
            candidates = GENERATORS[task](im, cfg, rng)
            if candidates:
                pick = rng.permutation(len(candidates))[: cfg.per_image]
                by_task[task].extend(candidates[int(i)] for i in sorted(pick))
    out = []
    for task in tasks:
        questions = by_task[task]
        if cfg.max_per_task is not None and len(questions) > cfg.max_per_task:
            keep = sorted(rng.permutation(len(questions))[: cfg.max_per_task])
            questions = [questions[int(i)] for i in keep]
        assign_letters(questions, rng)
        out.extend(questions)
    return out


def assign_letters(questions: list[Question], rng: np.random.Generator) -> None:
    """Place each answer so that, within the task, every letter is the answer equally often (+-1)."""
    if not questions:
        return
    k = 1 + len(questions[0].distractors)
    slots = np.resize(np.arange(k), len(questions))  # 0,1,..,k-1,0,1,... then shuffled: counts differ by <= 1
    rng.shuffle(slots)
    for q, slot in zip(questions, slots, strict=True):
        if len(q.distractors) + 1 != k:
            raise ValueError(f"{q.task}: questions of one task must have the same number of choices")
        if q.fixed_order is not None and k == 2:
            # two named choices: (A) is the first-mentioned one unless the balance needs the answer elsewhere
            choices = list(q.fixed_order)
            if choices.index(q.answer) != slot:
                choices.reverse()
        else:
            others = [q.distractors[int(i)] for i in rng.permutation(len(q.distractors))]
            choices = others[:slot] + [q.answer] + others[slot:]
        q.choices = choices
        q.letter = LETTERS[choices.index(q.answer)]
