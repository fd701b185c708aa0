"""Batched greedy generation for evaluation: chat-templated prompts, left padding, one `<image>` per image.

Deterministic: greedy decoding, fixed batch composition (see runner.py), no sampling state. With vision disabled the
same model sees the same text without the `<image>` placeholder and without pixels (paper Section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cambrian.constants import IMAGE_TOKEN
from cambrian.data.masking import tokenize_conversation
from cambrian.eval.benchmarks.base import Sample


@dataclass
class Prompt:
    input_ids: list[int]
    images: list  # PIL images (empty when vision is disabled)


class Generator:
    """Answers batches of benchmark samples with one model. `template` None -> the model's, else the tokenizer's."""

    def __init__(self, model, tokenizer, template: str | None = None, vision: bool = True):
        self.model, self.tokenizer, self.vision = model.eval(), tokenizer, vision
        self.template = template or getattr(model.config.llm_config, "template", None) or "tokenizer"
        eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None \
            else tokenizer.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.stop_ids))

    def user_text(self, sample: Sample) -> str:
        """The user turn: one `<image>` per image on its own line before the question (LLaVA convention)."""
        if not self.vision or not sample.images:
            return sample.prompt
        return f"{IMAGE_TOKEN}\n" * len(sample.images) + sample.prompt

    def encode(self, sample: Sample, with_images: bool = True) -> Prompt:
        ids = tokenize_conversation([{"role": "user", "content": self.user_text(sample)}], self.tokenizer,
                                    self.template, add_generation_prompt=True).input_ids
        images = sample.load_images() if with_images and self.vision and sample.images else []
        return Prompt(ids, images)

    @torch.no_grad()
    def generate(self, prompts: list[Prompt], max_new_tokens: int) -> list[str]:
        """Greedy answers for one batch, left-padded; returns the decoded new text of each prompt."""
        # One pad column more than needed: every row starts with padding, so the model's placeholder expansion
        # sees a left-padded batch even when all prompts have the same length (it re-pads on the side it detects,
        # and would pick the right side for a batch without padding whose images expand to different lengths).
        width = max(len(p.input_ids) for p in prompts) + 1
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        expanded = []
        for row, p in enumerate(prompts):
            input_ids[row, width - len(p.input_ids):] = torch.tensor(p.input_ids)
            attention[row, width - len(p.input_ids):] = 1
            expanded.append(len(p.input_ids) + sum(self.model.num_image_tokens(im.size) - 1 for im in p.images))
        images = [im for p in prompts for im in p.images]
        kwargs = self.model.image_inputs(images)
        if kwargs:  # pixels in the model's compute dtype (bf16 evaluation casts the towers too)
            kwargs["pixel_values"] = {name: pixels.to(self.model.dtype)
                                      for name, pixels in kwargs["pixel_values"].items()}
        out = self.model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                                  do_sample=False, num_beams=1, pad_token_id=self.pad_id, **kwargs)
        # left padding: every prompt ends at the same column; the expansion re-pads to the longest expanded row
        start = max(expanded) if images else width
        answers = []
        for row in out[:, start:].tolist():
            cut = next((i for i, t in enumerate(row) if t in self.stop_ids), len(row))
            answers.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return answers
