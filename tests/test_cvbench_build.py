"""CV-Bench built from the synthetic world: all four tasks, balanced letters, answers re-derived from ground truth,
and the official schema through `datasets` and pyarrow."""

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from cambrian.cvbench.build import build_from_world
from cambrian.cvbench.layout import PROMPT_SUFFIX, format_prompt, load_cvbench
from cambrian.cvbench.questions import COUNT, DEPTH, DISTANCE, RELATION, BuildConfig, plural
from cambrian.cvbench.synth import render_world

CFG = BuildConfig(seed=3)
OFFICIAL_FEATURES = {
    "idx": "int32", "type": "string", "task": "string", "question": "string", "answer": "string",
    "prompt": "string", "filename": "string", "source": "string", "source_dataset": "string",
    "source_filename": "string", "target_class": "string", "target_size": "int32",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    world = tmp_path_factory.mktemp("world")
    render_world(world, 48, seed=21, size=320, workers=1)
    bench = tmp_path_factory.mktemp("bench")
    records = build_from_world(bench, world, CFG)
    return world, bench, records


def test_all_four_tasks_with_balanced_letters(built):
    _, _, records = built
    tasks = Counter(r.task for r in records)
    assert set(tasks) == {"Relation", "Count", "Depth", "Distance"} and min(tasks.values()) >= 10
    for task in tasks:
        letters = Counter(r.answer_letter for r in records if r.task == task)
        k = len(next(r for r in records if r.task == task).choices)
        assert len(letters) == k and max(letters.values()) - min(letters.values()) <= 1, (task, letters)
    assert {(r.type, r.source) for r in records} == {("2D", "COCO"), ("3D", "Omni3D")}
    assert [r.idx for r in records] == list(range(len(records)))


def test_every_answer_rederived_from_ground_truth(built):
    world, bench, records = built
    coco = json.loads((world / "annotations/coco.json").read_text())
    omni = json.loads((world / "annotations/omni3d.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    boxes2d = {str(a["id"]): a for a in coco["annotations"]}
    objs3d = {str(a["id"]): a for a in omni["annotations"]}
    provenance = {p["idx"]: p for p in map(json.loads, (bench / "provenance.jsonl").read_text().splitlines())}
    for r in records:
        p = provenance[r.idx]
        answer = r.choices[ord(r.answer_letter) - 65]
        assert r.answer_text == str(answer)
        assert r.prompt == format_prompt(r.question, r.choices)
        if r.task == "Relation":
            a, b = (boxes2d[i] for i in p["instance_ids"])
            (ax, ay), (bx, by) = ((x + w / 2, y + h / 2) for x, y, w, h in (a["bbox"], b["bbox"]))
            dx, dy = ax - bx, ay - by
            truth = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
            assert max(abs(dx), abs(dy)) >= CFG.relation_axis_ratio * min(abs(dx), abs(dy))
            assert r.question == RELATION.format(a=names[a["category_id"]], b=names[b["category_id"]])
            # the anchor is the only instance of its category in its image
            same = [x for x in coco["annotations"] if x["image_id"] == b["image_id"]
                    and x["category_id"] == b["category_id"]]
            assert len(same) == 1
        elif r.task == "Count":
            image_id = int(p["image_id"])
            truth = str(sum(1 for x in coco["annotations"] if x["image_id"] == image_id
                            and names[x["category_id"]] == r.target_class))
            assert r.question == COUNT.format(plural=plural(r.target_class))
            values = sorted(int(c) for c in r.choices)
            assert values == list(range(values[0], values[0] + 4))  # choices close to the true count
        elif r.task == "Depth":
            a, b = (objs3d[i] for i in p["instance_ids"])
            far_a, near_a = (f(np.linalg.norm(a["bbox3D_cam"], axis=1)) for f in (np.max, np.min))
            far_b, near_b = (f(np.linalg.norm(b["bbox3D_cam"], axis=1)) for f in (np.max, np.min))
            assert far_a + CFG.depth_offset < near_b or far_b + CFG.depth_offset < near_a
            truth = a["category_name"] if far_a < near_b else b["category_name"]
            assert r.question == DEPTH.format(a=a["category_name"], b=b["category_name"])
            assert r.bbox == [pytest.approx(a["bbox2D_tight"]), pytest.approx(b["bbox2D_tight"])]
        else:
            anchor, a, b = (objs3d[i] for i in p["instance_ids"])
            c = np.array(anchor["center_cam"])
            da = np.linalg.norm(np.array(a["bbox3D_cam"]) - c, axis=1)
            db = np.linalg.norm(np.array(b["bbox3D_cam"]) - c, axis=1)
            assert da.max() + CFG.distance_offset < db.min() or db.max() + CFG.distance_offset < da.min()
            truth = a["category_name"] if da.max() < db.min() else b["category_name"]
            assert r.question == DISTANCE.format(anchor=anchor["category_name"], a=a["category_name"],
                                                 b=b["category_name"])
            assert len({anchor["category_name"], a["category_name"], b["category_name"]}) == 3
        assert answer == truth, (r.idx, r.task, r.question, r.choices, r.answer)


def test_parquet_has_official_features_and_round_trips(built):
    _, bench, records = built
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files={"test": str(bench / "test.parquet")}, split="test")
    assert set(ds.features) == set(OFFICIAL_FEATURES) | {"image", "choices", "bbox"}
    for name, dtype in OFFICIAL_FEATURES.items():
        assert ds.features[name].dtype == dtype, name
    assert type(ds.features["image"]).__name__ == "Image"
    assert ds.features["choices"].feature.dtype == "string"
    assert ds.features["bbox"].feature.feature.dtype == "float32"
    row = ds[0]
    assert row["idx"] == 0 and row["answer"] == records[0].answer and row["image"].size == (320, 320)

    schema = pq.read_schema(bench / "test.parquet")
    assert str(schema.field("image").type) == "struct<bytes: binary, path: string>"
    assert str(schema.field("bbox").type) == "list<element: list<element: float>>"

    from_parquet = load_cvbench(bench)
    from_jsonl = load_cvbench_jsonl_only(bench)
    assert [r.prompt for r in from_parquet] == [r.prompt for r in from_jsonl] == [r.prompt for r in records]
    assert from_parquet[5].image().tobytes() == from_jsonl[5].image().tobytes()
    assert from_parquet[0].model_prompt == records[0].prompt + PROMPT_SUFFIX
    assert (bench / records[0].filename).read_bytes() == from_parquet[0].image_bytes


def load_cvbench_jsonl_only(bench):
    """Read the jsonl + img/ half of the layout by hiding the parquet."""
    hidden = bench / "test.parquet.hidden"
    (bench / "test.parquet").rename(hidden)
    try:
        records = load_cvbench(bench)
    finally:
        hidden.rename(bench / "test.parquet")
    assert all(r.image_bytes is None for r in records)
    return records
