"""Full-state checkpoints, written atomically, and the way back from a checkpoint to a model.

    <output_dir>/checkpoints/step-00000120/
        trainable.safetensors   every parameter (and buffer of a training part) that trains, unsharded
        optimizer.pt            AdamW state keyed by parameter name (same file for single, DDP and FSDP runs)
        scheduler.pt            the LambdaLR state
        rng.pt                  python / numpy / torch / cuda RNG of every rank
        train_config.yaml       the resolved config of the run
        checkpoint.json         written last: step, epoch, sampler position, world size, frozen-weight checksums

Rank 0 writes into `.tmp-step-...` and renames it when complete, so a crash at any moment leaves either the complete
folder or a temp folder that `latest_checkpoint` never considers (and the next run deletes). Frozen weights are not
saved: they are rebuilt from the model source with the run's seed, and the checksums recorded in checkpoint.json
prove that the rebuild matches (a random-init preset built under another seed would not).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cambrian.train.config import TrainConfig, load_config

MANIFEST = "checkpoint.json"
STEP_FOLDER = re.compile(r"^step-(\d{8})$")
FORMAT_VERSION = 1


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    consumed: int = 0  # samples this rank has trained on in `epoch` (the sampler's resume position)


# -- names and checksums -----------------------------------------------------------------------------------------
TRAINING_PARTS = ("towers.", "connector.", "image_newline", "language_model.")


def saved_names(model: nn.Module) -> list[str]:
    """Trainable parameters, plus persistent buffers (e.g. batch-norm statistics) of towers that train."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    for index, tower in enumerate(model.towers):
        if any(p.requires_grad for p in tower.parameters()):
            non_persistent = {
                f"{prefix}.{b}" if prefix else b
                for prefix, module in tower.named_modules()
                for b in module._non_persistent_buffers_set
            }
            names += [f"towers.{index}.{b}" for b, _ in tower.named_buffers() if b not in non_persistent]
    return names


def frozen_checksums(model: nn.Module) -> dict[str, float]:
    """float64 sum of every frozen parameter: cheap, and enough to tell two random initialisations apart."""
    return {
        name: float(p.detach().sum(dtype=torch.float64)) for name, p in model.named_parameters() if not p.requires_grad
    }


def verify_checksums(model: nn.Module, expected: dict[str, float], source: Path) -> None:
    actual = dict(model.named_parameters())
    bad = []
    for name, value in expected.items():
        if name not in actual:
            bad.append(f"{name} (missing)")
            continue
        got = float(actual[name].detach().sum(dtype=torch.float64))
        if abs(got - value) > 1e-6 * max(1.0, abs(value)):
            bad.append(f"{name} ({got:.6g} != {value:.6g})")
    if bad:
        raise ValueError(
            f"{source}: the rebuilt frozen weights differ from those the checkpoint was trained with: "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. The model source or seed changed; rebuild with "
            "the run's own config (train_config.yaml in the checkpoint)."
        )


# -- RNG ---------------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- writing -----------------------------------------------------------------------------------------------------
def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    root: Path,
    state: TrainState,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict,
    scheduler_state: dict,
    rng_states: list[dict],
    config: TrainConfig,
    checksums: dict[str, float],
    keep_last: int,
) -> Path:
    """Rank 0 only. Everything goes to a temp folder that is renamed to step-XXXXXXXX once complete."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    save_file(weights, str(tmp / "trainable.safetensors"), metadata={"step": str(state.step)})
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler_state, tmp / "scheduler.pt")
    torch.save(rng_states, tmp / "rng.pt")
    (tmp / "train_config.yaml").write_text(config.to_yaml())
    manifest = {
        "format": FORMAT_VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "consumed": state.consumed,
        "world_size": len(rng_states),
        "frozen_checksums": checksums,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    for file in tmp.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving a step (a resume from an older explicit checkpoint): move the old one aside
        old = root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        shutil.rmtree(old)
    os.rename(tmp, final)
    _fsync_dir(root)
    for stale in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(stale)
    return final


def remove_incomplete(root: Path) -> list[Path]:
    """Temp folders left by a crash mid-write (never loaded; removed at the next start)."""
    removed = [p for p in root.glob(".tmp-step-*")] + [p for p in root.glob(".old-step-*")] if root.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


# -- reading -----------------------------------------------------------------------------------------------------
def is_complete(folder: Path) -> bool:
    if not STEP_FOLDER.match(folder.name) or not (folder / MANIFEST).is_file():
        return False
    try:
        json.loads((folder / MANIFEST).read_text())
    except (json.JSONDecodeError, OSError):
        return False
    files = ("trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "train_config.yaml")
    return all((folder / f).is_file() for f in files)


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete step folders, oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and is_complete(p)), key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    done = complete_checkpoints(root)
    return done[-1] if done else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, a run folder (its newest checkpoint) or a checkpoints folder -> a complete checkpoint."""
    path = Path(path)
    if is_complete(path):
        return path
    for root in (path / "checkpoints", path):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"{path}: not a complete checkpoint (a step-XXXXXXXX folder with {MANIFEST}) nor a run folder holding one"
    )


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def checkpoint_config(folder: Path) -> TrainConfig:
    return load_config(folder / "train_config.yaml")


def load_weights(model: nn.Module, folder: Path, require: list[str] | None = None) -> list[str]:
    """Copy a checkpoint's saved tensors into an unwrapped model. Every saved name must exist in the model, and
    every name in `require` must be in the checkpoint. -> the names loaded."""
    weights = load_file(str(folder / "trainable.safetensors"))
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    unknown = sorted(set(weights) - set(tensors))
    if unknown:
        raise KeyError(f"{folder}: {len(unknown)} saved tensors do not exist in the model, e.g. {unknown[:3]}")
    missing = sorted(set(require or ()) - set(weights))
    if missing:
        raise KeyError(f"{folder}: the checkpoint lacks {len(missing)} tensors that train now, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            if tensors[name].shape != value.shape:
                raise ValueError(
                    f"{folder}: {name} has shape {tuple(value.shape)}, model has {tuple(tensors[name].shape)}"
                )
            tensors[name].copy_(value)
    return list(weights)


# -- checkpoint -> model -----------------------------------------------------------------------------------------
def restore_model(checkpoint: str | Path, merge_lora: bool = True):
    """Rebuild exactly the model a checkpoint was trained on -> (model, tokenizer), unwrapped, on CPU.

    Its own config gives the model source and seed (and its `init_from`, restored the same way, recursively); the
    frozen-weight checksums are verified; LoRA adapters are merged into the LLM unless merge_lora=False."""
    from cambrian.train.model import build_for_training

    folder = resolve_checkpoint(checkpoint)
    config = checkpoint_config(folder).resolved()
    model, tokenizer = build_for_training(config)
    load_weights(model, folder)
    verify_checksums(model, read_manifest(folder)["frozen_checksums"], folder)
    if merge_lora and config.lora_r:
        model.language_model = model.language_model.merge_and_unload()
    model.requires_grad_(False)
    return model, tokenizer


def convert_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """A training checkpoint -> a full model folder that `CambrianForCausalLM.from_pretrained` (and
    `cambrian.models.builder.load_model`) opens. Written to a temp folder, then renamed."""
    from cambrian.models.builder import save_model

    out = Path(out)
    model, tokenizer = restore_model(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    save_model(model, tokenizer, tmp)
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return out
