"""Stage 1 of the quickstart: word alignment of the SVA's visual tokens, without the LLM.

Why: the LLM learns to compare a question's word with a visual token when that token is the LLM's own embedding of
the word (100 balanced yes/no steps), and did not with the connector's tokens in 270 steps (benchmarks/README.md,
"Yes/no binding"). So the connector first learns to emit tokens that lie on the words of what the image shows: for
an image whose caption names the words W (easy-VQA: its colour and shape; a world scene: its visible objects'
colours and classes), with visual tokens v_1..v_T and E[w] the LLM's input embedding of word w,

    loss = mean_t (1 - max_{w in W} cos(v_t, E[w]))      every token lies on one of the image's words
         + mean_{w in W} (1 - max_t cos(v_t, E[w]))      every word has a token
         + 0.1 CE(softmax_w(20 cos(v_t, E[w])) over the vocabulary, W)   ... and not on the other images' words
         + mean_t (|v_t| / |E[w_t]| - 1)^2               at the scale of the embedding it lies on.

The LLM is not run, and the frozen towers run once per image (their grids are kept), so a step is the SVA alone:
~0.2 s at batch 32 on two cores against ~3 s for a stage-2 step. The in-LLM aggregation blocks read the LLM's hidden
states and are left to stage 2. `AlignConfig.bf16` runs towers and SVA under bf16 autocast (the loss in fp32): a
step in ~0.7 of fp32's time (benchmarks/word_alignment.py), but the quickstart keeps fp32: its runs that aligned on
bf16 tower features read colours worse (docs/quickstart.md, session 12).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cambrian.quickstart_lib.train import FUSED_ADAMW_DEVICES, StageLog, load_image
from cambrian.train.loop import autocast


@dataclass
class AlignConfig:
    seconds: float  # wall-clock budget, the towers' pass over the images included
    max_steps: int | None = None  # the stage ends at max_steps or at `seconds`, whichever comes first
    lr: float = 1e-3
    batch_size: int = 32
    sharpness: float = 20.0  # the cosine logits' scale in the vocabulary term
    seed: int = 0
    bf16: bool = False  # towers and SVA under bf16 autocast (StageConfig.bf16)


def word_token_ids(tokenizer, words: list[str]) -> list[int]:
    """The first token of " word" (as the word appears mid-sentence) for each word. Where that token is the bare
    space (SmolLM2 splits digits off: " 2" is " " then "2"), the token after it, which carries the word."""
    ids = []
    for word in words:
        tokens = tokenizer(" " + word, add_special_tokens=False).input_ids
        bare_space = len(tokens) > 1 and not tokenizer.decode(tokens[:1]).strip()
        ids.append(tokens[1] if bare_space else tokens[0])
    return ids


def word_alignment_loss(tokens: torch.Tensor, own: torch.Tensor, vocab: torch.Tensor,
                        sharpness: float = 20.0) -> torch.Tensor:
    """tokens (I, T, d) visual tokens; own (I, V) bool: which vocabulary words each image shows; vocab (V, d)."""
    cos = F.normalize(tokens.float(), dim=-1) @ F.normalize(vocab.float(), dim=-1).T  # (I, T, V)
    mine = own[:, None, :].expand_as(cos)
    own_cos = cos.masked_fill(~mine, -2.0)
    token_term = (1 - own_cos.max(dim=-1).values).mean()
    word_term = (1 - own_cos.max(dim=1).values)[own].mean()
    log_p = F.log_softmax(sharpness * cos, dim=-1)
    vocab_term = -torch.logsumexp(log_p.masked_fill(~mine, float("-inf")), dim=-1).mean()
    nearest = own_cos.argmax(dim=-1)  # (I, T): the own word each token lies nearest
    scale_term = ((tokens.float().norm(dim=-1) / vocab.float().norm(dim=-1)[nearest] - 1) ** 2).mean()
    return token_term + word_term + 0.1 * vocab_term + scale_term


@torch.no_grad()
def tower_grids(model, paths: list, batch_size: int = 32) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """The frozen towers' grids of every image, once: [(N, h_k, w_k, C_k) per tower], image sizes."""
    model.eval()
    per_batch, sizes = [], []
    for start in range(0, len(paths), batch_size):
        images = [load_image(p) for p in paths[start:start + batch_size]]
        inputs = model.image_inputs(images)
        per_batch.append([tower(inputs["pixel_values"][tower.name]) for tower in model.towers])
        sizes += inputs["image_sizes"]
    return [torch.cat([b[k] for b in per_batch]) for k in range(len(model.towers))], sizes


def align_connector(model, tokenizer, items: list[tuple[object, list[str]]], config: AlignConfig,
                    progress=None) -> StageLog:
    """items: (image path, the words its caption names). Trains the connector's pre-LLM part until the deadline."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    vocabulary = sorted({w for _, words in items for w in words})
    index = {w: k for k, w in enumerate(vocabulary)}
    embeddings = model.language_model.get_input_embeddings().weight.detach()
    vocab = embeddings[word_token_ids(tokenizer, vocabulary)]
    own = torch.zeros(len(items), len(vocabulary), dtype=torch.bool)
    for i, (_, words) in enumerate(items):
        own[i, [index[w] for w in words]] = True
    precision = autocast("bf16" if config.bf16 else "fp32", model.device)
    with precision():
        grids, sizes = tower_grids(model, [path for path, _ in items])

    model.requires_grad_(False)
    params = [p for name, p in model.connector.named_parameters() if not name.startswith("llm_layers")]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, betas=(0.9, 0.98),
                                  fused=model.device.type in FUSED_ADAMW_DEVICES)
    rng = random.Random(config.seed)
    log = StageLog("stage 1 (word alignment)")
    model.connector.train()
    step = 0
    while True:
        if (config.max_steps is not None and step >= config.max_steps) or (
                time.perf_counter() - start >= config.seconds):
            break
        batch = rng.sample(range(len(items)), min(config.batch_size, len(items)))
        with precision():
            vision = model.connector.prepare([g[batch].to(model.device) for g in grids], [sizes[i] for i in batch])
            tokens = model.connector(vision).flatten(1, 2)  # (I, L*L, d)
        loss = word_alignment_loss(tokens, own[batch].to(model.device), vocab, config.sharpness)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.steps.append(step)
        log.seconds.append(time.perf_counter() - start)
        log.loss.append(loss.item())
        log.kind.append("words")
        log.samples += len(batch)
        if progress:
            progress(step, log.loss[-1], "words", time.perf_counter() - start)
    model.requires_grad_(False)
    model.eval()
    return log


@torch.no_grad()
def nearest_word_accuracy(model, tokenizer, items: list[tuple[object, list[str]]], vocabulary: list[str]) -> float:
    """Share of images whose every visual token lies nearest (by cosine, among `vocabulary`) to one of its words."""
    embeddings = model.language_model.get_input_embeddings().weight.detach()
    vocab = F.normalize(embeddings[word_token_ids(tokenizer, vocabulary)].float(), dim=-1)
    grids, sizes = tower_grids(model, [path for path, _ in items])
    tokens = model.connector(model.connector.prepare(grids, sizes)).flatten(1, 2)
    nearest = (F.normalize(tokens.float(), dim=-1) @ vocab.T).argmax(dim=-1)  # (I, T)
    right = [all(vocabulary[k] in words for k in row.tolist()) for row, (_, words) in zip(nearest, items,
                                                                                         strict=True)]
    return sum(right) / len(right)
