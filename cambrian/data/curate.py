"""Curation of an instruction-tuning pool, Cambrian-10M -> Cambrian-7M style (paper Section 5.2, 5.3).

Two streaming passes over the input JSONL files, with a few numpy arrays of fixed width per record in between
(about 30 bytes a record), so memory stays bounded whatever the pool size:

  pass 1: parse each line once; keep source, category, a content hash, an image pHash key, the short-answer flag
  select: exact duplicates -> near-duplicate images (same conversation, same pHash) -> per-source cap t by seeded
          random subsampling (Fig. 10) -> category ratios at a target size (Fig. 9) -> optional leakage drop
  pass 2: write the kept lines in input order; short-answer questions get their system prompt (Section 5.3)

Every random choice derives from (seed, content hash): the same inputs and seed give a byte-identical output.
"""

from __future__ import annotations

import functools
import gc
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import xxhash

from cambrian.data.system_prompts import PROMPTS, add_system_prompts, prompt_plan

# Cambrian-7M category mix, in percent (paper Section 5.2, official-cambrian.md 7.2)
CAMBRIAN_7M_RATIOS = {
    "Language": 21.00,
    "General": 34.52,
    "OCR": 27.22,
    "Counting": 8.71,
    "Math": 7.20,
    "Code": 0.87,
    "Science": 0.88,
}
PRESETS = {"cambrian7m": CAMBRIAN_7M_RATIOS}
UNKNOWN = "unknown"
KINDS = list(PROMPTS)  # prompt kind <-> small int in the insertion table
# short[k]: 0 no prompt; 1 prompts spliced into the raw line at recorded byte offsets; 2 re-serialise the record
NO_PROMPT, SPLICE, RESERIALIZE = 0, 1, 2
MALFORMED_TAG = -1  # pass 1 tags a record group << 2 | short code, a malformed line with this
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
CHUNK_BYTES = 32 << 20  # unit of parallel work in both passes


@dataclass
class CurateConfig:
    source_cap: int | None = 350_000  # t: max samples per source (250k-350k works best, Table 7)
    ratios: dict[str, float] | None = None  # category -> share (any scale); None keeps every category as is
    target_size: int | None = None  # None: the largest size the ratios allow
    seed: int = 0
    system_prompts: bool = True
    dedup: bool = True
    image_root: Path | None = None  # enables the perceptual-hash near-duplicate and leakage checks
    benchmark_images: list[Path] = field(default_factory=list)
    leak_distance: int = 4  # Hamming distance between 64-bit pHashes that counts as the same image
    drop_leaked: bool = False


