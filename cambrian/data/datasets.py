"""Training / evaluation datasets: records -> token ids, labels and per-tower pixels.

    ds = ConversationDataset("train.jsonl", tokenizer, "llama_3", image_root="images/",
                             image_transform=MultiTowerTransform(...), max_length=2048, tokens_per_image=576)
    ds[i] -> {"input_ids", "labels", "pixel_values": {tower: (n, 3, R, R)} | None, "image_sizes": [(w, h)], "id"}

Each image is one `<image>` id in `input_ids`; the model expands it to `tokens_per_image` visual tokens, so
truncation counts it that much. With `on_error="raise"` (default) a bad record raises a `RecordError` naming file,
line, id and reason; with "skip" it is appended to `rejects_path` with its reason and `__getitem__` returns None
(the collator drops Nones and counts them). No other sample is ever substituted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from cambrian.constants import IGNORE_INDEX
from cambrian.data.images import DEFAULT_MAX_PIXELS, open_image
from cambrian.data.index import _cache_path
from cambrian.data.masking import image_token_id, tokenize_conversation
from cambrian.data.records import Record, RecordError
from cambrian.data.sources import JsonlRecords, ParquetRecords, iter_webdataset_records
from cambrian.data.templates import ChatTemplate, get_template

ImageTransform = Callable[..., "dict[str, torch.Tensor] | torch.Tensor"]
SINGLE_TOWER_KEY = "default"  # pixel_values key when image_transform returns a bare tensor


class RejectsLog:
    """Append-only JSONL of rejected records: where, why, and the record itself. Safe across DataLoader workers
    (one O_APPEND write per line)."""

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        self.count = 0
        self._lock = threading.Lock()

    def write(self, error: RecordError, raw: bytes | dict | None = None) -> None:
        self.count += 1
        if self.path is None:
            return
        entry = error.to_json()
        if isinstance(raw, bytes):
            try:
                entry["record"] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                entry["raw"] = raw.decode("utf-8", errors="replace")
        elif raw is not None:
            entry["record"] = raw
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class ExampleBuilder:
    """One record -> one example; every check training, evaluation and validation share."""

    def __init__(
        self,
        tokenizer,
        template: str | ChatTemplate = "tokenizer",
        image_root: str | Path | None = None,
        image_transform: ImageTransform | None = None,
        max_length: int | None = None,
        tokens_per_image: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.tokenizer, self.template = tokenizer, get_template(template)
        self.image_root, self.image_transform = image_root, image_transform
        self.max_length, self.tokens_per_image, self.max_pixels = max_length, tokens_per_image, max_pixels
        self.image_id = image_token_id(tokenizer)

    def tokenize(self, record: Record) -> tuple[list[int], list[int], int]:
        """Ids and labels truncated to max_length (each image counting tokens_per_image); images kept."""
        conversation = tokenize_conversation(record.turns, self.tokenizer, self.template)
        ids, labels = conversation.input_ids, conversation.labels
        kept = len(ids)
        if self.max_length is not None:
            costs = np.where(np.asarray(ids) == self.image_id, self.tokens_per_image, 1)
            kept = int(np.searchsorted(np.cumsum(costs), self.max_length, side="right"))
            ids, labels = ids[:kept], labels[:kept]  # an image that does not fit whole is cut with what follows
        if all(label == IGNORE_INDEX for label in labels):
            total = len(conversation.input_ids) + record.num_images * (self.tokens_per_image - 1)
            raise RecordError(
                "nothing_supervised",
                f"{total} tokens (images counted {self.tokens_per_image} each) "
                f"truncated to max_length={self.max_length}",
                record.location,
            )
        return ids, labels, ids.count(self.image_id)

    def load_images(self, record: Record, count: int | None = None) -> list:
        images = record.images if count is None else record.images[:count]
        return [open_image(image, self.image_root, record.location, self.max_pixels) for image in images]

    def __call__(self, record: Record) -> dict:
        ids, labels, num_images = self.tokenize(record)
        images = self.load_images(record, num_images)
        pixel_values = None
        if images:
            if self.image_transform is None:
                raise ValueError(f"{record.location}: record has images but the dataset has no image_transform")
            per_image = [self.image_transform(image) for image in images]
            if isinstance(per_image[0], torch.Tensor):
                per_image = [{SINGLE_TOWER_KEY: pixels} for pixels in per_image]
            pixel_values = {tower: torch.stack([p[tower] for p in per_image]) for tower in per_image[0]}
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": pixel_values,
            "image_sizes": [image.size for image in images],
            "id": record.id,
        }


def open_records(path: str | Path):
    path = Path(path)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return ParquetRecords(path)
    if path.suffix in (".jsonl", ".json"):
        return JsonlRecords(path)
    raise ValueError(
        f"{path}: unknown data format (expected .jsonl, .json, .parquet or a folder of .parquet; "
        "for tar shards use WebDatasetConversations)"
    )


class ConversationDataset(Dataset):
    """Map-style dataset over a JSONL / JSON / parquet file; O(1) random access."""

    def __init__(
        self,
        path: str | Path,
        tokenizer,
        template: str | ChatTemplate = "tokenizer",
        image_root: str | Path | None = None,
        image_transform: ImageTransform | None = None,
        max_length: int | None = 2048,
        tokens_per_image: int = 576,
        on_error: str = "raise",
        rejects_path: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.path = Path(path)
        self.records = open_records(path)
        self.build = ExampleBuilder(
            tokenizer, template, image_root, image_transform, max_length, tokens_per_image, max_pixels
        )
        self.on_error = on_error
        self.rejects = RejectsLog(rejects_path)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict | None:
        try:
            return self.build(self.records.record(i))
        except RecordError as error:
            if self.on_error == "raise":
                raise
            raw = self.records.raw(i) if isinstance(self.records, JsonlRecords) else None
            self.rejects.write(error, raw)
            return None

    def modality_lengths(self) -> np.ndarray:
        """Estimated length per record, negative for text-only (the sampler's input). Cached beside the file.

        Estimate: characters / 4 of all turns + tokens_per_image per image; cheap, no tokenizer, no image I/O.
        A record that does not parse gets length 1 (it is reported when loaded).
        """
        tokens_per_image = self.build.tokens_per_image
        if isinstance(self.records, JsonlRecords):
            return jsonl_modality_lengths(self.records, tokens_per_image)
        lengths = np.empty(len(self.records), np.int64)
        for i in range(len(self.records)):
            lengths[i] = _estimate(self.records.row(i), tokens_per_image, images_key=("images", "image"))
        return lengths


def _estimate(obj, tokens_per_image: int, images_key=("image",)) -> int:
    if not isinstance(obj, dict) or not isinstance(obj.get("conversations"), list):
        return 1
    chars = sum(len(t.get("value") or "") for t in obj["conversations"] if isinstance(t, dict))
    images = 0
    for key in images_key:
        value = obj.get(key)
        if isinstance(value, list):
            images += len(value)
        elif value and not (isinstance(value, str) and value.strip().lower() in ("none", "nan", "null")):
            images += 1
    length = max(1, chars // 4) + images * tokens_per_image
    return length if images else -length


def jsonl_modality_lengths(records: JsonlRecords, tokens_per_image: int) -> np.ndarray:
    index = records.index
    cache = _cache_path(index.data_path, f".len{tokens_per_image}.npy")
    stat = index.data_path.stat()
    if cache.exists() and cache.stat().st_mtime_ns >= stat.st_mtime_ns:
        lengths = np.load(cache, mmap_mode="r")
        if len(lengths) == len(index):
            return lengths
    lengths = np.empty(len(index), np.int64)
    for i in range(len(index)):
        try:
            lengths[i] = _estimate(orjson.loads(index.raw(i)), tokens_per_image)
        except orjson.JSONDecodeError:
            lengths[i] = 1
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, lengths)
    os.replace(tmp, cache)
    return lengths


class WebDatasetConversations(IterableDataset):
    """Streamed tar shards (webdataset layout). Shards are split over distributed ranks and DataLoader workers."""

    def __init__(
        self,
        shards: list[str | Path] | str,
        tokenizer,
        template: str | ChatTemplate = "tokenizer",
        image_root: str | Path | None = None,
        image_transform: ImageTransform | None = None,
        max_length: int | None = 2048,
        tokens_per_image: int = 576,
        on_error: str = "raise",
        rejects_path: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        rank: int = 0,
        world_size: int = 1,
    ):
        if isinstance(shards, str):
            import glob

            shards = sorted(glob.glob(shards)) or [shards]
        self.shards = [str(s) for s in shards]
        self.build = ExampleBuilder(
            tokenizer, template, image_root, image_transform, max_length, tokens_per_image, max_pixels
        )
        self.on_error, self.rejects = on_error, RejectsLog(rejects_path)
        self.rank, self.world_size = rank, world_size

    def my_shards(self) -> list[str]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        step = self.world_size * workers
        return self.shards[self.rank * workers + worker :: step]

    def __iter__(self) -> Iterator[dict]:
        for item in iter_webdataset_records(self.my_shards()):
            try:
                if isinstance(item, RecordError):
                    raise item
                yield self.build(item)
            except RecordError as error:
                if self.on_error == "raise":
                    raise
                self.rejects.write(error)
