"""The training config: one flat, typed dataclass (printed at start, saved with the run), stage presets, and the
YAML/JSON + `--key=value` loading that fills it. No CLI flag re-declares a field: every field is an override.

Stage presets (official-cambrian.md 5.1; paper Section 3.3):
  stage 1 (alignment)          connector trains (projectors, SVA queries + samplers, in-LLM SVA blocks, newline);
                               LLM and pretrained towers frozen; lr 1e-3 projectors, 1e-4 samplers/queries; warmup 6%
  stage 2 (instruction tuning) connector + LLM train (LLM through LoRA when lora_r > 0); towers frozen unless
                               unfreeze_vision; one lr 4e-5 unless per-part lrs are given; warmup 3%
A field left at None takes its value from the stage preset when the config is resolved.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class StagePreset:
    name: str
    lr: float  # base lr: projectors (and every part without its own lr)
    sampler_lr: float | None  # SVA queries, samplers and in-LLM blocks; None -> lr
    warmup_ratio: float
    trains_llm: bool


STAGES: dict[int, StagePreset] = {
    1: StagePreset("alignment", lr=1e-3, sampler_lr=1e-4, warmup_ratio=0.06, trains_llm=False),
    2: StagePreset("instruction tuning", lr=4e-5, sampler_lr=None, warmup_ratio=0.03, trains_llm=True),
}

STRATEGIES = ("auto", "single", "ddp", "fsdp")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    # -- what trains ------------------------------------------------------------------------------------------------
    model: str | None = None  # preset name or saved model folder; None -> the init_from checkpoint's model
    stage: int = 1  # 1: connector alignment, 2: instruction tuning
    init_from: str | None = None  # stage 2: a stage-1 checkpoint folder (or its run folder: newest checkpoint)
    unfreeze_vision: bool = False  # train every vision tower (paper Finding 4)
    train_scratch_towers: bool = True  # towers whose TowerConfig says trainable (from scratch) train in every stage
    # -- data ---------------------------------------------------------------------------------------------------------
    data_path: str | None = None  # LLaVA/Cambrian JSONL (or JSON / parquet)
    image_root: str | None = None  # None -> the data file's folder
    template: str | None = None  # chat template; None -> the model's (LLMConfig.template), else the tokenizer's
    max_length: int = 2048  # tokens per sample, every image counted as its visual tokens
    group_by_length: bool = True  # modality + length grouped batches (official group_by_modality_length)
    on_error: str = "raise"  # bad records: "raise", or "skip" (logged to <output_dir>/rejects.jsonl)
    num_workers: int = 0
    # -- optimisation -------------------------------------------------------------------------------------------------
    epochs: int = 1
    max_steps: int | None = None  # stop early (the schedule still spans max_steps)
    batch_size: int = 8  # per device micro-batch; global batch = batch_size * grad_accum * world size
    grad_accum: int = 1
    lr: float | None = None  # base lr (projectors); None -> stage preset
    projector_lr: float | None = None  # tower projectors, final projector, image newline; None -> lr
    sampler_lr: float | None = None  # SVA queries + samplers + in-LLM blocks; None -> stage preset, then lr
    llm_lr: float | None = None  # None -> lr
    vision_lr: float | None = None  # towers that train; None -> lr
    warmup_ratio: float | None = None  # None -> stage preset
    weight_decay: float = 0.0  # never on biases, norms, queries, positional embeddings, the newline token
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0  # 0 disables clipping
    # -- LoRA on the LLM (stage 2) ------------------------------------------------------------------------------------
    lora_r: int = 0  # 0 = full fine-tuning
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # -- systems ------------------------------------------------------------------------------------------------------
    strategy: str = "auto"  # auto (ddp when launched with torchrun) | single | ddp | fsdp (FSDP2 fully_shard)
    precision: str = "auto"  # auto (bf16 autocast where the device supports it, else fp32) | fp32 | bf16
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    # -- checkpoints and logging --------------------------------------------------------------------------------------
    output_dir: str = "runs/cambrian"
    save_every: int = 500  # optimizer steps between checkpoints (and one at the end)
    keep_last: int = 2
    resume: str | None = None  # "auto" (newest complete checkpoint in output_dir, else start fresh) or a folder
    save_final: bool = True  # convert the last checkpoint to a full model folder <output_dir>/final
    log_every: int = 1
    trackers: str = "auto"  # comma list of tensorboard, wandb; "auto" = tensorboard when installed; "none"
    progress: bool = True  # the progress bar (rank 0)

    # -- resolution -----------------------------------------------------------------------------------------------
    @property
    def preset(self) -> StagePreset:
        return STAGES[self.stage]

    def resolved(self) -> TrainConfig:
        """Validated copy with every preset-backed field filled in: what runs, and what is saved with the run."""
        if self.stage not in STAGES:
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        checks = {
            "strategy": (self.strategy, STRATEGIES),
            "precision": (self.precision, PRECISIONS),
            "on_error": (self.on_error, ("raise", "skip")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; choose one of {', '.join(allowed)}")
        if self.model is None and self.init_from is None:
            raise ValueError("set `model` (a preset name such as cambrian-tiny, or a model folder) or `init_from`")
        if self.data_path is None:
            raise ValueError("set `data_path` (a LLaVA-style JSONL); e.g. --data_path=data/train.jsonl")
        if self.lora_r and not self.preset.trains_llm:
            raise ValueError("lora_r > 0 adapts the LLM, which stage 1 keeps frozen; use stage=2 for LoRA")
        for name in ("batch_size", "grad_accum", "epochs", "log_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        preset = self.preset
        lr = self.lr if self.lr is not None else preset.lr
        sampler = self.sampler_lr if self.sampler_lr is not None else preset.sampler_lr
        return dataclasses.replace(
            self,
            lr=lr,
            projector_lr=self.projector_lr if self.projector_lr is not None else lr,
            sampler_lr=sampler if sampler is not None else lr,
            llm_lr=self.llm_lr if self.llm_lr is not None else lr,
            vision_lr=self.vision_lr if self.vision_lr is not None else lr,
            warmup_ratio=self.warmup_ratio if self.warmup_ratio is not None else preset.warmup_ratio,
        )

    def part_lrs(self) -> dict[str, float]:
        return {
            "projector": self.projector_lr,
            "sampler": self.sampler_lr,
            "llm": self.llm_lr,
            "vision": self.vision_lr,
        }

    # -- (de)serialisation ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        return cls(**{key: _coerce(key, value, where) for key, value in data.items()})


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _unknown(key: str, where: str) -> KeyError:
    close = difflib.get_close_matches(key, list(_FIELDS), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(_FIELDS)}"
    return KeyError(f"{where}: unknown training option {key!r}{hint}")


def _coerce(key: str, value: Any, where: str) -> Any:
    """A YAML / command-line value -> the field's type (PyYAML reads `1e-3` as a string; `none` means None)."""
    key = key.replace("-", "_")
    if key not in _FIELDS:
        raise _unknown(key, where)
    hint = _HINTS[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~", ""))):
        return None
    base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
    origin = typing.get_origin(base) or base
    try:
        if origin is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if origin is float:
            return float(value)
        if origin is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if origin is str:
            return str(value)
        if origin in (list, tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            (item,) = set(typing.get_args(base)) or {str}
            items = [item(v) for v in value]
            return tuple(items) if origin is tuple else items
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key}={value!r} is not a valid {base}") from None
    return value


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--key=value`, `--key value` or a bare `--flag` (true) -> {key: raw value}; values are read as YAML."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; overrides look like --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        key = key.replace("-", "_")
        if key not in _FIELDS:
            raise _unknown(key, "command line")
        overrides[key] = yaml.safe_load(value) if value else None
        i += 1
    return overrides


def load_config(path: str | Path | None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """A YAML or JSON file (or None for all defaults) plus overrides -> TrainConfig (unresolved)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config is a mapping of option: value, got {type(data).__name__}")
        for key in data:
            if key.replace("-", "_") not in _FIELDS:
                raise _unknown(key, str(path))
        data = {key.replace("-", "_"): value for key, value in data.items()}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    data.update(overrides or {})
    return TrainConfig.from_dict(data, where=str(path) if path else "config")
