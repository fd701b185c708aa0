"""The one interface every vision tower implements: pixels (B, 3, R, R) -> feature grid (B, h, w, C)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cambrian.models.configuration import TowerConfig
from cambrian.models.towers.preprocess import CLIP_MEAN, CLIP_STD, ImageTransform


def resize_grid(grid: torch.Tensor, side: int) -> torch.Tensor:
    """Bilinear resize of a (B, h, w, C) grid to (B, side, side, C), in fp32, align_corners=False (official 3.2)."""
    if grid.shape[1] == side and grid.shape[2] == side:
        return grid
    dtype = grid.dtype
    resized = F.interpolate(grid.permute(0, 3, 1, 2).float(), size=(side, side), mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1).to(dtype)


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) patch tokens in row-major order -> (B, sqrt(N), sqrt(N), C)."""
    batch, count, channels = tokens.shape
    side = int(round(count**0.5))
    if side * side != count:
        raise ValueError(f"{count} patch tokens do not form a square grid; did a CLS or register token stay in?")
    return tokens.reshape(batch, side, side, channels)


# Images per tower call in CPU inference. A batch of 16 EfficientNet-Lite0 images at 256 px makes ~100 MB activations,
# which glibc serves with fresh mmaps (page faults, zeroing) on every layer: measured on 1 core, 16 images in one call
# 1.46 s, in chunks of 4 0.70 s, one by one 0.89 s. GPUs and training keep the whole batch.
CPU_INFERENCE_CHUNK = 4


class VisionTower(nn.Module):
    """Base class. Subclasses build `self.model` and implement `native_grid(pixels) -> (B, h, w, C)`."""

    default_mean: tuple[float, float, float] = CLIP_MEAN
    default_std: tuple[float, float, float] = CLIP_STD

    def __init__(self, config: TowerConfig):
        super().__init__()
        self.config = config

    # -- construction -------------------------------------------------------------------------------------------
    def load_pretrained(self) -> None:
        """Load the real weights (hub, local folder or packaged file). Architecture-only construction never does."""
        raise NotImplementedError(f"{type(self).__name__} has no pretrained weights to load")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def transform(self) -> ImageTransform:
        return ImageTransform(
            size=self.config.image_size,
            mean=self.config.mean or self.default_mean,
            std=self.config.std or self.default_std,
            fill=self.config.fill,
        )

    @property
    def hidden_size(self) -> int:
        """Channels C of the output grid."""
        raise NotImplementedError

    @property
    def native_grid_size(self) -> int:
        raise NotImplementedError

    @property
    def grid_size(self) -> int:
        return self.config.grid_size or self.native_grid_size

    @property
    def trainable(self) -> bool:
        return self.config.trainable

    def set_trainable(self, trainable: bool) -> None:
        self.config.trainable = trainable
        self.requires_grad_(trainable)

    # -- forward ------------------------------------------------------------------------------------------------
    def native_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.device.type == "cpu" and not self.training and not torch.is_grad_enabled():
            # per-image results do not depend on the chunking (eval mode: no batch statistics)
            return torch.cat([self._grid(chunk) for chunk in pixels.split(CPU_INFERENCE_CHUNK)])
        return self._grid(pixels)

    def _grid(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            grid = self.native_grid(pixels)
        return resize_grid(grid, self.grid_size)

    def train(self, mode: bool = True):
        # A frozen tower stays in eval mode (no dropout, fixed batch-norm statistics) whatever the model does.
        return super().train(mode and self.trainable)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, grid={self.grid_size}x{self.grid_size}x{self.hidden_size}, trainable={self.trainable}"
        )