def parse_ratios(spec: str | None) -> dict[str, float] | None:
    """ "cambrian7m" | "none" | "General=34.5,OCR=27.2,..." -> dict."""
    if spec is None or spec.lower() == "none":
        return None
    if spec.lower() in PRESETS:
        return dict(PRESETS[spec.lower()])
    ratios = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        if not value:
            raise ValueError(f"bad ratio {part!r}: expected NAME=SHARE, or a preset ({', '.join(PRESETS)})")
        ratios[name.strip()] = float(value)
    return ratios


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed, well-mixed 64-bit hash (vectorised, in place on a copy): the seeded random key of each record."""
    x = np.array(x, dtype=np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def content_hash(data: bytes) -> int:
    """64-bit xxh3: ~10x faster than blake2b on short records; collisions are negligible below billions of records."""
    return xxhash.xxh3_64_intdigest(data)


class PerceptualHasher:
    """64-bit pHash per image path (imagehash), cached; 0 when the image is missing or unreadable."""

    def __init__(self, image_root: Path | None):
        self.root = image_root
        self.cache: dict[str, int] = {}
        self.missing = 0

    def __call__(self, relative: str) -> int:
        if self.root is None:
            return 0
        if relative not in self.cache:
            if len(self.cache) > 1_000_000:  # bound memory on huge pools
                self.cache.clear()
            self.cache[relative] = phash_file(self.root / relative)
            self.missing += self.cache[relative] == 0
        return self.cache[relative]


def phash_file(path: Path) -> int:
    import imagehash
    from PIL import Image

    try:
        with Image.open(path) as image:
            bits = imagehash.phash(image).hash.flatten()
    except (OSError, ValueError):
        return 0
    return int(np.packbits(bits).view(">u8")[0]) or 1  # 0 is reserved for "no image"


def _image_list(value) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip().lower() not in ("", "none", "nan", "null")]


@dataclass
class PoolScan:
    """Pass 1 result: one entry per non-blank input line (valid or not), in stream order."""

    valid: np.ndarray
    source: np.ndarray
    category: np.ndarray
    content: np.ndarray  # hash of conversations + image paths (exact duplicates)
    visual: np.ndarray | None  # hash of conversations + image pHashes (near duplicates); None without image root
    phash: np.ndarray | None  # pHash of the first image (0 if none); None without image root
    short: np.ndarray  # NO_PROMPT | SPLICE | RESERIALIZE
    insertions: np.ndarray  # uint32 (record, byte offset, kind) rows for SPLICE records, sorted
    sources: list[str]
    categories: list[str]
    malformed: list[dict]
    chunk_records: list[int]  # records per chunk, to hand pass 2 its slice
    chunk_blank_lines: list[np.ndarray]  # per chunk, the (rare) whitespace-only lines pass 2 must skip


def split_chunks(paths: list[Path], chunk_bytes: int) -> list[tuple[Path, int, int]]:
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


def _lines(path: Path, start: int, end: int) -> list[bytes]:
    """The lines of one byte range (without newlines); a chunk is read whole (CHUNK_BYTES bounds the memory)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        lines = handle.read(end - start).split(b"\n")
    return lines[:-1] if lines and not lines[-1] else lines


def without_gc(function: Callable) -> Callable:
    """Run with the cyclic garbage collector paused. The passes allocate millions of short-lived, acyclic objects
    (parsed records, which reference counting frees); the collections they trigger would cost ~20% of pass 1."""

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


@without_gc
def scan_chunk(task: tuple[Path, int, int, CurateConfig]) -> dict:
    """Pass 1 over one byte range. Per record: one orjson parse, one xxh3 hash, a short-answer check.

    Per-record results go to plain lists of ints (the cheapest append in CPython), turned into numpy at the end.
    """
    path, start, end, config = task
    groups: dict[tuple[str, str], int] = {}
    tags: list[int] = []  # group << 2 | prompt code; MALFORMED_TAG for a line that is not a record
    contents: list[int] = []
    visual: list[int] = []
    phash: list[int] = []
    blank_lines: list[int] = []
    insertions: list[int] = []  # flat (record, byte offset, kind) triples for SPLICE records
    malformed: list[dict] = []
    default_source, use_phash, prompts = path.stem, config.image_root is not None, config.system_prompts
    hasher = PerceptualHasher(config.image_root)
    loads, dumps, hash64 = orjson.loads, orjson.dumps, xxhash.xxh3_64_intdigest
    lines = _lines(path, start, end)
    for number, line in enumerate(lines):
        try:
            obj = loads(line)
            conversations = obj["conversations"]
            if type(conversations) is not list:
                raise TypeError("`conversations` is not a list")
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            if not line.strip():
                blank_lines.append(number)
                continue
            malformed.append({"file": str(path), "chunk_line": number + 1, "error": str(error)})
            tags.append(MALFORMED_TAG)
            contents.append(0)
            if use_phash:
                visual.append(0)
                phash.append(0)
            continue
        key = (obj.get("source") or default_source, obj.get("category") or UNKNOWN)
        group = groups.get(key)
        if group is None:
            group = groups[key] = len(groups)
        image = obj.get("image")
        contents.append(hash64(dumps([conversations, image])))  # content_hash, inlined
        if use_phash:
            first, near = _visual_keys(conversations, [hasher(p) for p in _image_list(image)])
            phash.append(first)
            visual.append(near)
        code = NO_PROMPT
        plan = prompt_plan(conversations) if prompts else None
        if plan:
            code, offsets = _splice_offsets(line, conversations, plan, dumps)
            if code == SPLICE:
                record = len(tags)
                for offset, (_, kind) in zip(offsets, plan, strict=True):
                    insertions += (record, offset, KINDS.index(kind))
        tags.append(group << 2 | code)
    tag_array = np.array(tags, np.int64)
    valid = tag_array != MALFORMED_TAG
    return {
        "groups": list(groups),
        "group": np.where(valid, tag_array >> 2, 0).astype(np.uint32),
        "valid": valid,
        "short": np.where(valid, tag_array & 3, NO_PROMPT).astype(np.uint8),
        "insertions": np.array(insertions, np.uint32).reshape(-1, 3),
        "content": np.array(contents, np.uint64),
        "visual": np.array(visual, np.uint64),
        "phash": np.array(phash, np.uint64),
        "blank_lines": np.array(blank_lines, np.int64),
        "malformed": malformed,
        "lines": len(lines),
    }


