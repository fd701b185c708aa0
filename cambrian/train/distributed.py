"""Single-process, DDP and FSDP2 as swappable strategies. The loop only calls these methods, so it reads the same
for all three. Launch several processes with torchrun; CPUs use the gloo backend, GPUs NCCL.

FSDP2 (`torch.distributed.fsdp.fully_shard`) shards every LLM decoder layer and every tower as its own unit and
the rest (connector, embeddings, head) as the root unit. The connector must stay in the root unit: the in-LLM SVA
blocks run from hooks on the decoder layers, outside the connector's own forward, and root parameters stay
gathered for the whole forward.
"""

from __future__ import annotations

import contextlib
import datetime
import os

import torch
import torch.distributed as dist
from torch import nn


def resolve_device(name: str) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


class SingleStrategy:
    name = "single"

    def __init__(self, device: torch.device):
        self.device = device
        self.rank, self.world_size = 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def sync_gradients(self, wrapped: nn.Module, sync: bool):
        """Context for one micro-batch's forward+backward; sync=False on all but the last of an accumulation."""
        return contextlib.nullcontext()

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def trainable_state(self, model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        """Full (unsharded) tensors for `names`, on CPU; complete on rank 0 (every rank must call it)."""
        tensors = dict(model.named_parameters()) | dict(model.named_buffers())
        return {name: tensors[name].detach().to("cpu", copy=True).contiguous() for name in names}

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        return [float(v) for v in values]

    def all_gather_object(self, obj) -> list:
        return [obj]

    def broadcast_object(self, obj):
        return obj

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


class DistributedStrategy(SingleStrategy):
    """Shared plumbing of DDP and FSDP: the process group and its collectives."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), device_id=_device_id(device))
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    @property
    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def all_gather_object(self, obj) -> list:
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def _device_id(device: torch.device):
    return device if device.type == "cuda" else None


class DDPStrategy(DistributedStrategy):
    name = "ddp"

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: a text-only batch never reaches the connector, a frozen tower never has grads
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)

    def sync_gradients(self, wrapped: nn.Module, sync: bool):
        return contextlib.nullcontext() if sync else wrapped.no_sync()


class FSDPStrategy(DistributedStrategy):
    name = "fsdp"

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from cambrian.models.llm import decoder_layers

        mesh = init_device_mesh(self.device.type, (self.world_size,))
        for layer in decoder_layers(model.language_model):
            fully_shard(layer, mesh=mesh)
        for tower in model.towers:
            fully_shard(tower, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model

    def sync_gradients(self, wrapped: nn.Module, sync: bool):
        wrapped.set_requires_gradient_sync(sync)  # FSDP2: accumulate unsharded grads, reduce-scatter on the last
        return contextlib.nullcontext()

    def trainable_state(self, model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        tensors = dict(model.named_parameters()) | dict(model.named_buffers())
        state = {}
        for name in names:  # same order on every rank: each full_tensor() is a collective
            tensor = tensors[name].detach()
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if self.is_main:
                state[name] = tensor.to("cpu", copy=True).contiguous()
        return state


def make_strategy(name: str, device: torch.device) -> SingleStrategy:
    """`auto`: DDP when launched by torchrun with several processes, else single."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if name == "auto":
        name = "ddp" if world > 1 else "single"
    if name == "single":
        if world > 1:
            raise ValueError(f"strategy=single but WORLD_SIZE={world}; use ddp or fsdp under torchrun")
        return SingleStrategy(device)
    if "RANK" not in os.environ:
        raise ValueError(f"strategy={name} needs a torchrun launch (torchrun --nproc-per-node N -m cambrian.train ...)")
    return {"ddp": DDPStrategy, "fsdp": FSDPStrategy}[name](device)
