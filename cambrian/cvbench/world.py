"""The synthetic 3D world: object categories with real sizes and colours, a pinhole camera over a ground plane.

Frames (all right-handed):
- world: X right, Y forward, Z up; the ground is the plane Z = 0 and the camera stands at (0, 0, height).
- camera (Omni3D convention): x right, y down, z forward; p_cam = R_wc @ (p_world - camera_position).
- object (Omni3D convention): x along the width, y down along the height, z along the length; p_cam = R_cam @ p_obj
  + center_cam, and `dimensions` = [w, h, l] in metres.

A scene is pure ground truth (no pixels); `render.py` turns it into an image and per-object masks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

SHAPES = ("box", "sphere", "cylinder", "cone")


@dataclass(frozen=True)
class Category:
    id: int  # COCO / Omni3D category id (1-based, as in COCO)
    name: str  # singular noun used in questions ("traffic cone")
    plural: str
    shape: str  # one of SHAPES; the object frame's y axis is the shape's vertical axis
    size: tuple[float, float, float]  # real-world [w, h, l] in metres
    color: tuple[int, int, int]  # sRGB albedo
    color_name: str


CATEGORIES: tuple[Category, ...] = (
    Category(1, "crate", "crates", "box", (0.6, 0.6, 0.6), (150, 100, 55), "brown"),
    Category(2, "ball", "balls", "sphere", (0.65, 0.65, 0.65), (210, 40, 40), "red"),
    Category(3, "barrel", "barrels", "cylinder", (0.6, 0.9, 0.6), (45, 85, 205), "blue"),
    Category(4, "traffic cone", "traffic cones", "cone", (0.45, 0.75, 0.45), (245, 130, 20), "orange"),
    Category(5, "trash can", "trash cans", "cylinder", (0.5, 1.0, 0.5), (40, 150, 65), "green"),
    Category(6, "refrigerator", "refrigerators", "box", (0.8, 1.8, 0.7), (236, 236, 236), "white"),
    Category(7, "boulder", "boulders", "sphere", (1.1, 0.75, 0.9), (125, 125, 130), "grey"),
    Category(8, "sofa", "sofas", "box", (2.0, 0.85, 0.9), (125, 60, 165), "purple"),
    Category(9, "tent", "tents", "cone", (1.9, 1.5, 1.9), (232, 205, 40), "yellow"),
    Category(10, "suitcase", "suitcases", "box", (0.45, 0.7, 0.28), (0, 160, 170), "teal"),
    Category(11, "pillar", "pillars", "cylinder", (0.4, 2.2, 0.4), (215, 195, 160), "beige"),
    Category(12, "beach ball", "beach balls", "sphere", (0.4, 0.4, 0.4), (240, 95, 170), "pink"),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}

GROUNDS = {  # name -> two checker shades (1 m tiles give perspective a scale)
    "grass": ((96, 140, 70), (88, 130, 64)),
    "sand": ((205, 185, 140), (194, 174, 130)),
    "concrete": ((150, 150, 145), (138, 138, 134)),
    "wooden floor": ((160, 118, 80), (148, 108, 72)),
}


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at (0, 0, height) in the world, looking along +Y, pitched down by `pitch_deg`."""

    width: int
    height: int
    fov_deg: float  # horizontal field of view
    cam_height: float  # metres above the ground
    pitch_deg: float  # downward tilt

    @property
    def K(self) -> np.ndarray:
        f = (self.width / 2) / math.tan(math.radians(self.fov_deg) / 2)
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    @property
    def R_wc(self) -> np.ndarray:
        """World -> camera rotation; rows are the camera's right, down and forward axes in world coordinates."""
        s, c = math.sin(math.radians(self.pitch_deg)), math.cos(math.radians(self.pitch_deg))
        return np.array([[1.0, 0.0, 0.0], [0.0, -s, -c], [0.0, c, -s]])

    @property
    def position(self) -> np.ndarray:
        return np.array([0.0, 0.0, self.cam_height])

    def world_to_cam(self, p_world: np.ndarray) -> np.ndarray:
        return (np.asarray(p_world) - self.position) @ self.R_wc.T

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        """[..., 3] camera points -> [..., 2] pixel coordinates (u, v); pixel centres sit at +0.5."""
        uvw = np.asarray(p_cam) @ self.K.T
        return uvw[..., :2] / uvw[..., 2:3]


