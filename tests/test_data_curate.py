"""`cambrian data curate`: caps, category ratios, system prompts only on short answers, dedup, leakage, determinism."""

from __future__ import annotations

import json

import orjson
import pytest
from PIL import Image
from typer.testing import CliRunner

from cambrian.data.cli import app
from cambrian.data.curate import CAMBRIAN_7M_RATIOS, CurateConfig, curate
from cambrian.data.synthetic import write_synthetic_pool
from cambrian.data.system_prompts import FAMILY, add_system_prompts, short_answer_kind


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    write_synthetic_pool(folder / "a.jsonl", 24_000, seed=1, prefix="a")
    write_synthetic_pool(folder / "b.jsonl", 6_000, seed=2, sources=5, prefix="b")
    with open(folder / "b.jsonl", "a") as handle:
        handle.write('{"id": "broken", "conversations": [\n')
    return [folder / "a.jsonl", folder / "b.jsonl"]


def run(pool, out, *extra):
    result = CliRunner().invoke(
        app,
        [
            "curate",
            *map(str, pool),
            "--out",
            str(out),
            "--cap",
            "2500",
            "--ratios",
            "cambrian7m",
            "--seed",
            "7",
            "--workers",
            "2",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output, json.loads((out / "stats.json").read_text())


def test_caps_ratios_prompts_and_determinism(pool, tmp_path):
    output, stats = run(pool, tmp_path / "one")
    print(output)
    originals = {}
    for path in pool:
        for line in path.read_bytes().splitlines():
            if not line.startswith(b'{"id": "broken'):
                record = orjson.loads(line)
                originals[record["id"]] = record
    curated = [orjson.loads(line) for line in (tmp_path / "one" / "curated.jsonl").read_bytes().splitlines()]
    assert len(curated) == stats["records_out"] > 5000

    counts = {}
    for record in curated:
        counts[record["source"]] = counts.get(record["source"], 0) + 1
    assert max(counts.values()) <= 2500  # sources a.jsonl and b.jsonl share names: the cap is per source name
    assert max(row["before"] for row in stats["sources"].values()) > 2500  # the cap did bind
    total = sum(CAMBRIAN_7M_RATIOS.values())
    for name, target in CAMBRIAN_7M_RATIOS.items():
        share = 100 * sum(r["category"] == name for r in curated) / len(curated)
        assert abs(share - target) < 0.5 and abs(share - 100 * target / total) < 0.05, (name, share)

    # prompts: added exactly where the answer is short, nowhere else, and byte-for-byte what the parser would do
    prompted = 0
    for record in curated:
        original = originals[record["id"]]
        question, answer = original["conversations"][0]["value"], original["conversations"][1]["value"]
        expected = json.loads(json.dumps(original))
        added = add_system_prompts(expected["conversations"])
        assert record == expected
        assert bool(added) == (short_answer_kind(question, answer) is not None)
        if added:
            prompted += 1
            assert record["conversations"][0]["value"].endswith(FAMILY[0]) or any(
                record["conversations"][0]["value"].endswith(p) for p in FAMILY
            )
    assert prompted == stats["system_prompts"]["records_with_prompt"] > 0
    assert stats["malformed"] == 1 and stats["duplicates_exact"] > 0

    for figure in ("sources.png", "categories.png"):
        with Image.open(tmp_path / "one" / figure) as image:
            assert image.size[0] > 300 and image.getextrema()[0][0] < 255  # decodes and is not blank

    run(pool, tmp_path / "two", "--workers", "1")  # other worker count, same seed: byte-identical
    assert (tmp_path / "one" / "curated.jsonl").read_bytes() == (tmp_path / "two" / "curated.jsonl").read_bytes()
    run(pool, tmp_path / "three", "--seed", "8", "--no-plots")
    assert (tmp_path / "one" / "curated.jsonl").read_bytes() != (tmp_path / "three" / "curated.jsonl").read_bytes()


def test_perceptual_dedup_and_leakage(tmp_path):
    images, bench = tmp_path / "images", tmp_path / "bench"
    images.mkdir()
    bench.mkdir()
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        pattern = Image.effect_noise((64, 64), 80 + 20 * seed).convert("RGB").resize((256, 256))
        pattern.save(images / f"{name}.png")
        if name == "a":
            pattern.resize((200, 200)).save(images / "a_small.jpg", quality=90)  # same picture, re-encoded
        if name == "c":
            pattern.resize((128, 128)).save(bench / "test_0001.png")  # a benchmark image in the pool
    conv = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Noise."}]
    rows = [
        {"id": "a", "image": "a.png", "conversations": conv, "category": "General"},
        {"id": "a-copy", "image": "a_small.jpg", "conversations": conv, "category": "General"},
        {
            "id": "a-other-q",
            "image": "a_small.jpg",
            "category": "General",
            "conversations": [conv[0], {"from": "gpt", "value": "Static."}],
        },
        {"id": "b", "image": "b.png", "conversations": conv, "category": "General"},
        {"id": "c", "image": "c.png", "conversations": conv, "category": "General"},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = CurateConfig(source_cap=None, image_root=images, benchmark_images=[bench], system_prompts=False)
    stats = curate([tmp_path / "p.jsonl"], tmp_path / "out", config, plots=False, workers=1)
    kept = [orjson.loads(x)["id"] for x in (tmp_path / "out" / "curated.jsonl").read_bytes().splitlines()]
    assert kept == ["a", "a-other-q", "b", "c"]  # same picture + same conversation = duplicate; new question kept
    assert stats["duplicates_near_image"] == 1
    assert (
        stats["leakage"]["leaked_records"] == 1 and stats["leakage"]["by_benchmark"][str(bench)]["leaked_records"] == 1
    )
    config.drop_leaked = True
    stats = curate([tmp_path / "p.jsonl"], tmp_path / "out2", config, plots=False, workers=1)
    assert stats["records_out"] == 3


def test_chunk_decoder_matches_line_by_line(tmp_path):
    """The one-call msgspec route and the orjson line-by-line route give the same groups and content keys; chunks
    with a blank line or a non-array `conversations` fall back to the line route, which reports the malformed one."""
    from cambrian.data.curate_chunks import chunk_lines, read_chunk
    from cambrian.data.curate_scan import ChunkScan, scan_chunk, scan_lines

    pool = tmp_path / "p.jsonl"
    write_synthetic_pool(pool, 3000, seed=3)
    config = CurateConfig()
    size = pool.stat().st_size
    fast = scan_chunk((pool, 0, size, config))
    chunk = ChunkScan(pool.stem)
    lines = chunk_lines(read_chunk(pool, 0, size))
    scan_lines(lines, pool, config, chunk)
    slow = chunk.result(len(lines))
    assert fast["groups"] == slow["groups"]
    for key in ("group", "valid", "content"):
        assert (fast[key] == slow[key]).all(), key

    odd = tmp_path / "odd.jsonl"
    conv = '[{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "Yes"}]'
    odd.write_text(
        f'{{"id": 1, "conversations": {conv}}}\n\n{{"id": 2, "conversations": "text"}}\n'
        f'{{"conversations": {conv}, "id": 3, "source": ""}}\n'
    )
    result = scan_chunk((odd, 0, odd.stat().st_size, config))
    assert result["valid"].tolist() == [True, False, True] and result["blank_lines"].tolist() == [1]
    assert result["content"][0] == result["content"][2]  # same conversations and image, other id and key order
    assert set(result["groups"]) == {("odd", "unknown")}  # null and "" source: both the file name
    assert result["malformed"][0]["chunk_line"] == 3
