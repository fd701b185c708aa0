"""The model a run trains: built from its source (or restored from the stage-1 checkpoint it starts from), LoRA
applied to the LLM when asked, then frozen for the stage."""

from __future__ import annotations

import dataclasses

import torch

from cambrian.train.config import TrainConfig
from cambrian.train.freeze import apply_freeze


def with_model_source(config: TrainConfig) -> TrainConfig:
    """Fill `model` from the init_from checkpoint, so the saved config names what was trained."""
    if config.init_from is None:
        return config
    from cambrian.train.checkpoint import checkpoint_config, resolve_checkpoint

    source = checkpoint_config(resolve_checkpoint(config.init_from)).model
    if config.model is not None and config.model != source:
        raise ValueError(
            f"model={config.model!r} but init_from={config.init_from!r} was trained on {source!r}; "
            "leave `model` unset (it follows init_from) or start from a checkpoint of that model"
        )
    return dataclasses.replace(config, model=source)


def apply_lora(model, config: TrainConfig) -> None:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model.language_model = get_peft_model(model.language_model, lora)


def build_for_training(config: TrainConfig):
    """-> (model, tokenizer) on CPU, unwrapped, frozen for `config.stage`. Deterministic for a given config: random
    parts are initialised under `config.seed` (identical on every rank, as FSDP and DDP require, and on rebuild)."""
    if config.init_from is not None:
        from cambrian.train.checkpoint import restore_model

        model, tokenizer = restore_model(config.init_from)
    else:
        from cambrian.models.builder import build_model

        torch.manual_seed(config.seed)
        model, tokenizer = build_model(config.model)
    if config.lora_r:
        apply_lora(model, config)
    apply_freeze(model, config)
    return model, tokenizer
