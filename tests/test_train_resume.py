"""Exact resume: a run SIGKILLed mid-epoch and continued with --resume=auto ends bit-identical to an uninterrupted run
(parameters and loss curve); half-written checkpoint folders are never loaded; only the last N are kept."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cambrian.train.checkpoint import complete_checkpoints, latest_checkpoint
from cambrian.train.config import load_config
from cambrian.train.loop import train
from cambrian.train.metrics import read_metrics
from cambrian.train.toydata import write_toy_dataset

STEPS = 12  # 48 samples / batch 4, one epoch: the kill lands mid-epoch


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), count=48)


def options(toy, out) -> list[str]:
    return [
        "--model=cambrian-tiny",
        "--stage=2",
        f"--data_path={toy}",
        f"--output_dir={out}",
        "--batch_size=4",
        "--lr=5e-3",
        "--save_every=2",
        "--keep_last=2",
        "--save_final=false",
        "--progress=false",
        "--trackers=none",
    ]


def launch(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "cambrian.train", os.devnull, *args]  # an empty config file: all options below
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_mid_epoch_then_resume_auto_is_exact(toy, tmp_path):
    # reference: uninterrupted, in this process (same single thread as the subprocesses)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = train(load_config(None, options(toy, tmp_path / "reference")))
    finally:
        torch.set_num_threads(threads)
    assert reference["steps"] == STEPS

    # interrupted: SIGKILL once step 7 is logged (checkpoints exist at steps 2, 4, 6)
    out = tmp_path / "interrupted"
    process = launch(options(toy, out))
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if any(r["step"] >= 7 for r in read_metrics(out / "metrics.jsonl")):
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    log = process.communicate()[0]
    assert process.returncode == -signal.SIGKILL, f"the run was not killed mid-epoch:\n{log[-3000:]}"
    killed_at = latest_checkpoint(out / "checkpoints")
    assert killed_at is not None and int(killed_at.name[5:]) < STEPS

    # a kill during a write leaves a temp folder; a folder without its manifest is equally incomplete
    root = out / "checkpoints"
    half = root / ".tmp-step-00000099-deadbeef"
    half.mkdir()
    (half / "trainable.safetensors").write_bytes(b"\0" * 10)
    no_manifest = root / "step-00000098"
    no_manifest.mkdir()
    (no_manifest / "trainable.safetensors").write_bytes(b"garbage")

    process = launch([*options(toy, out), "--resume=auto"])
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 0, log[-3000:]
    assert f"resumed from {killed_at}" in log
    assert "removed incomplete checkpoint" in log and not half.exists()

    # identical loss curve (one record per step, the re-run steps replacing the killed run's) and parameters
    resumed_losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl")]
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert resumed_losses == reference["losses"]
    final = f"step-{STEPS:08d}"
    want = load_file(str(tmp_path / "reference" / "checkpoints" / final / "trainable.safetensors"))
    got = load_file(str(out / "checkpoints" / final / "trainable.safetensors"))
    assert want.keys() == got.keys()
    max_diff = max((want[k] - got[k]).abs().max().item() for k in want)
    assert all(torch.equal(want[k], got[k]) for k in want), f"max abs diff {max_diff}"
    assert torch.load(out / "checkpoints" / final / "optimizer.pt")["state"].keys() == want.keys()  # keyed by name

    # keep_last=2: only the two newest complete checkpoints remain (plus the incomplete one we planted)
    assert [p.name for p in complete_checkpoints(root)] == [f"step-{STEPS - 2:08d}", final]
    print(json.dumps({"killed_after_checkpoint": killed_at.name, "max_abs_param_diff": max_diff}))


def test_existing_checkpoints_need_resume_flag(toy, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    reference_like = tmp_path / "run" / "checkpoints" / "step-00000002"
    reference_like.mkdir()
    for name in ("trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "train_config.yaml"):
        (reference_like / name).write_bytes(b"")
    (reference_like / "checkpoint.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume auto"):
        train(load_config(None, options(toy, out)))
