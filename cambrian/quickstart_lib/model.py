"""The quickstart's cambrian-nano: two frozen views of the packaged EfficientNet-Lite0 (DESIGN.md allows "the same
backbone at another resolution" as the second tower) -> SVA with in-LLM aggregation -> SmolLM2-135M-Instruct.

Why not the preset's from-scratch ViT: in a 15-minute CPU budget a random tower only feeds noise to the connector;
a second pretrained grid (128 px, 8 x 8) gives the SVA a real coarse view beside the fine one (256 px, 16 x 16).
"""

from __future__ import annotations

from cambrian.models.configuration import CambrianConfig, ConnectorConfig, LLMConfig
from cambrian.models.llm import SMOLLM2_ALIAS
from cambrian.models.towers.registry import resolve_tower

# SmolLM2's own chat template without its default system turn ("You are a helpful AI assistant named SmolLM..."):
# ~20 fewer tokens per sample, for training, evaluation and chat alike (it is saved with the tokenizer).
SHORT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def quickstart_config() -> CambrianConfig:
    """EfficientNet-Lite0 stages 3+4 at 256 px on a 16 x 16 grid (m = 4) and at 128 px on 8 x 8 (m = 2), both
    frozen; SVA L = 4, D = 2, G = 1, width 256, in-LLM blocks after layers 0, 10, 20 (as the cambrian-nano preset)."""
    fine = resolve_tower("efficientnet-lite0-res256", grid_size=16)
    coarse = resolve_tower("efficientnet-lite0-res128", grid_size=8)
    connector = ConnectorConfig(
        query_side=4, num_groups=1, depth=2, hidden_size=256, num_heads=4,
        in_llm_start=0, in_llm_stride=10, in_llm_count=3,
    )
    return CambrianConfig(towers=[fine, coarse], connector=connector, text_config=None,
                          llm=LLMConfig(name_or_path=SMOLLM2_ALIAS))


def build_quickstart_model():
    """-> (model, tokenizer) with real weights; the tokenizer keeps SmolLM2's template until `use_short_template`."""
    from cambrian.models.builder import build_model

    return build_model(quickstart_config())


def use_short_template(tokenizer) -> None:
    tokenizer.chat_template = SHORT_CHAT_TEMPLATE
