"""The training loop: the recipe, step by step. Everything distributed goes through the strategy object.

Loss normalisation: every micro-batch's mean loss is rescaled to (its supervised tokens / the global batch's
supervised tokens), so one optimizer step sees the token-mean gradient of the whole global batch whatever the split
into ranks and accumulation steps. A 2-process DDP or FSDP run therefore matches a 1-process run of the same global
batch up to float rounding, and the logged loss is that global token mean.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import numpy as np
import torch

from cambrian.constants import IGNORE_INDEX
from cambrian.train.checkpoint import (
    TrainState,
    checkpoint_root,
    convert_checkpoint,
    frozen_checksums,
    latest_checkpoint,
    load_weights,
    read_manifest,
    remove_incomplete,
    resolve_checkpoint,
    rng_state,
    saved_names,
    set_rng_state,
    verify_checksums,
    write_checkpoint,
)
from cambrian.train.config import TrainConfig
from cambrian.train.distributed import make_strategy, resolve_device
from cambrian.train.freeze import format_table, freeze_table
from cambrian.train.metrics import MetricsLogger, Progress
from cambrian.train.model import build_for_training, with_model_source
from cambrian.train.optim import build_optimizer, build_scheduler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(precision: str, device: torch.device):
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if bf16 else "fp32"
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def build_data(config: TrainConfig, model, tokenizer, rank: int, world_size: int):
    """-> (sampler, loader). Batches are exactly the model's forward inputs (cambrian.data's collator)."""
    from torch.utils.data import DataLoader

    from cambrian.data.collator import DataCollator
    from cambrian.data.datasets import ConversationDataset
    from cambrian.data.sampler import LengthGroupedSampler

    data_path = Path(config.data_path)
    side = model.towers[0].config.image_size
    dataset = ConversationDataset(
        data_path,
        tokenizer,
        template=config.template or model.config.llm_config.template or "tokenizer",
        image_root=config.image_root or data_path.parent,
        image_transform=model.image_transform,
        max_length=config.max_length,
        tokens_per_image=model.num_image_tokens((side, side)),  # the most an image can cost
        on_error=config.on_error,
        rejects_path=Path(config.output_dir) / f"rejects.rank{rank}.jsonl" if config.on_error == "skip" else None,
    )
    lengths = dataset.modality_lengths() if config.group_by_length else np.ones(len(dataset), np.int64)
    # one sampler batch per rank and optimizer step (batch_size x grad_accum, cut into micro-batches by the loader):
    # the global batch is then the same set of samples for any split into ranks and accumulation steps
    per_step = config.batch_size * config.grad_accum
    sampler = LengthGroupedSampler(lengths, per_step, seed=config.seed, num_replicas=world_size, rank=rank)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=DataCollator(pad_token_id=tokenizer.pad_token_id, padding_side="right"),
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed),  # worker seeds never draw from the global RNG
    )
    return sampler, loader


def _to_device(batch: dict, device: torch.device) -> dict:
    moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if moved["pixel_values"] is not None:
        moved["pixel_values"] = {k: v.to(device) for k, v in moved["pixel_values"].items()}
    return moved


def supervised_tokens(batch: dict | None) -> int:
    return 0 if batch is None else int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def sequence_tokens(batch: dict | None, model) -> int:
    """Tokens the LLM processes: text plus every image's visual tokens (one placeholder each)."""
    if batch is None:
        return 0
    return int(batch["attention_mask"].sum()) + sum(model.num_image_tokens(s) - 1 for s in batch["image_sizes"])


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.strategy = make_strategy(config.strategy, self.device)
        self.autocast = autocast(config.precision, self.device)

    def log(self, text: str) -> None:
        if self.strategy.is_main:
            print(text, flush=True)

    # -- setup -----------------------------------------------------------------------------------------------------
    def _resume_target(self, root: Path) -> Path | None:
        config = self.config
        if config.resume == "auto":
            return latest_checkpoint(root)
        if config.resume:
            return resolve_checkpoint(config.resume)
        if latest_checkpoint(root) is not None:
            raise FileExistsError(
                f"{root} already holds checkpoints; pass --resume auto to continue that run, or another output_dir"
            )
        return None

    def setup(self) -> None:
        config, strategy = self.config, self.strategy
        out = Path(config.output_dir)
        root = checkpoint_root(out)
        self.root = root
        self.resume_from = self._resume_target(root)
        if strategy.is_main:
            out.mkdir(parents=True, exist_ok=True)
            for path in remove_incomplete(root):
                self.log(f"removed incomplete checkpoint {path} (a run died while writing it)")
            (out / "train_config.yaml").write_text(config.to_yaml())
            self.log(f"training config ({strategy.name}, world size {strategy.world_size}, {self.device}):")
            self.log("\n".join("  " + line for line in config.to_yaml().splitlines()))
        strategy.barrier()

        model, tokenizer = build_for_training(config)
        self.log(format_table(freeze_table(model, config), config))
        self.checksums = frozen_checksums(model)
        self.names = saved_names(model)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.resume_from is not None:
            load_weights(model, self.resume_from, require=self.names)
            verify_checksums(model, read_manifest(self.resume_from)["frozen_checksums"], self.resume_from)
        model.to(self.device)
        model.train()
        self.model, self.tokenizer = model, tokenizer

        self.sampler, self.loader = build_data(config, model, tokenizer, strategy.rank, strategy.world_size)
        micro_batches = len(self.sampler.indices(0)) // config.batch_size
        self.steps_per_epoch = micro_batches // config.grad_accum
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{micro_batches} micro-batches per rank and epoch, fewer than grad_accum={config.grad_accum}: "
                "lower batch_size or grad_accum, or use more data"
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)

        self.wrapped = strategy.wrap(model)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, config.warmup_ratio)
        self.state = TrainState()
        if self.resume_from is not None:
            self._load_training_state(self.resume_from)
        else:
            seed_everything(config.seed + strategy.rank)
        self.metrics = MetricsLogger(
            out,
            config.trackers,
            config.to_dict(),
            resume_step=self.state.step if self.resume_from is not None else None,
            enabled=strategy.is_main,
        )

    def _load_training_state(self, folder: Path) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        manifest = read_manifest(folder)
        self.state = TrainState(manifest["step"], manifest["epoch"], manifest["consumed"])
        optimizer_state = torch.load(folder / "optimizer.pt", weights_only=True)
        set_optimizer_state_dict(
            self.model, self.optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True)
        )
        self.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        rngs = torch.load(folder / "rng.pt", weights_only=False)
        if len(rngs) == self.strategy.world_size:
            set_rng_state(rngs[self.strategy.rank])
        else:
            self.log(
                f"warning: {folder} was written by {len(rngs)} processes, this run has {self.strategy.world_size}: "
                "data order and RNG streams change, so the continuation is not bit-exact"
            )
            seed_everything(self.config.seed + self.strategy.rank + self.state.step)
        self.log(f"resumed from {folder} (step {self.state.step}, epoch {self.state.epoch})")

    # -- one optimizer step ----------------------------------------------------------------------------------------
    def step(self, micro: list[dict | None]) -> dict:
        strategy, config = self.strategy, self.config
        counts = [supervised_tokens(b) for b in micro]
        tokens = [sequence_tokens(b, self.model) for b in micro]
        samples = [0 if b is None else len(b["input_ids"]) for b in micro]
        total, n_tokens, n_samples = strategy.all_reduce_sum([sum(counts), sum(tokens), sum(samples)])
        if total == 0:
            raise RuntimeError(f"step {self.state.step + 1}: no supervised token in the whole global batch")
        loss_sum = 0.0
        for index, (batch, count) in enumerate(zip(micro, counts, strict=True)):
            if batch is None:
                if strategy.world_size > 1:
                    raise RuntimeError("a whole micro-batch was rejected (on_error=skip); not supported under torchrun")
                continue
            batch = _to_device(batch, self.device)
            with strategy.sync_gradients(self.wrapped, sync=index == len(micro) - 1):
                with self.autocast():
                    output = self.wrapped(**batch)
                mean = output.loss if count else output.logits.sum() * 0.0
                scaled = mean * (count * strategy.world_size / total)
                if not scaled.requires_grad:  # e.g. a text-only batch in stage 1: nothing trainable was reached
                    if strategy.world_size > 1:
                        raise RuntimeError(
                            "a micro-batch reached no trainable parameter (a text-only batch in stage 1?); "
                            "stage 1 needs image data"
                        )
                    continue
                scaled.backward()
            if count:
                loss_sum += float(output.loss.detach()) * count
        grad_norm = strategy.clip_grad_norm(self.model, config.max_grad_norm)
        lrs = {group["part"]: group["lr"] for group in self.optimizer.param_groups}
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        (loss_total,) = strategy.all_reduce_sum([loss_sum])
        return {
            "loss": loss_total / total,
            "grad_norm": grad_norm,
            "lrs": lrs,
            "tokens": n_tokens,
            "samples": n_samples,
        }

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        strategy = self.strategy
        weights = strategy.trainable_state(self.model, self.names)
        optimizer_state = get_optimizer_state_dict(
            self.model, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        rngs = strategy.all_gather_object(rng_state())
        path = None
        if strategy.is_main:
            path = write_checkpoint(
                self.root,
                self.state,
                weights,
                optimizer_state,
                self.scheduler.state_dict(),
                rngs,
                self.config,
                self.checksums,
                self.config.keep_last,
            )
        strategy.barrier()
        return path

    # -- the loop --------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        config, strategy, state = self.config, self.strategy, self.state
        per_step = config.batch_size * config.grad_accum  # samples per rank and optimizer step
        progress = Progress(self.total_steps, state.step, enabled=strategy.is_main and config.progress)
        losses, last_saved, start = [], None, time.perf_counter()
        while state.step < self.total_steps:
            # the sampler's order depends only on (seed, epoch): position `consumed` continues it exactly
            self.sampler.load_state_dict({"epoch": state.epoch, "position": state.consumed, "seed": config.seed})
            batches = iter(self.loader)
            epoch_done = False
            while state.step < self.total_steps and not epoch_done:
                tick = time.perf_counter()
                micro = [next(batches) for _ in range(config.grad_accum)]
                stats = self.step(micro)
                state.step += 1
                state.consumed += per_step
                if state.consumed >= self.steps_per_epoch * per_step:
                    state.epoch, state.consumed, epoch_done = state.epoch + 1, 0, True
                seconds = time.perf_counter() - tick
                record = {
                    "step": state.step,
                    "epoch": state.epoch + state.consumed / (self.steps_per_epoch * per_step),
                    "loss": stats["loss"],
                    "lr": stats["lrs"].get("projector", next(iter(stats["lrs"].values()))),
                    **{f"lr/{part}": lr for part, lr in stats["lrs"].items()},
                    "grad_norm": stats["grad_norm"],
                    "samples_per_s": stats["samples"] / seconds,
                    "tokens_per_s": stats["tokens"] / seconds,
                    "step_s": seconds,
                }
                losses.append(stats["loss"])
                if state.step % config.log_every == 0 or state.step == self.total_steps:
                    self.metrics.log(record)
                progress.update(record)
                if state.step % config.save_every == 0 or state.step == self.total_steps:
                    last_saved = self.save()
                    if last_saved is not None:
                        progress.write(f"saved {last_saved}")
            del batches
        progress.close()
        self.metrics.close()
        final = None
        if config.save_final and strategy.is_main:
            latest = latest_checkpoint(self.root)
            if latest is not None:
                final = convert_checkpoint(latest, Path(config.output_dir) / "final")
                self.log(f"full model written to {final}")
        strategy.barrier()
        elapsed = time.perf_counter() - start
        return {
            "losses": losses,
            "steps": state.step,
            "elapsed_s": elapsed,
            "checkpoint": last_saved,
            "final": final,
            "is_main": strategy.is_main,
        }


def train(config: TrainConfig) -> dict:
    """Run (or resume) a training run. -> {losses, steps, elapsed_s, checkpoint, final, is_main}."""
    config = with_model_source(config.resolved())
    trainer = Trainer(config)
    try:
        trainer.setup()
        return trainer.fit()
    finally:
        trainer.strategy.close()
