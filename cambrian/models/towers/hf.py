"""Hugging Face transformers towers: CLIP (penultimate layer, CLS dropped), SigLIP, DINOv2 (any resolution)."""

from __future__ import annotations

import torch
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from cambrian.models.configuration import TowerConfig
from cambrian.models.towers.base import VisionTower, tokens_to_grid
from cambrian.models.towers.preprocess import HALF, IMAGENET_MEAN, IMAGENET_STD


class HFVisionTower(VisionTower):
    """A transformers vision encoder; `config.arch` is its config dict, `config.source` its hub id or folder."""

    model_class: type
    config_class: type
    num_prefix_tokens_attr: str | None = None  # tokens before the patches (CLS, registers) to drop

    def __init__(self, config: TowerConfig):
        super().__init__(config)
        arch = dict(config.arch)
        arch.setdefault("image_size", config.image_size)
        self.model = self.model_class(self.config_class(**arch))

    def load_pretrained(self) -> None:
        if not self.config.source:
            raise ValueError(f"tower {self.name!r} has no `source` to load weights from")
        pretrained = self.model_class.from_pretrained(self.config.source, dtype=torch.float32)
        self.model.load_state_dict(pretrained.state_dict())

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size

    @property
    def native_grid_size(self) -> int:
        return self.config.image_size // self.patch_size

    def num_prefix_tokens(self) -> int:
        return 0

    def native_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        outputs = self.model(pixel_values=pixels, output_hidden_states=self.config.feature_layer != -1)
        if self.config.feature_layer == -1:
            tokens = outputs.last_hidden_state
        else:
            tokens = outputs.hidden_states[self.config.feature_layer]
        return tokens_to_grid(tokens[:, self.num_prefix_tokens() :])


class CLIPTower(HFVisionTower):
    """OpenAI CLIP: `hidden_states[-2]` (penultimate layer, before post_layernorm), CLS dropped (official 3.2)."""

    model_class = CLIPVisionModel
    config_class = CLIPVisionConfig

    def num_prefix_tokens(self) -> int:
        return 1


class SiglipTower(HFVisionTower):
    """SigLIP: last layer after the final norm; no CLS (MAP-pooled model). Normalised with mean = std = 0.5."""

    model_class = SiglipVisionModel
    config_class = SiglipVisionConfig
    default_mean = HALF
    default_std = HALF


class Dinov2Tower(HFVisionTower):
    """DINOv2 at any resolution (position embeddings interpolated); last layer after LayerNorm; CLS and registers
    dropped. Padded with the ImageNet mean, as the official tower."""

    model_class = Dinov2Model
    config_class = Dinov2Config
    default_mean = IMAGENET_MEAN
    default_std = IMAGENET_STD

    def num_prefix_tokens(self) -> int:
        return 1 + getattr(self.model.config, "num_register_tokens", 0)
