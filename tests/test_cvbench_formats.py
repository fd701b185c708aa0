"""Question generation from each input format (COCO, ADE20K, Omni3D) on small fixtures with hand-computed answers."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cambrian.cvbench.annotations import AnnotationError, read_ade20k, read_coco, read_omni3d
from cambrian.cvbench.build import build_cvbench
from cambrian.cvbench.layout import load_cvbench
from cambrian.cvbench.questions import BuildConfig, generate

FIXTURES = Path(__file__).parent / "fixtures" / "cvbench"
ALL = BuildConfig(per_image=100, absent_probability=0.0)  # every candidate, no random existence checks


def _blank(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (128, 128, 128)).save(path)


@pytest.fixture
def sources(tmp_path):
    coco_images = tmp_path / "coco"
    for im in json.loads((FIXTURES / "coco_instances.json").read_text())["images"]:
        _blank(coco_images / im["file_name"], im["width"], im["height"])
    ade = tmp_path / "ade20k"
    shutil.copytree(FIXTURES / "ade20k", ade)
    _blank(ade / "ADE_val_00000001.jpg", 640, 480)
    omni_root = tmp_path / "omni3d"
    _blank(omni_root / "SUNRGBD/kv2/room_0007.jpg", 640, 480)
    return {"coco": FIXTURES / "coco_instances.json", "coco_images": coco_images, "ade20k": ade,
            "omni3d": FIXTURES / "omni3d.json", "omni3d_images": omni_root}


def _answers(questions):
    return {(q.task, q.question, q.answer) for q in questions}


def test_coco(sources):
    images = read_coco(sources["coco"], sources["coco_images"])
    qs = generate(images, ("Relation", "Count"), ALL)
    counts = {(q.target_class, q.answer) for q in qs if q.task == "Count"}
    # the crowd "person" region and the 8 px bottle are not countable
    assert counts == {("dog", "2"), ("cat", "1"), ("car", "1"), ("bicycle", "1"), ("bench", "1")}
    relations = sorted((q.target_class, q.instance_ids[1], q.answer) for q in qs if q.task == "Relation")
    # dogs are left of the unique cat; the cat has no unique anchor (two dogs); car above bicycle and back;
    # the bench sits diagonally to both (|dx| == |dy|), which the axis-ratio rule rejects
    assert relations == [("bicycle", "6", "below"), ("car", "7", "above"), ("dog", "3", "left"), ("dog", "3", "left")]


def test_coco_existence_check(sources):
    images = read_coco(sources["coco"], sources["coco_images"])
    qs = generate(images, ("Count",), BuildConfig(absent_probability=1.0))
    assert {q.answer for q in qs} == {"0"} and all("0" in q.choices for q in qs)
    present = {i.category for im in images for i in im.instances if im.image_id == "42"}
    assert all(q.target_class not in present for q in qs if q.image.image_id == "42")


def test_ade20k(sources):
    images = read_ade20k(sources["ade20k"])
    assert [i.category for i in images[0].instances] == ["wall", "person", "chair", "chair", "lamp"]  # no "head" part
    qs = generate(images, ("Relation", "Count"), ALL)
    # the wall covers 62% of the image: scenery, not an object to count or relate
    assert {(q.target_class, q.answer) for q in qs if q.task == "Count"} == {("person", "1"), ("chair", "2"),
                                                                               ("lamp", "1")}
    relations = sorted((q.instance_ids[0].split(":")[1], q.instance_ids[1].split(":")[1], q.answer)
                       for q in qs if q.task == "Relation")
    assert relations == [("2", "1", "right"), ("2", "5", "below"), ("3", "1", "right")]
    q = next(q for q in qs if q.task == "Relation")
    assert q.question.startswith("Considering the relative positions of the chair (annotated by the red box) and the")


def test_omni3d(sources):
    images = read_omni3d(sources["omni3d"], sources["omni3d_images"])
    assert images[0].source_dataset == "SUN RGB-D" and len(images[0].instances) == 4  # valid3D=False skipped
    qs = generate(images, ("Depth", "Distance"), ALL)
    depth = {frozenset(q.fixed_order): q.answer for q in qs if q.task == "Depth"}
    order = ["chair", "table", "lamp", "sofa"]  # by distance from the camera, each clear of the next by > 0.3 m
    assert len(depth) == 6
    for pair, answer in depth.items():
        assert answer == min(pair, key=order.index)
    distance = {(q.instance_ids[0], frozenset(q.fixed_order)): q.answer for q in qs if q.task == "Distance"}
    ids = {"101": "chair", "102": "table", "103": "lamp", "104": "sofa"}
    expected = {  # hand-checked from the 3D boxes; the ambiguous triples (within 0.3 m) are absent
        ("chair", "table", "lamp"): "table", ("chair", "table", "sofa"): "table", ("chair", "lamp", "sofa"): "lamp",
        ("table", "chair", "sofa"): "chair", ("table", "lamp", "sofa"): "lamp", ("lamp", "chair", "table"): "table",
        ("sofa", "chair", "lamp"): "lamp",
    }
    got = {(ids[anchor], *sorted(pair, key=order.index)): answer for (anchor, pair), answer in distance.items()}
    assert got == expected


def test_build_all_three_formats_into_one_bench(sources, tmp_path):
    records = build_cvbench(tmp_path / "bench", config=BuildConfig(per_image=100), **sources)
    assert {r.source for r in records} == {"ADE20K", "COCO", "Omni3D"}
    loaded = load_cvbench(tmp_path / "bench")
    assert [(r.idx, r.answer, r.source_filename) for r in loaded] == [(r.idx, r.answer, r.source_filename)
                                                                      for r in records]
    depth = next(r for r in loaded if r.task == "Depth")
    assert depth.source_dataset == "SUN RGB-D" and len(depth.bbox) == 2
    image = depth.image()
    x1, y1 = int(depth.bbox[0][0]), int(depth.bbox[0][1])
    assert image.getpixel((x1 + 1, y1 + 1)) == (255, 0, 0)  # the red box is drawn on the image


def test_errors_name_the_file_and_record(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": [], "annotations": [{"id": 9, "image_id": 1}]}))
    with pytest.raises(AnnotationError, match=r"bad.json: annotations\[0\] \(id=9\)"):
        read_coco(bad, tmp_path)
    bad.write_text("{\n  oops")
    with pytest.raises(AnnotationError, match=r"bad.json:2: invalid JSON"):
        read_omni3d(bad, tmp_path)
    with pytest.raises(AnnotationError, match="no ADE20K"):
        read_ade20k(tmp_path / "nothing")
