"""Curation pass 1: each record down to a few fixed-width numbers (about 20 bytes a record).

A chunk is decoded in one call by msgspec into the four fields curation reads, each kept as its raw JSON text
(nothing else is built: no dict, no string but the group names), which costs ~40% of an orjson parse. A chunk that
is not plainly valid (a malformed or blank line, invalid UTF-8, `conversations` not an array) is redone line by
line with orjson, whose verdict defines a malformed record, so both routes give the same result.

Exact duplicates: records whose `conversations` and `image` values are the same JSON text, byte for byte (whatever
their id, source, category and other fields). The key is xxh3-64 of the conversations text, seeded with xxh3-64 of
the image text (`null` when absent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import orjson
import xxhash

from cambrian.data.curate_chunks import chunk_lines, imap_ordered, read_chunk, split_chunks, without_gc

if TYPE_CHECKING:
    from cambrian.data.curate import CurateConfig

UNKNOWN = "unknown"  # category of a record without one
MALFORMED = -1  # group id of a line that is not a record


# content_hash(data, seed=0): 64-bit xxh3, ~10x faster than blake2b on short records; collisions are negligible below
# billions of records. The C function itself, so that map() over a chunk runs without a Python frame per record.
content_hash = xxhash.xxh3_64_intdigest


class RawRecord(msgspec.Struct):
    """The fields curation reads, as raw JSON text; other fields are skipped (still validated) without decoding."""

    conversations: msgspec.Raw
    image: msgspec.Raw = msgspec.Raw(b"null")
    source: msgspec.Raw = msgspec.Raw(b"null")
    category: msgspec.Raw = msgspec.Raw(b"null")


RAW_RECORDS = msgspec.json.Decoder(RawRecord)
CONVERSATIONS, IMAGE = attrgetter("conversations"), attrgetter("image")
SOURCE, CATEGORY = attrgetter("source"), attrgetter("category")


def record_key(record: RawRecord) -> int:
    return content_hash(record.conversations, content_hash(record.image))


def group_name(raw: bytes, default: str) -> str:
    """A source or category name from its JSON text: absent, null, "" or other false values give the default."""
    value = orjson.loads(raw)
    if not value:
        return default
    return value if isinstance(value, str) else raw.decode()


def phash_file(path: Path) -> int:
    """64-bit perceptual hash (imagehash pHash); 0 when the image is missing or unreadable."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(path) as image:
            bits = imagehash.phash(image).hash.flatten()
    except (OSError, ValueError):
        return 0
    return int(np.packbits(bits).view(">u8")[0]) or 1  # 0 is reserved for "no image"


class PerceptualHasher:
    """pHash per image path relative to a root, cached; 0 when the image is missing or unreadable."""

    def __init__(self, image_root: Path | None):
        self.root = image_root
        self.cache: dict[str, int] = {}

    def __call__(self, relative: str) -> int:
        if self.root is None:
            return 0
        if relative not in self.cache:
            if len(self.cache) > 1_000_000:  # bound memory on huge pools
                self.cache.clear()
            self.cache[relative] = phash_file(self.root / relative)
        return self.cache[relative]


def image_list(value) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip().lower() not in ("", "none", "nan", "null")]


def visual_keys(conversations: bytes, hashes: list[int]) -> tuple[int, int]:
    """(pHash of the first image, hash of the conversations text + all pHashes); (0, 0) unless every image has one."""
    if not hashes or not all(hashes):
        return 0, 0
    pixels = b"".join(h.to_bytes(8, "little") for h in hashes)
    return hashes[0], content_hash(conversations + pixels)


@dataclass
class PoolScan:
    """Pass 1 result: one entry per non-blank input line (valid or not), in stream order."""

    valid: np.ndarray
    source: np.ndarray
    category: np.ndarray
    content: np.ndarray  # hash of conversations + image paths (exact duplicates)
    visual: np.ndarray | None  # hash of conversations + image pHashes (near duplicates); None without image root
    phash: np.ndarray | None  # pHash of the first image (0 if none); None without image root
    sources: list[str]
    categories: list[str]
    malformed: list[dict]
    chunk_records: list[int]  # records per chunk, to hand pass 2 its slice
    chunk_blank_lines: list[np.ndarray]  # per chunk, the (rare) whitespace-only lines pass 2 must skip


class ChunkScan:
    """Per-record results of one chunk, as plain lists (the cheapest appends in CPython)."""

    def __init__(self, default_source: str):
        self.default_source = default_source
        self.groups: dict[int, int] = {}  # group_key of the (source, category) JSON text -> chunk-local group id
        self.group_names: list[tuple[str, str]] = []
        self.group_ids: list[int] = []  # MALFORMED for a line that is not a record
        self.contents: list[int] = []
        self.visual: list[int] = []
        self.phash: list[int] = []
        self.blank_lines: list[int] = []
        self.malformed: list[dict] = []

    def add_groups(self, keys: list[int], texts: Callable[[int], tuple[bytes, bytes]]) -> None:
        """Group ids for group keys; texts(i) gives the (source, category) JSON text behind keys[i]."""
        for key in dict.fromkeys(keys):  # new keys in order of first appearance
            if key not in self.groups:
                self.groups[key] = len(self.groups)
                source, category = texts(keys.index(key))
                self.group_names.append((group_name(source, self.default_source), group_name(category, UNKNOWN)))
        self.group_ids += map(self.groups.__getitem__, keys)

    def result(self, lines: int) -> dict:
        group_array = np.array(self.group_ids, np.int64)
        valid = group_array != MALFORMED
        return {
            "groups": self.group_names,
            "group": np.where(valid, group_array, 0).astype(np.uint32),
            "valid": valid,
            "content": np.array(self.contents, np.uint64),
            "visual": np.array(self.visual, np.uint64),
            "phash": np.array(self.phash, np.uint64),
            "blank_lines": np.array(self.blank_lines, np.int64),
            "malformed": self.malformed,
            "lines": lines,
        }


