"""Training config: YAML + overrides, stage presets, validation, the schedule, the CLI wiring (no model needed)."""

import math
import subprocess
import sys

import pytest

from cambrian.train.config import STAGES, TrainConfig, load_config, parse_overrides
from cambrian.train.optim import cosine_with_warmup


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: cambrian-tiny\nlr: 1e-3\nbetas: [0.9, 0.95]\ndata_path: d.jsonl\nunfreeze-vision: yes\n")
    config = load_config(
        path, ["--stage=2", "--batch_size", "4", "--gradient_checkpointing", "--lora_targets=q_proj,v_proj"]
    )
    assert config.lr == 1e-3 and isinstance(config.lr, float)  # PyYAML reads "1e-3" as a string
    assert config.betas == (0.9, 0.95)
    assert config.unfreeze_vision is True and config.gradient_checkpointing is True
    assert config.stage == 2 and config.batch_size == 4
    assert config.lora_targets == ["q_proj", "v_proj"]
    assert load_config(None, {"init_from": "none"}).init_from is None


def test_unknown_and_invalid_options(tmp_path):
    with pytest.raises(KeyError, match="unknown training option .learning_rat.; known keys: model"):
        parse_overrides(["--learning_rat=1"])
    with pytest.raises(KeyError, match="sampler_lr"):
        load_config(None, ["--sampler-lrr=1"])
    with pytest.raises(ValueError, match="batch_size"):
        load_config(None, {"batch_size": "four"})
    with pytest.raises(ValueError, match="data_path"):
        TrainConfig(model="cambrian-tiny").resolved()
    with pytest.raises(ValueError, match="stage 1 keeps frozen"):
        TrainConfig(model="cambrian-tiny", data_path="x", lora_r=8).resolved()
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(model="cambrian-tiny", data_path="x", strategy="deepspeed").resolved()


def test_stage_presets_resolve_learning_rates():
    one = TrainConfig(model="cambrian-tiny", data_path="x", stage=1).resolved()
    assert one.part_lrs() == {"projector": 1e-3, "sampler": 1e-4, "llm": 1e-3, "vision": 1e-3}
    assert one.warmup_ratio == STAGES[1].warmup_ratio == 0.06
    two = TrainConfig(model="cambrian-tiny", data_path="x", stage=2).resolved()
    assert set(two.part_lrs().values()) == {4e-5} and two.warmup_ratio == 0.03
    mixed = TrainConfig(model="cambrian-tiny", data_path="x", stage=2, llm_lr=2e-5, projector_lr=1e-4).resolved()
    assert mixed.part_lrs() == {"projector": 1e-4, "sampler": 4e-5, "llm": 2e-5, "vision": 4e-5}
    # the resolved config round-trips through its YAML (what is saved with the run)
    assert TrainConfig.from_dict(__import__("yaml").safe_load(mixed.to_yaml())) == mixed


def test_cosine_schedule_with_warmup():
    total, warmup = 100, 10
    values = [cosine_with_warmup(s, total, warmup) for s in range(total)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)  # the first step already trains
    assert values[10] == pytest.approx(1.0) and values[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert 0 < values[-1] < 1e-3
    assert cosine_with_warmup(0, 10, 0) == 1.0 and math.isclose(cosine_with_warmup(5, 10, 0), 0.5)


def test_cli_registers_train_without_importing_torch():
    code = (
        "import sys; import cambrian.train.cli; assert 'torch' not in sys.modules, 'torch imported';"
        "from typer.testing import CliRunner; from cambrian.cli import app;"
        "out = CliRunner().invoke(app, ['--help']).output; assert 'train-convert' in out and 'train ' in out, out;"
        "out = CliRunner().invoke(app, ['train', '--help']).output; assert 'YAML or JSON training config' in out, out"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
