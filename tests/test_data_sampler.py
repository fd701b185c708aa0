"""Length/modality-grouped sampler (exact resume, distributed split) and the collator's batch contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cambrian.constants import IGNORE_INDEX
from cambrian.data.collator import DataCollator
from cambrian.data.sampler import LengthGroupedSampler


def make_lengths(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 2000, n)
    return np.where(rng.random(n) < 0.3, -lengths, lengths)  # 30% text-only


def test_every_index_once_batches_single_modality_and_similar_length():
    lengths = make_lengths()
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    batches = [order[k : k + 8] for k in range(0, len(order), 8)]
    full = [b for b in batches if len(b) == 8][:-2]  # the last batches may hold the mixed leftovers
    assert all(len({lengths[i] > 0 for i in b}) == 1 for b in full)
    spread = np.mean([np.ptp(np.abs(lengths[b])) for b in full])
    random_spread = np.mean([np.ptp(np.abs(lengths[b])) for b in np.array_split(np.random.permutation(1000), 125)])
    assert spread < random_spread / 4
    assert list(LengthGroupedSampler(lengths, 8, seed=3)) == order
    assert list(LengthGroupedSampler(lengths, 8, seed=4)) != order
    assert list(sampler) != order  # next epoch reshuffles


def test_exact_resume_mid_epoch():
    lengths = make_lengths()
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=0)
    sampler.set_epoch(2)
    it = iter(sampler)
    seen = [next(it) for _ in range(123)]
    state = sampler.state_dict()
    rest = list(it)
    resumed = LengthGroupedSampler(lengths, batch_size=8, seed=0)
    resumed.load_state_dict(state)
    assert state == {"epoch": 2, "position": 123, "seed": 0}
    assert list(resumed) == rest and sorted(seen + rest) == list(range(1000))
    with pytest.raises(ValueError, match="seed"):
        LengthGroupedSampler(lengths, 8, seed=1).load_state_dict(state)


def test_distributed_ranks_split_each_global_batch():
    lengths = make_lengths(n=1003)
    ranks = [list(LengthGroupedSampler(lengths, 4, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    assert set().union(*map(set, ranks)) == set(range(1003))
    one = list(LengthGroupedSampler(lengths, 12, seed=0))
    assert one[:12] == ranks[0][:4] + ranks[1][:4] + ranks[2][:4]


def example(n_tokens, images=0, sizes=((10, 20),)):
    ids = torch.arange(1, n_tokens + 1)
    pixels = (
        None if not images else {"a": torch.full((images, 3, 4, 4), float(n_tokens)), "b": torch.zeros(images, 3, 8, 8)}
    )
    return {
        "input_ids": ids,
        "labels": ids.clone(),
        "pixel_values": pixels,
        "image_sizes": list(sizes)[:images] if images else [],
    }


@pytest.mark.parametrize("side", ["right", "left"])
def test_collator_pads_and_stacks_in_order(side):
    batch = DataCollator(pad_token_id=0, padding_side=side)(
        [example(3, 1, [(5, 6)]), example(5), example(2, 2, [(7, 8), (9, 10)])]
    )
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, 5)
    row = batch["input_ids"][0].tolist()
    assert row == ([1, 2, 3, 0, 0] if side == "right" else [0, 0, 1, 2, 3])
    assert batch["attention_mask"][0].tolist() == [int(x != 0) for x in row]
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert batch["pixel_values"]["a"][:, 0, 0, 0].tolist() == [3.0, 2.0, 2.0]  # sample by sample, image by image
    assert batch["pixel_values"]["b"].shape == (3, 3, 8, 8)
    assert batch["image_sizes"] == [(5, 6), (7, 8), (9, 10)]


def test_collator_text_only_and_rejected():
    collator = DataCollator(pad_token_id=7)
    batch = collator([example(2), None, example(4)])
    assert batch["pixel_values"] is None and batch["image_sizes"] == [] and collator.rejected == 1
    assert batch["input_ids"][0].tolist() == [1, 2, 7, 7]
    assert collator([None]) is None and collator.rejected == 2
    with pytest.raises(ValueError, match="padding_side"):
        DataCollator(0, "middle")
