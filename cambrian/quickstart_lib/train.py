"""A time-budgeted trainer for the two stages of the quickstart (paper Section 3.3 recipe, CPU-sized).

Why not `cambrian train`: the quickstart must finish inside a wall-clock budget on two cores, so this loop stops at
a deadline instead of a step count and spends no compute that does not move the loss: batches hold one kind of
example (short answers are never padded to caption length), sequences are left-padded so that every supervised
token sits in the last K columns, and the LLM computes logits for those K columns only (`logits_to_keep`).
The model, freeze rules and learning-rate parts are the project's own (stage 1: connector; stage 2: connector+LLM).
"""

from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cambrian.constants import IGNORE_INDEX
from cambrian.data.masking import tokenize_conversation
from cambrian.models.image_tokens import expand_placeholders
from cambrian.models.llm import decoder_layers
from cambrian.train.loop import autocast


@dataclass
class StageConfig:
    name: str
    seconds: float  # wall-clock budget for this stage
    mix: dict[str, float]  # example kind -> share of batches
    connector_lr: float
    llm_lr: float = 0.0  # 0: LLM frozen (stage 1)
    train_embedding: bool = True  # False: the LLM trains without its input embedding (and the LM head, when tied)
    # only the top N decoder layers train (with the final norm and the in-LLM SVA blocks after them); the layers below,
    # the connector's input samplers and its other blocks keep their weights, so the backward pass stops at layer
    # num_layers - N. None: the whole LLM and connector train (Section 3.3's stage 2)
    top_layers: int | None = None
    batch_size: int = 16
    long_batch_size: int = 8  # captions, descriptions and chat are ~4x longer than short answers
    max_steps: int | None = None
    # a first phase on another mix (a curriculum): its share of the stage's time, or of max_steps (at least 1 step)
    first_mix: dict[str, float] | None = None
    first_share: float = 0.0
    # the second phase starts its own warmup and cosine (a fresh lr, as a second stage would) instead of going on
    # with the first phase's decayed one
    restart_lr: bool = False
    # teacher forcing of the coordinate readout's tokens (readout.forced_words): a CV-Bench batch's readout token says
    # the right answer's word, not the fitted readout's guess (right for 77-84 % of the questions it was fitted on),
    # so every answer the LLM is trained on agrees with the token it is to read
    force_readout: bool = False
    warmup_steps: int = 3
    seed: int = 0
    bf16: bool = False  # autocast matmuls to bf16 (on a GPU; on a CPU where they are fast: cpu.bf16_matmul_is_fast)


@dataclass
class StageLog:
    name: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    samples: int = 0
    skipped: list[dict] = field(default_factory=list)  # steps whose loss or gradient was not finite: not applied
    stopped: str | None = None  # why the stage ended before its time, if it did

    def to_dict(self) -> dict:
        return {"name": self.name, "steps": self.steps, "seconds": self.seconds, "loss": self.loss,
                "kind": self.kind, "samples": self.samples, "skipped": self.skipped, "stopped": self.stopped}


LONG_KINDS = {"caption", "describe", "chat"}
FUSED_ADAMW_DEVICES = ("cpu", "cuda")
MAX_NONFINITE_IN_A_ROW = 10  # then the stage stops (the weights are still the last finite ones)


class Batcher:
    """Endless shuffled batches of one kind at a time, the kinds interleaved in the mix's exact shares.

    The kind of each batch is dealt by smooth weighted round-robin (each kind earns its share per batch; the kind
    with the most credit goes next and pays one batch), not drawn at random: a CPU run's stage 2 has 47-88 steps,
    and at that length random draws from a 0.72 vqa share gave 26 of 47 and 48 of 88 vqa batches (session 22)."""

    def __init__(self, examples: dict[str, list], mix: dict[str, float], sizes: dict[str, int], seed: int):
        self.rng = random.Random(seed)
        self.pools = {k: list(v) for k, v in examples.items() if v and mix.get(k, 0) > 0}
        if not self.pools:
            raise ValueError(f"no examples for any kind in the mix {mix}")
        total = sum(mix[k] for k in self.pools)
        self.shares = {k: mix[k] / total for k in self.pools}
        self.credit = dict.fromkeys(self.pools, 0.0)
        self.sizes, self.cursor = sizes, {k: len(v) for k, v in self.pools.items()}

    def next_kind(self) -> str:
        for k, share in self.shares.items():
            self.credit[k] += share
        kind = max(self.credit, key=self.credit.get)
        self.credit[kind] -= 1.0
        return kind

    def next(self) -> tuple[str, list]:
        kind = self.next_kind()
        pool, size = self.pools[kind], self.sizes[kind]
        if self.cursor[kind] + size > len(pool):
            self.rng.shuffle(pool)
            self.cursor[kind] = 0
        start = self.cursor[kind]
        self.cursor[kind] += size
        return kind, pool[start:start + size]


def load_image(image):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image) if isinstance(image, bytes) else image).convert("RGB")


