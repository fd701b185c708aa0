"""`cambrian cvbench build`: annotations in, an official-layout CV-Bench folder out.

2D tasks (Relation, Count) come from COCO and ADE20K annotations, 3D tasks (Depth, Distance) from Omni3D ones, as in
the paper. A synthetic world (`cambrian cvbench synth`) carries both: its COCO file feeds the 2D tasks and its
Omni3D file the 3D tasks. Besides the official files, `provenance.jsonl` records for each idx the image and
instance ids a question was built from, so anyone can re-derive its answer from the annotations.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from cambrian.cvbench.annotations import AnnotatedImage, read_ade20k, read_coco, read_omni3d
from cambrian.cvbench.layout import CVBenchRecord, format_prompt, write_cvbench
from cambrian.cvbench.questions import TASK_TYPE, BuildConfig, Question, generate

TASKS_2D = ("Relation", "Count")
TASKS_3D = ("Depth", "Distance")


def draw_boxes(path: Path, boxes) -> bytes:
    """The source image with the question's visual prompts drawn on it, as PNG bytes."""
    try:
        image = Image.open(path).convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} named by the annotations does not exist") from None
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 160))
    for (x1, y1, x2, y2), color in boxes:
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=width)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_records(questions: list[Question], first_idx: int = 0) -> list[CVBenchRecord]:
    records = []
    counters: Counter = Counter()
    for offset, q in enumerate(questions):
        kind = TASK_TYPE[q.task]
        counters[(q.task, q.image.source)] += 1
        filename = f"img/{kind}/{q.task.lower()}/{q.image.source.lower()}_{counters[(q.task, q.image.source)]}.png"
        records.append(CVBenchRecord(
            idx=first_idx + offset, type=kind, task=q.task, question=q.question, choices=q.choices,
            answer=f"({q.letter})", prompt=format_prompt(q.question, q.choices), filename=filename,
            source=q.image.source, source_dataset=q.image.source_dataset, source_filename=q.image.source_filename,
            target_class=q.target_class, target_size=q.target_size,
            bbox=[[float(v) for v in box] for box, _ in q.boxes] or None,
            image_bytes=draw_boxes(q.image.path, q.boxes),
        ))
    return records


def build_cvbench(
    out_dir: str | Path,
    coco: str | Path | None = None,
    coco_images: str | Path | None = None,
    ade20k: str | Path | None = None,
    omni3d: str | Path | None = None,
    omni3d_images: str | Path | None = None,
    config: BuildConfig = BuildConfig(),
    source_dataset: str | None = None,
) -> list[CVBenchRecord]:
    """Build CV-Bench questions from any of the three annotation formats and write the official layout."""
    sources: list[tuple[list[AnnotatedImage], tuple[str, ...]]] = []
    if ade20k is not None:
        sources.append((read_ade20k(ade20k, **_named(source_dataset)), TASKS_2D))
    if coco is not None:
        if coco_images is None:
            raise ValueError("--coco needs --coco-images (the folder its file_name entries are relative to)")
        sources.append((read_coco(coco, coco_images, **_named(source_dataset)), TASKS_2D))
    if omni3d is not None:
        if omni3d_images is None:
            raise ValueError("--omni3d needs --omni3d-images (the folder its file_path entries are relative to)")
        sources.append((read_omni3d(omni3d, omni3d_images, source_dataset), TASKS_3D))
    if not sources:
        raise ValueError("nothing to build from: give --coco, --ade20k and/or --omni3d (or --synth N)")

    questions: list[Question] = []
    for images, tasks in sources:
        questions += generate(images, tasks, config)
    records = to_records(questions)
    out = write_cvbench(out_dir, records)
    with open(out / "provenance.jsonl", "w") as f:
        for r, q in zip(records, questions, strict=True):
            f.write(json.dumps({"idx": r.idx, "image_id": q.image.image_id, "image": str(q.image.path),
                                "instance_ids": q.instance_ids, "evidence": q.evidence}) + "\n")
    return records


def _named(source_dataset: str | None) -> dict:
    return {"source_dataset": source_dataset} if source_dataset else {}


def build_from_world(out_dir: str | Path, world_dir: str | Path, config: BuildConfig = BuildConfig()):
    """CV-Bench from a folder written by `render_world` (2D tasks from its COCO file, 3D from its Omni3D file)."""
    world = Path(world_dir)
    return build_cvbench(
        out_dir, coco=world / "annotations" / "coco.json", coco_images=world / "images",
        omni3d=world / "annotations" / "omni3d.json", omni3d_images=world, config=config,
        source_dataset="cambrian-synth",
    )


def summarize(records: list[CVBenchRecord]) -> dict:
    """Counts per task and source, and the answer letters per task (to check the balance)."""
    per = Counter((r.task, r.source) for r in records)
    letters: dict[str, Counter] = {}
    for r in records:
        letters.setdefault(r.task, Counter())[r.answer_letter] += 1
    return {"n": len(records), "per_task_source": {f"{t}/{s}": n for (t, s), n in sorted(per.items())},
            "letters": {t: dict(sorted(c.items())) for t, c in letters.items()}}