@dataclass(frozen=True)
class SceneObject:
    id: int  # unique within the whole world (COCO / Omni3D annotation id)
    category: str
    position: tuple[float, float]  # footprint centre (X, Y) on the ground, world frame
    yaw: float  # rotation about the world Z axis, radians
    dimensions: tuple[float, float, float]  # [w, h, l] metres, after the per-instance scale
    color: tuple[int, int, int]

    @property
    def spec(self) -> Category:
        return CATEGORY_BY_NAME[self.category]

    def rotation_world(self) -> np.ndarray:
        """Object -> world rotation: columns are the object's x (width), y (down) and z (length) axes."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, -s], [s, 0.0, c], [0.0, -1.0, 0.0]])

    def center_world(self) -> np.ndarray:
        return np.array([self.position[0], self.position[1], self.dimensions[1] / 2])


# Omni3D vertex order: v0..v3 the face at -l/2 (top-left, top-right, bottom-right, bottom-left, "top" = -y),
# v4..v7 the same corners at +l/2.
_UNIT_CORNERS = np.array(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float
)


@dataclass(frozen=True)
class ObjectPose:
    """An object in camera coordinates, in Omni3D terms."""

    center_cam: np.ndarray  # [3]
    R_cam: np.ndarray  # [3, 3] object -> camera
    dimensions: np.ndarray  # [3] w, h, l

    def corners(self) -> np.ndarray:
        """The 8 `bbox3D_cam` vertices, [8, 3]."""
        return (_UNIT_CORNERS * (self.dimensions / 2)) @ self.R_cam.T + self.center_cam


@dataclass(frozen=True)
class Scene:
    image_id: int
    camera: Camera
    objects: tuple[SceneObject, ...]
    ground: str  # key of GROUNDS
    sun_azimuth: float  # radians
    sun_elevation: float  # radians

    def pose(self, obj: SceneObject) -> ObjectPose:
        R_wc = self.camera.R_wc
        return ObjectPose(
            center_cam=self.camera.world_to_cam(obj.center_world()),
            R_cam=R_wc @ obj.rotation_world(),
            dimensions=np.asarray(obj.dimensions, dtype=float),
        )

    def sun_direction_world(self) -> np.ndarray:
        """Unit vector from the ground towards the sun."""
        ce, se = math.cos(self.sun_elevation), math.sin(self.sun_elevation)
        return np.array([ce * math.cos(self.sun_azimuth), ce * math.sin(self.sun_azimuth), se])

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Scene:
        objects = tuple(
            SceneObject(
                id=o["id"], category=o["category"], position=tuple(o["position"]), yaw=o["yaw"],
                dimensions=tuple(o["dimensions"]), color=tuple(o["color"]),
            )
            for o in d["objects"]
        )
        return Scene(
            image_id=d["image_id"], camera=Camera(**d["camera"]), objects=objects, ground=d["ground"],
            sun_azimuth=d["sun_azimuth"], sun_elevation=d["sun_elevation"],
        )


@dataclass(frozen=True)
class SceneSampler:
    """Ranges from which scenes are drawn. Distances are in metres, angles in degrees."""

    min_objects: int = 3
    max_objects: int = 8
    max_categories: int = 5  # distinct categories per scene; fewer than objects, so counts above 1 are common
    cam_height: tuple[float, float] = (1.3, 2.4)
    pitch_deg: tuple[float, float] = (12.0, 32.0)
    fov_deg: tuple[float, float] = (55.0, 72.0)
    distance: tuple[float, float] = (2.5, 11.0)  # ground distance of object footprints ahead of the camera
    scale_jitter: float = 0.12  # per-instance size factor in [1 - j, 1 + j]
    color_jitter: int = 12
    min_gap: float = 0.15  # free space between footprints
    border_px: float = 2.0  # every projected 3D-box corner stays this far inside the image
    categories: tuple[str, ...] = field(default_factory=lambda: tuple(c.name for c in CATEGORIES))


def scene_seed(seed: int, index: int) -> np.random.Generator:
    """One independent generator per image: image i is the same whatever n, order or worker count."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def sample_scene(rng: np.random.Generator, image_id: int, size: int, sampler: SceneSampler = SceneSampler(),
                 first_object_id: int = 1) -> Scene:
    """Draw a camera and place objects on the ground so that each lies wholly in view and none intersect."""
    camera = Camera(
        width=size, height=size,
        fov_deg=float(rng.uniform(*sampler.fov_deg)),
        cam_height=float(rng.uniform(*sampler.cam_height)),
        pitch_deg=float(rng.uniform(*sampler.pitch_deg)),
    )
    n = int(rng.integers(sampler.min_objects, sampler.max_objects + 1))
    n_cat = int(rng.integers(2, min(sampler.max_categories, n) + 1))
    names = list(rng.choice(np.array(sampler.categories), size=n_cat, replace=False))
    wanted = names + [names[int(i)] for i in rng.integers(0, n_cat, size=n - n_cat)]

    half_fov = math.radians(camera.fov_deg) / 2
    placed: list[SceneObject] = []
    footprints: list[tuple[float, float, float]] = []  # (X, Y, radius)
    for name in wanted:
        spec = CATEGORY_BY_NAME[name]
        for _ in range(40):  # rejection sampling; an object that never fits is dropped
            scale = float(rng.uniform(1 - sampler.scale_jitter, 1 + sampler.scale_jitter))
            dims = tuple(round(d * scale, 4) for d in spec.size)
            Y = float(rng.uniform(*sampler.distance))
            X = float(rng.uniform(-1.0, 1.0)) * Y * math.tan(half_fov)
            yaw = float(rng.uniform(0.0, math.pi))
            radius = 0.5 * math.hypot(dims[0], dims[2])
            if any(math.hypot(X - x, Y - y) < radius + r + sampler.min_gap for x, y, r in footprints):
                continue
            color = tuple(int(np.clip(c + rng.integers(-sampler.color_jitter, sampler.color_jitter + 1), 0, 255))
                          for c in spec.color)
            obj = SceneObject(first_object_id + len(placed), name, (round(X, 4), round(Y, 4)), round(yaw, 4), dims,
                              color)
            corners = Scene(image_id, camera, (), "grass", 0.0, 0.0).pose(obj).corners()
            if corners[:, 2].min() < 0.3:
                continue
            uv = camera.project(corners)
            b = sampler.border_px
            if uv.min() < b or uv[:, 0].max() > size - b or uv[:, 1].max() > size - b:
                continue
            placed.append(obj)
            footprints.append((X, Y, radius))
            break
    return Scene(
        image_id=image_id, camera=camera, objects=tuple(placed),
        ground=str(rng.choice(np.array(list(GROUNDS)))),
        sun_azimuth=float(rng.uniform(0, 2 * math.pi)),
        sun_elevation=float(rng.uniform(math.radians(35), math.radians(70))),
    )