def collate(model, tokenizer, examples: list, cache: dict) -> dict:
    """Left-padded ids/labels with placeholders already expanded, pixels per tower, and K (supervised tail)."""
    token_rows, images = [], []
    for e in examples:
        if e.id not in cache:
            tokens = tokenize_conversation(e.turns, tokenizer, "tokenizer")
            cache[e.id] = (tokens.input_ids, tokens.labels)
        token_rows.append(cache[e.id])
        if e.image is not None:
            images.append(load_image(e.image))
    width = max(len(ids) for ids, _ in token_rows) + 1  # one pad column: the expansion keeps the left padding
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    mask = torch.zeros_like(input_ids)
    for r, (ids, lab) in enumerate(token_rows):
        input_ids[r, width - len(ids):] = torch.tensor(ids)
        labels[r, width - len(ids):] = torch.tensor(lab)
        mask[r, width - len(ids):] = 1
    batch = model.image_inputs(images)
    if images:
        counts = [model.num_image_tokens(im.size) for im in images]
        input_ids, mask, labels = expand_placeholders(input_ids, mask, labels, counts, model.config.image_token_id,
                                                      pad)
    supervised = (labels != IGNORE_INDEX).float().argmax(dim=1)  # first supervised column per row
    keep = int(labels.shape[1] - supervised.min()) + 1
    device = model.device  # pixels are already there (image_inputs)
    batch.update(input_ids=input_ids.to(device), attention_mask=mask.to(device), labels=labels.to(device),
                 keep=min(keep, labels.shape[1]))
    return batch


