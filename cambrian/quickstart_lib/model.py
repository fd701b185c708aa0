"""The quickstart's model is the `cambrian-nano` preset: two frozen views of the packaged EfficientNet-Lite0 (256 px on
16 x 16 and 128 px on 8 x 8) -> SVA with in-LLM aggregation -> SmolLM2-135M-Instruct, saved with a short chat
template. `cambrian quickstart --readout` adds a coordinate readout (soft-word tokens after each image's grid,
connectors/coordinate_readout.py).
"""

from __future__ import annotations

from cambrian.models.configuration import CambrianConfig
from cambrian.models.presets import get_preset

# SmolLM2's own chat template without its default system turn ("You are a helpful AI assistant named SmolLM..."):
# ~20 fewer tokens per sample, for training, evaluation and chat alike (it is saved with the tokenizer).
SHORT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def quickstart_config(readout: bool = False) -> CambrianConfig:
    """The `cambrian-nano` preset (one definition for the quickstart, `cambrian eval` and the benchmarks); with
    `readout`, plus a coordinate readout that can say the synthetic CV-Bench's answer words (readout.py)."""
    config = get_preset("cambrian-nano")
    if readout:
        from cambrian.quickstart_lib.readout import READOUT_TEMPERATURE, READOUT_TOKENS, readout_groups, readout_words

        config.connector = {**config.connector, "readout_words": readout_words(), "readout_groups": readout_groups(),
                            "readout_tokens": READOUT_TOKENS, "readout_temperature": READOUT_TEMPERATURE}
    return config


def build_quickstart_model(readout: bool = False):
    """-> (model, tokenizer) with real weights; the tokenizer keeps SmolLM2's template until `use_short_template`."""
    from cambrian.models.builder import build_model

    return build_model(quickstart_config(readout))


def use_short_template(tokenizer) -> None:
    tokenizer.chat_template = SHORT_CHAT_TEMPLATE