def _visual_keys(conversations: list, hashes: list[int]) -> tuple[int, int]:
    """(pHash of the first image, hash of conversations + all pHashes); (0, 0) unless every image has a pHash."""
    if not hashes or not all(hashes):
        return 0, 0
    pixels = b"".join(h.to_bytes(8, "little") for h in hashes)
    return hashes[0], content_hash(orjson.dumps(conversations) + pixels)


def _splice_offsets(line: bytes, conversations: list, plan: list, dumps) -> tuple[int, list[int]]:
    """Where each prompt goes in the raw line: just before the closing quote of its question's JSON string.

    Pass 2 then splices bytes instead of parsing and re-serialising. Falls back to RESERIALIZE when a question's
    encoding is not found exactly once (another escaping style, or the same text twice) or ends in whitespace.
    """
    offsets = []
    for index, _ in plan:
        question = conversations[index]["value"]
        encoded = dumps(question)
        position = line.find(encoded)
        if question != question.rstrip() or position < 0 or line.find(encoded, position + 1) >= 0:
            return RESERIALIZE, []
        offsets.append(position + len(encoded) - 1)
    return SPLICE, offsets


def _map(function, tasks: list, workers: int) -> list:
    return list(_imap(function, tasks, workers))


def _imap(function, tasks: list, workers: int) -> Iterator:
    """function over tasks, results in task order, with `workers` processes."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    import multiprocessing

    # fork starts workers in milliseconds; they only parse and hash (no threads, no torch)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(function, tasks, chunksize=1)


def scan(paths: list[Path], config: CurateConfig, workers: int = 1, chunk_bytes: int = CHUNK_BYTES) -> PoolScan:
    chunks = split_chunks(paths, chunk_bytes)
    parts = _map(scan_chunk, [(p, s, e, config) for p, s, e in chunks], workers)
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
    return PoolScan(
        valid=np.concatenate([p["valid"] for p in parts]),
        source=np.concatenate(sources),
        category=np.concatenate(categories),
        content=np.concatenate([p["content"] for p in parts]),
        # without an image root there are no pHashes: keep no per-record zeros (16 bytes a record)
        visual=np.concatenate([p["visual"] for p in parts]) if config.image_root is not None else None,
        phash=np.concatenate([p["phash"] for p in parts]) if config.image_root is not None else None,
        short=np.concatenate([p["short"] for p in parts]),
        insertions=np.concatenate(  # uint32: 12 bytes a prompt (record index and line offset < 2**32)
            [
                p["insertions"] + np.array([base, 0, 0], np.uint32)
                for p, base in zip(parts, np.cumsum([0] + [len(p["valid"]) for p in parts]), strict=False)
            ]
        ).astype(np.uint32),
        sources=list(source_ids),
        categories=list(category_ids),
        malformed=malformed,
        chunk_records=[len(p["valid"]) for p in parts],
        chunk_blank_lines=[p["blank_lines"] for p in parts],
    )


def first_occurrences(keys: np.ndarray, mask: np.ndarray, ignore_zero: bool = False) -> np.ndarray:
    """Mask keeping, among `mask`, the first record of each key value (stream order).

    One stable argsort of the candidates' keys: ~20 bytes a record at the peak (this is the curation's high-water
    mark, so no np.unique with its extra copies).
    """
    positions = np.flatnonzero(mask & (keys != 0) if ignore_zero else mask).astype(
        np.uint32 if len(mask) < 2**32 else np.int64
    )
    candidate_keys = keys[positions]
    order = np.argsort(candidate_keys, kind="stable")
    candidate_keys = candidate_keys[order]
    repeated = np.empty(len(order), dtype=bool)
    repeated[:1] = False
    np.equal(candidate_keys[1:], candidate_keys[:-1], out=repeated[1:])
    del candidate_keys
    keep = mask.copy()
    keep[positions[order[repeated]]] = False
    return keep


def cap_groups(groups: np.ndarray, keys: np.ndarray, mask: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Keep, per group g, the caps[g] records of `mask` with the smallest random keys.

    Positions are grouped with one stable argsort; each group is then cut with argpartition on its own keys, so
    the temporaries beyond ~20 bytes a record are the size of the largest group.
    """
    positions = np.flatnonzero(mask).astype(np.uint32 if len(mask) < 2**32 else np.int64)
    positions = positions[np.argsort(groups[positions], kind="stable")]
    counts = np.bincount(groups[positions], minlength=len(caps))
    keep = np.zeros_like(mask)
    start = 0
    for group, count in enumerate(counts.tolist()):
        members, start = positions[start : start + count], start + count
        cap = int(caps[group])
        if count <= cap:
            keep[members] = True
        elif cap > 0:
            keep[members[np.argpartition(keys[members], cap - 1)[:cap]]] = True
    return keep


