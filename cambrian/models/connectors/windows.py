"""Spatial bookkeeping shared by the connectors: SVA windows, pad-to-square masks, unpadding by aspect ratio.

Section 4: the query at (i, j) of the L x L grid sees F_k[m_k*i : m_k*(i+1), m_k*j : m_k*(j+1)] of tower k, where
the tower grid side is m_k * L.
"""

from __future__ import annotations

import torch


def window_side(grid_side: int, query_side: int, tower_name: str = "tower") -> int:
    """m_k = grid side / L, with a clear error when the tower grid is not a multiple of L."""
    if grid_side % query_side:
        raise ValueError(
            f"{tower_name}: feature grid {grid_side}x{grid_side} is not a multiple of the query grid L={query_side}; "
            f"set the tower's grid_size (e.g. -interp{(grid_side // query_side or 1) * query_side**2}) or change L"
        )
    return grid_side // query_side


def to_windows(grid: torch.Tensor, query_side: int) -> torch.Tensor:
    """(B, m*L, m*L, C) -> (B, L*L, m*m, C): row-major query cells, each holding its m x m window row-major."""
    batch, side, _, channels = grid.shape
    m = side // query_side
    windows = grid.reshape(batch, query_side, m, query_side, m, channels).permute(0, 1, 3, 2, 4, 5)
    return windows.reshape(batch, query_side * query_side, m * m, channels)


def padding_mask(image_size: tuple[int, int], side: int) -> torch.Tensor:
    """(side, side) bool, False on grid rows/columns that only cover the pad-to-square border.

    Official `unmask_attention_mask`: pad = (S - int(short * S / long)) // 2 on each side of the short axis.
    """
    width, height = image_size
    mask = torch.ones(side, side, dtype=torch.bool)
    if width == height:
        return mask
    short, long = min(width, height), max(width, height)
    pad = (side - int(short * side / long)) // 2
    if pad <= 0:
        return mask
    if width > height:  # padded above and below
        mask[:pad, :] = False
        mask[side - pad :, :] = False
    else:
        mask[:, :pad] = False
        mask[:, side - pad :] = False
    return mask


def window_masks(image_sizes: list[tuple[int, int]], grid_side: int, query_side: int) -> torch.Tensor:
    """(B, L*L, m*m) bool attention masks; a window entirely in the border is unmasked so softmax stays defined."""
    masks = torch.stack([padding_mask(size, grid_side) for size in image_sizes])
    windows = to_windows(masks.unsqueeze(-1), query_side).squeeze(-1)
    fully_masked = ~windows.any(dim=-1, keepdim=True)
    return windows | fully_masked


def unpadded_cells(image_size: tuple[int, int], side: int) -> tuple[slice, slice]:
    """Rows and columns of a side x side grid that cover the image itself (official `unpad_image`)."""
    width, height = image_size
    if width / height > 1.0:  # wider than tall: padding rows above and below
        new_height = int(height * side / width)
        pad = (side - new_height) // 2
        return slice(pad, side - pad), slice(0, side)
    new_width = int(width * side / height)
    pad = (side - new_width) // 2
    return slice(0, side), slice(pad, side - pad)
