"""How judged answers combine into benchmark scores, and benchmark scores into the paper's averages.

Every aggregate here takes per-sample values in [0, 1] and is written so that it is *also* the exact expectation
when the values are probabilities of independent events: a mean stays a mean, and "every question of the group is
right" (MME acc+, MMBench circular, MMVP pairs) is the product over the group, which equals `all()` on 0/1 values.
Feeding each sample's chance of a uniform random guess therefore gives the random-guess expected score through the
same code path as the model's score.

Scores are percentages (0-100) except MME, which is in its own points (a category in [0, 200]; Perception is the
sum of 10 categories, max 2000).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                  "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")

# The paper's 16 benchmarks in four categories of four (Tables 2/3/9; official-cambrian.md 6.4)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "General": ("MME-P", "MMB", "SEED-I", "GQA"),
    "Knowledge": ("SQA-I", "MMMU", "MathVista", "AI2D"),
    "OCR & Chart": ("ChartQA", "OCRBench", "TextVQA", "DocVQA"),
    "Vision-Centric": ("MMVP", "RealWorldQA", "CV-Bench-2D", "CV-Bench-3D"),
}
MME_P_DIVISOR = 20  # MME-Perception (max 2000) enters the averages divided by 20 (paper Tables 3 and 9)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values: the benchmark has no samples")
    return math.fsum(values) / len(values)


def accuracy(values: Sequence[float]) -> float:
    return 100 * mean(values)


def group_values(keys: Sequence[Hashable], values: Sequence[float]) -> dict[Hashable, list[float]]:
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in zip(keys, values, strict=True):
        groups[key].append(value)
    return dict(groups)


def all_correct(keys: Sequence[Hashable], values: Sequence[float]) -> float:
    """Percent of groups whose every member is right (the product of the members' values, averaged over groups)."""
    return 100 * mean([math.prod(g) for g in group_values(keys, values).values()])


def per_key_accuracy(keys: Sequence[Hashable], values: Sequence[float]) -> dict[str, float]:
    return {str(k): accuracy(v) for k, v in sorted(group_values(keys, values).items(), key=lambda kv: str(kv[0]))}


def mme_scores(categories: Sequence[str], images: Sequence[Hashable], values: Sequence[float]) -> dict:
    """MME: per category, acc = % of questions right and acc+ = % of images with both questions right; the category
    score is acc + acc+ (0-200). Perception sums the 10 perception categories, Cognition the 4 cognition ones."""
    per_category: dict[str, dict[str, float]] = {}
    by_category = group_values(categories, list(zip(images, values, strict=True)))
    for category, rows in sorted(by_category.items()):
        image_keys, vals = zip(*rows, strict=True)
        acc, acc_plus = accuracy(vals), all_correct(image_keys, vals)
        per_category[category] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}
    unknown = sorted(set(per_category) - set(MME_PERCEPTION) - set(MME_COGNITION))
    if unknown:
        raise ValueError(f"MME categories {unknown} are neither perception {MME_PERCEPTION} nor cognition")
    return {
        "perception": math.fsum(per_category[c]["score"] for c in MME_PERCEPTION if c in per_category),
        "cognition": math.fsum(per_category[c]["score"] for c in MME_COGNITION if c in per_category),
        "complete": set(per_category) == set(MME_PERCEPTION) | set(MME_COGNITION),
        "per_category": per_category,
    }


def cvbench_scores(sources: Sequence[str], values: Sequence[float]) -> dict:
    """CV-Bench (paper App. C): 2D = mean(acc_ADE20K, acc_COCO), 3D = acc_Omni3D, overall = mean(2D, 3D); a
    source-macro average. A bench lacking a source averages those it has (see cambrian.cvbench.score)."""
    acc = {s: accuracy(v) for s, v in group_values(sources, values).items()}
    two_d = [acc[s] for s in ("ADE20K", "COCO") if s in acc]
    out = {"2d": mean(two_d) if two_d else None, "3d": acc.get("Omni3D")}
    present = [v for v in (out["2d"], out["3d"]) if v is not None]
    out["overall"] = mean(present) if present else None
    out["per_source"] = dict(sorted(acc.items()))
    return out


def category_averages(scores: dict[str, float]) -> dict[str, float | None]:
    """Paper-column scores ({"MME-P": 1547.1, "MMB": 75.9, ...}) -> each category's mean of its four (MME-P / 20)
    and the overall mean of the 16. A category missing a benchmark gets None (a partial mean would mislead)."""
    def value(name: str) -> float | None:
        v = scores.get(name)
        return None if v is None else v / MME_P_DIVISOR if name == "MME-P" else v

    out: dict[str, float | None] = {}
    for category, names in CATEGORIES.items():
        vals = [value(n) for n in names]
        out[category] = None if any(v is None for v in vals) else mean(vals)
    cats = list(out.values())
    out["Average"] = None if any(v is None for v in cats) else mean(cats)
    return out
