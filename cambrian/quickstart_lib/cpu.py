"""Pick the CPU thread count for *now* (one thread only where it is clearly faster): on a shared 2-core machine where
two OpenMP threads wait on each other at every small op (decode steps, layer norms) and run 2-3x slower than one."""

from __future__ import annotations

import os
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
    import torch

    top = max_threads or len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    candidates = sorted({1, top})
    timings = {n: _probe(n) for n in candidates}
    best = top if timings[1] > FEWER_THREADS_MARGIN * timings[top] else 1
    torch.set_num_threads(best)
    return best, timings


# one thread must beat all of them clearly: a busy core makes two threads 2-3x slower, while on an idle 2-core machine
# a ~50 ms probe that picked the faster one by any margin once chose 1 thread for the evaluation, which then took
# 242 s against 172 s on two in the run before, and the run ended at 15.5 minutes (session 22)
FEWER_THREADS_MARGIN = 0.8


# A stage-2 step's matmuls: 8 conversations x ~128 positions against SmolLM2's 576 -> 1536 MLP projection
PROBE_ROWS, PROBE_IN, PROBE_OUT = 1024, 576, 1536
BF16_FAST_RATIO = 0.7  # bf16 must take at most this share of fp32's time to be worth its rounding


def _matmul_seconds(dtype, enough: float = float("inf")) -> float:
    """Best of 5 rounds of 4 matmuls; gives up once a round, or the first call alone (x4), is above `enough`."""
    import torch

    a, b = torch.randn(PROBE_ROWS, PROBE_IN, dtype=dtype), torch.randn(PROBE_IN, PROBE_OUT, dtype=dtype)
    start = time.perf_counter()
    a @ b  # the first call picks and caches the kernel
    first = time.perf_counter() - start
    if 4 * first > enough:
        return 4 * first
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, time.perf_counter() - start)
        if best > enough:
            break
    return best


# bf16 at 10x fp32's time is far beyond BF16_FAST_RATIO: no faster round can change the answer. Without bf16 hardware
# (an AMD EPYC Zen 3: 93x fp32's time) the five rounds alone took ~33 s of the quickstart's budget
BF16_GIVE_UP_RATIO = 10.0


def bf16_matmul_probe() -> dict[str, float]:
    """-> {"fp32": s, "bf16": s, "ratio": bf16 / fp32} for the same training-sized matmul, timed now (~0.1 s; ~3 s
    where bf16 is emulated, which one round shows)."""
    import torch

    fp32 = _matmul_seconds(torch.float32)
    bf16 = _matmul_seconds(torch.bfloat16, enough=BF16_GIVE_UP_RATIO * fp32)
    return {"fp32": fp32, "bf16": bf16, "ratio": bf16 / fp32}


def bf16_matmul_is_fast(probe: dict[str, float] | None = None) -> bool:
    """True where a bf16 matmul takes at most 0.7x fp32's time *here*, measured (`bf16_matmul_probe`), not looked up.

    This project's CPUs multiply bf16 in hardware in two ways: Intel's AMX tiles (a 2048^3 matmul at 577 GFLOP/s
    against fp32's 61) and AMD Zen 4's AVX-512 BF16 dot products (429 against 189 on a 2-core AMD EPYC). The check
    this replaces asked for AMX alone, so the AMD machines trained and evaluated in fp32; there the quickstart's
    stage-2 step under bf16 autocast takes 0.55 of fp32's time (`benchmarks/optimizer_step.py`). On AMX, bf16
    autocast with eager attention made a SmolLM2 step ~2x faster (batch 16 x 60 tokens, 1 thread: 6.2 s fp32, 3.5 s
    autocast with SDPA, whose bf16 backward is slow on CPU, 3.0 s with eager attention). Where bf16 matmuls are no
    faster than fp32's (no bf16 hardware), the rounding buys nothing and the answer is False."""
    probe = probe or bf16_matmul_probe()
    return probe["ratio"] <= BF16_FAST_RATIO


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


def seconds_since_process_start() -> float:
    """How long this process has run, from Linux's /proc (0.0 where that is not readable): the quickstart's budget
    counts from here, so the interpreter's start and its imports are inside it. They took ~14 s in most runs and 49 s
    in one whose disk was busy (session 22); a first run after install reads every library from a cold disk."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: start time, in ticks
    except (OSError, ValueError, IndexError):
        return 0.0
