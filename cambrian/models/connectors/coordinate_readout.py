"""Coordinate readout: more visual tokens, words chosen from where things lie in one tower's grid.

The SVA gives each of its L x L queries one window of the grids; nothing in a visual token says where its window
lies except its place in the sequence, so relating two places (is the red box lower than the blue one?) is left to
the LLM, and a 135M LLM did not learn that in a CPU budget (docs/quickstart.md, sessions 9-17). The readout pools the
*where* itself: K softmax attention maps over the cells of one tower's grid (a linear score per cell) each pool the
cells' (x, y) centres and V numbers read off each cell; an MLP over the K pooled vectors scores a fixed list of
words, split in groups (the synthetic CV-Bench's: object classes, left / right, above / below, numbers); each group
gives one token, the probability-weighted mean of the LLM's own embeddings of its words (a "soft word"), so the LLM
reads it as text. A softmax over each group alone, so that the token says one of that group's words: fitted with a
softmax over each question's two options only, the mass on the other words was free, and the token of a left / right
question read "beach ball" (session 19). It is fitted alone, before stage 2, on questions whose answer the image fixes
(`cambrian/quickstart_lib/readout.py`), and stays frozen after. Not in the released Cambrian-1; off unless
`ConnectorConfig.readout_words` lists words.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cell_coordinates(grid: int) -> torch.Tensor:
    """(grid * grid, 2): each cell's (x, y) centre in [-1, 1], row by row as a (grid, grid) map flattens."""
    side = torch.linspace(-1, 1, grid)
    y, x = torch.meshgrid(side, side, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


class CoordinateReadout(nn.Module):
    """(I, g, g, C) grid -> (I, G, d_llm): one soft word per group; `word_logits` -> (I, words) for fitting."""

    def __init__(self, channels: int, grid: int, words: int, llm_width: int, heads: int = 8, values: int = 8,
                 hidden: int = 128, groups: list[int] | None = None, temperature: float = 1.0):
        super().__init__()
        groups = list(groups or [words])
        if sum(groups) != words or min(groups) < 1:
            raise ValueError(f"readout groups {groups} must split the {words} words into non-empty runs")
        if temperature <= 0:
            raise ValueError(f"readout temperature must be positive, got {temperature}")
        self.grid, self.heads, self.values, self.groups, self.temperature = grid, heads, values, groups, temperature
        self.score = nn.Linear(channels, heads)
        self.value = nn.Linear(channels, heads * values) if values else None
        self.mlp = nn.Sequential(nn.Linear(heads * (2 + values), hidden), nn.GELU(), nn.Linear(hidden, words))
        # set when fitted (quickstart_lib/readout.py) and saved with the model
        self.register_buffer("feature_mean", torch.zeros(channels))
        self.register_buffer("feature_std", torch.ones(channels))
        self.register_buffer("word_tokens", torch.zeros(words, llm_width))  # the LLM's embedding of each word
        # teacher forcing (training only, quickstart_lib/train.py): (I, G) word index per image and group, whose exact
        # embedding replaces that group's soft word; -1 keeps the readout's own. None: no forcing
        self.forced: torch.Tensor | None = None

    def cells(self, grid: torch.Tensor) -> torch.Tensor:
        """(I, g, g, C) -> (I, g * g, C), standardised with the fitted channel statistics."""
        if tuple(grid.shape[1:3]) != (self.grid, self.grid):
            raise ValueError(f"the coordinate readout reads a {self.grid} x {self.grid} grid, got "
                             f"{tuple(grid.shape[1:3])}: its tower's grid_size changed since it was built")
        return (grid.flatten(1, 2) - self.feature_mean) / self.feature_std

    def word_logits(self, cells: torch.Tensor) -> torch.Tensor:
        """(I, g * g, C) standardised cells -> (I, words)."""
        attention = self.score(cells).softmax(dim=1)  # (I, N, K): where each head looks
        # made here, not kept as a buffer: from_pretrained left a non-persistent one uninitialised (NaN tokens)
        coordinates = cell_coordinates(self.grid).to(attention.device, attention.dtype)
        pooled = [torch.einsum("ink,nd->ikd", attention, coordinates)]
        if self.value is not None:
            values = self.value(cells).view(*cells.shape[:2], self.heads, self.values)
            pooled.append(torch.einsum("ink,inkv->ikv", attention, values))
        return self.mlp(torch.cat(pooled, dim=-1).flatten(1))

    def group_of(self, word: int) -> slice:
        """The run of word indices in the group of this word."""
        start = 0
        for size in self.groups:
            if word < start + size:
                return slice(start, start + size)
            start += size
        raise IndexError(f"word {word} is not among the readout's {start} words")

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        logits = self.word_logits(self.cells(grid)).float() / self.temperature
        tokens = self.word_tokens.float()
        words = [F.softmax(group, dim=-1) @ table
                 for group, table in zip(logits.split(self.groups, -1), tokens.split(self.groups), strict=True)]
        words = torch.stack(words, dim=1)  # (I, G, d)
        if self.forced is not None:
            forced = self.forced.to(words.device)
            words = torch.where((forced >= 0).unsqueeze(-1), tokens[forced.clamp(min=0)], words)
        return words.to(grid.dtype)
