"""The synthetic world: determinism, exact 2D/3D consistency of its annotations, captions."""

import hashlib
import json

import numpy as np
import pytest

from cambrian.cvbench.captions import describe_scene
from cambrian.cvbench.render import _intersect, render_scene
from cambrian.cvbench.synth import load_world, render_world
from cambrian.cvbench.world import CATEGORIES, SHAPES, sample_scene, scene_seed


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    render_world(out, 24, seed=11, size=256, workers=1)
    return out


def test_categories_are_real_objects():
    assert len(CATEGORIES) >= 8
    assert {c.shape for c in CATEGORIES} == set(SHAPES)
    assert len({c.name for c in CATEGORIES}) == len(CATEGORIES)
    assert all(0.2 <= min(c.size) and max(c.size) <= 3.0 for c in CATEGORIES)  # metres, real-world scale


def test_same_seed_same_bytes_any_worker_count(world, tmp_path):
    again = tmp_path / "again"
    render_world(again, 24, seed=11, size=256, workers=2)
    assert _digest(world) == _digest(again)
    other = tmp_path / "other"
    render_world(other, 3, seed=12, size=256, workers=1)
    assert (other / "images/000000.png").read_bytes() != (world / "images/000000.png").read_bytes()


def test_every_3d_box_projects_onto_its_2d_boxes(world):
    coco = json.loads((world / "annotations/coco.json").read_text())
    omni = json.loads((world / "annotations/omni3d.json").read_text())
    visible = {a["id"]: a for a in coco["annotations"]}
    K = {im["id"]: np.array(im["K"]) for im in omni["images"]}
    assert len(omni["annotations"]) > 3 * len(omni["images"])
    for a in omni["annotations"]:
        corners = np.array(a["bbox3D_cam"])
        R = np.array(a["R_cam"])
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-5) and np.linalg.det(R) == pytest.approx(1, abs=1e-5)
        local = (corners - np.array(a["center_cam"])) @ R  # back in the object frame: the +-dims/2 corners
        assert np.allclose(np.abs(local), np.array(a["dimensions"]) / 2, atol=1e-4)
        assert a["depth"] == pytest.approx(a["center_cam"][2])
        uvw = corners @ K[a["image_id"]].T
        uv = uvw[:, :2] / uvw[:, 2:]
        proj = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
        assert np.allclose(proj, a["bbox2D_proj"], atol=1e-2)
        # the object's own pixels (amodal) lie inside the projected 3D box, and its projected centre inside them
        x1, y1, x2, y2 = a["bbox2D_tight"]
        assert proj[0] - 1 <= x1 and proj[1] - 1 <= y1 and x2 <= proj[2] + 1 and y2 <= proj[3] + 1, a["id"]
        cu, cv, cw = K[a["image_id"]] @ np.array(a["center_cam"])
        assert x1 <= cu / cw <= x2 and y1 <= cv / cw <= y2, a["id"]
        if a["id"] in visible:  # the COCO box is the visible part: inside the amodal box
            bx, by, bw, bh = visible[a["id"]]["bbox"]
            assert x1 <= bx and y1 <= by and bx + bw <= x2 and by + bh <= y2, a["id"]
            assert 0 < a["visibility"] <= 1
        else:
            assert a["visibility"] == 0


def test_occlusion_is_the_nearest_surface_on_every_ray():
    """Brute force: intersect every pixel's ray with every object; the render must show the nearest hit."""
    for i in range(4):
        scene = sample_scene(scene_seed(5, i), i, 96)
        r = render_scene(scene)
        cam = scene.camera
        us, vs = np.meshgrid(np.arange(96) + 0.5, np.arange(96) + 0.5)
        rays = np.stack([us, vs, np.ones_like(us)], -1).reshape(-1, 3) @ np.linalg.inv(cam.K).T
        hits = [np.full(len(rays), np.inf)]
        for obj in scene.objects:
            pose = scene.pose(obj)
            o = np.broadcast_to(-(pose.center_cam @ pose.R_cam), rays.shape)
            hits.append(_intersect(obj.spec.shape, o, rays @ pose.R_cam, pose.dimensions / 2)[0])
        hits = np.stack(hits, 1)
        nearest = np.where(np.isfinite(hits.min(1)), hits.argmin(1) - 1, -3).reshape(96, 96)
        on_object = nearest >= 0
        assert (r.instance[on_object] == nearest[on_object]).all()
        assert np.allclose(r.depth[on_object], hits.min(1).reshape(96, 96)[on_object])
        assert (r.instance[~on_object] < 0).all()


def test_captions_state_ground_truth(world):
    items = load_world(world)
    assert len(items) == 24
    text = items[0].caption()
    scene = items[0].scene
    seen = [o for o in scene.objects if items[0].visibility[o.id] >= 0.25]
    assert text.startswith("A synthetic scene on")
    for obj in seen:
        assert obj.category in text and obj.spec.color_name in text
    nearest = min(seen, key=lambda o: np.linalg.norm(scene.pose(o).center_cam))
    assert f"The {nearest.spec.color_name} {nearest.category} is the nearest" in text
    assert describe_scene(scene, {o.id: 0.0 for o in scene.objects}).startswith("An empty stretch")
