"""The CV-Bench score (paper Appendix C; HF card "Accuracy"), from predictions any system produced.

    acc_2D = (acc_ADE20K + acc_COCO) / 2,   acc_3D = acc_Omni3D,   CV-Bench = (acc_2D + acc_3D) / 2

a macro average over sources, not over samples. We also report the micro average (what lmms-eval's wired
`cv_bench_aggregate_results` reports), per task, per source, and how many answers could not be parsed (they count
as wrong). A bench without one of the sources (a synthetic one has no ADE20K) still gets 2D and 3D as the mean of
the sources it has, and says so in `missing_sources`: its `overall` is then not the official number.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from cambrian.cvbench.layout import SOURCES_2D, SOURCES_3D, CVBenchRecord
from cambrian.eval.matching import extract_choice


def read_predictions(path: str | Path) -> dict[int, str]:
    """`{"idx": 12, "text": "..."}` per line -> {idx: text}; duplicates and bad lines are errors naming the line."""
    predictions: dict[int, str] = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                idx, text = int(row["idx"]), row["text"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line_no}: expected {{\"idx\": int, \"text\": str}} ({error})") from None
            if idx in predictions:
                raise ValueError(f"{path}:{line_no}: a second prediction for idx={idx}")
            predictions[idx] = "" if text is None else str(text)
    return predictions


def _acc(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def score_cvbench(records: list[CVBenchRecord], predictions: dict[int, str], allow_missing: bool = False) -> dict:
    """Score `predictions` ({idx: raw model text}) against `records`; accuracies are fractions in [0, 1]."""
    by_idx = {r.idx: r for r in records}
    unknown = sorted(set(predictions) - set(by_idx))
    if unknown:
        raise ValueError(f"{len(unknown)} predictions name an idx the bench lacks (first: {unknown[:5]})")
    missing = sorted(set(by_idx) - set(predictions))
    if missing and not allow_missing:
        raise ValueError(f"no prediction for {len(missing)} of {len(records)} samples (first idx: {missing[:5]}); "
                         "pass allow_missing=True (--allow-missing) to score them as wrong")

    per_source: dict[str, list[bool]] = defaultdict(list)
    per_task: dict[str, list[bool]] = defaultdict(list)
    flags, samples, n_unparsed = [], [], 0
    for r in records:
        text = predictions.get(r.idx)
        letter = extract_choice(text, r.choices) if text is not None else None
        n_unparsed += text is not None and letter is None
        ok = letter is not None and letter == r.answer_letter
        flags.append(ok)
        per_source[r.source].append(ok)
        per_task[r.task].append(ok)
        samples.append({"idx": r.idx, "task": r.task, "source": r.source, "answer": r.answer_letter,
                        "parsed": letter, "correct": ok})

    source_acc = {s: _acc(v) for s, v in sorted(per_source.items())}
    unknown_sources = sorted(set(source_acc) - set(SOURCES_2D) - set(SOURCES_3D))
    if unknown_sources:
        raise ValueError(f"records have sources {unknown_sources}; CV-Bench sources are {SOURCES_2D + SOURCES_3D}")
    present_2d = [s for s in SOURCES_2D if s in source_acc]
    present_3d = [s for s in SOURCES_3D if s in source_acc]
    if len(present_2d) == 2:
        acc_2d = (source_acc["ADE20K"] + source_acc["COCO"]) / 2  # the card's expression, term for term
    else:
        acc_2d = sum(source_acc[s] for s in present_2d) / len(present_2d) if present_2d else None
    acc_3d = source_acc["Omni3D"] if present_3d else None
    if acc_2d is not None and acc_3d is not None:
        overall = 1 / 2 * (acc_2d + acc_3d)  # == 1/2 * ((ade20k + coco) / 2 + omni) as lmms-eval writes it
    else:
        overall = acc_2d if acc_3d is None else acc_3d
    return {
        "benchmark": "cvbench",
        "overall": overall,
        "official": not (set(SOURCES_2D + SOURCES_3D) - set(source_acc)),
        "missing_sources": [s for s in SOURCES_2D + SOURCES_3D if s not in source_acc],
        "accuracy_2d": acc_2d,
        "accuracy_3d": acc_3d,
        "micro": _acc(flags),
        "per_source": {s: {"accuracy": source_acc[s], "n": len(per_source[s])} for s in source_acc},
        "per_task": {t: {"accuracy": _acc(v), "n": len(v)} for t, v in sorted(per_task.items())},
        "n": len(records),
        "n_correct": sum(flags),
        "n_unparsed": n_unparsed,
        "n_missing": len(missing),
        "samples": samples,
    }


def format_scores(scores: dict) -> str:
    """A small plain-text table (percentages) for the terminal."""
    pct = lambda v: "   -  " if v is None else f"{100 * v:6.2f}"
    lines = [f"CV-Bench  overall {pct(scores['overall'])}" + ("" if scores["official"] else
             f"  (not official: no {', '.join(scores['missing_sources'])})"),
             f"  2D {pct(scores['accuracy_2d'])}   3D {pct(scores['accuracy_3d'])}   micro {pct(scores['micro'])}"]
    for s, v in scores["per_source"].items():
        lines.append(f"  source {s:<8} {pct(v['accuracy'])}  (n={v['n']})")
    for t, v in scores["per_task"].items():
        lines.append(f"  task   {t:<8} {pct(v['accuracy'])}  (n={v['n']})")
    lines.append(f"  n={scores['n']}  correct={scores['n_correct']}  unparsed={scores['n_unparsed']}"
                 f"  missing={scores['n_missing']}")
    return "\n".join(lines)
