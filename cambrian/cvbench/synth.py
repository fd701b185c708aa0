"""`cambrian cvbench synth`: render N scenes of the synthetic world with COCO and Omni3D annotations.

Layout written under `out_dir`:

    images/000000.png ...          the renders
    annotations/coco.json          COCO instances: categories, images, visible 2D boxes (xywh) and visible areas
    annotations/omni3d.json        Omni3D: per image K, size; per object center_cam, dimensions, R_cam, bbox3D_cam
    scenes.jsonl                   the full scene ground truth (camera, world positions), one line per image

Image i depends only on (seed, i), so the same seed gives the same bytes whatever the worker count.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from cambrian.cvbench.render import Rendering, render_scene
from cambrian.cvbench.world import CATEGORIES, Scene, SceneSampler, sample_scene, scene_seed

OBJECT_ID_STRIDE = 100  # object ids are image_id * 100 + k: unique in the world, independent of other images
DATASET_NAME = "cambrian-synth"


def _r(x, nd: int = 6):
    """Round floats (recursively) so the JSON is compact and platform-stable."""
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, list | tuple):
        return [_r(v, nd) for v in x]
    return round(float(x), nd)


@dataclass
class RenderedImage:
    scene: Scene
    file_name: str
    png: bytes
    coco: list[dict]
    omni3d: list[dict]


def annotate(scene: Scene, rendering: Rendering) -> tuple[list[dict], list[dict]]:
    """COCO (visible) and Omni3D (3D) annotations of one rendered scene."""
    cam = scene.camera
    W, H = cam.width, cam.height
    coco, omni = [], []
    for index, obj in enumerate(scene.objects):
        pose = scene.pose(obj)
        corners = pose.corners()
        uv = cam.project(corners)
        proj = [float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())]
        amodal = rendering.amodal_boxes[index]
        category_id = obj.spec.id
        n_visible = 0
        if amodal is not None:  # visible pixels lie inside the object's own (amodal) box
            ax1, ay1, ax2, ay2 = amodal
            visible = rendering.instance[ay1:ay2, ax1:ax2] == index
            n_visible = int(visible.sum())
        if n_visible > 0:
            ys, xs = np.nonzero(visible)
            x1, y1, x2, y2 = ax1 + int(xs.min()), ay1 + int(ys.min()), ax1 + int(xs.max()) + 1, ay1 + int(ys.max()) + 1
            coco.append({
                "id": obj.id, "image_id": scene.image_id, "category_id": category_id,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": n_visible, "iscrowd": 0,
            })
        omni.append({
            "id": obj.id, "image_id": scene.image_id, "dataset_id": 0,
            "category_id": category_id, "category_name": obj.category,
            "valid3D": True, "behind_camera": False, "truncation": 0.0,
            "visibility": round(n_visible / max(rendering.amodal_pixels[index], 1), 6),
            "bbox2D_tight": list(amodal) if amodal else [-1, -1, -1, -1],
            "bbox2D_proj": _r(proj, 3),
            "bbox2D_trunc": _r([max(proj[0], 0), max(proj[1], 0), min(proj[2], W), min(proj[3], H)], 3),
            "center_cam": _r(pose.center_cam), "dimensions": _r(pose.dimensions), "R_cam": _r(pose.R_cam),
            "bbox3D_cam": _r(corners), "depth": _r(pose.center_cam[2]),
            "segmentation_pts": -1, "lidar_pts": -1, "depth_error": -1,
        })
    return coco, omni


def render_one(seed: int, index: int, size: int, sampler: SceneSampler = SceneSampler()) -> RenderedImage:
    scene = sample_scene(scene_seed(seed, index), index, size, sampler, first_object_id=index * OBJECT_ID_STRIDE + 1)
    rendering = render_scene(scene)
    coco, omni = annotate(scene, rendering)
    buffer = io.BytesIO()
    Image.fromarray(rendering.image).save(buffer, format="PNG", compress_level=6)
    return RenderedImage(scene, f"{index:06d}.png", buffer.getvalue(), coco, omni)


def _render_star(args: tuple[int, int, int]) -> RenderedImage:
    return render_one(*args)


def render_world(out_dir: str | Path, n: int, seed: int = 0, size: int = 384, workers: int = 1) -> list[Path]:
    """Render `n` scenes to `out_dir` (see module docstring); returns the image paths in order."""
    if n < 1 or size < 64:
        raise ValueError(f"render_world needs n >= 1 and size >= 64, got n={n}, size={size}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, size) for i in range(n)]
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    if workers == 1:
        results = map(_render_star, jobs)
    else:
        pool = get_context("fork").Pool(workers)
        results = pool.imap(_render_star, jobs, chunksize=max(1, min(16, n // (4 * workers))))
    categories = [{"id": c.id, "name": c.name, "supercategory": c.shape} for c in CATEGORIES]
    coco = {"info": {"description": f"{DATASET_NAME} seed={seed}", "version": "1.0"}, "licenses": [],
            "images": [], "annotations": [], "categories": categories}
    omni = {"info": {"id": 0, "source": DATASET_NAME, "name": f"{DATASET_NAME}_seed{seed}", "split": "test",
                     "version": "1.0", "url": ""},
            "images": [], "annotations": [], "categories": categories}
    paths = []
    with open(out / "scenes.jsonl", "w") as scenes:
        for item in results:
            path = out / "images" / item.file_name
            path.write_bytes(item.png)
            paths.append(path)
            image_id = item.scene.image_id
            cam = item.scene.camera
            coco["images"].append({"id": image_id, "file_name": item.file_name, "width": cam.width,
                                   "height": cam.height})
            coco["annotations"].extend(item.coco)
            omni["images"].append({"id": image_id, "dataset_id": 0, "file_path": f"images/{item.file_name}",
                                   "width": cam.width, "height": cam.height, "K": _r(cam.K),
                                   "src_90_rotate": 0, "src_flagged": False, "incomplete": False})
            omni["annotations"].extend(item.omni3d)
            visibility = {a["id"]: a["visibility"] for a in item.omni3d}
            scenes.write(json.dumps({"file_name": item.file_name, "scene": item.scene.to_dict(),
                                     "visibility": visibility}) + "\n")
    if workers > 1:
        pool.close()
        pool.join()
    (out / "annotations" / "coco.json").write_text(json.dumps(coco))
    (out / "annotations" / "omni3d.json").write_text(json.dumps(omni))
    return paths


@dataclass
class WorldImage:
    path: Path
    scene: Scene
    visibility: dict[int, float]  # object id -> visible fraction of its pixels

    def caption(self) -> str:
        from cambrian.cvbench.captions import describe_scene

        return describe_scene(self.scene, self.visibility)


def load_world(world_dir: str | Path) -> list[WorldImage]:
    """The images of a rendered world with their scene ground truth, in image order."""
    world = Path(world_dir)
    path = world / "scenes.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {world} a folder written by `cambrian cvbench synth`?")
    items = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                items.append(WorldImage(world / "images" / row["file_name"], Scene.from_dict(row["scene"]),
                                        {int(k): float(v) for k, v in row["visibility"].items()}))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line_no}: bad scene record ({error})") from None
    return items
