"""A synthetic instruction pool shaped like Cambrian-10M (skewed sources, categories, short and long answers,
duplicates), for curation tests and benchmarks. Written with plain string formatting: millions of lines a minute."""

from __future__ import annotations

import random
from pathlib import Path

CATEGORIES = ["General", "OCR", "Language", "Counting", "Math", "Code", "Science"]
IMAGE_LINE = "<image>\\n"  # as written inside a JSON string
WORDS = "red green blue cube sphere table chart sign street number total value river cat dog".split()


def write_synthetic_pool(
    path: str | Path,
    n: int,
    seed: int = 0,
    sources: int = 40,
    images: int = 5000,
    duplicate_rate: float = 0.01,
    prefix: str = "p",
) -> None:
    """n JSONL records; source k holds a share ~ 1/(k+1)^1.3 (a long tail) and one category."""
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 1.3 for k in range(sources)]
    source_category = [CATEGORIES[k % len(CATEGORIES)] for k in range(sources)]
    previous: list[str] = []
    with open(path, "w", buffering=8 << 20) as out:
        for i in range(n):
            if previous and rng.random() < duplicate_rate:  # same content, new id: an exact duplicate
                out.write(f'{{"id": "{prefix}{i}", {rng.choice(previous)}\n')
                continue
            k = rng.choices(range(sources), weights)[0]
            category = source_category[k]
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            kind = rng.random()
            if kind < 0.3:
                question, answer = f"What is the {words}?", rng.choice(WORDS)
            elif kind < 0.45:
                question, answer = f"How many {words}?", str(rng.randint(0, 999))
            elif kind < 0.55:
                question, answer = f"Which is {words}?\\nA. {WORDS[0]}\\nB. {WORDS[1]}\\nC. {WORDS[2]}", "B"
            else:
                question = f"Describe the {words} in detail."
                answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40))) + "."
            image = "" if category == "Language" else f'"image": "img/{rng.randrange(images)}.jpg", '
            placeholder = IMAGE_LINE if image else ""
            body = (
                f'{image}"conversations": [{{"from": "human", "value": "{placeholder}{question}"}}, '
                f'{{"from": "gpt", "value": "{answer}"}}], "source": "source_{k:02d}", "category": "{category}"}}'
            )
            if len(previous) < 1000:
                previous.append(body)
            elif rng.random() < 0.01:
                previous[rng.randrange(1000)] = body
            out.write(f'{{"id": "{prefix}{i}", {body}\n')
