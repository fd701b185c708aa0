"""A tiny generated image-question dataset (solid colours and shapes) for smoke runs, tests and the docs.

    python -m cambrian.train.toydata runs/toy --count 64

writes runs/toy/train.jsonl (LLaVA format) and runs/toy/images/*.png. Every answer is determined by the image, so
a model that trains at all shows a clearly falling loss within a few dozen steps.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")
QUESTIONS = ("What colour is the shape?", "Describe the image in a few words.")


def _draw(colour: tuple[int, int, int], shape: str, size: tuple[int, int]):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    w, h = size
    box = (w // 6, h // 6, w - w // 6, h - h // 6)
    (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=colour)
    return image


def write_toy_dataset(folder: str | Path, count: int = 64, seed: int = 0, text_only: int = 0) -> Path:
    """-> path of the JSONL. Images vary in aspect ratio (so unpadding is exercised); `text_only` extra records
    have no image."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for i in range(count):
        name, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        size = rng.choice([(32, 32), (48, 32), (32, 48)])
        file = f"images/{i:05d}.png"
        _draw(COLOURS[name], shape, size).save(folder / file)
        question = rng.choice(QUESTIONS)
        answer = name if question.startswith("What colour") else f"A {name} {shape}."
        records.append(
            {
                "id": f"toy-{i}",
                "image": file,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{question}"},
                    {"from": "gpt", "value": answer},
                ],
            }
        )
    for i in range(text_only):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        records.append(
            {
                "id": f"toy-text-{i}",
                "conversations": [
                    {"from": "human", "value": f"What is {a} plus {b}?"},
                    {"from": "gpt", "value": str(a + b)},
                ],
            }
        )
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


if __name__ == "__main__":
    import typer

    def main(folder: Path, count: int = 64, seed: int = 0, text_only: int = 0) -> None:
        print(write_toy_dataset(folder, count, seed, text_only))

    typer.run(main)
