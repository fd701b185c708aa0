"""The Spatial Vision Aggregator (Section 4, Eq. 1; module names follow official-cambrian.md 2.1).

An SVA layer updates one query per grid cell from that cell's window in every tower:

    q*_{i,j} = softmax( q_{i,j} [k_{i,j,1}, ..., k_{i,j,N}]^T / sqrt(d) ) [v_{i,j,1}, ..., v_{i,j,N}]      (Eq. 1)

with k_{i,j,k} = W^K_k F_k[m_k i : m_k (i+1), m_k j : m_k (j+1)] (one softmax over all towers' window tokens).
Around it, as released: the query is joined with a global context vector (proj_in), keys and values get a
per-tower LayerNorm, windows larger than 1 x 1 get a learned positional embedding, and the layer returns
q + MLP(LN(h + attn)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cambrian.models.configuration import ConnectorConfig
from cambrian.models.connectors.windows import to_windows, window_masks, window_side


def _norm_linear(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim, bias=False))


class WindowCrossAttention(nn.Module):
    """Multi-head attention of one query per cell over the concatenated windows of all towers (Eq. 1)."""

    def __init__(self, hidden_size: int, window_sides: list[int], num_heads: int):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"SVA width {hidden_size} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q_proj = _norm_linear(hidden_size, hidden_size)  # W^Q
        self.k_proj = nn.ModuleList(_norm_linear(hidden_size, hidden_size) for _ in window_sides)  # W^K_k
        self.v_proj = nn.ModuleList(_norm_linear(hidden_size, hidden_size) for _ in window_sides)  # W^V_k
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, h: torch.Tensor, windows: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        """h (N, C); windows[k] (N, m_k^2, C); masks[k] (N, m_k^2) bool -> (N, C)."""
        n, width = h.shape
        heads, head_dim = self.num_heads, width // self.num_heads
        q = self.q_proj(h).view(n, 1, heads, head_dim).transpose(1, 2)  # (N, H, 1, d)
        k = torch.cat([proj(w) for proj, w in zip(self.k_proj, windows, strict=True)], dim=1)  # (N, sum m_k^2, C)
        v = torch.cat([proj(w) for proj, w in zip(self.v_proj, windows, strict=True)], dim=1)
        k = k.view(n, -1, heads, head_dim).transpose(1, 2)
        v = v.view(n, -1, heads, head_dim).transpose(1, 2)
        mask = torch.cat(masks, dim=1)[:, None, None, :]  # one softmax over all towers' window tokens
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, 1, d)
        return self.o_proj(attended.transpose(1, 2).reshape(n, width))


class FeedForward(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_hidden, bias=False)
        self.linear_2 = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class SVALayer(nn.Module):
    """One aggregation layer. q_dim is the SVA width before the LLM and the LLM width inside it."""

    def __init__(self, q_dim: int, context_dim: int, hidden_size: int, window_sides: list[int], num_heads: int):
        super().__init__()
        self.window_sides = list(window_sides)
        self.proj_context = nn.Linear(context_dim, hidden_size, bias=False)
        self.proj_in = nn.Linear(q_dim + hidden_size, hidden_size, bias=False)
        self.cross_attn = WindowCrossAttention(hidden_size, window_sides, num_heads)
        self.norm = nn.LayerNorm(hidden_size)
        self.proj_out = FeedForward(hidden_size, hidden_size, q_dim)
        # learned position inside each window larger than 1 x 1 (random normal, as released)
        self.pos_embed = nn.ParameterDict(
            {str(k): nn.Parameter(torch.randn(m * m, hidden_size)) for k, m in enumerate(window_sides) if m > 1}
        )

    def forward(
        self,
        queries: torch.Tensor,
        context: torch.Tensor,
        windows: list[torch.Tensor],
        masks: list[torch.Tensor],
    ) -> torch.Tensor:
        """queries (N, q_dim), context (N, context_dim), windows[k] (N, m_k^2, C), masks[k] (N, m_k^2) -> (N, q_dim)."""
        h = self.proj_in(torch.cat([queries, self.proj_context(context)], dim=-1))
        windows = [w + self.pos_embed[str(k)] if str(k) in self.pos_embed else w for k, w in enumerate(windows)]
        h = h + self.cross_attn(h, windows, masks)
        return queries + self.proj_out(self.norm(h))  # residual to the original query, not to proj_in's output


class QueryBatchNorm(nn.BatchNorm1d):
    """BatchNorm over (images x cells, C). Batch statistics need several images: a training batch of fewer than
    `min_images` normalises with the running statistics instead (as in evaluation)."""

    min_images = 4

    def forward(self, x: torch.Tensor, images: int) -> torch.Tensor:
        if self.training and images < self.min_images:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


@dataclass
class VisionWindows:
    """What every SVA layer reads, computed once per image batch: projected tower windows and their masks."""

    windows: list[torch.Tensor]  # per tower (I, L*L, m_k^2, C)
    masks: list[torch.Tensor]  # per tower (I, L*L, m_k^2) bool
    context: torch.Tensor  # (I, C) global context per image

    def select(self, image_index: torch.Tensor, cell_index: torch.Tensor):
        """Rows for N queries given by (image, cell) -> windows (N, m^2, C), masks (N, m^2), context (N, C)."""
        windows = [w[image_index, cell_index] for w in self.windows]
        masks = [m[image_index, cell_index] for m in self.masks]
        return windows, masks, self.context[image_index]


class SpatialVisionAggregator(nn.Module):
    """Towers' grids -> L x L visual tokens for the LLM, plus the in-LLM aggregation layers."""

    def __init__(
        self,
        config: ConnectorConfig,
        tower_channels: list[int],
        tower_grid_sides: list[int],
        llm_hidden_size: int,
        tower_names: list[str] | None = None,
        num_llm_aggregation_layers: int = 0,
    ):
        super().__init__()
        self.config = config
        names = tower_names or [f"tower {k}" for k in range(len(tower_channels))]
        L, width = config.query_side, config.hidden_size
        self.window_sides = [window_side(s, L, n) for s, n in zip(tower_grid_sides, names, strict=True)]  # m_k
        self.tower_projectors = nn.ModuleList(
            nn.Sequential(nn.Linear(c, width), nn.GELU(), nn.Linear(width, width), nn.LayerNorm(width))
            for c in tower_channels
        )
        # one learned query x per group, repeated over the L x L grid (Section 4)
        self.queries = nn.Parameter(torch.randn(config.num_groups, width) / width**0.5)
        self.samplers = nn.ModuleList(
            nn.ModuleList(
                SVALayer(width, width, width, self.window_sides, config.num_heads) for _ in range(config.depth)
            )
            for _ in range(config.num_groups)
        )
        # The aggregated queries' variance is mostly common to all images (the image-dependent share is ~0.3 at init
        # for cambrian-nano), and Adam on such inputs grows the common part until every image gives the same tokens
        # (docs/quickstart.md). Standardising each channel over the batch keeps the image-dependent part the signal,
        # and its backward removes the batch-mean part of the gradient that reaches it.
        self.query_norm = QueryBatchNorm(width * config.num_groups) if config.batch_norm else None
        self.projector = nn.Sequential(
            nn.Linear(width * config.num_groups, llm_hidden_size),
            nn.GELU(),
            nn.Linear(llm_hidden_size, llm_hidden_size),
        )
        # in-LLM aggregation: D = G = 1, queries are the LLM's own hidden states at the image positions
        self.llm_layers = nn.ModuleList(
            SVALayer(llm_hidden_size, width, width, self.window_sides, config.num_heads)
            for _ in range(num_llm_aggregation_layers)
        )

    def prepare(self, grids: list[torch.Tensor], image_sizes: list[tuple[int, int]]) -> VisionWindows:
        """Project each tower grid (I, m_k L, m_k L, C_k) to the SVA width and cut it into windows."""
        L = self.config.query_side
        dtype = self.queries.dtype
        projected = [proj(grid.to(dtype)) for proj, grid in zip(self.tower_projectors, grids, strict=True)]
        windows = [to_windows(p, L) for p in projected]
        masks = [window_masks(image_sizes, grid.shape[1], L).to(grid.device) for grid in grids]
        context = projected[self.config.context_tower].mean(dim=(1, 2))  # unmasked mean, as released
        return VisionWindows(windows, masks, context)

    def forward(self, vision: VisionWindows) -> torch.Tensor:
        """-> visual tokens (I, L, L, d_llm)."""
        images, cells = vision.windows[0].shape[:2]
        L = self.config.query_side
        flat_windows = [w.flatten(0, 1) for w in vision.windows]  # (I*L*L, m^2, C)
        flat_masks = [m.flatten(0, 1) for m in vision.masks]
        context = vision.context.repeat_interleave(cells, dim=0)
        groups = []
        for g, layers in enumerate(self.samplers):
            x = self.queries[g].expand(images * cells, -1)
            for layer in layers:  # D stacked layers, each reading the same windows
                x = layer(x, context, flat_windows, flat_masks)
            groups.append(x)
        queries = torch.cat(groups, dim=-1)  # G groups concatenated on channels
        if self.query_norm is not None:
            queries = self.query_norm(queries, images)
        tokens = self.projector(queries)
        return tokens.view(images, L, L, -1)

    def aggregate_in_llm(
        self,
        k: int,
        hidden: torch.Tensor,
        vision: VisionWindows,
        image_index: torch.Tensor,
        cell_index: torch.Tensor,
    ) -> torch.Tensor:
        """The k-th in-LLM SVA block: hidden states at image positions (N, d_llm) -> updated (N, d_llm)."""
        windows, masks, context = vision.select(image_index, cell_index)
        layer = self.llm_layers[k]
        return layer(hidden.to(context.dtype), context, windows, masks).to(hidden.dtype)
