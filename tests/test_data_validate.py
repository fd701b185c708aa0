"""Bad records: `cambrian data validate` reports each with reason and line; skip sends exactly them to rejects."""

from __future__ import annotations

import orjson
import pytest
from PIL import Image
from typer.testing import CliRunner

from cambrian.data.cli import app
from cambrian.data.datasets import ConversationDataset
from cambrian.data.records import REASONS, RecordError
from cambrian.data.tokenizer import load_tokenizer
from cambrian.models.towers.preprocess import ImageTransform, MultiTowerTransform


def conv(question: str, answer: str = "A cube.") -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def write_fixture(tmp_path):
    """A JSONL with good records and one record of each bad kind; returns (path, image root, {reason: line})."""
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "red.png")
    Image.new("RGB", (20, 50), (10, 200, 10)).save(root / "green.png")
    Image.new("RGB", (3000, 3000), (0, 0, 0)).save(root / "huge.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (tmp_path / "outside.png").write_bytes((root / "red.png").read_bytes())
    good = [
        {"id": "text", "conversations": conv("Hello?", "Hi there.")},
        {"id": "one", "image": "red.png", "conversations": conv("<image>\nWhat color?", "Red.")},
        {"id": "two", "image": ["red.png", "green.png"], "conversations": conv("<image> vs <image>: which is red?")},
        {"id": "no-placeholder", "image": "green.png", "conversations": conv("What color?", "Green.")},
        {"id": "nan-image", "image": "nan", "source": "x", "conversations": conv("Text only?", "Yes.")},
    ]
    bad = {
        "malformed_json": '{"id": "broken", "conversations": [',
        "missing_image": {"id": "missing", "image": "nope.png", "conversations": conv("<image>\nQ?")},
        "undecodable_image": {"id": "corrupt", "image": "corrupt.png", "conversations": conv("<image>\nQ?")},
        "path_escape": {"id": "escape", "image": "../outside.png", "conversations": conv("<image>\nQ?")},
        "unknown_role": {"id": "robot", "conversations": [{"from": "robot", "value": "beep"}] + conv("Q?")},
        "image_count_mismatch": {"id": "mismatch", "image": "red.png", "conversations": conv("<image><image>\nQ?")},
        "empty_assistant": {"id": "empty", "conversations": conv("Q?", "  ")},
        "nothing_supervised": {"id": "long", "conversations": conv("word " * 400, "Short.")},
        "image_too_large": {"id": "bomb", "image": "huge.png", "conversations": conv("<image>\nQ?")},
        "bad_schema": {"id": "noconv", "conversations": []},
    }
    lines, where = [orjson.dumps(r).decode() for r in good[:2]], {}
    for reason, record in bad.items():
        lines.append(record if isinstance(record, str) else orjson.dumps(record).decode())
        where[reason] = len(lines)
        lines.append("")  # blank lines are not records, and line numbers still count them
    lines += [orjson.dumps(r).decode() for r in good[2:]]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, root, where


ARGS = ["--max-length", "256", "--tokens-per-image", "16", "--max-pixels", "1000000"]


def test_validate_reports_every_bad_kind(tmp_path):
    path, root, where = write_fixture(tmp_path)
    assert set(where) == set(REASONS)  # the fixture covers every reason
    result = CliRunner().invoke(app, ["validate", str(path), "--image-root", str(root), *ARGS])
    print(result.output)
    assert result.exit_code == 1, result.output
    for reason, line in where.items():
        assert f"{path}:{line}" in result.output and f": {reason}: " in result.output, reason
    assert f"{5 + len(where)} records, 5 good, {len(where)} bad" in result.output


def test_validate_skip_writes_exactly_the_bad_records_and_good_ones_load(tmp_path):
    path, root, where = write_fixture(tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(
        app, ["validate", str(path), "--image-root", str(root), *ARGS, "--on-error", "skip", "--rejects", str(rejects)]
    )
    assert result.exit_code == 1 and "rejected records written" in result.output
    entries = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert {(e["reason"], e["line"]) for e in entries} == set(where.items())
    assert next(e for e in entries if e["reason"] == "malformed_json")["raw"].startswith('{"id": "broken"')
    assert next(e for e in entries if e["reason"] == "missing_image")["record"]["image"] == "nope.png"

    transform = MultiTowerTransform({"a": ImageTransform(16), "b": ImageTransform(24)})
    train_rejects = tmp_path / "train_rejects.jsonl"
    dataset = ConversationDataset(
        path,
        load_tokenizer("smollm2"),
        "tokenizer",
        root,
        transform,
        max_length=256,
        tokens_per_image=16,
        on_error="skip",
        rejects_path=train_rejects,
        max_pixels=1_000_000,
    )
    examples = [dataset[i] for i in range(len(dataset))]
    loaded = [e["id"] for e in examples if e is not None]
    assert loaded == ["text", "one", "two", "no-placeholder", "nan-image"]
    assert dataset.rejects.count == len(where)
    assert {orjson.loads(x)["reason"] for x in train_rejects.read_bytes().splitlines()} == set(where)
    two = examples[[e is not None and e["id"] for e in examples].index("two")]
    assert two["pixel_values"]["a"].shape == (2, 3, 16, 16) and two["pixel_values"]["b"].shape == (2, 3, 24, 24)
    assert two["image_sizes"] == [(40, 30), (20, 50)]


def test_raise_names_file_line_id_reason_and_fix(tmp_path):
    path, root, where = write_fixture(tmp_path)
    dataset = ConversationDataset(path, load_tokenizer("smollm2"), image_root=root, image_transform=ImageTransform(8))
    with pytest.raises(RecordError) as info:
        dataset[4]  # records: text, one, broken json, missing, corrupt
    message = str(info.value)
    assert f"{path}:{where['undecodable_image']} (id 'corrupt'): undecodable_image" in message
    assert "Fix: re-encode or remove the image" in message and "on_error='skip'" in message
