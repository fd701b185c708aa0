"""The prediction cache: one `{"idx": ..., "text": ...}` line per answer, appended and fsynced as batches finish.

A run killed at any point (SIGKILL included) leaves whole lines plus at most one torn last line; `--resume` drops
the torn line, keeps the rest, and regenerates only batches that are not complete. A sidecar `.meta.json` holds
what the answers depend on (model, vision, template, batch size, token budget, samples), and a resume with
different settings is refused rather than mixing answers from two setups.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class CacheMismatch(ValueError):
    pass


class PredictionCache:
    def __init__(self, path: Path, meta: dict, resume: bool):
        self.path, self.meta_path = path, path.with_suffix(".meta.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.answers: dict[int, str] = {}
        if resume and path.exists():
            if self.meta_path.exists():
                old = json.loads(self.meta_path.read_text())
                changed = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
                if changed:
                    raise CacheMismatch(f"{path}: cannot resume, the run's settings changed: " + ", ".join(
                        f"{k} was {a!r}, now {b!r}" for k, (a, b) in changed.items()) + "; rerun without --resume")
            self._read_and_repair()
        else:
            path.write_text("")
        self.meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    def _read_and_repair(self) -> None:
        good_bytes = 0
        with open(self.path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break  # torn last line of a killed run
                try:
                    row = json.loads(raw)
                    self.answers[int(row["idx"])] = row["text"]
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                    raise ValueError(f"{self.path}:{line_no}: not a cache line ({error}); delete the file") from None
                good_bytes += len(raw)
        with open(self.path, "r+b") as f:
            f.truncate(good_bytes)

    def __contains__(self, idx: int) -> bool:
        return idx in self.answers

    def add(self, rows: list[tuple[int, str]]) -> None:
        """Append one batch's answers in one write, then fsync: the batch is durable before the next starts."""
        text = "".join(json.dumps({"idx": idx, "text": answer}) + "\n" for idx, answer in rows)
        with open(self.path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.answers.update(rows)
