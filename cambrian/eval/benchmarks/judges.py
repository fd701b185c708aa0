"""Per-answer judges shared by the benchmarks (the rules themselves live in cambrian.eval.matching)."""

from __future__ import annotations

import re

from cambrian.eval.benchmarks.base import Judged, Sample, judged_text
from cambrian.eval.matching import (
    after_answer_phrase,
    extract_choice,
    extract_yes_no,
    is_refusal,
    numbers_match,
    parse_number,
    short_answer_match,
    vocabulary_match,
)


def choice(sample: Sample, text: str) -> Judged:
    """Multiple choice: the letter the answer picks (letter forms, "answer is X", unique option text) vs target."""
    letter = extract_choice(text, sample.choices or [])
    return Judged(float(letter is not None and letter == sample.target), letter, refused=letter is None and
                  is_refusal(text))


def yes_no(sample: Sample, text: str) -> Judged:
    answer = extract_yes_no(text)
    return Judged(float(answer is not None and answer == str(sample.target).strip().lower()), answer,
                  refused=answer is None and is_refusal(text))


def short(sample: Sample, text: str) -> Judged:
    """Single word or phrase, exact after lowercasing and a trailing period (GQA)."""
    return judged_text(text, after_answer_phrase(text or "").strip(), float(short_answer_match(text, sample.target)))


def vocabulary(sample: Sample, text: str) -> Judged:
    """A closed answer vocabulary (easy-VQA): exactly the target, or the only vocabulary word named."""
    word = vocabulary_match(text, sample.target, sample.choices or [])
    if word is None and short_answer_match(text, sample.target):
        word = sample.target
    return Judged(float(word == sample.target), word, refused=word is None and is_refusal(text))


_NUMERIC = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")


def number_or_text(text: str, target: str, first_word: bool = False) -> tuple[float, str | None]:
    """Free-form: numbers within 5 % when the target is a number; else exact text (or its first word)."""
    gt_number = parse_number(target) if _NUMERIC.fullmatch(target.strip()) else None
    if gt_number is not None:
        value = parse_number(text)
        return float(value is not None and numbers_match(value, gt_number)), None if value is None else str(value)
    answer = after_answer_phrase(text).strip().lower().rstrip(".").strip()
    gt = target.strip().lower().rstrip(".").strip()
    if first_word and answer and answer != gt:
        answer = answer.split()[0].strip(".,:;!\"'()")
    return float(answer == gt), answer or None
