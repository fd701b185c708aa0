"""Per-tower image preprocessing: pad to square with the tower's fill colour, resize, normalise.

Each tower owns one `ImageTransform` (official-cambrian.md 3.3): the image is pasted centred on a square canvas
filled with the tower's mean colour, resized to the tower's resolution, and normalised with its mean/std. The
original (width, height) travels with the pixels so the model can mask the padded border and unpad.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ImageTransform:
    size: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    fill: tuple[float, float, float] | None = None  # pad colour in [0, 1]; None -> mean (official default)
    resample: int = Image.Resampling.BICUBIC

    def pad_to_square(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if width == height:
            return image
        side = max(width, height)
        fill = self.fill if self.fill is not None else self.mean
        canvas = Image.new("RGB", (side, side), tuple(int(c * 255) for c in fill))
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        return canvas

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised float tensor (3, size, size)."""
        image = self.pad_to_square(image.convert("RGB")).resize((self.size, self.size), self.resample)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels - mean) / std


class MultiTowerTransform:
    """One image -> {tower name: pixels}: every tower sees the image through its own transform."""

    def __init__(self, transforms: Mapping[str, ImageTransform]):
        self.transforms = dict(transforms)

    def __call__(self, image: Image.Image) -> dict[str, torch.Tensor]:
        image = image.convert("RGB")
        return {name: transform(image) for name, transform in self.transforms.items()}

    def __repr__(self) -> str:
        return f"MultiTowerTransform({self.transforms})"
