"""AdamW over per-part parameter groups, and the cosine schedule with linear warmup.

Groups are (part x decay): the official trainer's decay / no-decay split crossed with its special-lr groups
(official-cambrian.md 5.1). Each group carries `part` so the logs can show every part's current lr.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cambrian.train.config import TrainConfig
from cambrian.train.freeze import part_of

NO_DECAY_NAMES = ("queries", "image_newline", "pos_embed")


def _decays(name: str, param: torch.Tensor) -> bool:
    return param.ndim >= 2 and not any(key in name for key in NO_DECAY_NAMES)


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters of the unwrapped model -> optimizer groups, in a fixed order (parts, then names)."""
    lrs = config.part_lrs()
    groups: dict[tuple[str, bool], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((part_of(name), _decays(name, param)), []).append(param)
    if not groups:
        raise ValueError("no parameter trains: check the stage and freeze settings")
    return [
        {"params": params, "lr": lrs[part], "weight_decay": config.weight_decay if decay else 0.0, "part": part}
        for (part, decay), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, config), betas=tuple(config.betas), eps=1e-8)


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int) -> float:
    """lr multiplier for optimizer step `step` (0-based): linear warmup that reaches 1 on the last warmup step (the
    first step already moves the weights), then a half cosine to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = math.ceil(total_steps * warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_with_warmup(step, total_steps, warmup))