def supervised_logits(model, batch: dict, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (logits, targets) over the batch's supervised tail (`collate`'s K columns); column j predicts target j."""
    keep = batch["keep"]
    with autocast("bf16" if bf16 else "fp32", batch["input_ids"].device)():  # weights, optimizer and loss stay fp32
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch.get("pixel_values"), image_sizes=batch.get("image_sizes"), logits_to_keep=keep)
    return out.logits[:, :-1].float(), batch["labels"][:, -keep + 1:]


def batch_loss(model, batch: dict, bf16: bool = False) -> torch.Tensor:
    """Mean next-token cross-entropy over the supervised tokens. The LM head runs at exactly the positions that
    predict one (a boolean `logits_to_keep`): a short-answer row supervises ~6 of its ~67 tail columns, and with the
    head over 49,152 words at those alone an fp32 stage-2 step takes 0.76-0.87 of the time (benchmarks/lm_head.py)."""
    labels = batch["labels"]
    predicts = torch.zeros_like(labels, dtype=torch.bool)  # column j predicts token j + 1
    predicts[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    with autocast("bf16" if bf16 else "fp32", labels.device)():  # weights, optimizer and loss stay fp32
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch.get("pixel_values"), image_sizes=batch.get("image_sizes"),
                    logits_to_keep=predicts)
    return F.cross_entropy(out.logits.float(), labels[:, 1:][predicts[:, :-1]])


def set_trainable(model, stage: StageConfig) -> list[dict]:
    """Stage 1: connector (+ image newline) only; stage 2: also the LLM, or its top `stage.top_layers` layers with
    the in-LLM SVA blocks among them. Towers stay frozen (both are pretrained)."""
    model.requires_grad_(False)
    if stage.llm_lr > 0 and stage.top_layers is not None:
        return _set_top_trainable(model, stage)
    connector = [p for p in model.connector.parameters()] + ([model.image_newline] if model.image_newline
                                                              is not None else [])
    for p in connector:
        p.requires_grad_(True)
    groups = [{"params": connector, "lr": stage.connector_lr}]
    if stage.llm_lr > 0:
        model.language_model.requires_grad_(True)
        if not stage.train_embedding:
            model.language_model.get_input_embeddings().requires_grad_(False)
        groups.append({"params": [p for p in model.language_model.parameters() if p.requires_grad],
                       "lr": stage.llm_lr})
    return groups


def _set_top_trainable(model, stage: StageConfig) -> list[dict]:
    """The top `stage.top_layers` decoder layers, the final norm (and the LM head, untied or with the embedding),
    and the in-LLM SVA blocks that run after one of those layers: nothing below them needs a gradient."""
    layers = decoder_layers(model.language_model)
    if not 0 < stage.top_layers <= len(layers):
        raise ValueError(f"top_layers={stage.top_layers}: the LLM has {len(layers)} decoder layers")
    first = len(layers) - stage.top_layers
    for layer in layers[first:]:
        layer.requires_grad_(True)
    final_norm = getattr(model.language_model.get_decoder(), "norm", None)
    if final_norm is not None:
        final_norm.requires_grad_(True)
    head = model.language_model.get_output_embeddings()
    tied = head.weight is model.language_model.get_input_embeddings().weight
    head.requires_grad_(stage.train_embedding or not tied)
    blocks = [block for block, after in zip(model.connector.llm_layers, model.in_llm_layers, strict=True)
              if after >= first] if model.in_llm_layers else []
    for block in blocks:
        block.requires_grad_(True)
    groups = [{"params": [p for block in blocks for p in block.parameters()], "lr": stage.connector_lr},
              {"params": [p for p in model.language_model.parameters() if p.requires_grad], "lr": stage.llm_lr}]
    return [g for g in groups if g["params"]]


@contextmanager
def forced_readout(model, examples: list):
    """Within: the readout's tokens say the right answers of these examples' questions (readout.forced_words)."""
    readout = getattr(model, "readout", None)
    if readout is None or not examples:
        yield
        return
    from cambrian.quickstart_lib.readout import forced_words

    readout.forced = forced_words(readout, model.config.connector_config.readout_words, examples)
    try:
        yield
    finally:
        readout.forced = None


def lr_factor(stage: StageConfig, step: int, elapsed: float, restart: tuple[int, float] | None = None) -> float:
    """The lr's share of its base: a linear warmup over `warmup_steps`, then a cosine from 1 to 0.1 over the stage's
    steps (max_steps) or seconds. `restart` = (step, seconds) where a second phase began: from there the warmup and
    the cosine run again over what is left of the stage."""
    first_step, first_s = restart or (0, 0.0)
    if stage.max_steps:
        done = (step - first_step) / max(1, stage.max_steps - first_step)
    else:
        done = (elapsed - first_s) / max(1e-9, stage.seconds - first_s)
    warmup = min(1.0, (step - first_step + 1) / stage.warmup_steps)
    return warmup * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, done))))


def train_stage(model, tokenizer, examples: dict[str, list], stage: StageConfig, progress=None) -> StageLog:
    """Train until `stage.seconds` have passed (or max_steps); lr: `lr_factor` (warmup, then a cosine over the time,
    run again from the second phase with `restart_lr`)."""
    torch.manual_seed(stage.seed)
    groups = set_trainable(model, stage)
    for g in groups:
        g["base_lr"] = g["lr"]
    # fused: one kernel over all tensors instead of a loop of small ops; measured on this 2-core machine for the
    # connector + LLM: 0.48 s -> 0.11 s per step, an eighth of a stage-2 step (benchmarks/README.md, "Optimizer step")
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.98),
                                  fused=model.device.type in FUSED_ADAMW_DEVICES)
    sizes = {k: stage.long_batch_size if k in LONG_KINDS else stage.batch_size for k in examples}
    batcher = Batcher(examples, stage.mix, sizes, stage.seed)
    first = None
    if stage.first_mix and stage.first_share and any(examples.get(k) for k in stage.first_mix):
        first = Batcher(examples, stage.first_mix, sizes, stage.seed)
    first_steps = max(1, round(stage.first_share * stage.max_steps)) if first and stage.max_steps else 0
    cache: dict = {}  # example id -> (input ids, labels): each conversation is tokenized once
    log = StageLog(stage.name)
    model.train()
    attention = model.language_model.config._attn_implementation
    if stage.bf16 and model.device.type == "cpu":  # CPU SDPA's bf16 backward is slower than eager's two matmuls
        model.language_model.set_attn_implementation("eager")
    start = time.perf_counter()
    step = in_a_row = 0
    second_from = None  # (step, seconds) where the second phase began
    while True:
        elapsed = time.perf_counter() - start
        if (stage.max_steps is not None and step >= stage.max_steps) or (
                stage.max_steps is None and elapsed >= stage.seconds):
            break
        in_first = first is not None and (step < first_steps if stage.max_steps else
                                          elapsed < stage.first_share * stage.seconds)
        if first is not None and not in_first and second_from is None:
            second_from = (step, elapsed)
        factor = lr_factor(stage, step, elapsed, second_from if stage.restart_lr else None)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        kind, chunk = (first if in_first else batcher).next()
        batch = collate(model, tokenizer, chunk, cache)
        with forced_readout(model, chunk if stage.force_readout else []):
            loss = batch_loss(model, batch, stage.bf16)
        value = loss.item()
        # one NaN update poisons every weight for good (an H100 run did this at step 778): such a step is not applied
        finite = math.isfinite(value)
        if finite and loss.requires_grad:  # (a text-only batch touches nothing a connector-only stage trains)
            loss.backward()
            finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]],
                                                                        1.0)))
        if finite:
            optimizer.step()
            in_a_row = 0
        else:
            log.skipped.append({"step": step + 1, "kind": kind, "loss": value, "ids": [e.id for e in chunk]})
            in_a_row += 1
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.steps.append(step)
        log.seconds.append(time.perf_counter() - start)
        log.loss.append(value)
        log.kind.append(kind)
        log.samples += len(chunk)
        if progress:
            progress(step, log.loss[-1], kind, time.perf_counter() - start)
        if in_a_row >= MAX_NONFINITE_IN_A_ROW:
            log.stopped = (f"{in_a_row} steps in a row gave a non-finite loss or gradient (last: step {step}, "
                           f"{kind} batch {log.skipped[-1]['ids'][:4]}...); the weights are those of step "
                           f"{step - in_a_row}")
            break
    model.language_model.set_attn_implementation(attention)
    model.requires_grad_(False)
    model.eval()
    return log
