"""The SVA against a direct, loop-by-loop implementation of the paper's Eq. 1 and the released layer."""

import math

import pytest
import torch
import torch.nn.functional as F

from cambrian.models.configuration import ConnectorConfig
from cambrian.models.connectors.sva import SpatialVisionAggregator
from cambrian.models.connectors.windows import padding_mask, to_windows, unpadded_cells, window_masks

L = 2
SIDES = [2, 4, 8]  # m_k = 1, 2, 4
CHANNELS = [6, 10, 12]
WIDTH, HEADS = 16, 4


def direct_layer(layer, x, context, grids, masks, i, j):
    """One SVA layer for the single query at cell (i, j), written from Eq. 1 with explicit window slicing."""
    h = layer.proj_in(torch.cat([x, layer.proj_context(context)]))
    q = layer.cross_attn.q_proj(h)  # W^Q x_ij (after the released LayerNorm)
    keys, values, keep = [], [], []
    for k, (grid, mask) in enumerate(zip(grids, masks, strict=True)):
        m = grid.shape[0] // L
        window = grid[m * i : m * (i + 1), m * j : m * (j + 1)].reshape(m * m, -1)  # F_k[m i : m(i+1), m j : m(j+1)]
        window_mask = mask[m * i : m * (i + 1), m * j : m * (j + 1)].reshape(m * m)
        if not window_mask.any():  # a window entirely in the border is unmasked
            window_mask = torch.ones_like(window_mask)
        if str(k) in layer.pos_embed:
            window = window + layer.pos_embed[str(k)]
        keys.append(layer.cross_attn.k_proj[k](window))
        values.append(layer.cross_attn.v_proj[k](window))
        keep.append(window_mask)
    keys, values, keep = torch.cat(keys), torch.cat(values), torch.cat(keep)
    head_dim = WIDTH // HEADS
    heads = []
    for head in range(HEADS):
        cols = slice(head * head_dim, (head + 1) * head_dim)
        scores = keys[:, cols] @ q[cols] / math.sqrt(head_dim)  # one softmax over all towers' window tokens
        scores = scores.masked_fill(~keep, float("-inf"))
        heads.append(torch.softmax(scores, dim=0) @ values[:, cols])
    h = h + layer.cross_attn.o_proj(torch.cat(heads))
    return x + layer.proj_out(layer.norm(h))


def direct_sva(sva, grids, image_size):
    """The whole pre-LLM connector for one image, query by query."""
    projected = [proj(g) for proj, g in zip(sva.tower_projectors, grids, strict=True)]
    masks = [padding_mask(image_size, g.shape[0]) for g in grids]
    context = projected[0].mean(dim=(0, 1))
    out = torch.zeros(L, L, sva.projector[-1].out_features)
    for i in range(L):
        for j in range(L):
            groups = []
            for g, layers in enumerate(sva.samplers):
                x = sva.queries[g]
                for layer in layers:
                    x = direct_layer(layer, x, context, projected, masks, i, j)
                groups.append(x)
            out[i, j] = sva.projector(torch.cat(groups))
    return out


def make_sva(groups=2, depth=2, llm_layers=1):
    torch.manual_seed(0)
    config = ConnectorConfig(query_side=L, num_groups=groups, depth=depth, hidden_size=WIDTH, num_heads=HEADS)
    return SpatialVisionAggregator(config, CHANNELS, SIDES, llm_hidden_size=24, num_llm_aggregation_layers=llm_layers)


@pytest.mark.parametrize("image_sizes", [[(64, 64), (64, 64)], [(64, 20), (16, 64)]], ids=["square", "padded"])
def test_sva_equals_direct_eq1(image_sizes):
    sva = make_sva()
    grids = [torch.randn(len(image_sizes), s, s, c) for s, c in zip(SIDES, CHANNELS, strict=True)]
    with torch.no_grad():
        fast = sva(sva.prepare(grids, image_sizes))
        for b, size in enumerate(image_sizes):
            slow = direct_sva(sva, [g[b] for g in grids], size)
            assert (fast[b] - slow).abs().max() <= 1e-5
    if image_sizes[0] != image_sizes[0][::-1]:  # the padded case really masks something
        assert not window_masks(image_sizes, 8, L).all()