def decode_plain_chunk(data: bytes) -> list[RawRecord] | None:
    """The chunk's records in one msgspec call; None unless every line is a record orjson would accept too."""
    if not data.isascii():
        try:
            data.decode()  # msgspec does not check the UTF-8 of the text it skips; orjson rejects it
        except UnicodeDecodeError:
            return None
    try:
        records = RAW_RECORDS.decode_lines(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    lines = np.count_nonzero(np.frombuffer(data, np.uint8) == ord("\n")) + (not data.endswith(b"\n"))
    if len(records) != lines:  # decode_lines skips blank lines: pass 2 needs to know where they are
        return None
    conversations = list(map(CONVERSATIONS, records))
    lengths = np.fromiter(map(len, conversations), np.int64, len(conversations))
    first_bytes = np.frombuffer(b"".join(conversations), np.uint8)[np.cumsum(lengths) - lengths]
    if not (first_bytes == ord("[")).all():  # a `conversations` that is not an array: a malformed record
        return None
    return records


@without_gc
def scan_chunk(task: tuple[Path, int, int, CurateConfig]) -> dict:
    """Pass 1 over one byte range: per record a group id and a content hash (and pHash keys with an image root).

    Nothing about system prompts is computed here: pass 2 does it for the kept records only.
    """
    path, start, end, config = task
    data = read_chunk(path, start, end)
    chunk = ChunkScan(path.stem)
    records = decode_plain_chunk(data) if config.image_root is None else None
    if records is not None:
        keys = list(map(content_hash, map(SOURCE, records), map(content_hash, map(CATEGORY, records))))
        chunk.add_groups(keys, lambda i: (bytes(records[i].source), bytes(records[i].category)))
        chunk.contents += map(content_hash, map(CONVERSATIONS, records), map(content_hash, map(IMAGE, records)))
        return chunk.result(len(records))
    lines = chunk_lines(data)
    scan_lines(lines, path, config, chunk)
    return chunk.result(len(lines))


def scan_lines(lines: list[bytes], path: Path, config: CurateConfig, chunk: ChunkScan) -> None:
    """Line by line: orjson decides what is malformed; the keys are the same as decode_plain_chunk's."""
    use_phash = config.image_root is not None
    hasher = PerceptualHasher(config.image_root)
    for number, line in enumerate(lines):
        try:
            obj = orjson.loads(line)
            if type(obj["conversations"]) is not list:
                raise TypeError("`conversations` is not a list")
            record = RAW_RECORDS.decode(line)
        except (orjson.JSONDecodeError, KeyError, TypeError, msgspec.DecodeError, RecursionError) as error:
            if not line.strip():
                chunk.blank_lines.append(number)
                continue
            chunk.malformed.append({"file": str(path), "chunk_line": number + 1, "error": str(error)})
            chunk.group_ids.append(MALFORMED)
            chunk.contents.append(0)
            if use_phash:
                chunk.visual.append(0)
                chunk.phash.append(0)
            continue
        texts = (bytes(record.source), bytes(record.category))
        chunk.add_groups([content_hash(texts[0], content_hash(texts[1]))], lambda _, texts=texts: texts)
        chunk.contents.append(record_key(record))
        if use_phash:
            hashes = [hasher(p) for p in image_list(obj.get("image"))]
            first, near = visual_keys(bytes(record.conversations), hashes)
            chunk.phash.append(first)
            chunk.visual.append(near)


def scan(paths: list[Path], config: CurateConfig, workers: int = 1, chunks: list | None = None) -> PoolScan:
    chunks = chunks if chunks is not None else split_chunks(paths)
    parts = list(imap_ordered(scan_chunk, [(p, s, e, config) for p, s, e in chunks], workers))
    source_ids: dict[str, int] = {}
    category_ids: dict[str, int] = {}
    sources, categories, malformed = [], [], []
    lines_before: dict[Path, int] = {}
    for (path, _, _), part in zip(chunks, parts, strict=True):
        # ids are local to a chunk: map them to global ids (first appearance in stream order)
        remap_source = np.array([source_ids.setdefault(s, len(source_ids)) for s, _ in part["groups"]] or [0])
        remap_category = np.array([category_ids.setdefault(c, len(category_ids)) for _, c in part["groups"]] or [0])
        sources.append(remap_source[part["group"]].astype(np.uint32))
        categories.append(remap_category[part["group"]].astype(np.uint16))
        offset = lines_before.get(path, 0)
        for entry in part["malformed"]:
            malformed.append({"file": entry["file"], "line": offset + entry["chunk_line"], "error": entry["error"]})
        lines_before[path] = offset + part["lines"]
    with_images = config.image_root is not None  # without one, keep no per-record zeros (16 bytes a record)
    return PoolScan(
        valid=np.concatenate([p["valid"] for p in parts]),
        source=np.concatenate(sources),
        category=np.concatenate(categories),
        content=np.concatenate([p["content"] for p in parts]),
        visual=np.concatenate([p["visual"] for p in parts]) if with_images else None,
        phash=np.concatenate([p["phash"] for p in parts]) if with_images else None,
        sources=list(source_ids),
        categories=list(category_ids),
        malformed=malformed,
        chunk_records=[len(p["valid"]) for p in parts],
        chunk_blank_lines=[p["blank_lines"] for p in parts],
    )
