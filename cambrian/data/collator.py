"""Batch examples for the model: pad ids, stack every image of the batch per tower, keep original sizes.

Output (what `model.forward` consumes):
    input_ids (B, T) long, attention_mask (B, T) long, labels (B, T) with IGNORE_INDEX on padding,
    pixel_values {tower: (N_images, 3, R, R)} in order of appearance (sample by sample, image by image) or None,
    image_sizes [(width, height)] per image, same order (size before padding to square).
Padding side: "right" for training, "left" for batched generation (prompts end together).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cambrian.constants import IGNORE_INDEX


@dataclass
class DataCollator:
    pad_token_id: int
    padding_side: str = "right"
    rejected: int = 0  # examples dropped because the dataset returned None (on_error="skip")

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, examples: list[dict | None]) -> dict | None:
        kept = [e for e in examples if e is not None]
        self.rejected += len(examples) - len(kept)
        if not kept:
            return None  # every example of this batch was rejected (and logged): the trainer skips it
        # no truncation here: datasets truncate image-aware (cutting here could orphan an image's pixels)
        ids = [e["input_ids"] for e in kept]
        labels = [e.get("labels", torch.full_like(e["input_ids"], IGNORE_INDEX)) for e in kept]
        width = max(len(x) for x in ids)
        batch_ids = torch.full((len(kept), width), self.pad_token_id, dtype=torch.long)
        batch_labels = torch.full((len(kept), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(kept), width), dtype=torch.long)
        for row, (x, y) in enumerate(zip(ids, labels, strict=True)):
            span = slice(width - len(x), width) if self.padding_side == "left" else slice(0, len(x))
            batch_ids[row, span], batch_labels[row, span], attention[row, span] = x, y, 1

        pixel_values, image_sizes = None, []
        towers = [e["pixel_values"] for e in kept if e.get("pixel_values") is not None]
        if towers:
            names = list(towers[0])
            if any(list(t) != names for t in towers):
                raise ValueError(f"examples disagree on tower names: {[list(t) for t in towers]}")
            pixel_values = {name: torch.cat([t[name] for t in towers]) for name in names}
            image_sizes = [tuple(size) for e in kept for size in e.get("image_sizes", [])]
            if len(image_sizes) != len(pixel_values[names[0]]):
                raise ValueError(f"{len(image_sizes)} image sizes for {len(pixel_values[names[0]])} images")
        return {
            "input_ids": batch_ids,
            "attention_mask": attention,
            "labels": batch_labels,
            "pixel_values": pixel_values,
            "image_sizes": image_sizes,
        }
