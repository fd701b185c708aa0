"""Where records come from: JSONL / JSON (offset index), parquet with embedded image bytes, webdataset tar shards.

Each source yields `Record`s and raises `RecordError` (with file and line or row) for bad ones. Nothing here needs
torch, so validation and curation tools stay light.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import orjson

from cambrian.data.index import JsonlIndex
from cambrian.data.records import Location, Record, RecordError, parse_record

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class JsonlRecords:
    """LLaVA/Cambrian JSONL or JSON array, any record in O(1) through the cached offset index."""

    def __init__(self, path: str | Path):
        self.index = JsonlIndex(path)
        self.path = str(path)

    def __len__(self) -> int:
        return len(self.index)

    def location(self, i: int) -> Location:
        return Location(self.path, self.index.line_number(i))

    def raw(self, i: int) -> bytes:
        return self.index.raw(i)

    def record(self, i: int) -> Record:
        raw = self.index.raw(i)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise RecordError("malformed_json", str(error), self.location(i)) from None
        return parse_record(obj, self.location(i))


def _image_bytes(value) -> list:
    """HF datasets Image feature: {bytes, path} (or a list of them) -> bytes or relative paths."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value["bytes"] if value.get("bytes") else value.get("path")]
    if isinstance(value, list):
        return [item for v in value for item in _image_bytes(v)]
    return [value]


class ParquetRecords:
    """Parquet in the Hugging Face datasets layout: `id`, `conversations`, and `image` or `images` as
    `{bytes, path}` structs (image bytes embedded). Row groups are read on demand with a small cache."""

    def __init__(self, path: str | Path, cache_row_groups: int = 2):
        import pyarrow.parquet as pq

        self.path = str(path)
        files = sorted(Path(path).glob("*.parquet")) if Path(path).is_dir() else [Path(path)]
        if not files:
            raise FileNotFoundError(f"no parquet files in {path}")
        self.files = [pq.ParquetFile(f) for f in files]
        self.groups = []  # (file index, row group, first global row)
        total = 0
        for f, parquet in enumerate(self.files):
            for g in range(parquet.num_row_groups):
                self.groups.append((f, g, total))
                total += parquet.metadata.row_group(g).num_rows
        self.total = total
        self.starts = [start for _, _, start in self.groups]
        self.cache: dict[int, list[dict]] = {}
        self.cache_size = cache_row_groups

    def __len__(self) -> int:
        return self.total

    def _rows(self, group: int) -> list[dict]:
        if group not in self.cache:
            f, g, _ = self.groups[group]
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[group] = self.files[f].read_row_group(g).to_pylist()
        return self.cache[group]

    def location(self, i: int) -> Location:
        return Location(self.path, i + 1)  # "line" = 1-based row

    def row(self, i: int) -> dict:
        import bisect

        if not 0 <= i < self.total:
            raise IndexError(f"row {i} out of range for {self.path} ({self.total} rows)")
        group = bisect.bisect_right(self.starts, i) - 1
        return self._rows(group)[i - self.starts[group]]

    def record(self, i: int) -> Record:
        row = dict(self.row(i))
        images = _image_bytes(row.pop("images", None)) + _image_bytes(row.pop("image", None))
        return parse_record(row, self.location(i), images=images)


def iter_tar_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream a webdataset shard: consecutive members sharing a key (name up to the first dot) form a sample."""
    key, sample = None, {}
    with tarfile.open(path, "r|*") as tar:  # streaming mode: no seeking, works on pipes and object stores
        for member in tar:
            if not member.isfile():
                continue
            name = os.path.basename(member.name)
            stem, _, ext = name.partition(".")
            stem = os.path.join(os.path.dirname(member.name), stem)
            if stem != key and sample:
                yield key, sample
                sample = {}
            key = stem
            sample[ext.lower()] = tar.extractfile(member).read()
    if sample:
        yield key, sample


def iter_webdataset_records(shards: list[str | Path]) -> Iterator[Record | RecordError]:
    """Records from tar shards; each sample is `KEY.json` plus images `KEY.jpg` or `KEY.0.png`, `KEY.1.png`...

    Bad samples are yielded as `RecordError`s (not raised) so a stream can skip them and go on.
    """
    for shard in shards:
        for position, (key, sample) in enumerate(iter_tar_samples(shard), start=1):
            location = Location(f"{shard}:{key}", position)
            if "json" not in sample:
                yield RecordError("bad_schema", f"sample {key} has no .json member", location)
                continue
            try:
                obj = orjson.loads(sample["json"])
            except orjson.JSONDecodeError as error:
                yield RecordError("malformed_json", str(error), location)
                continue
            if isinstance(obj, dict):
                obj.setdefault("id", key)
            images = [
                sample[ext] for ext in sorted(sample, key=_image_order) if "." + ext.split(".")[-1] in IMAGE_EXTENSIONS
            ]
            try:
                yield parse_record(obj, location, images=images or None)
            except RecordError as error:
                yield error


def _image_order(ext: str) -> tuple[int, str]:
    head = ext.split(".")[0]
    return (int(head), ext) if head.isdigit() else (-1, ext)
