"""Modality- and length-grouped sampling with an exactly resumable position.

`lengths[i]` is record i's estimated length, negative for text-only records (LLaVA's `modality_lengths`
convention). Each batch holds one modality (the official recipe's `group_by_modality_length`), and records of
similar length: indices are shuffled per modality, cut into megabatches, sorted by length inside each megabatch
and cut into batches; the batch order is shuffled, leftover partial batches go last. The order depends only on
(seed, epoch), so `state_dict()` -> `load_state_dict()` resumes at the exact next index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        megabatch_batches: int = 50,
        group_by_modality: bool = True,
    ):
        if batch_size < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"need batch_size >= 1 and 0 <= rank < num_replicas, got {batch_size}, {rank}/{num_replicas}"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed = batch_size, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.megabatch_batches, self.group_by_modality = megabatch_batches, group_by_modality
        self.epoch, self.position = 0, 0  # position = indices of this rank already yielded in this epoch

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """Global batches (batch_size x num_replicas indices each) for an epoch, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        global_batch = self.batch_size * self.num_replicas
        groups = [np.flatnonzero(self.lengths >= 0), np.flatnonzero(self.lengths < 0)]
        if not self.group_by_modality:
            groups = [np.arange(len(self.lengths))]
        full, partial = [], []
        for group in groups:
            group = rng.permutation(group)
            size = global_batch * self.megabatch_batches
            for start in range(0, len(group), size):
                mega = group[start : start + size]
                mega = mega[np.argsort(-np.abs(self.lengths[mega]), kind="stable")]
                batches = [mega[k : k + global_batch] for k in range(0, len(mega), global_batch)]
                full += [b for b in batches if len(b) == global_batch]
                partial += [b for b in batches if len(b) < global_batch]
        order = rng.permutation(len(full))
        batches = [full[k] for k in order]
        if partial:  # mixed leftovers: the only batch that may hold both modalities
            leftovers = np.concatenate(partial)
            batches += [leftovers[k : k + global_batch] for k in range(0, len(leftovers), global_batch)]
        return batches

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's indices: its contiguous slice of each global batch (padded by wrapping if short)."""
        mine = []
        for batch in self.global_batches(epoch):
            if len(batch) < self.batch_size * self.num_replicas:
                batch = np.resize(batch, self.batch_size * self.num_replicas)  # every rank gets the same count
            mine.append(batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size])
        return np.concatenate(mine) if mine else np.zeros(0, np.int64)

    def __iter__(self) -> Iterator[int]:
        indices = self.indices(self.epoch)
        while self.position < len(indices):
            index = int(indices[self.position])
            self.position += 1
            yield index
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        batches = len(self.lengths) // (self.batch_size * self.num_replicas)
        leftover = len(self.lengths) % (self.batch_size * self.num_replicas)
        return (batches + (leftover > 0)) * self.batch_size  # upper bound when modality leftovers split

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self, consumed: int | None = None) -> dict:
        """(epoch, position). A DataLoader prefetches ahead of training: pass `consumed` (samples this rank has
        actually trained on this epoch) to checkpoint the true position rather than the prefetched one."""
        return {"epoch": self.epoch, "position": self.position if consumed is None else consumed, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this sampler has {self.seed}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
