"""Where training numbers go: <output_dir>/metrics.jsonl always (rank 0), tensorboard / wandb when installed (imported
only when used), and a tqdm progress bar with loss, lr, samples/s, tokens/s and the ETA."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trackers(spec: str) -> list[str]:
    if spec == "none":
        return []
    if spec == "auto":
        wanted = ["tensorboard"] + (["wandb"] if os.environ.get("WANDB_PROJECT") else [])
        return [t for t in wanted if importlib.util.find_spec(t) is not None]
    names = [t.strip() for t in spec.split(",") if t.strip()]
    for name in names:
        if name not in ("tensorboard", "wandb"):
            raise ValueError(f"unknown tracker {name!r}; use tensorboard, wandb, auto or none")
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"trackers={spec!r} but {name} is not installed (pip install {name})")
    return names


class MetricsLogger:
    """Rank 0 only (other ranks get a no-op instance). On resume the JSONL is cut back to the resumed step, so the
    file always holds one record per step of the run as it finally happened."""

    def __init__(self, output_dir: str | Path, trackers: str, config: dict, resume_step: int | None, enabled: bool):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self.writers: list = []
        if not enabled:
            return
        if resume_step is None:
            self.path.write_text("")
        else:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        for name in _trackers(trackers):
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.writers.append(("tensorboard", SummaryWriter(str(Path(output_dir) / "tensorboard"))))
            else:
                import wandb

                run = wandb.init(config=config, dir=str(output_dir), resume="allow", id=os.environ.get("WANDB_RUN_ID"))
                self.writers.append(("wandb", run))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        numbers = {k: v for k, v in record.items() if isinstance(v, int | float) and k != "step"}
        for kind, writer in self.writers:
            if kind == "tensorboard":
                for key, value in numbers.items():
                    writer.add_scalar(key, value, record["step"])
            else:
                writer.log(numbers, step=record["step"])

    def close(self) -> None:
        for kind, writer in self.writers:
            writer.close() if kind == "tensorboard" else writer.finish()


class Progress:
    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def update(self, record: dict) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix(
            loss=f"{record['loss']:.4f}",
            lr=f"{record['lr']:.2e}",
            samples_s=f"{record['samples_per_s']:.1f}",
            tokens_s=f"{record['tokens_per_s']:.0f}",
            refresh=False,
        )
        self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
