"""Pick the CPU thread count that is fastest *now*: on a shared 2-core machine where another process holds a core,
two OpenMP threads wait on each other at every small op (decode steps, layer norms) and run 2-3x slower than one."""

from __future__ import annotations

import time


def _probe(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    x, w, big = torch.randn(8, 576), torch.randn(576, 1536), torch.randn(512, 576)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(60):  # decode-sized ops
            (x @ w).relu_()
            torch.nn.functional.layer_norm(x, (576,))
        for _ in range(3):  # prefill / training-sized ops
            big @ w
        best = min(best, time.perf_counter() - start)
    return best


def choose_threads(max_threads: int | None = None) -> tuple[int, dict[int, float]]:
    """-> (threads now in use, {threads: probe seconds}); tries 1 and the machine's count (a ~1 s probe)."""
    import os

    import torch

    top = max_threads or len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    candidates = sorted({1, top})
    timings = {n: _probe(n) for n in candidates}
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best, timings


def bf16_matmul_is_fast() -> bool:
    """True where the CPU multiplies bf16 matrices in hardware (AMX). There, bf16 autocast with eager attention makes a
    SmolLM2 training step ~2x faster (measured on this machine, batch 16 x 60 tokens, 1 thread: 6.2 s fp32, 3.5 s
    autocast with SDPA, whose bf16 backward is slow on CPU, 3.0 s autocast with eager attention)."""
    import torch

    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(capabilities.get("amx_bf16"))


GLIBC_M_TRIM_THRESHOLD, GLIBC_M_TOP_PAD, GLIBC_M_MMAP_THRESHOLD = -1, -2, -3  # mallopt(3) parameter numbers
KEEP_BLOCKS_UP_TO = 32 * 2**20  # glibc's largest mmap threshold on 64-bit


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process instead of handing it back to the system at once.

    A training step allocates and frees hundreds of MB of activations and gradients. By default glibc serves every
    block over its (adaptive) mmap threshold with a fresh mapping and unmaps it when freed, so the next step faults
    every page in again and the kernel zeroes it. With blocks of up to 32 MB served from the heap, and the heap not
    trimmed below 1 GB, the pages stay mapped from step to step. Measured on this 2-core machine
    (benchmarks/allocator.py). Returns False, changing nothing, where the C library is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((GLIBC_M_MMAP_THRESHOLD, KEEP_BLOCKS_UP_TO), (GLIBC_M_TRIM_THRESHOLD, 2**30),
                (GLIBC_M_TOP_PAD, 256 * 2**20))
    return all(mallopt(option, value) == 1 for option, value in settings)
