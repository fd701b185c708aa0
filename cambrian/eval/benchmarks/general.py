"""General: MME (Perception), MMBench (circular), SEED-Bench (image), GQA, read from their public layouts."""

from __future__ import annotations

import math
from pathlib import Path

from cambrian.eval.benchmarks import judges
from cambrian.eval.benchmarks.base import (
    LETTER_SUFFIX,
    WORD_SUFFIX,
    Benchmark,
    Sample,
    find_split_files,
    image_bytes,
    letters,
    options_block,
    read_rows,
    require,
)
from cambrian.eval.metrics import accuracy, all_correct, mme_scores, per_key_accuracy

MME_SOURCE = "lmms-lab/MME (data/test-*.parquet: question_id, image, question, answer, category)"
MMB_SOURCE = ("lmms-lab/MMBench_EN (data/dev-*.parquet: index, question, hint, A-D, answer, category, image, "
              "L2-category, source, split); rotated copies have index + k*1e6")
SEED_SOURCE = ("lmms-lab/SEED-Bench (data/test-*.parquet: question_id, question, choice_a-d, answer, data_type, "
               "image list)")
GQA_SOURCE = ("lmms-lab/GQA: testdev_balanced_instructions/testdev-*.parquet (id, imageId, question, answer) and "
              "testdev_balanced_images/testdev-*.parquet (id, image)")
MME_YES_NO = " Please answer yes or no."


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() in ("", "nan")


# -- MME --

def load_mme(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=MME_SOURCE))):
        require(row, ["question_id", "image", "question", "answer", "category"], where, "MME")
        # the question ends in " Please answer yes or no."; Cambrian asks for a single word instead
        question = row["question"].strip().replace(MME_YES_NO, "")
        samples.append(Sample(idx=i, prompt=f"{question}\n{WORD_SUFFIX}", target=row["answer"].strip().lower(),
                              images=[image_bytes(row["image"], where)], choices=["yes", "no"],
                              meta={"category": row["category"], "image": row["question_id"]}))
    return samples


def aggregate_mme(samples: list[Sample], values: list[float]) -> dict:
    scores = mme_scores([s.meta["category"] for s in samples], [(s.meta["category"], s.meta["image"])
                                                                 for s in samples], values)
    return {"perception": scores["perception"], "cognition": scores["cognition"], "accuracy": accuracy(values),
            "complete": scores["complete"], "per_category": scores["per_category"]}


MME = Benchmark("mme", "MME", load_mme, judges.yes_no, aggregate_mme, primary="perception",
                paper={"MME-P": "perception"}, max_new_tokens=32, source=MME_SOURCE)


# -- MMBench (circular) --

def load_mmbench(root: Path) -> list[Sample]:
    samples = []
    for where, row in read_rows(find_split_files(root, "dev", source=MMB_SOURCE)):
        require(row, ["index", "question", "A", "B", "answer", "image"], where, "MMBench")
        choices = [row[k] for k in "ABCDE" if k in row and not _blank(row[k])]
        hint = row.get("hint")
        question = row["question"] if _blank(hint) else f"{hint}\n{row['question']}"
        index = int(row["index"])
        samples.append(Sample(idx=index, prompt=f"{question}\n{options_block(choices)}\n{LETTER_SUFFIX}",
                              target=row["answer"].strip(), images=[image_bytes(row["image"], where)],
                              choices=choices, meta={"question": index % 1_000_000, "category": row.get("category"),
                                                     "l2": row.get("L2-category")}))
    return samples


def aggregate_mmbench(samples: list[Sample], values: list[float]) -> dict:
    """Circular accuracy: a question counts only if all its rotations (same index mod 1e6) are right."""
    questions = [s.meta["question"] for s in samples]
    per_category = {}
    for category in sorted({str(s.meta["category"]) for s in samples}):
        pick = [i for i, s in enumerate(samples) if str(s.meta["category"]) == category]
        per_category[category] = all_correct([questions[i] for i in pick], [values[i] for i in pick])
    return {"circular": all_correct(questions, values), "accuracy": accuracy(values),
            "n_questions": len(set(questions)), "per_category": per_category}


MMBENCH = Benchmark("mmbench", "MMBench", load_mmbench, judges.choice, aggregate_mmbench, primary="circular",
                    paper={"MMB": "circular"}, max_new_tokens=16, source=MMB_SOURCE)


# -- SEED-Bench (image part) --

def load_seed(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=SEED_SOURCE))):
        require(row, ["question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "data_type", "image"],
                where, "SEED-Bench")
        if row["data_type"] != "image":
            continue  # SEED-I: the image questions only
        images = row["image"] if isinstance(row["image"], list) else [row["image"]]
        choices = [row[f"choice_{k}"] for k in "abcd"]
        samples.append(Sample(idx=i, prompt=f"{row['question']}\n{options_block(choices)}\n{LETTER_SUFFIX}",
                              target=row["answer"].strip(), images=[image_bytes(images[0], where)], choices=choices,
                              meta={"category": row.get("question_type_id")}))
    return samples


def aggregate_plain(samples: list[Sample], values: list[float]) -> dict:
    out = {"accuracy": accuracy(values)}
    if any(s.meta.get("category") is not None for s in samples):
        out["per_category"] = per_key_accuracy([s.meta.get("category") for s in samples], values)
    return out


SEED = Benchmark("seed", "SEED-Bench (image)", load_seed, judges.choice, aggregate_plain, primary="accuracy",
                 paper={"SEED-I": "accuracy"}, max_new_tokens=16, source=SEED_SOURCE)


# -- GQA --

def load_gqa(root: Path) -> list[Sample]:
    images = {}
    for where, row in read_rows(find_split_files(root, "testdev", "testdev_balanced_images", GQA_SOURCE)):
        images[str(row["id"])] = image_bytes(row["image"], where)
    questions = read_rows(find_split_files(root, "testdev", "testdev_balanced_instructions", GQA_SOURCE))
    samples = []
    for i, (where, row) in enumerate(questions):
        require(row, ["imageId", "question", "answer"], where, "GQA")
        if str(row["imageId"]) not in images:
            raise ValueError(f"{where}: GQA image {row['imageId']!r} is not in testdev_balanced_images")
        samples.append(Sample(idx=i, prompt=f"{row['question']}\n{WORD_SUFFIX}", target=row["answer"],
                              images=[images[str(row["imageId"])]]))
    return samples


GQA = Benchmark("gqa", "GQA", load_gqa, judges.short, lambda s, v: {"accuracy": accuracy(v)}, primary="accuracy",
                paper={"GQA": "accuracy"}, chance=lambda s: 0.0, max_new_tokens=16, source=GQA_SOURCE)

BENCHMARKS = [MME, MMBENCH, SEED, GQA]
__all__ = ["BENCHMARKS", "letters"]
