"""DDP and FSDP2 under torchrun (2 processes, gloo on CPU) match a single-process run of the same global batch, step by
step; gradient accumulation matches a bigger batch; an FSDP checkpoint resumes in a single process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cambrian.train.config import load_config
from cambrian.train.loop import train
from cambrian.train.metrics import read_metrics
from cambrian.train.toydata import write_toy_dataset

STEPS = 4
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), count=16)


def options(toy, out, **extra) -> list[str]:
    base = {
        "model": "cambrian-tiny",
        "stage": 2,
        "data_path": toy,
        "output_dir": out,
        "lr": 5e-3,
        "max_steps": STEPS,
        "save_every": 2,
        "save_final": "false",
        "progress": "false",
        "trackers": "none",
    }
    return [f"--{k}={v}" for k, v in (base | extra).items()]


def single(toy, out, **extra) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(load_config(None, options(toy, out, **extra)))
    finally:
        torch.set_num_threads(threads)


def torchrun(toy, out, strategy: str) -> list[float]:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [torchrun, "--standalone", "--nproc-per-node=2", "-m", "cambrian.train", os.devnull]
    result = subprocess.run(
        [*cmd, *options(toy, out, batch_size=2, strategy=strategy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "world size 2" in result.stdout
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory):
    """One process, global batch 4."""
    out = tmp_path_factory.mktemp("single")
    return out, single(toy, out, batch_size=4)["losses"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(toy, tmp_path, reference, strategy):
    out, want = reference
    got = torchrun(toy, tmp_path / strategy, strategy)  # 2 processes x batch 2
    diffs = [abs(a - b) for a, b in zip(want, got, strict=True)]
    print(f"{strategy}: per-step |loss diff| {[f'{d:.1e}' for d in diffs]}")
    assert len(got) == STEPS and max(diffs) < TOLERANCE
    assert want[-1] < want[0] - 0.5  # it trains
    # the checkpoints hold the same (unsharded) weights
    final = f"checkpoints/step-{STEPS:08d}/trainable.safetensors"
    a, b = load_file(str(out / final)), load_file(str(tmp_path / strategy / final))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3
    if strategy == "fsdp":  # an FSDP checkpoint continues in one process (same format for every strategy)
        resumed = single(toy, tmp_path / strategy, batch_size=4, epochs=2, max_steps=STEPS + 2, resume="auto")
        assert resumed["steps"] == STEPS + 2


def test_grad_accumulation_matches_bigger_batch(toy, tmp_path, reference):
    _, want = reference
    got = single(toy, tmp_path / "accum", batch_size=2, grad_accum=2)["losses"]
    assert max(abs(a - b) for a, b in zip(want, got, strict=True)) < TOLERANCE
