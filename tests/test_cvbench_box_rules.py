"""Rules on the drawn boxes' coordinates (benchmarks/cvbench_box_rules.py), and reading which object a question puts in
which box (cambrian.cvbench.questions.boxed_objects)."""

import importlib.util
import json
from pathlib import Path

from PIL import Image

from cambrian.cvbench import load_cvbench
from cambrian.cvbench.questions import DEPTH, DISTANCE, RELATION, boxed_objects

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "cvbench_box_rules.py"
_spec = importlib.util.spec_from_file_location("cvbench_box_rules", _PATH)
rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rules)


def test_boxed_objects_reads_every_template():
    assert boxed_objects(DEPTH.format(a="traffic cone", b="sofa")) == {"traffic cone": "red", "sofa": "blue"}
    assert boxed_objects(DISTANCE.format(anchor="tent", a="crate", b="beach ball")) == {
        "tent": "red", "crate": "blue", "beach ball": "green"}
    assert boxed_objects(RELATION.format(a="suitcase", b="sofa")) == {"suitcase": "red"}
    assert boxed_objects(DEPTH.format(a="t-shirt", b="night stand")) == {"t-shirt": "red", "night stand": "blue"}
    assert boxed_objects("How many sofas are in the image?") == {}


def _write_bench(root: Path, records: list[dict]) -> Path:
    """An official-layout folder (test.jsonl + img/) of these records, each with a 200 x 100 image."""
    (root / "img").mkdir(parents=True)
    for k, record in enumerate(records):
        record.update(idx=k, filename=f"img/{k}.png", prompt=record["question"], source="cambrian-synth")
        Image.new("RGB", (200, 100)).save(root / record["filename"])
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_each_rule_reads_the_boxes_it_names(tmp_path):
    red_low, blue_high = [10, 40, 30, 90], [150, 10, 170, 50]  # 200 x 100 image: red's bottom edge lower, red left
    records = [
        {"task": "Relation", "question": RELATION.format(a="sofa", b="tent"), "bbox": [red_low],
         "choices": ["right", "left"], "answer": "(B)"},
        {"task": "Relation", "question": RELATION.format(a="sofa", b="tent"), "bbox": [blue_high],
         "choices": ["above", "below"], "answer": "(B)"},  # the red box in the upper half: the rule says "above"
        {"task": "Depth", "question": DEPTH.format(a="sofa", b="tent"), "bbox": [red_low, blue_high],
         "choices": ["tent", "sofa"], "answer": "(B)"},
        {"task": "Distance", "question": DISTANCE.format(anchor="ball", a="sofa", b="tent"),
         "bbox": [[0, 0, 20, 90], [30, 0, 50, 90], [150, 0, 170, 90]], "choices": ["tent", "sofa"], "answer": "(A)"},
        {"task": "Count", "question": "How many sofas are in the image?", "choices": ["2", "1", "3", "0"],
         "answer": "(B)"},
    ]
    bench = _write_bench(tmp_path / "bench", records)
    loaded = load_cvbench(bench)
    assert rules.rule_answers(loaded[2], (200, 100)) == {"Depth, lower bottom edge": "sofa",
                                                         "Depth, red box low": "sofa"}
    assert rules.rule_answers(loaded[3], (200, 100)) == {"Distance, nearer foot point": "sofa"}
    accuracy = rules.rule_accuracy(bench)
    assert accuracy == {"Count, always 1": (100.0, 1), "Depth, lower bottom edge": (100.0, 1),
                        "Depth, red box low": (100.0, 1), "Distance, nearer foot point": (0.0, 1),
                        "Relation, red box's side": (50.0, 2)}