def test_in_llm_block_equals_direct():
    sva = make_sva(groups=1, depth=1, llm_layers=1)
    grids = [torch.randn(1, s, s, c) for s, c in zip(SIDES, CHANNELS, strict=True)]
    size = (64, 40)
    vision = sva.prepare(grids, [size])
    hidden = torch.randn(L * L, 24)
    with torch.no_grad():
        fast = sva.aggregate_in_llm(0, hidden, vision, torch.zeros(L * L, dtype=torch.long), torch.arange(L * L))
        projected = [proj(g[0]) for proj, g in zip(sva.tower_projectors, grids, strict=True)]
        masks = [padding_mask(size, s) for s in SIDES]
        context = projected[0].mean(dim=(0, 1))
        for cell in range(L * L):
            slow = direct_layer(sva.llm_layers[0], hidden[cell], context, projected, masks, cell // L, cell % L)
            assert (fast[cell] - slow).abs().max() <= 1e-5


def test_grid_not_multiple_of_query_side_names_the_tower():
    config = ConnectorConfig(query_side=3, hidden_size=WIDTH, num_heads=HEADS)
    with pytest.raises(ValueError, match="dino.*not a multiple of the query grid L=3"):
        SpatialVisionAggregator(config, [8], [8], 24, tower_names=["dino"])


def test_windows_are_contiguous_blocks():
    grid = torch.arange(16.0).view(1, 4, 4, 1)
    windows = to_windows(grid, 2)[0, :, :, 0]
    assert windows.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_padding_mask_and_unpad_follow_aspect_ratio():
    mask = padding_mask((100, 50), 8)  # wide image: rows above and below are padding
    assert mask[:2].sum() == 0 and mask[-2:].sum() == 0 and mask[2:6].all()
    rows, cols = unpadded_cells((100, 50), 8)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (2, 6, 0, 8)
    rows, cols = unpadded_cells((30, 90), 6)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 6, 2, 4)
    # a window fully inside the border is unmasked rather than left with no keys
    masks = window_masks([(100, 10)], 4, 4)
    assert masks.all(dim=-1).all()


def test_sva_gradients_reach_every_parameter():
    sva = make_sva()
    grids = [torch.randn(2, s, s, c) for s, c in zip(SIDES, CHANNELS, strict=True)]
    vision = sva.prepare(grids, [(64, 30), (64, 64)])
    out = (
        sva(vision).sum()
        + sva.aggregate_in_llm(0, torch.randn(3, 24), vision, torch.tensor([0, 1, 1]), torch.tensor([0, 1, 3])).sum()
    )
    out.backward()
    missing = [n for n, p in sva.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_sdpa_mask_semantics_match_manual():
    q, k, v = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None]
    manual = torch.softmax((q @ k.transpose(-1, -2) / 2).masked_fill(~mask, float("-inf")), -1) @ v
    assert torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=mask), manual, atol=1e-6)


def test_query_batch_norm_standardises_over_images_and_falls_back_to_running_stats():
    torch.manual_seed(0)
    config = ConnectorConfig(query_side=L, num_groups=1, depth=1, hidden_size=WIDTH, num_heads=HEADS, batch_norm=True)
    sva = SpatialVisionAggregator(config, CHANNELS, SIDES, llm_hidden_size=24)
    captured = []
    sva.projector.register_forward_pre_hook(lambda module, args: captured.append(args[0]))

    def run(images):
        grids = [torch.randn(images, s, s, c) for s, c in zip(SIDES, CHANNELS, strict=True)]
        return sva(sva.prepare(grids, [(64, 64)] * images))

    sva.train()
    run(8)
    queries = captured[-1]  # (8 images x L*L cells, C): each channel standardised over the batch
    assert torch.allclose(queries.mean(0), torch.zeros(WIDTH), atol=1e-5)
    # (not exactly 1: eps = 1e-5 against small variances)
    assert torch.allclose(queries.var(0, unbiased=False), torch.ones(WIDTH), atol=2e-2)
    assert sva.query_norm.running_mean.abs().sum() > 0  # statistics tracked for evaluation
    # a gradient that is the same for every image and cell (the batch-mean part) does not pass the norm
    def proj_in_grad(per_row: bool) -> float:
        sva.zero_grad()
        run(8)
        queries = captured[-1]
        weights = torch.randn(queries.shape if per_row else queries.shape[-1:])
        (queries * weights).sum().backward()
        return sva.samplers[0][0].proj_in.weight.grad.abs().max().item()

    assert proj_in_grad(per_row=False) < 1e-3 * proj_in_grad(per_row=True)
    # fewer than min_images images: running statistics, exactly as in evaluation
    grids = [torch.randn(2, s, s, c) for s, c in zip(SIDES, CHANNELS, strict=True)]
    before = sva.query_norm.running_mean.clone()
    training_out = sva(sva.prepare(grids, [(64, 64)] * 2))
    assert torch.equal(sva.query_norm.running_mean, before)
    sva.eval()
    assert torch.allclose(training_out, sva(sva.prepare(grids, [(64, 64)] * 2)))
