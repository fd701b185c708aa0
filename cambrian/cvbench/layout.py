"""The official CV-Bench layout (HF `nyu-visionx/CV-Bench`): write it and read it back.

    DIR/test.parquet     all fields, images embedded (HF `Image` feature: struct<bytes, path>)
    DIR/test.jsonl       the same records without the image bytes; `filename` points into img/
    DIR/img/{2D,3D}/<task>/<source>_<n>.png

Features: idx int32 · type · task · image · question · choices list<string> · answer "(A)" · prompt · filename ·
source ("ADE20K" | "COCO" | "Omni3D") · source_dataset · source_filename · target_class · target_size int32 ·
bbox list<list<float32>>.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PIL import Image

PROMPT_SUFFIX = "\nAnswer with the option's letter from the given choices directly."  # Cambrian's eval suffix
SOURCES_2D = ("ADE20K", "COCO")
SOURCES_3D = ("Omni3D",)


@dataclass
class CVBenchRecord:
    idx: int
    type: str
    task: str
    question: str
    choices: list[str]
    answer: str  # "(A)"
    prompt: str
    filename: str
    source: str
    source_dataset: str
    source_filename: str
    target_class: str | None = None
    target_size: int | None = None
    bbox: list[list[float]] | None = None
    image_bytes: bytes | None = None  # PNG/JPEG bytes when read from parquet
    root: Path | None = None  # folder the record was read from, for `filename`

    @property
    def answer_letter(self) -> str:
        return self.answer.strip().strip("()")

    @property
    def answer_text(self) -> str:
        """The right option's text ("sofa", "left", "2")."""
        return str(self.choices[ord(self.answer_letter) - ord("A")])

    @property
    def model_prompt(self) -> str:
        """What the model sees: the record's prompt plus Cambrian's letter instruction."""
        return self.prompt + PROMPT_SUFFIX

    def image(self) -> Image.Image:
        if self.image_bytes is not None:
            return Image.open(io.BytesIO(self.image_bytes)).convert("RGB")
        if self.root is None:
            raise FileNotFoundError(f"CV-Bench idx={self.idx}: no embedded image and no folder to find {self.filename}")
        return Image.open(self.root / self.filename).convert("RGB")


_SCHEMA_FIELDS = [f.name for f in fields(CVBenchRecord) if f.name not in ("image_bytes", "root")]


def format_prompt(question: str, choices: list[str]) -> str:
    options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return f"{question} Select from the following choices.\n{options}"


def hf_features():
    """The official CV-Bench `datasets.Features` (imported lazily: `datasets` is slow to import)."""
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    return Features({
        "idx": Value("int32"), "type": Value("string"), "task": Value("string"), "image": HFImage(),
        "question": Value("string"), "choices": List(Value("string")), "answer": Value("string"),
        "prompt": Value("string"), "filename": Value("string"), "source": Value("string"),
        "source_dataset": Value("string"), "source_filename": Value("string"), "target_class": Value("string"),
        "target_size": Value("int32"), "bbox": List(List(Value("float32"))),
    })


def write_cvbench(out_dir: str | Path, records: list[CVBenchRecord]) -> Path:
    """Write test.parquet (via `datasets`, so the HF feature metadata is embedded), test.jsonl and img/."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list] = {name: [] for name in hf_features()}
    with open(out / "test.jsonl", "w") as jsonl:
        for r in records:
            if r.image_bytes is None:
                raise ValueError(f"record idx={r.idx} has no image bytes to write")
            path = out / r.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(r.image_bytes)
            row = {k: v for k, v in asdict(r).items() if k in _SCHEMA_FIELDS}
            jsonl.write(json.dumps(row) + "\n")
            for name in columns:
                columns[name].append({"bytes": r.image_bytes, "path": r.filename} if name == "image" else row[name])
    Dataset.from_dict(columns, features=hf_features()).to_parquet(str(out / "test.parquet"))
    return out


def _record(row: dict, root: Path, where: str) -> CVBenchRecord:
    missing = [k for k in ("idx", "task", "choices", "answer", "prompt", "source") if row.get(k) is None]
    if missing:
        raise ValueError(f"{where}: CV-Bench record lacks {missing}")
    image = row.get("image")
    return CVBenchRecord(
        **{k: row.get(k) for k in _SCHEMA_FIELDS},
        image_bytes=image.get("bytes") if isinstance(image, dict) else None, root=root,
    )


def load_cvbench(bench_dir: str | Path, with_images: bool = True) -> list[CVBenchRecord]:
    """Read an official-layout CV-Bench folder: test.parquet if present, else test.jsonl + img/.

    Also accepts the split files `test_2d.*` + `test_3d.*` of newer revisions. `with_images=False` skips the
    image column of the parquet (scoring needs none).
    """
    root = Path(bench_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"CV-Bench folder {root} does not exist")
    for names in (["test.parquet"], ["test_2d.parquet", "test_3d.parquet"]):
        if all((root / n).exists() for n in names):
            import pyarrow.parquet as pq

            records = []
            for n in names:
                table = pq.read_table(root / n)
                if not with_images and "image" in table.column_names:
                    table = table.drop(["image"])
                records += [_record(row, root, f"{root / n} row {i}") for i, row in enumerate(table.to_pylist())]
            return records
    for names in (["test.jsonl"], ["test_2d.jsonl", "test_3d.jsonl"]):
        if all((root / n).exists() for n in names):
            records = []
            for n in names:
                with open(root / n) as f:
                    for line_no, line in enumerate(f, 1):
                        if line.strip():
                            try:
                                row = json.loads(line)
                            except json.JSONDecodeError as error:
                                raise ValueError(f"{root / n}:{line_no}: invalid JSON ({error.msg})") from None
                            records.append(_record(row, root, f"{root / n}:{line_no}"))
            return records
    raise FileNotFoundError(f"{root}: no test.parquet or test.jsonl (official CV-Bench layout) found")
