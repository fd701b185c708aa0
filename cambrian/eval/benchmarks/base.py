"""What a benchmark is to the harness: samples, a judge per answer, a chance per sample, and an aggregate.

    Sample     one question: prompt text (with its official suffix, without the image placeholder), images, target
    judge      (sample, raw answer) -> Judged(value in [0, 1], parsed answer or None when unparsable)
    chance     sample -> probability that a uniform random guess among the choices is right (0 for open answers)
    aggregate  (samples, values) -> {metric: score}; the same function turns chances into the random-guess score
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cambrian.eval.matching import is_refusal

LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
WORD_SUFFIX = "Answer the question using a single word or phrase."
NUMBER_SUFFIX = "Answer the question using a single number or phrase."
SHORT_SUFFIX = "Give the short answer directly."
SQA_SUFFIX = "Please answer directly with only the letter of the correct option and nothing else."

ImageSource = bytes | str | Path


@dataclass
class Sample:
    idx: int  # the `idx` of prediction files: the dataset's own id where it has a unique int one, else the row
    prompt: str
    target: Any  # what the judge compares with (letter, text, list of answers); written to the samples JSONL
    images: list[ImageSource] = field(default_factory=list)
    choices: list[str] | None = None  # option texts of a multiple-choice question, in letter order
    meta: dict[str, Any] = field(default_factory=dict)  # category, source, group keys ...

    def load_images(self):
        from PIL import Image

        out = []
        for source in self.images:
            image = Image.open(io.BytesIO(source)) if isinstance(source, bytes) else Image.open(source)
            out.append(image.convert("RGB"))
        return out


@dataclass(frozen=True)
class Judged:
    value: float  # 1/0 for right/wrong; a fraction for VQA accuracy or ANLS
    parsed: str | None  # what was read from the answer; None = unparsable (counted, scored 0, never guessed)
    refused: bool = False


@dataclass(frozen=True)
class Benchmark:
    name: str  # registry key, e.g. "mme"
    title: str  # display name
    load: Callable[[Path | None], list[Sample]]
    judge: Callable[[Sample, str], Judged]
    aggregate: Callable[[list[Sample], list[float]], dict[str, Any]]
    primary: str  # the metric shown first (a key of `aggregate`'s result)
    paper: dict[str, str] = field(default_factory=dict)  # paper column (e.g. "MME-P") -> metric key
    chance: Callable[[Sample], float] = lambda s: 1 / len(s.choices) if s.choices else 0.0
    max_new_tokens: int = 16
    needs_dir: bool = True
    source: str = ""  # where the public data lives and which layout is read, for docs and error messages


def letters(n: int) -> list[str]:
    return [chr(65 + i) for i in range(n)]


def options_block(choices: list[str], style: str = "A. ") -> str:
    """ "A. cat\\nB. dog" (style "A. ") or "(A) cat\\n(B) dog" (style "(A) ")."""
    fmt = "{k}. {c}" if style == "A. " else "({k}) {c}"
    return "\n".join(fmt.format(k=k, c=c) for k, c in zip(letters(len(choices)), choices, strict=True))


def judged_text(text: str | None, parsed: str | None, value: float) -> Judged:
    """A Judged for free-text answers: empty answers and refusals are unparsable."""
    if not text or not text.strip() or is_refusal(text):
        return Judged(0.0, None, refused=is_refusal(text))
    return Judged(value, parsed)


# -- reading the public layouts --

def find_split_files(root: Path, split: str, config: str | None = None, source: str = "") -> list[Path]:
    """Parquet shards of one split in a folder laid out as the dataset's public repository (`huggingface-cli
    download <repo> --repo-type dataset --local-dir DIR`): `[config/]split-00000-of-0000N.parquet`, `data/...`,
    or `split.parquet`. Sorted, so the order of the samples is that of the dataset."""
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder {root} does not exist" + (f" (expected {source})" if source else ""))
    subdirs = [root / config, root / "data" / config] if config else []
    subdirs += [root / "data", root]
    for folder in subdirs:
        files = sorted(folder.glob(f"{split}-*.parquet")) + sorted(folder.glob(f"{split}.parquet"))
        if files:
            return files
    files = sorted(p for p in root.rglob("*.parquet") if p.name.startswith(f"{split}-") or p.name == f"{split}.parquet"
                   if not config or config in p.parts)
    if files:
        return files
    where = f"{config}/" if config else ""
    raise FileNotFoundError(f"{root}: no {where}{split}-*.parquet or {where}{split}.parquet found"
                            + (f"; expected the layout of {source}" if source else ""))


def read_rows(files: list[Path], columns: list[str] | None = None) -> list[tuple[str, dict]]:
    """-> [(where, row)] with `where` = "file row N" for error messages."""
    import pyarrow.parquet as pq

    out = []
    for path in files:
        table = pq.read_table(path, columns=columns)
        out += [(f"{path} row {i}", row) for i, row in enumerate(table.to_pylist())]
    return out


def image_bytes(value: Any, where: str) -> bytes:
    """The bytes of an HF `Image` cell ({"bytes": ..., "path": ...}) or raw bytes."""
    if isinstance(value, dict) and value.get("bytes"):
        return value["bytes"]
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ValueError(f"{where}: no embedded image bytes in the image column")


def require(row: dict, keys: list[str], where: str, name: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{where}: {name} record lacks the columns {missing} (has {sorted(row)})")
