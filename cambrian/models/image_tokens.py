"""Image placeholders in token ids: count, expand, and locate per sample (never at a fixed offset).

Text carries ONE `<image>` id per image. Before the LLM runs, each is expanded to that image's visual tokens
(rows x (cols + newline)), sequences are re-padded on their own padding side, and the image spans are read back
from the ids. So batches may mix left/right padding, text-only samples and several images per sample.
"""

from __future__ import annotations

import torch

from cambrian.constants import IGNORE_INDEX


class ImagePlaceholderError(ValueError):
    pass


def padding_side(attention_mask: torch.Tensor | None) -> str:
    """'left' when any row starts with padding and ends with a real token, else 'right'."""
    if attention_mask is None or attention_mask.shape[1] == 0:
        return "right"
    left = (attention_mask[:, 0] == 0) & (attention_mask[:, -1] == 1)
    return "left" if bool(left.any()) else "right"


def check_placeholders(input_ids: torch.Tensor, image_token_id: int, tokens_per_image: list[int]) -> bool:
    """True if ids hold one placeholder per image (compact), False if already expanded; raise on anything else."""
    found = int((input_ids == image_token_id).sum())
    expected_compact, expected_expanded = len(tokens_per_image), sum(tokens_per_image)
    if found == expected_compact:
        return True
    if found == expected_expanded:
        return False
    raise ImagePlaceholderError(
        f"found {found} image placeholder tokens (id {image_token_id}) in input_ids but {expected_compact} images "
        f"were given: expected {expected_compact} placeholders (one per image) or {expected_expanded} "
        "(already expanded); put exactly one <image> in the text per image"
    )


def expand_placeholders(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor | None,
    tokens_per_image: list[int],
    image_token_id: int,
    pad_token_id: int,
    side: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Repeat each placeholder n_i times (image i in reading order), re-pad on `side` (default: the batch's own;
    an unpadded batch counts as right-padded, so generation passes "left": prompts must end together)."""
    side = side or padding_side(attention_mask)
    counts = iter(tokens_per_image)
    rows_ids, rows_mask, rows_labels = [], [], []
    for b in range(input_ids.shape[0]):
        keep = attention_mask[b].bool()
        ids = input_ids[b][keep]
        lab = labels[b][keep] if labels is not None else None
        repeats = torch.ones_like(ids)
        placeholder = ids == image_token_id
        if placeholder.any():
            repeats[placeholder] = torch.tensor(
                [next(counts) for _ in range(int(placeholder.sum()))], device=ids.device
            )
        rows_ids.append(ids.repeat_interleave(repeats))
        rows_mask.append(torch.ones_like(rows_ids[-1]))
        if lab is not None:
            lab = lab.masked_fill(placeholder, IGNORE_INDEX)
            rows_labels.append(lab.repeat_interleave(repeats))
    length = max(len(r) for r in rows_ids)

    def pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
        out = rows[0].new_full((len(rows), length), value)
        for b, row in enumerate(rows):
            if side == "left":
                out[b, length - len(row) :] = row
            else:
                out[b, : len(row)] = row
        return out

    return (
        pad(rows_ids, pad_token_id),
        pad(rows_mask, 0),
        pad(rows_labels, IGNORE_INDEX) if labels is not None else None,
    )


def image_token_positions(
    input_ids: torch.Tensor, image_token_id: int, tokens_per_image: list[int]
) -> list[torch.Tensor]:
    """Flat positions (into B*T) of each image's visual tokens, image by image in reading order."""
    flat = (input_ids.reshape(-1) == image_token_id).nonzero().squeeze(-1)
    return list(torch.split(flat, tokens_per_image))
