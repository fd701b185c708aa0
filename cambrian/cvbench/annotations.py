"""Read COCO, ADE20K and Omni3D annotations into one small structure that question generation works on.

- COCO: an `instances_*.json` (images, annotations with xywh `bbox`, `area`, `iscrowd`, categories) + image folder.
- ADE20K (2021 full release): a folder of per-image `<stem>.json` files (`annotation.object[]` with `name`,
  `polygon.x/y`, `parts.part_level`, `crop`) next to `<stem>.jpg`; parts (part_level > 0) are skipped.
- Omni3D: a json with images (`K`, `width`, `height`, `file_path`) and annotations (`bbox3D_cam`, `center_cam`,
  `category_name`, `bbox2D_tight`/`bbox2D_trunc`/`bbox2D_proj`, `valid3D`, `behind_camera`, `visibility`).

Every reader raises `AnnotationError` naming the file and the record it could not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


class AnnotationError(ValueError):
    pass


@dataclass
class Instance:
    id: str
    category: str
    box: Box
    area: float  # visible area in pixels (segment area for COCO / ADE20K, box area when unknown)
    iscrowd: bool = False
    truncated: bool = False
    corners: np.ndarray | None = None  # [8, 3] bbox3D_cam vertices, camera frame (Omni3D only)
    center: np.ndarray | None = None  # [3] center_cam
    visibility: float | None = None  # visible fraction, when the format carries it


@dataclass
class AnnotatedImage:
    source: str  # CV-Bench `source`: "COCO", "ADE20K" or "Omni3D"
    source_dataset: str  # finer provenance, e.g. "COCO val2017", "SUN RGB-D", "cambrian-synth"
    image_id: str
    path: Path
    width: int
    height: int
    instances: list[Instance]
    vocabulary: tuple[str, ...] = field(default=())  # the dataset's category names (for absent-object questions)

    @property
    def source_filename(self) -> str:
        return self.path.name


def _load_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None


def _xywh_to_xyxy(b: list[float]) -> Box:
    x, y, w, h = (float(v) for v in b)
    return (x, y, x + w, y + h)


def read_coco(ann_file: str | Path, images_dir: str | Path, source_dataset: str = "COCO") -> list[AnnotatedImage]:
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    data = _load_json(ann_file)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise AnnotationError(f"{ann_file}: not a COCO instances file (no '{key}' list)")
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list[Instance]] = {im["id"]: [] for im in data["images"]}
    for i, a in enumerate(data["annotations"]):
        try:
            inst = Instance(
                id=str(a["id"]), category=names[a["category_id"]], box=_xywh_to_xyxy(a["bbox"]),
                area=float(a.get("area", a["bbox"][2] * a["bbox"][3])), iscrowd=bool(a.get("iscrowd", 0)),
            )
            by_image[a["image_id"]].append(inst)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise AnnotationError(f"{ann_file}: annotations[{i}] (id={a.get('id')}): bad or missing {error}") from None
    vocabulary = tuple(names[k] for k in sorted(names))
    return [
        AnnotatedImage("COCO", source_dataset, str(im["id"]), images_dir / im["file_name"], int(im["width"]),
                       int(im["height"]), by_image[im["id"]], vocabulary)
        for im in data["images"]
    ]


def _ade_name(name: str) -> str:
    return name.split(",")[0].strip()  # ADE20K names are WordNet lists: "person, individual, someone, ..."


def read_ade20k(root: str | Path, source_dataset: str = "ADE20K") -> list[AnnotatedImage]:
    root = Path(root)
    files = sorted(root.rglob("*.json"))
    if not files:
        raise AnnotationError(f"{root}: no ADE20K per-image .json annotation files found")
    images = []
    for path in files:
        ann = _load_json(path).get("annotation")
        if not isinstance(ann, dict) or "object" not in ann:
            raise AnnotationError(f"{path}: not an ADE20K annotation (expected an 'annotation.object' list)")
        image_path = path.with_name(ann.get("filename", path.stem + ".jpg"))
        try:
            height, width = int(ann["imsize"][0]), int(ann["imsize"][1])
        except (KeyError, IndexError, TypeError):
            raise AnnotationError(f"{path}: 'annotation.imsize' must be [height, width, channels]") from None
        instances = []
        for i, obj in enumerate(ann["object"]):
            try:
                if int(obj.get("parts", {}).get("part_level", 0)) > 0:
                    continue
                xs = np.asarray(obj["polygon"]["x"], float)
                ys = np.asarray(obj["polygon"]["y"], float)
                if len(xs) < 3 or len(xs) != len(ys):
                    raise ValueError("a polygon needs >= 3 points with as many x as y")
                area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))  # shoelace
                instances.append(Instance(
                    id=f"{path.stem}:{obj.get('id', i)}", category=_ade_name(obj["name"]),
                    box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), area=area,
                    truncated=str(obj.get("crop", "0")) == "1",
                ))
            except (KeyError, TypeError, ValueError) as error:
                raise AnnotationError(f"{path}: annotation.object[{i}]: bad or missing {error}") from None
        images.append(AnnotatedImage("ADE20K", source_dataset, path.stem, image_path, width, height, instances))
    vocabulary = tuple(sorted({inst.category for im in images for inst in im.instances}))
    for im in images:
        im.vocabulary = vocabulary
    return images


def _valid_box(b) -> bool:
    return b is not None and len(b) == 4 and min(b) >= 0 and b[2] > b[0] and b[3] > b[1]


def read_omni3d(
    ann_file: str | Path, images_dir: str | Path, source_dataset: str | None = None
) -> list[AnnotatedImage]:
    """Omni3D json -> images with 3D instances; the drawn 2D box is bbox2D_tight, else _trunc, else _proj."""
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    data = _load_json(ann_file)
    for key in ("images", "annotations"):
        if key not in data:
            raise AnnotationError(f"{ann_file}: not an Omni3D file (no '{key}' list)")
    source_dataset = source_dataset or data.get("info", {}).get("source", "Omni3D")
    by_image: dict[int, list[Instance]] = {im["id"]: [] for im in data["images"]}
    for i, a in enumerate(data["annotations"]):
        try:
            if not a.get("valid3D", True) or a.get("behind_camera", False):
                continue
            box = next((a[k] for k in ("bbox2D_tight", "bbox2D_trunc", "bbox2D_proj") if _valid_box(a.get(k))), None)
            if box is None:
                continue
            corners = np.asarray(a["bbox3D_cam"], float)
            if corners.shape != (8, 3):
                raise ValueError(f"bbox3D_cam has shape {corners.shape}, expected (8, 3)")
            vis = a.get("visibility", -1)
            by_image[a["image_id"]].append(Instance(
                id=str(a["id"]), category=a["category_name"], box=tuple(float(v) for v in box),
                area=float((box[2] - box[0]) * (box[3] - box[1])), corners=corners,
                center=np.asarray(a["center_cam"], float), visibility=None if vis is None or vis < 0 else float(vis),
                truncated=float(a.get("truncation", 0) or 0) > 0,
            ))
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(f"{ann_file}: annotations[{i}] (id={a.get('id')}): bad or missing {error}") from None
    images = []
    for im in data["images"]:
        rel = im.get("file_path") or im.get("file_name")
        if rel is None:
            raise AnnotationError(f"{ann_file}: image id={im.get('id')} has neither 'file_path' nor 'file_name'")
        path = images_dir / rel
        if not path.exists() and (images_dir / Path(rel).name).exists():
            path = images_dir / Path(rel).name  # file_path is often relative to a dataset root, not our folder
        images.append(AnnotatedImage("Omni3D", source_dataset, str(im["id"]), path, int(im["width"]),
                                     int(im["height"]), by_image[im["id"]]))
    return images
