"""Every benchmark loader on a small fixture in its public layout, scored through `cambrian eval score`, against a
hand-computed golden score (and random-guess expectation). Also the exact prompts (snapshots)."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cambrian.cvbench.layout import CVBenchRecord, format_prompt, write_cvbench
from cambrian.eval.benchmarks import get_benchmark, load_samples
from cambrian.eval.cli import app as eval_app


def png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_cell(seed: int = 0) -> dict:
    return {"bytes": png(seed), "path": f"{seed}.png"}


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def score(tmp_path, spec: str, predictions: dict, *extra) -> dict:
    preds = tmp_path / f"preds_{spec.split(':')[0]}.jsonl"
    preds.write_text("".join(json.dumps({"idx": i, "text": t}) + "\n" for i, t in predictions.items()))
    result = CliRunner().invoke(eval_app, ["score", "--bench", spec, "--predictions", str(preds), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(next(tmp_path.glob(f"preds_{spec.split(':')[0]}.*_scores.json")).read_text())["results"]


# -- General --
def test_mme(tmp_path):
    q = "Is there a {} in the image? Please answer yes or no."
    rows = [{"question_id": f"existence/{img}.png", "image": image_cell(img), "question": q.format(obj),
             "answer": ans, "category": cat}
            for img, obj, ans, cat in [(1, "dog", "Yes", "existence"), (1, "cat", "No", "existence"),
                                       (2, "dog", "Yes", "existence"), (2, "cat", "No", "existence"),
                                       (3, "sign", "Yes", "OCR"), (3, "word", "No", "OCR")]]
    write_parquet(tmp_path / "MME/data/test-00000-of-00001.parquet", rows)
    samples = load_samples(get_benchmark("mme"), tmp_path / "MME")
    assert samples[0].prompt == "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    r = score(tmp_path, f"mme:{tmp_path / 'MME'}", {0: "Yes", 1: "No", 2: "yes", 3: "Yes", 4: "No idea", 5: "no"})
    # existence: acc 3/4 = 75, acc+ 1/2 = 50 -> 125; OCR: acc 50, acc+ 0 -> 50; perception 175
    assert r["score"] == 175.0 and r["paper"] == {"MME-P": 175.0}
    assert r["metrics"]["per_category"]["existence"]["score"] == 125.0
    assert r["random"]["perception"] == 150.0  # 50 + 25 per category
    assert r["n_unparsed"] == 1 and r["n_refused"] == 1


def test_mmbench_circular(tmp_path):
    def row(index, options, answer, question="Which animal?"):
        cells = dict(zip("ABCD", options + [None] * (4 - len(options)), strict=True))
        return {"index": index, "question": question, "hint": None, **cells, "answer": answer, "category": "attr",
                "image": image_cell(index % 7), "L2-category": "perception", "source": "x", "split": "dev"}
    rows = [row(1, ["cat", "dog", "bird"], "A"), row(1_000_001, ["dog", "bird", "cat"], "C"),
            row(2_000_001, ["bird", "cat", "dog"], "B"),
            row(2, ["red", "blue"], "A", "Which colour?"), row(1_000_002, ["blue", "red"], "B", "Which colour?")]
    write_parquet(tmp_path / "MMB/data/dev-00000-of-00001.parquet", rows)
    samples = load_samples(get_benchmark("mmbench"), tmp_path / "MMB")
    assert samples[0].prompt == ("Which animal?\nA. cat\nB. dog\nC. bird\n"
                                 "Answer with the option's letter from the given choices directly.")
    r = score(tmp_path, f"mmbench:{tmp_path / 'MMB'}",
              {1: "A", 1_000_001: "The answer is (C).", 2_000_001: "cat", 2: "A", 1_000_002: "A"})
    assert r["score"] == 50.0 and r["metrics"]["accuracy"] == 80.0  # question 1 all right, question 2 not
    assert r["random"]["circular"] == pytest.approx(100 * ((1 / 3) ** 3 + (1 / 2) ** 2) / 2)


def test_seed_image_only(tmp_path):
    base = {"question": "What is shown?", "choice_a": "cat", "choice_b": "dog", "choice_c": "car", "choice_d": "sun"}
    rows = [{**base, "question_id": "1", "answer": "A", "data_type": "image", "image": [image_cell(1)]},
            {**base, "question_id": "2", "answer": "C", "data_type": "image", "image": [image_cell(2)]},
            {**base, "question_id": "3", "answer": "B", "data_type": "video", "image": [image_cell(3)]}]
    write_parquet(tmp_path / "SEED/data/test-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"seed:{tmp_path / 'SEED'}", {0: "A", 1: "The answer is D"})
    assert r["n"] == 2 and r["score"] == 50.0 and r["random"]["accuracy"] == 25.0


def test_gqa_two_configs(tmp_path):
    write_parquet(tmp_path / "GQA/testdev_balanced_images/testdev-00000-of-00001.parquet",
                  [{"id": "n1", "image": image_cell(1)}, {"id": "n2", "image": image_cell(2)}])
    write_parquet(tmp_path / "GQA/testdev_balanced_instructions/testdev-00000-of-00001.parquet",
                  [{"id": "q1", "imageId": "n1", "question": "What is it?", "answer": "table"},
                   {"id": "q2", "imageId": "n1", "question": "Is it red?", "answer": "yes"},
                   {"id": "q3", "imageId": "n2", "question": "Which side?", "answer": "left"}])
    r = score(tmp_path, f"gqa:{tmp_path / 'GQA'}", {0: "Table.", 1: "the yes", 2: "right"})
    assert r["score"] == pytest.approx(100 / 3) and r["random"]["accuracy"] == 0.0


# -- Knowledge --
def test_scienceqa_img(tmp_path):
    rows = [{"image": image_cell(1), "question": "Which is a mammal?", "choices": ["frog", "whale"], "answer": 1,
             "hint": "Look closely.", "subject": "natural science"},
            {"image": None, "question": "Text only?", "choices": ["a", "b"], "answer": 0, "hint": "",
             "subject": "language science"},
            {"image": image_cell(2), "question": "Which is hot?", "choices": ["ice", "fire", "snow"], "answer": 1,
             "hint": "", "subject": "natural science"},
            {"image": image_cell(3), "question": "Which is blue?", "choices": ["sky", "grass"], "answer": 0,
             "hint": "", "subject": "natural science"}]
    write_parquet(tmp_path / "SQA/data/test-00000-of-00001.parquet", rows)
    samples = load_samples(get_benchmark("sqa"), tmp_path / "SQA")
    assert [s.idx for s in samples] == [0, 2, 3]  # SQA-I keeps the questions with an image
    assert samples[0].prompt == ("Look closely.\nWhich is a mammal?\nA. frog\nB. whale\n"
                                 "Please answer directly with only the letter of the correct option and nothing else.")
    r = score(tmp_path, f"sqa:{tmp_path / 'SQA'}", {0: "B", 2: "fire", 3: "no idea"})
    assert r["score"] == pytest.approx(200 / 3) and r["n_refused"] == 1
    assert r["random"]["accuracy"] == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 2) / 3)


def test_mmmu(tmp_path):
    def row(i, question, options, answer, kind):
        return {"id": f"validation_{i}", "question": question, "options": options, "answer": answer,
                "question_type": kind, "image_1": image_cell(i), "subfield": "x"}
    write_parquet(tmp_path / "MMMU/Accounting/validation-00000-of-00001.parquet",
                  [row(1, "How many? <image 1>", "['1', '2', '3']", "B", "multiple-choice"),
                   row(2, "What is the total?", "[]", "12", "open")])
    write_parquet(tmp_path / "MMMU/Art/validation-00000-of-00001.parquet",
                  [row(3, "Which city?", "[]", "['Paris', 'paris city']", "open"),
                   row(4, "Pick one", "['w', 'x', 'y', 'z']", "D", "multiple-choice")])
    samples = load_samples(get_benchmark("mmmu"), tmp_path / "MMMU")
    assert samples[0].prompt.startswith("How many?\nA. 1\nB. 2\nC. 3\n")  # <image 1> tag removed
    r = score(tmp_path, f"mmmu:{tmp_path / 'MMMU'}", {0: "(B)", 1: "12.5", 2: "Paris is the answer", 3: "A"})
    assert r["score"] == 75.0  # 12.5 is within 5 % of 12; "Paris" is the first word
    assert r["random"]["accuracy"] == pytest.approx(100 * (1 / 3 + 1 / 4) / 4)


def test_mathvista(tmp_path):
    rows = [{"pid": "1", "query": "Hint: answer with a letter.\nQuestion: Which angle?\nChoices:\n(A) 145°\n(B) 35°",
             "decoded_image": image_cell(1), "choices": ["145°", "35°"], "answer": "35°",
             "question_type": "multi_choice", "answer_type": "text"},
            {"pid": "2", "query": "Hint: integer.\nQuestion: How many?", "decoded_image": image_cell(2),
             "choices": None,
             "answer": "7", "question_type": "free_form", "answer_type": "integer"},
            {"pid": "3", "query": "Hint: float.\nQuestion: Length?", "decoded_image": image_cell(3), "choices": None,
             "answer": "1.5", "question_type": "free_form", "answer_type": "float"}]
    write_parquet(tmp_path / "MV/data/testmini-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"mathvista:{tmp_path / 'MV'}", {0: "B", 1: "The answer is 7.", 2: "1.6"})
    assert r["score"] == pytest.approx(200 / 3)  # 1.6 is 6.7 % off 1.5
    assert r["random"]["accuracy"] == pytest.approx(100 / 6)


def test_ai2d(tmp_path):
    rows = [{"question": "Which stage?", "options": ["egg", "larva", "pupa", "adult"], "answer": "2",
             "image": image_cell(i)} for i in range(2)]
    write_parquet(tmp_path / "AI2D/data/test-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"ai2d:{tmp_path / 'AI2D'}", {0: "C", 1: "D"})
    assert r["score"] == 50.0 and r["random"]["accuracy"] == 25.0


# -- OCR & Chart --
def test_chartqa(tmp_path):
    rows = [{"type": "human_test", "question": "Value?", "answer": a, "image": image_cell(i)}
            for i, a in enumerate(["100", "Yes", "0.12"])]
    write_parquet(tmp_path / "CQA/data/test-00000-of-00001.parquet", rows)
    samples = load_samples(get_benchmark("chartqa"), tmp_path / "CQA")
    assert samples[0].prompt == "Value?\nAnswer the question using a single number or phrase."
    r = score(tmp_path, f"chartqa:{tmp_path / 'CQA'}", {0: "104", 1: "no", 2: "12%"})
    assert r["score"] == pytest.approx(200 / 3)


def test_ocrbench(tmp_path):
    rows = [{"dataset": "IIIT5K", "question": "What is written?", "question_type": "Regular Text Recognition",
             "answer": ["Coca Cola"], "image": image_cell(1)},
            {"dataset": "IIIT5K", "question": "What is written?", "question_type": "Regular Text Recognition",
             "answer": ["STOP"], "image": image_cell(2)},
            {"dataset": "HME100k", "question": "Write the expression.", "answer": ["x^2"], "image": image_cell(3),
             "question_type": "Handwritten Mathematical Expression Recognition"}]
    write_parquet(tmp_path / "OCRB/data/test-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"ocrbench:{tmp_path / 'OCRB'}", {0: "coca cola", 1: "it says STOP", 2: "x ^ 2"})
    assert r["score"] == pytest.approx(200 / 3) and r["metrics"]["score_1000"] == pytest.approx(2000 / 3)


def test_textvqa(tmp_path):
    rows = [{"question_id": 1, "question": "What does the sign say?", "answers": ["stop"] + ["go"] * 9,
             "ocr_tokens": ["STOP", "ahead"], "image": image_cell(1)},
            {"question_id": 2, "question": "How many?", "answers": ["2"] * 10, "ocr_tokens": [],
             "image": image_cell(2)}]
    write_parquet(tmp_path / "TVQA/data/validation-00000-of-00001.parquet", rows)
    samples = load_samples(get_benchmark("textvqa"), tmp_path / "TVQA")
    assert samples[0].prompt == ("What does the sign say?\nReference OCR tokens: STOP, ahead\n"
                                 "Answer the question using a single word or phrase.")
    r = score(tmp_path, f"textvqa:{tmp_path / 'TVQA'}", {0: "stop", 1: "two"})
    assert r["score"] == pytest.approx(65.0)  # (0.3 + 1.0) / 2


def test_docvqa(tmp_path):
    rows = [{"questionId": 1, "question": "Greeting?", "answers": ["hello"], "image": image_cell(1)},
            {"questionId": 2, "question": "Code?", "answers": ["abc"], "image": image_cell(2)}]
    write_parquet(tmp_path / "DOC/DocVQA/validation-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"docvqa:{tmp_path / 'DOC'}", {0: "hallo", 1: "xyz"})
    assert r["score"] == pytest.approx(40.0)  # ANLS (0.8 + 0) / 2


# -- Vision-Centric --
def test_mmvp_pairs(tmp_path):
    root = tmp_path / "MMVP"
    (root / "MMVP Images").mkdir(parents=True)
    with open(root / "Questions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["lndex", "Question", "Options", "Correct Answer"])  # the released header's spelling
        for i, answer in enumerate(["(a)", "(b)", "(a)", "(b)"], 1):
            writer.writerow([i, "Is the door open or closed?", "(a) Open (b) Closed", answer])
            (root / "MMVP Images" / f"{i}.jpg").write_bytes(png(i))
    samples = load_samples(get_benchmark("mmvp"), root)
    assert samples[0].prompt == ("Is the door open or closed?\nOptions:\nA. Open\nB. Closed\n"
                                 "Answer with the option's letter from the given choices directly.")
    r = score(tmp_path, f"mmvp:{root}", {1: "A", 2: "(b) Closed", 3: "a", 4: "Open"})
    assert r["score"] == 50.0 and r["metrics"]["accuracy"] == 75.0 and r["random"]["pair_accuracy"] == 25.0


def test_realworldqa(tmp_path):
    rows = [{"question": "Which way?\n\nA. Left\nB. Straight\nC. Right\n\nPlease answer directly with a single "
             "letter.", "answer": "C", "image": image_cell(1)},
            {"question": "How many cars?\nPlease answer directly with a single word or number.", "answer": "2",
             "image": image_cell(2)}]
    write_parquet(tmp_path / "RWQA/data/test-00000-of-00001.parquet", rows)
    r = score(tmp_path, f"realworldqa:{tmp_path / 'RWQA'}", {0: "C.", 1: "3 cars"})
    assert r["score"] == 50.0 and r["random"]["accuracy"] == pytest.approx(100 / 6)


def _cvbench(tmp_path):
    def rec(idx, source, answer):
        kind = "3D" if source == "Omni3D" else "2D"
        q = f"question {idx}?"
        return CVBenchRecord(idx=idx, type=kind, task="Depth" if kind == "3D" else "Count", question=q,
                             choices=["left", "right"], answer=answer, prompt=format_prompt(q, ["left", "right"]),
                             filename=f"img/{kind}/x/{idx}.png", source=source, source_dataset=source,
                             source_filename=f"{idx}.jpg", image_bytes=png(idx))
    records = [rec(0, "ADE20K", "(A)"), rec(1, "ADE20K", "(A)"), rec(2, "COCO", "(B)"), rec(3, "Omni3D", "(A)"),
               rec(4, "Omni3D", "(B)")]
    return write_cvbench(tmp_path / "CVB", records)


def test_cvbench_2d_3d_and_the_original_scorer_agree(tmp_path):
    bench = _cvbench(tmp_path)
    preds = {0: "A", 1: "B", 2: "right", 3: "The answer is (A).", 4: "A"}
    # ADE20K 1/2, COCO 1/1 -> 2D = 75; Omni3D 1/2 -> 3D = 50; overall 62.5
    assert score(tmp_path, f"cvbench-2d:{bench}", {k: v for k, v in preds.items() if k < 3})["score"] == 75.0
    assert score(tmp_path, f"cvbench-3d:{bench}", {k: v for k, v in preds.items() if k >= 3})["score"] == 50.0
    original = score(tmp_path, f"cvbench:{bench}", preds)  # the CV-Bench engineer's scorer (fractions)
    ours = get_benchmark("cvbench")
    from cambrian.eval.scoring import score_answers
    result = score_answers(ours, load_samples(ours, bench), preds)
    assert original["overall"] == 0.625 and result.score == 62.5 and result.paper() == {"CV-Bench-2D": 75.0,
                                                                                        "CV-Bench-3D": 50.0}


def test_easyvqa_yes_no_split_by_whether_the_named_word_is_in_the_image():
    from cambrian.eval.benchmarks.vision import aggregate_easyvqa, easyvqa_named

    assert easyvqa_named("is there a red shape?", "yes") == "present"
    assert easyvqa_named("is there not a red shape?", "no") == "present"
    assert easyvqa_named("is there a red shape?", "no") == "absent"
    assert easyvqa_named("is no circle present?", "yes") == "absent"
    samples = load_samples(get_benchmark("easyvqa"), None)[:300]
    yes_no = [s for s in samples if s.meta["category"] == "yes/no"]
    # the split the quickstart reports: 31 of the first 300 test questions' 212 yes/no name the image's own word
    assert len(yes_no) == 212 and sum(s.meta["named"] == "present" for s in yes_no) == 31
    assert all("named" not in s.meta for s in samples if s.meta["category"] != "yes/no")
    # answering "absent" to everything: every absent-named question right, every present-named one wrong
    absent = [1.0 if "named" in s.meta and s.meta["named"] == "absent" else 0.0 for s in samples]
    metrics = aggregate_easyvqa(samples, absent)
    assert metrics["yes_no_named"] == {"absent": 100.0, "present": 0.0}
    assert metrics["yes_no_named_n"] == {"absent": 181, "present": 31}
    assert metrics["per_category"]["yes/no"] == pytest.approx(100 * 181 / 212)


def test_easyvqa_and_errors(tmp_path):
    r = score(tmp_path, "easyvqa", {0: "triangle", 1: "Red.", 2: "no idea"}, "--allow-missing")
    assert r["score"] == pytest.approx(200 / 9673) and r["n_missing"] == 9670 and r["n_refused"] == 1
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"idx": 0, "text": "A"}\n')
    result = CliRunner().invoke(eval_app, ["score", "--bench", f"mme:{tmp_path / 'nowhere'}", "--predictions",
                                           str(preds)])
    assert result.exit_code == 1 and "does not exist" in result.output and "lmms-lab/MME" in result.output
    result = CliRunner().invoke(eval_app, ["score", "--bench", "mme", "--predictions", str(preds)])
    assert result.exit_code != 0 and "expected NAME:PATH" in result.output
