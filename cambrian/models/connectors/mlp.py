"""The LLaVA MLP projector (mlp2x_gelu). With several towers, their grids are bilinearly resized to L x L and
concatenated on channels first (the "Concat." baseline of Table 4)."""

from __future__ import annotations

import torch
from torch import nn

from cambrian.models.towers.base import resize_grid


class MLPProjector(nn.Module):
    def __init__(self, tower_channels: list[int], query_side: int, llm_hidden_size: int):
        super().__init__()
        self.query_side = query_side
        self.projector = nn.Sequential(
            nn.Linear(sum(tower_channels), llm_hidden_size),
            nn.GELU(),
            nn.Linear(llm_hidden_size, llm_hidden_size),
        )

    def forward(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Tower grids [(B, h_k, w_k, C_k)] -> visual tokens (B, L, L, d_llm)."""
        features = torch.cat([resize_grid(grid, self.query_side) for grid in grids], dim=-1)
        return self.projector(features.to(self.projector[0].weight.dtype))
