"""Byte ranges of JSONL files cut at line starts: the unit of parallel work in both curation passes."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

CHUNK_BYTES = 2 << 20  # ~7k records of Cambrian size: their decoded objects stay in cache; tasks enough to balance


def split_chunks(paths: list[Path], chunk_bytes: int = CHUNK_BYTES) -> list[tuple[Path, int, int]]:
    """(file, start, end) byte ranges cut at line starts, in stream order."""
    chunks = []
    for path in paths:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            start = 0
            while start < size:
                handle.seek(min(start + chunk_bytes, size))
                if handle.tell() < size:
                    handle.readline()
                end = handle.tell()
                chunks.append((path, start, end))
                start = end
    return chunks


def read_chunk(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start)


def chunk_lines(data: bytes) -> list[bytes]:
    """The lines of a chunk, without newlines (a last line without one counts too)."""
    lines = data.split(b"\n")
    return lines[:-1] if lines and not lines[-1] else lines


def without_gc(function: Callable) -> Callable:
    """Run with the cyclic garbage collector paused. The passes allocate millions of short-lived, acyclic objects
    (parsed records, which reference counting frees); the collections they trigger cost ~20% of a pass."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


def imap_ordered(function: Callable, tasks: Iterable, workers: int) -> Iterator:
    """function over tasks with `workers` processes, results in task order."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    import multiprocessing

    # fork starts workers in milliseconds; they only parse and hash (no threads, no torch)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(function, tasks, chunksize=1)
