"""Batched greedy generation for evaluation: chat-templated prompts, left padding, one `<image>` per image.

Deterministic: greedy decoding (argmax, no logits processors), fixed batch composition (see runner.py), no sampling
state. With vision disabled the same model sees the same text without the `<image>` placeholder and without pixels
(paper Section 3.1).

Two savings that leave every answer's computation the same whatever the batch size:
- Shared prefix: every prompt opens with the same template tokens (system prompt, user header; 24 of nano's ~100
  prompt tokens on CV-Bench). Their keys and values are computed once per Generator and copied into each batch's
  cache, so prefill runs on the rest only. The layout is then [prefix][left padding][rest]; positions count real
  tokens, so each row sees exactly the positions and keys it would see alone.
- Finished rows leave the batch: once a third of the running rows have emitted a stop token, later decode steps
  run without them (and their cache rows). Not sooner, because on CPU (MKL, fp32) the weight products x @ W.T cost
  more with 13-15 rows than with 16 (below 16 rows they are computed 3 rows at a time: nano's 49,152-wide LM head
  takes ~23 ms at 16 rows, ~57 ms at 14; a whole decode step ~280 ms at 14 rows against ~160 ms at 16), and about
  the same with 10-12. A finished row keeps decoding, unread, until then.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from cambrian.constants import IMAGE_TOKEN
from cambrian.data.masking import tokenize_conversation
from cambrian.eval.benchmarks.base import Sample
from cambrian.models.image_tokens import expand_placeholders


@dataclass
class Prompt:
    input_ids: list[int]
    images: list  # PIL images (empty when vision is disabled)


class Generator:
    """Answers batches of benchmark samples with one model. `template` None -> the model's, else the tokenizer's.

    The shared-prefix cache is computed on first use from the model's current weights: build a new Generator after
    changing them."""

    def __init__(self, model, tokenizer, template: str | None = None, vision: bool = True):
        self.model, self.tokenizer, self.vision = model.eval(), tokenizer, vision
        self.template = template or getattr(model.config.llm_config, "template", None) or "tokenizer"
        eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None \
            else tokenizer.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.stop_ids))
        self.prefix_ids = self._template_prefix()
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def user_text(self, sample: Sample) -> str:
        """The user turn: one `<image>` per image on its own line before the question (LLaVA convention)."""
        if not self.vision or not sample.images:
            return sample.prompt
        return f"{IMAGE_TOKEN}\n" * len(sample.images) + sample.prompt

    def _prompt_ids(self, user_text: str) -> list[int]:
        return tokenize_conversation([{"role": "user", "content": user_text}], self.tokenizer, self.template,
                                     add_generation_prompt=True).input_ids

    def encode(self, sample: Sample, with_images: bool = True) -> Prompt:
        ids = self._prompt_ids(self.user_text(sample))
        images = sample.load_images() if with_images and self.vision and sample.images else []
        return Prompt(ids, images)

    def _template_prefix(self) -> list[int]:
        """The ids every prompt starts with whatever the user writes: the common head of two prompts that differ
        from their first character (a prompt whose tokenization merges across that boundary simply does not use
        the cache: see `generate`)."""
        a, b = self._prompt_ids("A"), self._prompt_ids("B")
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        return a[:n]

    def _prefix_cache(self, batch: int) -> DynamicCache:
        if self._prefix_kv is None:
            cache = DynamicCache()
            ids = torch.tensor([self.prefix_ids], device=self.model.device)
            self.model(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True,
                       logits_to_keep=1)
            self._prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
        return DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                             for k, v in self._prefix_kv])

    def _left_padded(self, prompts: list[Prompt], skip: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """ids and mask of the prompts without their first `skip` tokens, placeholders expanded, left-padded so that
        every prompt ends in the last column; plus the image inputs."""
        rest = [p.input_ids[skip:] for p in prompts]
        width = max(len(r) for r in rest)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(rest):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        images = [im for p in prompts for im in p.images]
        kwargs = self.model.image_inputs(images)
        if kwargs:
            input_ids, attention, _ = expand_placeholders(
                input_ids, attention, None, [self.model.num_image_tokens(im.size) for im in images],
                self.model.config.image_token_id, self.pad_id, side="left")
            # pixels in the model's compute dtype (bf16 evaluation casts the towers too)
            kwargs["pixel_values"] = {name: pixels.to(self.model.dtype)
                                      for name, pixels in kwargs["pixel_values"].items()}
        return input_ids.to(self.model.device), attention.to(self.model.device), kwargs

    @torch.no_grad()
    def generate(self, prompts: list[Prompt], max_new_tokens: int) -> list[str]:
        """Greedy answers for one batch; returns the decoded new text of each prompt."""
        prefix = len(self.prefix_ids)
        shared = prefix if all(p.input_ids[:prefix] == self.prefix_ids for p in prompts) else 0
        input_ids, attention, image_inputs = self._left_padded(prompts, shared)
        cache = self._prefix_cache(len(prompts)) if shared else DynamicCache()
        attention = torch.cat([attention.new_ones(len(prompts), shared), attention], dim=1)  # [prefix][pad][rest]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, shared:]  # real tokens only: padding never counts
        logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=cache,
                            use_cache=True, logits_to_keep=1, **image_inputs).logits[:, -1]
        new_tokens: list[list[int]] = [[] for _ in prompts]
        rows = torch.arange(len(prompts), device=attention.device)  # the prompt each running row answers
        done = torch.zeros(len(prompts), dtype=torch.bool, device=attention.device)
        stop = torch.tensor(sorted(self.stop_ids), device=attention.device)
        for step in range(max_new_tokens):
            token = logits.argmax(-1)
            for row, t in zip(rows.tolist(), token.tolist(), strict=True):
                new_tokens[row].append(t)  # tokens after a row's stop token are cut when decoding
            done |= torch.isin(token, stop)
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            if 3 * int(done.sum()) >= len(rows):  # a third of the rows have finished: they leave, with their cache rows
                keep = (~done).nonzero().squeeze(1)
                rows, token, attention, done = rows[keep], token[keep], attention[keep], done[keep]
                cache.batch_select_indices(keep)
            attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
            logits = self.model(input_ids=token[:, None], attention_mask=attention, cache=cache, use_cache=True,
                                position_ids=attention.sum(-1, keepdim=True) - 1).logits[:, -1]
        answers = []
        for row in new_tokens:
            cut = next((i for i, t in enumerate(row) if t in self.stop_ids), len(row))
            answers.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return answers
