"""Released Cambrian-1 checkpoints (`nyu-visionx/cambrian-8b`, ...): their state-dict keys -> ours.

The official modules hold one attribute per tower (`k_proj_{t}`, `mm_projector_aux_{t}`, `pos_embed_{t}`); ours hold
ModuleLists, so loading is a rename (official-cambrian.md 8.3). Tower weights are not in those checkpoints: the
towers load from their own hubs (`build_model` with `load_weights=True`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# inside one SVA layer
_LAYER_RULES = [
    (re.compile(r"^cross_attn\.([kv])_proj_(\d+)\.(.*)$"), r"cross_attn.\1_proj.\2.\3"),
    (re.compile(r"^pos_embed_(\d+)$"), r"pos_embed.\1"),
]

_RULES = [
    (re.compile(r"^model\.vision_sampler_(\d+)\.layers\.(\d+)\.(.*)$"), "connector.samplers.{0}.{1}.{layer}"),
    (re.compile(r"^model\.vision_sampler_layers\.(\d+)\.layers\.0\.(.*)$"), "connector.llm_layers.{0}.{layer}"),
    (re.compile(r"^model\.mm_projector_aux_(\d+)\.(.*)$"), "connector.tower_projectors.{0}.{1}"),
    (re.compile(r"^model\.mm_projector\.(.*)$"), "connector.projector.{0}"),
    (re.compile(r"^model\.vision_query$"), "connector.queries"),
    (re.compile(r"^model\.image_newline$"), "image_newline"),
    (re.compile(r"^lm_head\.(.*)$"), "language_model.lm_head.{0}"),
    (re.compile(r"^model\.(.*)$"), "language_model.model.{0}"),  # the Llama decoder itself, last
]


def _layer_key(key: str) -> str:
    for pattern, replacement in _LAYER_RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def official_key(key: str) -> str:
    """One official key -> the CambrianForCausalLM key."""
    for pattern, template in _RULES:
        match = pattern.match(key)
        if match:
            groups = match.groups()
            if "{layer}" in template:
                return template.format(*groups[:-1], layer=_layer_key(groups[-1]))
            return template.format(*groups)
    raise KeyError(f"{key!r} is not a key of a released Cambrian-1 checkpoint")


def convert_official_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Rename every key; the tensors are untouched."""
    return {official_key(key): value for key, value in state_dict.items()}


def check_against(converted: Iterable[str], model_keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """-> (model keys the checkpoint lacks, ignoring towers; checkpoint keys the model lacks)."""
    converted, model_keys = set(converted), set(model_keys)
    missing = sorted(k for k in model_keys - converted if not k.startswith("towers."))
    return missing, sorted(converted - model_keys)
