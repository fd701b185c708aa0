"""SVA forward + backward at the released Cambrian-1-8B connector shapes, against a plain matmul of the same FLOPs.

Towers 24x24x1152 (SigLIP), 24x24x1024 (CLIP-L), 24x24x1536 (DINOv2-g), 96x96x5760 (ConvNeXt-XXL multi-stage);
L = 24, D = 3, G = 1, width 1024, projector to 4096, batch 1. FLOPs are counted by torch's FlopCounterMode on one
real forward + backward, then both workloads are timed in the same process, alternating, and reported as GFLOP/s.

    .venv/bin/python benchmarks/sva.py [--repeats 3] [--device cpu|cuda] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cambrian.models.configuration import ConnectorConfig
from cambrian.models.connectors.sva import SpatialVisionAggregator

TOWERS = [(24, 1152), (24, 1024), (24, 1536), (96, 5760)]  # (grid side, channels), official-cambrian.md 2.3


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    device, dtype = args.device, getattr(torch, args.dtype)
    torch.manual_seed(0)

    config = ConnectorConfig(query_side=24, num_groups=1, depth=3, hidden_size=1024, num_heads=16)
    sva = SpatialVisionAggregator(config, [c for _, c in TOWERS], [s for s, _ in TOWERS], llm_hidden_size=4096)
    sva = sva.to(device=device, dtype=dtype)
    grids = [torch.randn(1, s, s, c, device=device, dtype=dtype) for s, c in TOWERS]
    sizes = [(1024, 768)]  # a 4:3 photo: exercises the pad-to-square masks

    def sva_step() -> None:
        sva.zero_grad(set_to_none=True)
        sva(sva.prepare(grids, sizes)).float().sum().backward()

    counter = FlopCounterMode(display=False)
    with counter:
        sva_step()
    flops = counter.get_total_flops()
    sva_peak_rss = peak_rss_mib()  # process peak after one SVA step, before the matmul operands exist
    # a square matmul with the same FLOP count (2 n^3)
    n = round((flops / 2) ** (1 / 3))
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))

    def matmul_step() -> None:
        a @ b

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sva_times, matmul_times = [], []
    for _ in range(args.repeats):  # alternate so both see the same machine noise
        for step, times in ((sva_step, sva_times), (matmul_step, matmul_times)):
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times.append(time.perf_counter() - start)
    sva_s, matmul_s = statistics.median(sva_times), statistics.median(matmul_times)
    if device == "cuda":
        memory = f"peak CUDA memory allocated {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB"
    else:
        memory = f"peak RSS of the process after one SVA fwd+bwd (weights, grads, activations): {sva_peak_rss:,.0f} MiB"
    sva_rate, matmul_rate = flops / sva_s / 1e9, flops / matmul_s / 1e9
    hardware = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({hardware}), dtype {args.dtype}")
    print(f"SVA fwd+bwd FLOPs {flops / 1e9:,.1f} G; matmul {n}x{n}x{n} ({2 * n**3 / 1e9:,.1f} G)")
    print(f"SVA fwd+bwd: median {sva_s * 1e3:,.1f} ms over {args.repeats} -> {sva_rate:,.1f} GFLOP/s")
    print(f"matmul:      median {matmul_s * 1e3:,.1f} ms over {args.repeats} -> {matmul_rate:,.1f} GFLOP/s")
    print(f"ratio SVA / matmul GFLOP/s: {sva_rate / matmul_rate:.2f}  (target >= 0.40)")
    print(memory)


if __name__ == "__main__":
    main()
