"""Curation of an instruction-tuning pool, Cambrian-10M -> Cambrian-7M style (paper Section 5.2, 5.3).

Two streaming passes over the input JSONL files, with a few numpy arrays of fixed width per record in between
(about 20 bytes a record), so memory stays bounded whatever the pool size:

  pass 1 (curate_scan): parse each line once; keep source, category, a content hash, an image pHash key
  select: exact duplicates -> near-duplicate images (same conversation, same pHash) -> per-source cap t by seeded
          random subsampling (Fig. 10) -> category ratios at a target size (Fig. 9) -> optional leakage drop
  pass 2 (curate_write): write the kept lines in input order; short-answer questions get their system prompt
          (Section 5.3); the figures (curate_plots) are drawn meanwhile in a child process

Every random choice derives from (seed, content hash): the same inputs and seed give a byte-identical output.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from cambrian.data.curate_chunks import split_chunks
from cambrian.data.curate_scan import PoolScan, content_hash, phash_file, scan
from cambrian.data.curate_write import write_selected

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
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


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


def first_occurrences(keys: np.ndarray, mask: np.ndarray, ignore_zero: bool = False) -> np.ndarray:
    """Mask keeping, among `mask`, the first record of each key value (stream order).

    One unstable argsort of the candidates' keys (3x faster than a stable one); only the few records whose key
    repeats are then sorted out by position. ~20 bytes a record at the peak, the curation's high-water mark.
    """
    positions = np.flatnonzero(mask & (keys != 0) if ignore_zero else mask).astype(
        np.uint32 if len(mask) < 2**32 else np.int64
    )
    candidate_keys = keys[positions]
    order = np.argsort(candidate_keys)
    candidate_keys = candidate_keys[order]
    repeats = candidate_keys[1:] == candidate_keys[:-1]  # sorted index i + 1 holds the same key as i
    del candidate_keys
    run_starts = np.flatnonzero(repeats & ~np.concatenate([[False], repeats[:-1]]))  # first index of each run
    in_run = np.flatnonzero(np.concatenate([[False], repeats]) | np.concatenate([repeats, [False]]))
    member_positions = positions[order[in_run]]
    keep = mask.copy()
    keep[member_positions] = False
    if len(run_starts):
        # runs are consecutive in `in_run`: reduce each to its smallest position, the first in stream order
        keep[np.minimum.reduceat(member_positions, np.searchsorted(in_run, run_starts))] = True
    return keep


def cap_groups(groups: np.ndarray, keys: np.ndarray, mask: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Keep, per group g, the caps[g] records of `mask` with the smallest random keys.

    Positions are grouped with one stable argsort (a radix sort when the ids fit 16 bits); each group is then cut
    with argpartition on its own keys, so the temporaries beyond ~20 bytes a record are the size of the largest group.
    """
    positions = np.flatnonzero(mask).astype(np.uint32 if len(mask) < 2**32 else np.int64)
    member_groups = groups[positions]
    if len(caps) <= 2**16:
        member_groups = member_groups.astype(np.uint16)
    positions = positions[np.argsort(member_groups, kind="stable")]
    del member_groups
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
    chunks = split_chunks(paths)
    pool = scan(paths, config, workers, chunks)
    mask, stats = select(pool, config)
    if plots:
        from cambrian.data.curate_plots import plot_in_background

        wait_for_plots = plot_in_background(stats, out_dir)
    stats["system_prompts"] = write_selected(
        paths, pool, mask, out_dir / "curated.jsonl", config.system_prompts, workers, chunks
    )
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