def allocate(available: dict[str, int], ratios: dict[str, float], target: int | None) -> tuple[dict[str, int], int]:
    """Per-category counts at the target size with exact shares (largest remainder); shrinks an infeasible target."""
    total = sum(ratios.values())
    shares = {c: r / total for c, r in ratios.items() if r > 0}
    feasible = min(math.floor(available.get(c, 0) / s + 1e-9) for c, s in shares.items())
    size = feasible if target is None else min(target, feasible)
    raw = {c: size * s for c, s in shares.items()}
    counts = {c: math.floor(v) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: (counts[c] - raw[c], c))[: size - sum(counts.values())]:
        counts[c] += 1
    return {c: min(n, available.get(c, 0)) for c, n in counts.items()}, size


def hamming_leaks(pool: np.ndarray, bench: np.ndarray, distance: int, chunk: int = 65536) -> np.ndarray:
    """Mask over `pool` (uint64 pHashes, 0 = none): within `distance` bits of any benchmark pHash."""
    leaked = np.zeros(len(pool), np.bool_)
    if not len(bench):
        return leaked
    for start in range(0, len(pool), chunk):
        part = pool[start : start + chunk]
        bits = np.bitwise_count(part[:, None] ^ bench[None, :])
        leaked[start : start + chunk] = (bits <= distance).any(axis=1) & (part != 0)
    return leaked


def benchmark_phashes(folders: list[Path]) -> dict[str, np.ndarray]:
    out = {}
    for folder in folders:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        hashes = np.array([phash_file(p) for p in files], np.uint64)
        out[str(folder)] = hashes[hashes != 0]
    return out


