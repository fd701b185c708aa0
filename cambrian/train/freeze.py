"""What trains in each stage, which learning-rate part every parameter belongs to, and the table logged at start.

Parts (official-cambrian.md 5.1: projectors at the base lr, anything named vision_sampler / vision_query at the
sampler lr):
  projector  connector.tower_projectors, connector.projector, image_newline (and any other connector module)
  sampler    connector.queries, connector.samplers, connector.llm_layers (the in-LLM SVA blocks)
  llm        language_model (its LoRA adapters when lora_r > 0)
  vision     towers

Towers: pretrained towers stay frozen unless `unfreeze_vision`; a tower whose own TowerConfig says `trainable` (a
from-scratch tower, e.g. cambrian-nano's ViT) trains in every stage while `train_scratch_towers` is on, because a
frozen random tower would only feed noise to the connector.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cambrian.train.config import TrainConfig

SAMPLER_PREFIXES = ("connector.queries", "connector.samplers", "connector.llm_layers")


def part_of(name: str) -> str:
    """Parameter name (as in the unwrapped model) -> its learning-rate part."""
    if name.startswith("towers."):
        return "vision"
    if name.startswith("language_model."):
        return "llm"
    if name.startswith(SAMPLER_PREFIXES):
        return "sampler"
    if name.startswith(("connector.", "image_newline")):
        return "projector"
    raise ValueError(f"parameter {name!r} belongs to no known part (towers, connector, image_newline, language_model)")


def tower_trains(model: nn.Module, index: int, config: TrainConfig) -> bool:
    declared = model.config.tower_configs[index].trainable  # the model's own declaration, not the live flag
    return config.unfreeze_vision or (config.train_scratch_towers and declared)


def apply_freeze(model: nn.Module, config: TrainConfig) -> None:
    """Set requires_grad for the stage. With LoRA applied (peft), only the adapters of the LLM train."""
    model.requires_grad_(False)
    model.connector.requires_grad_(True)
    if model.image_newline is not None:
        model.image_newline.requires_grad_(True)
    if config.preset.trains_llm:
        for name, param in model.language_model.named_parameters():
            param.requires_grad_(not config.lora_r or "lora_" in name)
    for index, tower in enumerate(model.towers):
        tower.set_trainable(tower_trains(model, index, config))  # also keeps frozen towers in eval mode


@dataclass
class Row:
    module: str
    part: str
    trainable: int
    total: int
    lr: float | None


def _units(model: nn.Module) -> list[tuple[str, nn.Module | nn.Parameter]]:
    units: list[tuple[str, nn.Module | nn.Parameter]] = []
    for i, tower in enumerate(model.towers):
        units.append((f"towers.{i} ({tower.name})", tower))
    for name, child in model.connector.named_children():
        units.append((f"connector.{name}", child))
    for name, param in model.connector.named_parameters(recurse=False):
        units.append((f"connector.{name}", param))
    if model.image_newline is not None:
        units.append(("image_newline", model.image_newline))
    units.append(("language_model", model.language_model))
    return units


def freeze_table(model: nn.Module, config: TrainConfig) -> list[Row]:
    lrs = config.part_lrs()
    rows = []
    for label, unit in _units(model):
        params = [unit] if isinstance(unit, nn.Parameter) else list(unit.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        key = label.split(" ")[0] + (".weight" if label == "language_model" else "")
        part = part_of(key if not label.startswith("towers") else "towers.")
        rows.append(Row(label, part, trainable, sum(p.numel() for p in params), lrs[part] if trainable else None))
    return rows


def format_table(rows: list[Row], config: TrainConfig) -> str:
    lora = f" (LoRA r={config.lora_r})" if config.lora_r else ""
    header = f"stage {config.stage} ({config.preset.name}): what trains{lora}"
    lines = [header, f"{'module':<40} {'part':<9} {'trainable':>12} {'total':>12}  lr"]
    for row in rows:
        lr = f"{row.lr:g}" if row.lr is not None else "frozen"
        lines.append(f"{row.module:<40} {row.part:<9} {row.trainable:>12,} {row.total:>12,}  {lr}")
    trainable, total = sum(r.trainable for r in rows), sum(r.total for r in rows)
    lines.append(f"{'total':<40} {'':<9} {trainable:>12,} {total:>12,}  ({100 * trainable / max(total, 1):.2f}%)")
    return "\n".join(lines)
