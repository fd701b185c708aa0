"""What trains in each stage: after one optimizer step, exactly the parameters of the stage's parts have changed."""

import pytest
import torch

from cambrian.train.config import TrainConfig
from cambrian.train.freeze import format_table, freeze_table, part_of
from cambrian.train.loop import Trainer
from cambrian.train.toydata import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), count=8)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster, and results do not depend on the machine's cores
    yield
    torch.set_num_threads(threads)


def step_once(toy, tmp_path, **overrides):
    """-> (trainer, names of parameters that changed in one optimizer step)."""
    config = TrainConfig(
        model="cambrian-tiny",
        data_path=str(toy),
        output_dir=str(tmp_path / "run"),
        batch_size=4,
        max_steps=1,
        warmup_ratio=0.0,
        save_every=1000,
        save_final=False,
        progress=False,
        trackers="none",
        **overrides,
    ).resolved()
    trainer = Trainer(config)
    trainer.setup()
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    return trainer, changed


def prefixes(names):
    """Top-level parts that changed; the tower entries are keyed by tower name."""
    out = set()
    for name in names:
        if name.startswith("towers."):
            out.add(f"towers.{name.split('.')[1]}")
        elif name.startswith("connector."):
            out.add(".".join(name.split(".")[:2]))
        else:
            out.add(name.split(".")[0])
    return out


CONNECTOR = {
    "connector.tower_projectors",
    "connector.samplers",
    "connector.queries",
    "connector.projector",
    "connector.llm_layers",  # the in-LLM SVA blocks
    "image_newline",
}
SCRATCH_TOWER = "towers.1"  # tiny-vit: its TowerConfig says trainable (a from-scratch tower)
PRETRAINED_TOWER = "towers.0"  # tiny-clip


def test_stage1_trains_only_the_connector(toy, tmp_path):
    trainer, changed = step_once(toy, tmp_path, stage=1, train_scratch_towers=False)
    assert prefixes(changed) == CONNECTOR
    # every connector parameter moved, including each in-LLM SVA block
    connector = {n for n, _ in trainer.model.named_parameters() if prefixes([n]) <= CONNECTOR}
    assert connector == changed
    lrs = {g["part"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {"projector": 1e-3, "sampler": 1e-4}
    table = format_table(freeze_table(trainer.model, trainer.config), trainer.config)
    assert "language_model" in table and "frozen" in table and "connector.llm_layers" in table


def test_stage1_default_also_trains_a_from_scratch_tower(toy, tmp_path):
    _, changed = step_once(toy, tmp_path, stage=1)
    assert prefixes(changed) == CONNECTOR | {SCRATCH_TOWER}


def test_stage2_trains_connector_and_llm_towers_frozen(toy, tmp_path):
    trainer, changed = step_once(toy, tmp_path, stage=2, train_scratch_towers=False)
    assert prefixes(changed) == CONNECTOR | {"language_model"}
    llm = {n for n, p in trainer.model.named_parameters() if n.startswith("language_model.")}
    assert llm <= changed  # every LLM parameter, embeddings included
    assert not trainer.model.towers[0].training and not trainer.model.towers[1].training  # frozen towers in eval


def test_stage2_unfreeze_vision_trains_every_tower(toy, tmp_path):
    trainer, changed = step_once(toy, tmp_path, stage=2, unfreeze_vision=True, vision_lr=2e-5)
    assert prefixes(changed) == CONNECTOR | {"language_model", PRETRAINED_TOWER, SCRATCH_TOWER}
    assert {g["part"]: g["initial_lr"] for g in trainer.optimizer.param_groups}["vision"] == 2e-5


def test_stage2_lora_trains_only_adapters_in_the_llm(toy, tmp_path):
    trainer, changed = step_once(toy, tmp_path, stage=2, lora_r=4, train_scratch_towers=False)
    llm_changed = {n for n in changed if n.startswith("language_model.")}
    assert llm_changed and all("lora_B" in n for n in llm_changed)  # lora_A gets no grad while lora_B is still 0
    assert prefixes(changed - llm_changed) == CONNECTOR
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad and n.startswith("language_")]
    assert trainable and all("lora_" in n for n in trainable)


def test_part_of():
    assert part_of("connector.samplers.0.0.proj_in.weight") == "sampler"
    assert part_of("connector.llm_layers.1.pos_embed.1") == "sampler"
    assert part_of("connector.queries") == "sampler"
    assert part_of("connector.tower_projectors.0.0.weight") == "projector"
    assert part_of("image_newline") == "projector"
    assert part_of("towers.1.model.blocks.0.attn.qkv.weight") == "vision"
    assert part_of("language_model.model.layers.0.mlp.up_proj.weight") == "llm"
    with pytest.raises(ValueError, match="no known part"):
        part_of("mystery.weight")
