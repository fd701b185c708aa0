"""OCR & Chart: ChartQA, OCRBench, TextVQA, DocVQA, read from their public layouts."""

from __future__ import annotations

from pathlib import Path

from cambrian.eval.benchmarks.base import (
    NUMBER_SUFFIX,
    SHORT_SUFFIX,
    WORD_SUFFIX,
    Benchmark,
    Judged,
    Sample,
    find_split_files,
    image_bytes,
    judged_text,
    read_rows,
    require,
)
from cambrian.eval.benchmarks.general import aggregate_plain
from cambrian.eval.matching import anls, ocrbench_match, relaxed_match, vqa_accuracy
from cambrian.eval.metrics import accuracy, mean, per_key_accuracy

CHARTQA_SOURCE = "lmms-lab/ChartQA (data/test-*.parquet: type, question, answer, image)"
OCRBENCH_SOURCE = "echo840/OCRBench (data/test-*.parquet: dataset, question, question_type, answer list, image)"
TEXTVQA_SOURCE = ("lmms-lab/textvqa (data/validation-*.parquet: question_id, question, answers (10), ocr_tokens, "
                  "image)")
DOCVQA_SOURCE = "lmms-lab/DocVQA (DocVQA/validation-*.parquet: questionId, question, answers, image)"


def _open(sample: Sample, text: str, value: float) -> Judged:
    return judged_text(text, (text or "").strip() or None, value)


# -- ChartQA --

def load_chartqa(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=CHARTQA_SOURCE))):
        require(row, ["question", "answer", "image"], where, "ChartQA")
        samples.append(Sample(idx=i, prompt=f"{row['question']}\n{NUMBER_SUFFIX}", target=str(row["answer"]),
                              images=[image_bytes(row["image"], where)], meta={"category": row.get("type")}))
    return samples


CHARTQA = Benchmark("chartqa", "ChartQA", load_chartqa,
                    lambda s, t: _open(s, t, float(relaxed_match(t, s.target))), aggregate_plain,
                    primary="accuracy", paper={"ChartQA": "accuracy"}, chance=lambda s: 0.0, max_new_tokens=16,
                    source=CHARTQA_SOURCE)


# -- OCRBench --

def load_ocrbench(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "test", source=OCRBENCH_SOURCE))):
        require(row, ["question", "answer", "image"], where, "OCRBench")
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        samples.append(Sample(idx=i, prompt=f"{row['question'].strip()}\n{SHORT_SUFFIX}",
                              target=[str(a) for a in answers], images=[image_bytes(row["image"], where)],
                              meta={"category": row.get("question_type"), "dataset": row.get("dataset", "")}))
    return samples


def judge_ocrbench(sample: Sample, text: str) -> Judged:
    return _open(sample, text, float(ocrbench_match(text, sample.target, sample.meta["dataset"], exact=True)))


def aggregate_ocrbench(samples: list[Sample], values: list[float]) -> dict:
    """Cambrian's exact-match accuracy (0-100, the paper tables' scale) and the 0-1000 OCRBench-style count."""
    out = {"accuracy": accuracy(values), "score_1000": 1000 * mean(values)}
    out["per_category"] = per_key_accuracy([s.meta["category"] for s in samples], values)
    return out


OCRBENCH = Benchmark("ocrbench", "OCRBench", load_ocrbench, judge_ocrbench, aggregate_ocrbench, primary="accuracy",
                     paper={"OCRBench": "accuracy"}, chance=lambda s: 0.0, max_new_tokens=32, source=OCRBENCH_SOURCE)


# -- TextVQA --

def load_textvqa(root: Path) -> list[Sample]:
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "validation", source=TEXTVQA_SOURCE))):
        require(row, ["question", "answers", "image"], where, "TextVQA")
        if not row["answers"]:
            raise ValueError(f"{where}: TextVQA record without answers (the test split has none; use validation)")
        tokens = row.get("ocr_tokens") or []
        ocr = f"\nReference OCR tokens: {', '.join(tokens)}" if tokens else ""
        samples.append(Sample(idx=i, prompt=f"{row['question']}{ocr}\n{WORD_SUFFIX}", target=list(row["answers"]),
                              images=[image_bytes(row["image"], where)]))
    return samples


TEXTVQA = Benchmark("textvqa", "TextVQA (val)", load_textvqa, lambda s, t: _open(s, t, vqa_accuracy(t, s.target)),
                    lambda s, v: {"accuracy": accuracy(v)}, primary="accuracy", paper={"TextVQA": "accuracy"},
                    chance=lambda s: 0.0, max_new_tokens=16, source=TEXTVQA_SOURCE)


# -- DocVQA --

def load_docvqa(root: Path) -> list[Sample]:
    config = "DocVQA" if (root / "DocVQA").is_dir() else None
    samples = []
    for i, (where, row) in enumerate(read_rows(find_split_files(root, "validation", config, DOCVQA_SOURCE))):
        require(row, ["question", "answers", "image"], where, "DocVQA")
        if not row["answers"]:
            raise ValueError(f"{where}: DocVQA record without answers (the test split is scored by the RRC server)")
        samples.append(Sample(idx=i, prompt=f"{row['question']}\n{SHORT_SUFFIX}", target=list(row["answers"]),
                              images=[image_bytes(row["image"], where)]))
    return samples


DOCVQA = Benchmark("docvqa", "DocVQA (val)", load_docvqa, lambda s, t: _open(s, t, anls(t, s.target)),
                   lambda s, v: {"anls": accuracy(v)}, primary="anls", paper={"DocVQA": "anls"},
                   chance=lambda s: 0.0, max_new_tokens=32, source=DOCVQA_SOURCE)

BENCHMARKS = [CHARTQA, OCRBENCH, TEXTVQA, DOCVQA]
