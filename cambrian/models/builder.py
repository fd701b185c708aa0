"""Build a Cambrian model with its tokenizer: from a preset name, a CambrianConfig, or a saved folder.

`CambrianForCausalLM(config)` only builds architectures (random init, nothing downloaded). This module is where
real weights come in: the LLM (hub, folder or packaged GGUF) and each tower's pretrained weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from cambrian.constants import add_image_token
from cambrian.models.configuration import CambrianConfig
from cambrian.models.llm import load_llm, resolve_llm_folder
from cambrian.models.modeling import CambrianForCausalLM
from cambrian.models.presets import PRESETS, get_preset


def _tokenizer_for(config: CambrianConfig):
    """The LLM's tokenizer; random-init presets borrow SmolLM2's (its vocabulary matches their embedding size)."""
    source = config.llm_config.name_or_path or "smollm2-135m-instruct"
    tokenizer = AutoTokenizer.from_pretrained(resolve_llm_folder(source, config.llm_config.gguf_file))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(
    spec: str | CambrianConfig,
    load_weights: bool = True,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
) -> tuple[CambrianForCausalLM, object]:
    """-> (model, tokenizer). `spec` is a preset name, a saved model folder, or a CambrianConfig.

    With `load_weights`, the LLM named by `config.llm.name_or_path` and every tower with a `source` load their real
    weights; towers without one (a from-scratch ViT) and random-init presets stay random, drawn from `seed` when
    given (so every rank of a distributed run builds the same model).
    """
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(spec, str) and spec not in PRESETS and Path(spec).is_dir():
        return load_model(spec, dtype=dtype)
    config = get_preset(spec) if isinstance(spec, str) else spec
    llm = None
    if config.llm_config.name_or_path and load_weights:
        llm, tokenizer = load_llm(config.llm_config.name_or_path, config.llm_config.gguf_file, dtype=dtype)
        config.text_config = llm.config
    else:
        tokenizer = _tokenizer_for(config)
    config.image_token_id = add_image_token(tokenizer)
    if config.text_config.pad_token_id is None:
        config.text_config.pad_token_id = tokenizer.pad_token_id
    model = CambrianForCausalLM(config)
    if llm is not None:
        model.language_model.load_state_dict(llm.state_dict())
        model.generation_config = llm.generation_config
        del llm
    if load_weights:
        for tower in model.towers:
            if tower.config.source:
                tower.load_pretrained()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(dtype), tokenizer


def load_model(path: str | Path, dtype: torch.dtype = torch.float32) -> tuple[CambrianForCausalLM, object]:
    """A folder written by `save_model` (or `save_pretrained` plus the tokenizer) -> (model, tokenizer)."""
    model = CambrianForCausalLM.from_pretrained(str(path), dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer


def save_model(model: CambrianForCausalLM, tokenizer, path: str | Path) -> None:
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
