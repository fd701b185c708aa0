"""Vision-Centric: MMVP (pairs), RealWorldQA, CV-Bench (2D, 3D, combined); plus easy-VQA test (installed package)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from cambrian.eval.benchmarks import judges
from cambrian.eval.benchmarks.base import (
    LETTER_SUFFIX,
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
from cambrian.eval.metrics import accuracy, all_correct, cvbench_scores, per_key_accuracy

MMVP_SOURCE = "MMVP/MMVP (Questions.csv: Index, Question, Options \"(a) x (b) y\", Correct Answer; MMVP Images/N.jpg)"
RWQA_SOURCE = "lmms-lab/RealWorldQA (data/test-*.parquet: image, question (instruction included), answer)"
CVBENCH_SOURCE = "nyu-visionx/CV-Bench (test.parquet or test.jsonl + img/, or test_2d/test_3d files)"


# -- MMVP --

_MMVP_OPTION = re.compile(r"\(([a-z])\)\s*(.*?)\s*(?=\([a-z]\)|$)", re.DOTALL)


def load_mmvp(root: Path) -> list[Sample]:
    questions = root / "Questions.csv"
    if not questions.exists():
        raise FileNotFoundError(f"{root}: no Questions.csv (expected the layout of {MMVP_SOURCE})")
    samples = []
    with open(questions, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.DictReader(f), 2):
            where = f"{questions}:{line_no}"
            index = row.get("Index", row.get("lndex"))  # the released header spells it "lndex"
            if index is None or not row.get("Question") or not row.get("Options") or not row.get("Correct Answer"):
                raise ValueError(f"{where}: MMVP row needs Index, Question, Options and Correct Answer")
            options = _MMVP_OPTION.findall(row["Options"])
            if len(options) < 2:
                raise ValueError(f"{where}: cannot read options from {row['Options']!r} (expected \"(a) x (b) y\")")
            choices = [text for _, text in options]
            answer = row["Correct Answer"].strip().strip("()").lower()
            image = root / "MMVP Images" / f"{int(index)}.jpg"
            if not image.exists():
                raise FileNotFoundError(f"{where}: image {image} not found")
            samples.append(Sample(idx=int(index), prompt=f"{row['Question']}\nOptions:\n{options_block(choices)}\n"
                                  f"{LETTER_SUFFIX}", target=letters(len(choices))[ord(answer) - 97], choices=choices,
                                  images=[image], meta={"pair": (int(index) - 1) // 2}))
    return samples


def aggregate_mmvp(samples: list[Sample], values: list[float]) -> dict:
    """Pair accuracy: images come in CLIP-blind pairs (rows 1-2, 3-4, ...); a pair counts if both are right."""
    return {"pair_accuracy": all_correct([s.meta["pair"] for s in samples], values), "accuracy": accuracy(values)}


MMVP = Benchmark("mmvp", "MMVP", load_mmvp, judges.choice, aggregate_mmvp, primary="pair_accuracy",
                 paper={"MMVP": "pair_accuracy"}, max_new_tokens=16, source=MMVP_SOURCE)


# -- RealWorldQA --

_RWQA_OPTION = re.compile(r"^([A-Z])\.\s+(.+)$", re.MULTILINE)


def load_rwqa(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=RWQA_SOURCE))):
        require(row, ["question", "answer", "image"], where, "RealWorldQA")
        options = _RWQA_OPTION.findall(row["question"])
        answer = row["answer"].strip()
        is_mc = len(options) >= 2 and [k for k, _ in options] == letters(len(options)) and answer in letters(26)
        samples.append(Sample(idx=i, prompt=row["question"], target=answer,  # the question holds its instruction
                              choices=[t.strip() for _, t in options] if is_mc else None,
                              images=[image_bytes(row["image"], where)]))
    return samples


def judge_rwqa(sample: Sample, text: str) -> Judged:
    if sample.choices:
        return judges.choice(sample, text)
    value, parsed = judges.number_or_text(text or "", sample.target, first_word=True)
    return judged_text(text, parsed, value)


RWQA = Benchmark("realworldqa", "RealWorldQA", load_rwqa, judge_rwqa, lambda s, v: {"accuracy": accuracy(v)},
                 primary="accuracy", paper={"RealWorldQA": "accuracy"}, max_new_tokens=16, source=RWQA_SOURCE)


# -- CV-Bench --

def _load_cvbench(root: Path, kind: str | None) -> list[Sample]:
    from cambrian.cvbench.layout import load_cvbench

    samples = []
    for r in load_cvbench(root):
        if kind and r.type != kind:
            continue
        image = r.image_bytes if r.image_bytes is not None else (r.root or root) / r.filename
        samples.append(Sample(idx=r.idx, prompt=r.model_prompt, target=r.answer_letter, choices=list(r.choices),
                              images=[image], meta={"source": r.source, "task": r.task, "type": r.type}))
    if not samples:
        raise ValueError(f"{root}: no {kind or ''} CV-Bench records")
    return samples


def aggregate_cvbench(samples: list[Sample], values: list[float]) -> dict:
    scores = cvbench_scores([s.meta["source"] for s in samples], values)
    return {"overall": scores["overall"], "2d": scores["2d"], "3d": scores["3d"], "micro": accuracy(values),
            "per_source": scores["per_source"], "per_task": per_key_accuracy([s.meta["task"] for s in samples],
                                                                            values)}


CVBENCH = Benchmark("cvbench", "CV-Bench", lambda root: _load_cvbench(root, None), judges.choice, aggregate_cvbench,
                    primary="overall", paper={"CV-Bench-2D": "2d", "CV-Bench-3D": "3d"}, max_new_tokens=16,
                    source=CVBENCH_SOURCE)
CVBENCH_2D = Benchmark("cvbench-2d", "CV-Bench-2D", lambda root: _load_cvbench(root, "2D"), judges.choice,
                       aggregate_cvbench, primary="2d", paper={"CV-Bench-2D": "2d"}, max_new_tokens=16,
                       source=CVBENCH_SOURCE)
CVBENCH_3D = Benchmark("cvbench-3d", "CV-Bench-3D", lambda root: _load_cvbench(root, "3D"), judges.choice,
                       aggregate_cvbench, primary="3d", paper={"CV-Bench-3D": "3d"}, max_new_tokens=16,
                       source=CVBENCH_SOURCE)


# -- easy-VQA (test split of the installed `easy_vqa` package) --

EASYVQA_SHAPES = ("circle", "rectangle", "triangle")
EASYVQA_NEGATION = re.compile(r"\b(not|no)\b")  # "is there not a red shape?", "is no circle present?"


def easyvqa_named(question: str, answer: str) -> str:
    """Whether a yes/no question's colour or shape is the image's own ("present") or not ("absent"), read off the
    answer and the negation. easy-VQA names an absent one in 181 of the 212 yes/no questions among its first 300 test
    questions, so a model that assumes "absent" (positive form -> "no", negated -> "yes") scores 85.4 % on them
    without looking: the "present" ones tell a comparison with the image from that prior."""
    return "present" if (answer == "yes") != bool(EASYVQA_NEGATION.search(question)) else "absent"


def load_easyvqa(root: Path | None = None) -> list[Sample]:
    try:
        import easy_vqa
    except ModuleNotFoundError:
        raise ModuleNotFoundError("easy-VQA needs the `easy-vqa` package (pip install -r requirements-assets.txt)"
                                  ) from None
    questions, answers, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    vocabulary = easy_vqa.get_answers()
    groups = {"yes/no": ["yes", "no"], "shape": [a for a in vocabulary if a in EASYVQA_SHAPES]}
    groups["color"] = [a for a in vocabulary if a not in groups["yes/no"] + groups["shape"]]
    samples = []
    for i, (question, answer, image_id) in enumerate(zip(questions, answers, image_ids, strict=True)):
        group = next(g for g, words in groups.items() if answer in words)
        meta = {"category": group, **({"named": easyvqa_named(question, answer)} if group == "yes/no" else {})}
        samples.append(Sample(idx=i, prompt=f"{question}\n{WORD_SUFFIX}", target=answer, images=[paths[image_id]],
                              choices=groups[group], meta=meta))
    return samples


def aggregate_easyvqa(samples: list[Sample], values: list[float]) -> dict:
    """Accuracy, per category (colour, shape, yes/no), and the yes/no questions split by whether the colour or shape
    they name is in the image (`easyvqa_named`), with their counts."""
    yes_no = [k for k, s in enumerate(samples) if "named" in s.meta]
    named = [samples[k].meta["named"] for k in yes_no]
    return {"accuracy": accuracy(values),
            "per_category": per_key_accuracy([s.meta["category"] for s in samples], values),
            "yes_no_named": per_key_accuracy(named, [values[k] for k in yes_no]),
            "yes_no_named_n": {key: named.count(key) for key in sorted(set(named))}}


EASYVQA = Benchmark("easyvqa", "easy-VQA (test)", load_easyvqa, judges.vocabulary, aggregate_easyvqa,
                    primary="accuracy", max_new_tokens=8, needs_dir=False,
                    source="the `easy_vqa` package (get_test_questions, get_test_image_paths)")

BENCHMARKS = [MMVP, RWQA, CVBENCH, CVBENCH_2D, CVBENCH_3D, EASYVQA]
