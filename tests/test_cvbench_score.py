"""CV-Bench scoring: answer extraction, golden official scores, and a cross-check against lmms-eval 0.7.3."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cambrian.cvbench.layout import CVBenchRecord, format_prompt, write_cvbench
from cambrian.cvbench.score import read_predictions, score_cvbench
from cambrian.eval.cli import app as eval_app
from cambrian.eval.matching import extract_choice

LMMS_EVAL = "lmms-eval==0.7.3"


@pytest.mark.parametrize("text,letter", [
    ("B", "B"), ("b", "B"), ("(B)", "B"), ("B.", "B"), ("B)", "B"), ("**B**", "B"), (" Option B ", "B"),
    ("The answer is B", "B"), ("The answer is (B).", "B"), ("Answer: B", "B"), ("The answer is: b.", "B"),
    ("The correct option is B.", "B"), ("B. right", "B"), ("(B) right", "B"), ("right", "B"),
    ("It is on the right.", "B"), ("I would pick (B) here", "B"), ("Answer: right", "B"),
])
def test_extraction_reads(text, letter):
    assert extract_choice(text, ["left", "right"]) == letter


@pytest.mark.parametrize("text", [
    "", "   ", None, "A cat", "The answer is a ball", "left or right", "(A) left (B) right", "A. right", "E", "C",
    "I cannot tell.",
])
def test_extraction_never_guesses(text):
    assert extract_choice(text, ["left", "right"]) is None


def test_extraction_option_text():
    assert extract_choice("There are 3 balls.", ["1", "2", "3", "4"]) == "C"
    assert extract_choice("3 or 4", ["1", "2", "3", "4"]) is None
    assert extract_choice("the beach ball", ["ball", "beach ball"]) == "B"  # the longer option contains the shorter


def _record(idx, source, task, answer="(A)", choices=("left", "right")):
    kind = "3D" if source == "Omni3D" else "2D"
    q = f"question {idx}?"
    return CVBenchRecord(idx=idx, type=kind, task=task, question=q, choices=list(choices), answer=answer,
                         prompt=format_prompt(q, list(choices)), filename=f"img/{kind}/{task.lower()}/{idx}.png",
                         source=source, source_dataset=source, source_filename=f"{idx}.jpg")


def test_golden_official_score():
    records = ([_record(i, "ADE20K", "Count") for i in range(4)] + [_record(4 + i, "COCO", "Relation")
               for i in range(2)] + [_record(6 + i, "Omni3D", "Depth", "(B)") for i in range(4)])
    predictions = {
        0: "A", 1: "(A)", 2: "The answer is A.", 3: "B",  # ADE20K 3/4
        4: "left", 5: "blah",  # COCO 1/2, one unparsable
        6: "B", 7: "A", 8: "(A) left (B) right", 9: "A",  # Omni3D 1/4, one unparsable
    }
    s = score_cvbench(records, predictions)
    assert s["per_source"] == {"ADE20K": {"accuracy": 0.75, "n": 4}, "COCO": {"accuracy": 0.5, "n": 2},
                               "Omni3D": {"accuracy": 0.25, "n": 4}}
    assert s["accuracy_2d"] == 0.625 and s["accuracy_3d"] == 0.25
    assert s["overall"] == 0.4375  # 1/2 * ((0.75 + 0.5) / 2 + 0.25), not the micro 5/10
    assert s["micro"] == 0.5 and s["n_correct"] == 5 and s["n_unparsed"] == 2 and s["official"]
    assert s["per_task"]["Count"] == {"accuracy": 0.75, "n": 4}


def test_missing_predictions_and_sources():
    records = [_record(0, "COCO", "Count"), _record(1, "Omni3D", "Depth")]
    with pytest.raises(ValueError, match="no prediction for 1 of 2"):
        score_cvbench(records, {0: "A"})
    with pytest.raises(ValueError, match="idx the bench lacks"):
        score_cvbench(records, {0: "A", 1: "A", 7: "A"})
    s = score_cvbench(records, {0: "A"}, allow_missing=True)
    assert s["n_missing"] == 1 and s["overall"] == 0.5 and not s["official"] and s["missing_sources"] == ["ADE20K"]


def _lmms_eval_cv_bench():
    """lmms-eval's tasks/cv_bench/utils.py, loaded by path (it imports only the standard library)."""
    if importlib.util.find_spec("lmms_eval") is None:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", LMMS_EVAL],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot install {LMMS_EVAL}: {done.stderr.strip()[-200:]}")
        importlib.invalidate_caches()
    from importlib.metadata import version

    assert version("lmms-eval") == "0.7.3"
    root = Path(importlib.util.find_spec("lmms_eval").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("lmms_cv_bench_utils", root / "tasks/cv_bench/utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lmms_results(lmms, records, predictions):
    return [lmms.cv_bench_process_results({"idx": r.idx, "answer": r.answer, "type": r.type, "task": r.task,
                                           "source": r.source}, [predictions[r.idx]])["cv_bench_acc"]
            for r in records]


def test_cross_check_with_lmms_eval():
    lmms = _lmms_eval_cv_bench()
    rng = np.random.default_rng(0)
    sources = ["ADE20K"] * 300 + ["COCO"] * 250 + ["Omni3D"] * 450  # unequal sizes: macro != micro
    records = []
    for i, source in enumerate(sources):
        k = 4 if i % 3 == 0 else 2
        choices = [str(v) for v in range(k)]
        task = {"ADE20K": "Count", "COCO": "Relation", "Omni3D": "Depth"}[source]
        records.append(_record(i, source, task, f"({'ABCD'[int(rng.integers(k))]})", choices))
    predictions = {r.idx: "ABCD"[int(rng.integers(len(r.choices)))] for r in records}  # bare letters
    ours = score_cvbench(records, predictions)
    theirs = _lmms_results(lmms, records, predictions)
    assert ours["micro"] == lmms.cv_bench_aggregate_results(theirs)
    assert ours["overall"] == lmms.cv_bench_default_aggregate_results(theirs)
    assert ours["overall"] != ours["micro"]

    # where lmms-eval's start-anchored extractor misreads, ours does not: "The answer is B" -> "T"
    verbose = {r.idx: f"The answer is {r.answer_letter}." for r in records}
    assert score_cvbench(records, verbose)["micro"] == 1.0
    theirs = _lmms_results(lmms, records, verbose)
    assert {t["pred_parsed"] for t in theirs} == {"T"} and lmms.cv_bench_aggregate_results(theirs) == 0.0


def test_cli_scores_a_bench_folder(tmp_path):
    records = [_record(0, "ADE20K", "Count"), _record(1, "COCO", "Relation", "(B)"), _record(2, "Omni3D", "Depth")]
    for r in records:
        r.image_bytes = b"\x89PNG fake"  # the scorer never opens images
    bench = write_cvbench(tmp_path / "bench", records)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps({"idx": i, "text": t}) for i, t in
                               [(0, "A"), (1, "The answer is A"), (2, "(A)")]) + "\n")
    result = CliRunner().invoke(eval_app, ["score", "--bench", f"cvbench:{bench}", "--predictions", str(preds)])
    assert result.exit_code == 0, result.output
    assert "overall  75.00" in result.output
    written = json.loads((tmp_path / "preds.cvbench_scores.json").read_text())
    assert written["results"]["overall"] == 0.75 and written["results"]["per_source"]["COCO"]["accuracy"] == 0.0
    assert [s["parsed"] for s in written["samples"]] == ["A", "A", "A"]

    preds.write_text('{"idx": 0, "text": "A"}\n{"idx": 0, "text": "B"}\n')
    with pytest.raises(ValueError, match=r"preds.jsonl:2: a second prediction for idx=0"):
        read_predictions(preds)
    result = CliRunner().invoke(eval_app, ["score", "--bench", "nope:x", "--predictions", str(preds)])
    assert result.exit_code != 0 and "unknown benchmark" in result.output
