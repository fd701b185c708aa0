"""One-paragraph descriptions of synthetic scenes, written from ground truth (alignment captions).

Everything said is exact: which objects are visible, their colours, where they sit in the picture (left, centre,
right), how far they are from the camera, and which is nearest and farthest.
"""

from __future__ import annotations

import numpy as np

from cambrian.cvbench.world import Scene, SceneObject

NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_scene(scene: Scene, visibility: dict[int, float] | None = None, min_visibility: float = 0.25) -> str:
    """A caption of `scene`; objects less visible than `min_visibility` (by the render) are left out."""
    cam = scene.camera
    objects: list[tuple[SceneObject, float, float]] = []  # (object, image x of its centre, distance in metres)
    for obj in scene.objects:
        if visibility is not None and visibility.get(obj.id, 0.0) < min_visibility:
            continue
        center = scene.pose(obj).center_cam
        objects.append((obj, float(cam.project(center)[0]), float(np.linalg.norm(center))))
    ground = f"{_article(scene.ground)} {scene.ground}"
    if not objects:
        return f"An empty stretch of {scene.ground} ground under a clear sky."
    objects.sort(key=lambda item: item[1])

    kinds: dict[str, int] = {}
    for obj, _, _ in objects:
        kinds[obj.category] = kinds.get(obj.category, 0) + 1
    inventory = []
    for name, n in kinds.items():
        spec = objects[[o.category for o, _, _ in objects].index(name)][0].spec
        noun = f"{spec.color_name} {spec.name if n == 1 else spec.plural}"
        inventory.append(f"{_article(noun)} {noun}" if n == 1 else f"{NUMBERS[min(n, 10)]} {noun}")
    total = len(objects)
    first = (f"A synthetic scene on {ground} ground with {NUMBERS[min(total, 10)]} "
             f"object{'s' if total > 1 else ''}: {_join(inventory)}.")

    def where(u: float) -> str:
        third = cam.width / 3
        return "on the left" if u < third else ("on the right" if u > 2 * third else "in the centre")

    def name(obj: SceneObject) -> str:
        return f"{obj.spec.color_name} {obj.category}"

    placed = [f"the {name(o)} {where(u)}, about {d:.0f} m away" for o, u, d in objects]
    text = f"{first} From left to right: {_join(placed)}."
    if total > 1:
        nearest = min(objects, key=lambda item: item[2])[0]
        farthest = max(objects, key=lambda item: item[2])[0]
        text += f" The {name(nearest)} is the nearest object to the camera and the {name(farthest)} the farthest."
    return text
