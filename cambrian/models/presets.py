"""Named model configs. `cambrian-tiny` (random init, tests), `cambrian-nano` (the embedded default: two views of the
real EfficientNet-Lite0 + SmolLM2-135M-Instruct) and the released shapes (configs only)."""

from __future__ import annotations

from collections.abc import Callable

from transformers import LlamaConfig

from cambrian.models.configuration import CambrianConfig, ConnectorConfig, LLMConfig, TowerConfig
from cambrian.models.llm import SMOLLM2_ALIAS
from cambrian.models.towers.registry import resolve_tower

SMOLLM2_VOCAB = 49152


def _tiny_llama(vocab_size: int = SMOLLM2_VOCAB, tie: bool = True) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=tie,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )


def cambrian_tiny() -> CambrianConfig:
    """Two tiny random-init towers on different grids (m = 1, 2), SVA with in-LLM blocks, a 4-layer Llama.
    Uses SmolLM2's tokenizer (vocab 49,152), so real text works end to end."""
    clip = TowerConfig(
        name="tiny-clip",
        family="hf_clip",
        image_size=32,
        feature_layer=-2,
        arch=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8),
    )
    vit = TowerConfig(
        name="tiny-vit",
        family="vit",
        image_size=32,
        trainable=True,
        arch=dict(
            model_name="vit_tiny_patch16_224",
            patch_size=4,
            embed_dim=32,
            depth=2,
            num_heads=2,
            class_token=False,
            global_pool="",
        ),
    )
    connector = ConnectorConfig(
        query_side=4,
        num_groups=1,
        depth=2,
        hidden_size=32,
        num_heads=4,
        in_llm_start=0,
        in_llm_stride=2,
        in_llm_count=2,
    )
    return CambrianConfig(
        towers=[clip, vit],
        connector=connector,
        text_config=_tiny_llama(),
        llm=LLMConfig(name_or_path=None),
        image_token_id=SMOLLM2_VOCAB,
    )


def cambrian_nano() -> CambrianConfig:
    """The embedded default (DESIGN.md), what `cambrian quickstart` trains: the packaged ImageNet EfficientNet-Lite0,
    stages 3+4, seen at two resolutions (DESIGN.md: "the same backbone at another resolution"), 256 px on a 16 x 16
    grid (m = 4) and 128 px on an 8 x 8 grid (m = 2), both frozen; SVA L = 4, D = 2, G = 1, width 256, with in-LLM
    aggregation after decoder layers 0, 10, 20 and a BatchNorm before the projector; SmolLM2-135M-Instruct (30
    layers). A from-scratch second tower (`vit-scratch`) only feeds the connector noise in a CPU-sized training
    budget."""
    fine = resolve_tower("efficientnet-lite0-res256", grid_size=16)
    coarse = resolve_tower("efficientnet-lite0-res128", grid_size=8)
    connector = ConnectorConfig(
        query_side=4,
        num_groups=1,
        depth=2,
        hidden_size=256,
        num_heads=4,
        in_llm_start=0,
        in_llm_stride=10,
        in_llm_count=3,
        batch_norm=True,  # without it the visual tokens collapse to one constant within ~20 steps (docs/quickstart.md)
    )
    return CambrianConfig(
        towers=[fine, coarse], connector=connector, text_config=None, llm=LLMConfig(name_or_path=SMOLLM2_ALIAS)
    )


RELEASED_TOWERS = [
    "siglip/CLIP-ViT-SO400M-14-384-interp576",
    "openai/clip-vit-large-patch14-336",
    "facebook/dinov2-giant-res378-interp576",
    "clip-convnext-XXL-multi-stage-interp9216",
]


def _released(llm: str, template: str, text_config: LlamaConfig, stride: int, count: int) -> CambrianConfig:
    towers = [resolve_tower(name) for name in RELEASED_TOWERS]
    # SigLIP and DINOv2 have 27 x 27 native grids, interpolated to 24 x 24 (official 3.2)
    connector = ConnectorConfig(
        query_side=24,
        num_groups=1,
        depth=3,
        hidden_size=1024,
        num_heads=16,
        in_llm=True,
        in_llm_start=0,
        in_llm_stride=stride,
        in_llm_count=count,
    )
    return CambrianConfig(
        towers=towers,
        connector=connector,
        text_config=text_config,
        llm=LLMConfig(name_or_path=llm, template=template),
    )


def cambrian_8b() -> CambrianConfig:
    text = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        max_position_embeddings=8192,
        bos_token_id=128000,
        eos_token_id=128001,
        tie_word_embeddings=False,
    )
    return _released("meta-llama/Meta-Llama-3-8B-Instruct", "llama_3", text, stride=3, count=10)


def cambrian_13b() -> CambrianConfig:
    text = LlamaConfig(
        vocab_size=32000,
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    return _released("lmsys/vicuna-13b-v1.5", "vicuna_v1", text, stride=4, count=10)


def cambrian_34b() -> CambrianConfig:
    text = LlamaConfig(
        vocab_size=64000,
        hidden_size=7168,
        intermediate_size=20480,
        num_hidden_layers=60,
        num_attention_heads=56,
        num_key_value_heads=8,
        rope_theta=5000000.0,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    return _released("NousResearch/Nous-Hermes-2-Yi-34B", "chatml_direct", text, stride=7, count=9)


PRESETS: dict[str, Callable[[], CambrianConfig]] = {
    "cambrian-tiny": cambrian_tiny,
    "cambrian-nano": cambrian_nano,
    "cambrian-8b": cambrian_8b,
    "cambrian-13b": cambrian_13b,
    "cambrian-34b": cambrian_34b,
}


def get_preset(name: str) -> CambrianConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
