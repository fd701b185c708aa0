"""Typed configs for towers, connector and LLM, and the `CambrianConfig` that serialises them with the model.

The dataclasses are the source of truth; `CambrianConfig` (a transformers `PretrainedConfig`) stores them as plain
dicts in config.json and hands back typed views (`config.tower_configs`, `config.connector_config`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from transformers import AutoConfig, PretrainedConfig


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
    return cls(**data)


@dataclass
class TowerConfig:
    """One vision tower. `family` picks the adapter; `arch` rebuilds the architecture without downloading weights."""

    name: str  # registry name or local path, e.g. "openai/clip-vit-large-patch14-336", "efficientnet-lite0"
    family: str  # hf_clip | hf_siglip | hf_dinov2 | open_clip | timm | efficientnet_lite0 | vit
    source: str | None = None  # hub id, local folder, open_clip / timm model name
    image_size: int = 224  # square input resolution R
    grid_size: int | None = None  # bilinear-resize the feature grid to this side (fp32); None keeps the native grid
    feature_layer: int = -1  # transformer towers: hidden_states index (-2 = penultimate, CLIP's choice)
    stages: list[int] | None = None  # multi-stage CNN towers: feature stages concatenated on channels
    mean: tuple[float, float, float] | None = None  # normalisation; None -> the family's default
    std: tuple[float, float, float] | None = None
    fill: tuple[float, float, float] | None = None  # pad-to-square colour in [0, 1]; None -> mean
    trainable: bool = False  # frozen by default (paper Section 3.3), unfreezable
    arch: dict[str, Any] = field(default_factory=dict)  # architecture kwargs (HF vision config, ViT dims, ...)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TowerConfig:
        data = dict(data)
        for key in ("mean", "std", "fill"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return _from_dict(cls, data)


@dataclass
class ConnectorConfig:
    """The vision-language connector. Symbols of Section 4: L (query_side), G (num_groups), D (depth)."""

    type: str = "sva"  # "sva" (Spatial Vision Aggregator) | "mlp" (LLaVA projector over concatenated grids)
    query_side: int = 24  # L: the query grid is L x L; every tower grid must be m_k * L
    num_groups: int = 1  # G: query groups aggregated in parallel, concatenated on channels
    depth: int = 3  # D: stacked SVA layers before the LLM
    hidden_size: int = 1024  # SVA width C
    num_heads: int = 16
    context_tower: int = 0  # global context = mean of this tower's projected tokens (official: SigLIP, tower 0)
    in_llm: bool = True  # multi-layer aggregation inside the LLM; False = "SVA-no-multi-agg" (Table 4)
    in_llm_start: int = 0  # an SVA block runs after decoder layers start + k * stride, k < count
    in_llm_stride: int = 3
    in_llm_count: int = 10
    image_newline: bool = True  # a learned token closes every row of the image grid
    unpad: bool = True  # drop grid cells that only cover the pad-to-square border (per aspect ratio)
    # BatchNorm of the aggregated queries (per channel, over images and cells) before the projector; not in the
    # released model. For short from-scratch training (cambrian-nano): see SpatialVisionAggregator.query_norm.
    batch_norm: bool = False
    # Coordinate readout (connectors/coordinate_readout.py; not in the released model): more visual tokens, soft words
    # from this list read off tower 0's grid by attention maps that pool the cells' (x, y). Empty: no readout.
    readout_words: list[str] = field(default_factory=list)
    readout_heads: int = 8  # K attention maps
    readout_values: int = 8  # V numbers each map pools besides (x, y)
    # the words in groups of these sizes, in order (the quickstart's [12, 2, 2, 11]: classes, left/right, above/below,
    # numbers); one soft word per group, each a softmax over its own words only. Empty: one group of all the words
    readout_groups: list[int] = field(default_factory=list)
    readout_tokens: int = 1  # each group's soft word repeated this many times after the grid (more of the attention)
    # each group's softmax taken at logits / T: T < 1 makes the soft word nearer its likeliest word (the same ranking)
    readout_temperature: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConnectorConfig:
        return _from_dict(cls, data)

    def in_llm_layers(self, num_llm_layers: int) -> list[int]:
        if self.type != "sva" or not self.in_llm:
            return []
        layers = [self.in_llm_start + k * self.in_llm_stride for k in range(self.in_llm_count)]
        too_deep = [i for i in layers if i >= num_llm_layers]
        if too_deep:
            raise ValueError(
                f"in-LLM SVA layers {too_deep} do not exist: the LLM has {num_llm_layers} decoder layers; lower "
                f"in_llm_count ({self.in_llm_count}), in_llm_stride ({self.in_llm_stride}) or in_llm_start"
            )
        if num_llm_layers - 1 in layers:
            # after the last layer, image-position states reach only image-position logits (no loss there): dead
            raise ValueError(
                f"an in-LLM SVA block after the last decoder layer ({num_llm_layers - 1}) cannot influence any text "
                "token; lower in_llm_count or in_llm_stride"
            )
        return layers


@dataclass
class LLMConfig:
    """Where the language model comes from (the architecture itself is stored as `text_config`)."""

    name_or_path: str | None = None  # hub id or local folder; None for a random-init `text_config`
    gguf_file: str | None = None  # a GGUF file inside name_or_path (de-quantised once, then cached)
    template: str | None = None  # chat template name; None -> the tokenizer's own

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMConfig:
        return _from_dict(cls, data)


class CambrianConfig(PretrainedConfig):
    model_type = "cambrian"

    def __init__(
        self,
        towers: list[dict[str, Any] | TowerConfig] | None = None,
        connector: dict[str, Any] | ConnectorConfig | None = None,
        text_config: dict[str, Any] | PretrainedConfig | None = None,
        llm: dict[str, Any] | LLMConfig | None = None,
        image_token_id: int | None = None,
        **kwargs,
    ):
        self.towers = [asdict(t) if isinstance(t, TowerConfig) else dict(t) for t in towers or []]
        self.connector = asdict(connector) if isinstance(connector, ConnectorConfig) else dict(connector or {})
        self.llm = asdict(llm) if isinstance(llm, LLMConfig) else dict(llm or {})
        if isinstance(text_config, dict):
            text_config = AutoConfig.for_model(**text_config)
        self.text_config = text_config
        self.image_token_id = image_token_id
        if text_config is not None:
            kwargs.setdefault("tie_word_embeddings", getattr(text_config, "tie_word_embeddings", False))
        super().__init__(**kwargs)

    @property
    def tower_configs(self) -> list[TowerConfig]:
        return [TowerConfig.from_dict(t) for t in self.towers]

    @property
    def connector_config(self) -> ConnectorConfig:
        return ConnectorConfig.from_dict(self.connector)

    @property
    def llm_config(self) -> LLMConfig:
        return LLMConfig.from_dict(self.llm)

    def get_text_config(self, *args, **kwargs):  # generation utilities read the decoder's settings from here
        return self.text_config