def select(pool: PoolScan, config: CurateConfig) -> tuple[np.ndarray, dict]:
    seed_mix = np.uint64(content_hash(f"cambrian-curate-{config.seed}".encode()))
    keys = splitmix64(pool.content ^ seed_mix)
    stats: dict = {"records_in": int(len(pool.valid)), "malformed": len(pool.malformed)}
    mask = pool.valid.copy()
    if config.dedup:
        exact = first_occurrences(pool.content, mask)
        stats["duplicates_exact"] = int(mask.sum() - exact.sum())
        near = exact if pool.visual is None else first_occurrences(pool.visual, exact, ignore_zero=True)
        stats["duplicates_near_image"] = int(exact.sum() - near.sum())
        mask = near
    leaks = {}
    leaked_any = np.zeros_like(mask)
    for folder, bench in benchmark_phashes(config.benchmark_images).items():
        leaked = hamming_leaks(pool.phash, bench, config.leak_distance) & mask
        leaked_any |= leaked
        leaks[folder] = {
            "benchmark_images": int(len(bench)),
            "leaked_records": int(leaked.sum()),
            "first_positions": [int(p) for p in np.flatnonzero(leaked)[:20]],  # 0-based record in the input stream
        }
    stats["leakage"] = {
        "distance": config.leak_distance,
        "dropped": config.drop_leaked,
        "by_benchmark": leaks,
        "leaked_records": int(leaked_any.sum()),
    }
    if config.drop_leaked:
        mask &= ~leaked_any
    before = mask.copy()
    if config.source_cap is not None:
        caps = np.full(len(pool.sources), config.source_cap, np.int64)
        mask = cap_groups(pool.source, keys, mask, caps)
    capped = mask.copy()
    n_categories = len(pool.categories)
    if config.ratios is not None:
        available = {
            c: int(n)
            for c, n in zip(pool.categories, np.bincount(pool.category[mask], minlength=n_categories), strict=True)
        }
        counts, size = allocate(available, config.ratios, config.target_size)
        stats["target_size"] = {"asked": config.target_size, "reached": size}
        caps = np.array([counts.get(c, 0) for c in pool.categories], np.int64)
        mask = cap_groups(pool.category, splitmix64(keys), mask, caps)
    stats["sources"] = _table(pool.sources, pool.source, [before, capped, mask], ["before", "after_cap", "final"])
    stats["categories"] = _table(
        pool.categories, pool.category, [before, capped, mask], ["before", "after_cap", "final"]
    )
    final = max(int(mask.sum()), 1)
    for name, row in stats["categories"].items():
        row["final_share"] = round(100 * row["final"] / final, 4)
        if config.ratios is not None:
            row["target_share"] = round(100 * config.ratios.get(name, 0) / sum(config.ratios.values()), 4)
    stats["source_cap"] = config.source_cap
    stats["records_out"] = int(mask.sum())
    return mask, stats


def _table(names, groups, masks, labels) -> dict:
    counts = [np.bincount(groups[m], minlength=len(names)) for m in masks]
    return {name: {label: int(c[i]) for label, c in zip(labels, counts, strict=True)} for i, name in enumerate(names)}


