"""Byte-offset index of a JSONL file, built once and cached beside it: O(1) access to any record.

The official loader rescans the file from the top for every sample (O(N) per item). Here one pass finds every
newline with numpy; the offsets and 1-based line numbers of the non-blank lines are written to `FILE.cidx`
(or to ~/.cache/cambrian/index/ when the folder is read-only) and memory-mapped on later opens, so a 10M-line
file opens in milliseconds and costs no resident memory beyond the pages touched.

A JSON array file (LLaVA's `llava_v1_5_mix665k.json`) is converted once to a JSONL sidecar and indexed the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import orjson

MAGIC = b"CAMBIDX1"
HEADER = np.dtype([("magic", "S8"), ("size", "<u8"), ("mtime_ns", "<u8"), ("count", "<u8")])
CHUNK = 64 << 20


def _cache_path(path: Path, suffix: str) -> Path:
    beside = path.with_name(path.name + suffix)
    if os.access(path.parent, os.W_OK) or beside.exists():
        return beside
    digest = hashlib.sha1(os.fsencode(path.resolve())).hexdigest()[:16]
    folder = Path(os.environ.get("CAMBRIAN_CACHE", Path.home() / ".cache" / "cambrian")) / "index"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{path.name}.{digest}{suffix}"


def _scan_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and 1-based line numbers of non-blank lines (blank: only whitespace of <= 2 bytes)."""
    starts, ends = [np.zeros(1, np.int64)], []
    with open(path, "rb") as handle:
        base = 0
        while chunk := handle.read(CHUNK):
            newlines = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10) + base
            ends.append(newlines)
            starts.append(newlines + 1)
            base += len(chunk)
    size = base
    starts = np.concatenate(starts)
    ends = np.concatenate(ends + [np.array([size], np.int64)])
    if starts[-1] >= size:  # file ends with a newline: no record after it
        starts, ends = starts[:-1], ends[:-1]
    lengths = ends - starts
    keep = lengths > 2
    short = np.flatnonzero(~keep)
    if len(short):  # 1-2 byte lines: keep those that are not whitespace (they will be reported as malformed)
        with open(path, "rb") as handle:
            for k in short:
                handle.seek(int(starts[k]))
                keep[k] = bool(handle.read(int(lengths[k])).strip())
    lines = np.flatnonzero(keep) + 1
    return starts[keep].astype(np.uint64), lines.astype(np.uint64)


def _write_index(index_path: Path, stat: os.stat_result, starts: np.ndarray, lines: np.ndarray) -> None:
    header = np.zeros(1, HEADER)
    header[0] = (MAGIC, stat.st_size, stat.st_mtime_ns, len(starts))
    tmp = index_path.with_name(index_path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(starts.astype("<u8").tobytes())
        handle.write(lines.astype("<u8").tobytes())
    os.replace(tmp, index_path)  # atomic: a concurrent reader sees the old index or the new one


def _read_index(index_path: Path, stat: os.stat_result) -> tuple[np.ndarray, np.ndarray] | None:
    if not index_path.exists():
        return None
    header = np.fromfile(index_path, HEADER, count=1)
    if len(header) != 1 or header[0]["magic"] != MAGIC:
        return None
    if int(header[0]["size"]) != stat.st_size or int(header[0]["mtime_ns"]) != stat.st_mtime_ns:
        return None  # the data file changed since the index was built
    count = int(header[0]["count"])
    table = np.memmap(index_path, dtype="<u8", mode="r", offset=HEADER.itemsize, shape=(2, count))
    return table[0], table[1]


def _json_array_to_jsonl(path: Path) -> Path:
    sidecar = _cache_path(path, ".jsonl")
    if sidecar.exists() and sidecar.stat().st_mtime_ns >= path.stat().st_mtime_ns:
        return sidecar
    items = orjson.loads(path.read_bytes())
    if not isinstance(items, list):
        raise ValueError(f"{path}: a .json data file must hold a JSON array of records")
    tmp = sidecar.with_name(sidecar.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        for item in items:
            handle.write(orjson.dumps(item) + b"\n")
    os.replace(tmp, sidecar)
    return sidecar


class JsonlIndex:
    """Random access to the lines of a JSONL (or JSON array) file: `raw(i)` bytes, `line_number(i)`."""

    def __init__(self, path: str | Path, rebuild: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"data file {self.path} does not exist")
        # element k of a JSON array is line k+1 of its sidecar: errors name "FILE.json:k+1"
        self.data_path = _json_array_to_jsonl(self.path) if self.path.suffix == ".json" else self.path
        self.index_path = _cache_path(self.data_path, ".cidx")
        stat = self.data_path.stat()
        table = None if rebuild else _read_index(self.index_path, stat)
        if table is None:
            _write_index(self.index_path, stat, *_scan_lines(self.data_path))
            table = _read_index(self.index_path, stat)
        self.offsets, self.lines = table
        self._file = None
        self._size = stat.st_size

    def __len__(self) -> int:
        return len(self.offsets)

    def _handle(self):
        # opened lazily and per process: DataLoader workers must not share a file position
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = open(self.data_path, "rb"), os.getpid()
        return self._file

    def raw(self, i: int) -> bytes:
        if not 0 <= i < len(self.offsets):
            raise IndexError(f"record {i} out of range for {self.path} ({len(self)} records)")
        start = int(self.offsets[i])
        end = int(self.offsets[i + 1]) if i + 1 < len(self.offsets) else self._size
        handle = self._handle()
        handle.seek(start)
        return handle.read(end - start).rstrip(b"\r\n")

    def line_number(self, i: int) -> int:
        return int(self.lines[i])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None  # file handles do not pickle; reopened in the worker
        return state
