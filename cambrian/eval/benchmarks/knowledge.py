"""Knowledge: ScienceQA-IMG, MMMU-val, MathVista-testmini, AI2D, read from their public layouts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cambrian.eval.benchmarks import judges
from cambrian.eval.benchmarks.base import (
    LETTER_SUFFIX,
    SQA_SUFFIX,
    WORD_SUFFIX,
    Benchmark,
    Judged,
    Sample,
    find_split_files,
    image_bytes,
    judged_text,
    letters,
    options_block,
    read_rows,
    require,
)
from cambrian.eval.benchmarks.general import aggregate_plain

SQA_SOURCE = ("derek-thomas/ScienceQA (data/test-*.parquet: image, question, choices, answer index, hint, ...) or "
              "lmms-lab/ScienceQA (ScienceQA-IMG/test-*.parquet)")
MMMU_SOURCE = ("MMMU/MMMU or lmms-lab/MMMU (<Subject>/validation-*.parquet: id, question, options, answer, "
               "question_type, image_1..image_7)")
MATHVISTA_SOURCE = ("AI4Math/MathVista (data/testmini-*.parquet: pid, query, decoded_image, choices, answer, "
                    "question_type, answer_type)")
AI2D_SOURCE = "lmms-lab/ai2d (data/test-*.parquet: question, options, answer index as a string, image)"


def _choices(value, where: str) -> list[str]:
    if isinstance(value, str):
        value = ast.literal_eval(value)  # MMMU stores the options as a Python list literal
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{where}: expected a non-empty list of options, got {value!r}")
    return [str(c) for c in value]


# -- ScienceQA-IMG --

def load_sqa(root: Path) -> list[Sample]:
    config = "ScienceQA-IMG" if (root / "ScienceQA-IMG").is_dir() else None
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", config, SQA_SOURCE))):
        require(row, ["question", "choices", "answer", "image"], where, "ScienceQA")
        if not row["image"]:
            continue  # SQA-I: the questions with an image (the official `multimodal_acc`)
        choices = _choices(row["choices"], where)
        hint = (row.get("hint") or "").strip()
        question = f"{hint}\n{row['question']}" if hint else row["question"]
        samples.append(Sample(idx=i, prompt=f"{question}\n{options_block(choices)}\n{SQA_SUFFIX}",
                              target=letters(len(choices))[int(row["answer"])], choices=choices,
                              images=[image_bytes(row["image"], where)], meta={"category": row.get("subject")}))
    return samples


SQA = Benchmark("sqa", "ScienceQA-IMG", load_sqa, judges.choice, aggregate_plain, primary="accuracy",
                paper={"SQA-I": "accuracy"}, max_new_tokens=16, source=SQA_SOURCE)


# -- MMMU (validation) --

_IMAGE_TAG = re.compile(r"<image \d+>")


def load_mmmu(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "validation", source=MMMU_SOURCE))):
        require(row, ["id", "question", "options", "answer", "question_type", "image_1"], where, "MMMU")
        question = " ".join(_IMAGE_TAG.sub("", row["question"]).split())  # tags removed; only image_1 is fed
        images = [image_bytes(row["image_1"], where)] if row["image_1"] else []
        if row["question_type"] == "multiple-choice":
            choices = _choices(row["options"], where)
            samples.append(Sample(idx=i, prompt=f"{question}\n{options_block(choices)}\n{LETTER_SUFFIX}",
                                  target=row["answer"].strip(), choices=choices, images=images,
                                  meta={"id": row["id"], "category": row.get("subfield")}))
        else:
            answer = row["answer"]
            answers = ast.literal_eval(answer) if answer.strip().startswith("[") else [answer]
            samples.append(Sample(idx=i, prompt=f"{question}\n{WORD_SUFFIX}", target=[str(a) for a in answers],
                                  images=images, meta={"id": row["id"], "category": row.get("subfield")}))
    return samples


def judge_mmmu(sample: Sample, text: str) -> Judged:
    if sample.choices:
        return judges.choice(sample, text)
    best, parsed = 0.0, None
    for answer in sample.target:  # open questions: the first word, or a number within 5 %
        value, parsed = judges.number_or_text(text or "", answer, first_word=True)
        best = max(best, value)
    return judged_text(text, parsed, best)


MMMU = Benchmark("mmmu", "MMMU (val)", load_mmmu, judge_mmmu, aggregate_plain, primary="accuracy",
                 paper={"MMMU": "accuracy"}, max_new_tokens=128, source=MMMU_SOURCE)


# -- MathVista (testmini) --

def load_mathvista(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "testmini", source=MATHVISTA_SOURCE))):
        require(row, ["pid", "query", "decoded_image", "answer", "question_type"], where, "MathVista")
        image = [image_bytes(row["decoded_image"], where)]
        meta = {"pid": row["pid"], "category": row.get("question_type")}
        if row["question_type"] == "multi_choice":
            choices = _choices(row["choices"], where)
            if row["answer"] not in choices:
                raise ValueError(f"{where}: MathVista answer {row['answer']!r} is not one of the choices {choices}")
            samples.append(Sample(idx=i, prompt=f"{row['query']}\n{LETTER_SUFFIX}", choices=choices, images=image,
                                  target=letters(len(choices))[choices.index(row["answer"])], meta=meta))
        else:  # the query already holds the question and its hint; free-form answers get the short suffix
            samples.append(Sample(idx=i, prompt=f"{row['query']}\n{WORD_SUFFIX}", target=str(row["answer"]),
                                  images=image, meta=meta))
    return samples


def judge_mathvista(sample: Sample, text: str) -> Judged:
    if sample.choices:
        return judges.choice(sample, text)
    value, parsed = judges.number_or_text(text or "", sample.target)
    return judged_text(text, parsed, value)


MATHVISTA = Benchmark("mathvista", "MathVista (testmini)", load_mathvista, judge_mathvista, aggregate_plain,
                      primary="accuracy", paper={"MathVista": "accuracy"}, max_new_tokens=64, source=MATHVISTA_SOURCE)


# -- AI2D --

def load_ai2d(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=AI2D_SOURCE))):
        require(row, ["question", "options", "answer", "image"], where, "AI2D")
        choices = _choices(row["options"], where)
        samples.append(Sample(idx=i, prompt=f"{row['question']}\n{options_block(choices)}\n{LETTER_SUFFIX}",
                              target=letters(len(choices))[int(row["answer"])], choices=choices,
                              images=[image_bytes(row["image"], where)]))
    return samples


AI2D = Benchmark("ai2d", "AI2D", load_ai2d, judges.choice, aggregate_plain, primary="accuracy",
                 paper={"AI2D": "accuracy"}, max_new_tokens=16, source=AI2D_SOURCE)

BENCHMARKS = [SQA, MMMU, MATHVISTA, AI2D]