@without_gc
def write_chunk(task: tuple) -> tuple[bytes, dict]:
    """Pass 2 over one byte range: the kept lines as raw slices, prompts spliced in (or the line re-serialised).

    Line boundaries come from one numpy scan for newlines; Python touches only the kept records.
    """
    path, start, end, keep, short, insertions, blank_lines = task
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    if not data.endswith(b"\n"):
        data += b"\n"
    line_ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n")) + 1
    line_starts = np.concatenate([[0], line_ends[:-1]])
    record_starts, record_ends = np.delete(line_starts, blank_lines), np.delete(line_ends, blank_lines)
    kept = np.flatnonzero(keep)
    kept_insertions = insertions[keep[insertions[:, 0]]] if len(insertions) else insertions
    insertion_at = (record_starts[kept_insertions[:, 0]] + kept_insertions[:, 1]).tolist()
    insertion_record, insertion_kind = kept_insertions[:, 0].tolist(), kept_insertions[:, 2].tolist()
    view, pieces, kinds, with_prompt, cursor = memoryview(data), [], [0] * len(KINDS), 0, 0
    for record, line_start, line_end, code in zip(
        kept.tolist(), record_starts[kept].tolist(), record_ends[kept].tolist(), short[kept].tolist(), strict=True
    ):
        if code == NO_PROMPT:
            pieces.append(view[line_start:line_end])
            continue
        with_prompt += 1
        if code == SPLICE:
            while cursor < len(insertion_record) and insertion_record[cursor] == record:
                pieces += (view[line_start : insertion_at[cursor]], SPLICED[insertion_kind[cursor]])
                kinds[insertion_kind[cursor]] += 1
                line_start = insertion_at[cursor]
                cursor += 1
            pieces.append(view[line_start:line_end])
        else:
            obj = orjson.loads(view[line_start:line_end])
            for kind in add_system_prompts(obj["conversations"]):
                kinds[KINDS.index(kind)] += 1
            pieces.append(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(pieces), {"with_prompt": with_prompt, "kinds": kinds}


# "\n" + prompt as it appears inside a JSON string (the prompts hold no quote or backslash)
SPLICED = [orjson.dumps("\n" + PROMPTS[kind])[1:-1] for kind in KINDS]


def write_selected(
    paths: list[Path],
    pool: PoolScan,
    mask: np.ndarray,
    out_path: Path,
    workers: int = 1,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict:
    """Pass 2: the kept lines in input order; chunks are processed in parallel and written in order."""
    chunks = split_chunks(paths, chunk_bytes)
    bounds = np.concatenate([[0], np.cumsum(pool.chunk_records)]).astype(np.int64)
    rows = np.searchsorted(pool.insertions[:, 0], bounds) if len(pool.insertions) else np.zeros(len(bounds), int)
    tasks = []  # numpy slices: compact to hold and to pickle
    for c, (path, start, end) in enumerate(chunks):
        part = slice(bounds[c], bounds[c + 1])
        insertions = pool.insertions[rows[c] : rows[c + 1]].astype(np.int64) - [bounds[c], 0, 0]
        tasks.append((path, start, end, mask[part], pool.short[part], insertions, pool.chunk_blank_lines[c]))
    with_prompt, kinds = 0, [0] * len(KINDS)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as out:
        for data, counts in _imap(write_chunk, tasks, workers):
            out.write(data)
            with_prompt += counts["with_prompt"]
            kinds = [a + b for a, b in zip(kinds, counts["kinds"], strict=True)]
    os.replace(tmp, out_path)
    return {
        "records_with_prompt": with_prompt,
        "prompts_by_kind": {kind: n for kind, n in sorted(zip(KINDS, kinds, strict=True)) if n},
    }


def curate(
    paths: list[str | Path], out_dir: str | Path, config: CurateConfig, plots: bool = True, workers: int | None = None
) -> dict:
    """Both passes; `workers` processes (default: all CPUs) share each pass. The output does not depend on it."""
    workers = workers or os.cpu_count() or 1
    if config.benchmark_images and config.image_root is None:
        raise ValueError("benchmark images need an image root: leakage compares the pool's image pHashes with theirs")
    paths = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = scan(paths, config, workers)
    mask, stats = select(pool, config)
    if plots:
        from cambrian.data.curate_plots import plot_in_background

        wait_for_plots = plot_in_background(stats, out_dir)
    stats["system_prompts"] = write_selected(paths, pool, mask, out_dir / "curated.jsonl", workers)
    stats["inputs"] = [str(p) for p in paths]
    stats["seed"] = config.seed
    stats["ratios"] = config.ratios
    if pool.malformed:
        with open(out_dir / "rejects.jsonl", "wb") as handle:
            for entry in pool.malformed:
                handle.write(orjson.dumps(entry) + b"\n")
    stats["malformed_examples"] = pool.malformed[:20]
    (out_dir / "stats.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    if plots:
        wait_for_plots()
    return stats
