"""The 3D answer-alignment probe (benchmarks/cvbench_answer_alignment.py): it reads each Depth / Distance question's
right option (its class word, or the colour of the box drawn around it), and its relate layers let every cell's token
depend on the other cells' windows."""

import copy
import importlib.util
import json
from pathlib import Path

import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "cvbench_answer_alignment.py"
_spec = importlib.util.spec_from_file_location("cvbench_answer_alignment", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_answer_items_keep_the_3d_questions_with_their_right_option(tmp_path):
    rows = [{"task": "Depth", "choices": ["sofa", "traffic cone"], "answer": "(B)", "filename": "img/3D/d_1.png"},
            {"task": "Count", "choices": ["0", "1", "2", "3"], "answer": "(C)", "filename": "img/2D/c_1.png"},
            {"task": "Distance", "choices": ["ball", "crate"], "answer": "(A)", "filename": "img/3D/e_1.png"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = probe.answer_items(tmp_path)
    assert [(Path(p).name, right, task) for p, _, right, task in items] == [
        ("d_1.png", "traffic cone", "Depth"), ("e_1.png", "ball", "Distance")]
    assert [task for *_, task in probe.answer_items(tmp_path, tasks=("Count", "Depth"))] == ["Depth", "Count"]


def test_the_colour_target_names_the_box_drawn_around_the_right_option(tmp_path):
    from cambrian.cvbench.questions import DEPTH, DISTANCE

    rows = [{"task": "Depth", "question": DEPTH.format(a="traffic cone", b="sofa"),
             "choices": ["sofa", "traffic cone"], "answer": "(B)", "filename": "img/3D/d_1.png"},
            {"task": "Distance", "question": DISTANCE.format(anchor="tent", a="crate", b="beach ball"),
             "choices": ["beach ball", "crate"], "answer": "(A)", "filename": "img/3D/e_1.png"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = probe.answer_items(tmp_path, target="colour")
    assert [(choices, right) for _, choices, right, _ in items] == [(["blue", "red"], "red"),
                                                                    (["green", "blue"], "green")]


def _tokens_after_changing_cell_zero(connector, vision):
    before = connector(vision)
    changed = copy.copy(vision)
    changed.windows = [w.clone() for w in vision.windows]
    for w in changed.windows:
        w[:, 0] += 1.0
    return before, connector(changed)


@torch.no_grad()
def test_relate_layers_let_a_cell_see_the_others(tiny):
    model, _ = tiny
    connector = copy.deepcopy(model.connector).eval()
    torch.manual_seed(0)
    grids = [torch.randn(2, tower.grid_size, tower.grid_size, tower.hidden_size) for tower in model.towers]
    vision = connector.prepare(grids, [(64, 64), (64, 64)])

    before, after = _tokens_after_changing_cell_zero(connector, vision)
    assert torch.equal(before.flatten(1, 2)[:, 1:], after.flatten(1, 2)[:, 1:])  # the SVA: each cell its own window
    probe.add_relate_layers(connector, 2)
    connector.eval()
    before, after = _tokens_after_changing_cell_zero(connector, vision)
    assert before.shape == (2, model.query_side, model.query_side, model.config.text_config.hidden_size)
    assert not torch.allclose(before.flatten(1, 2)[:, 1:], after.flatten(1, 2)[:, 1:])


def test_a_new_train_world_is_rendered_and_built_once(tmp_path):
    bench = probe.new_train_bench(tmp_path, 8, seed=11)
    items = probe.answer_items(bench)
    assert all(Path(path).is_file() and right in choices for path, choices, right, _ in items)
    world = tmp_path / "world-seed11-n8" / "annotations" / "omni3d.json"
    stamp = world.stat().st_mtime_ns
    assert probe.new_train_bench(tmp_path, 8, seed=11) == bench
    assert world.stat().st_mtime_ns == stamp  # kept, not rendered again


def test_a_variant_puts_the_256_px_tower_on_other_stages_and_grid_and_another_query_side():
    from PIL import Image

    model, _ = probe.build_variant("2,3@32", query_side=8)
    fine, coarse = model.towers
    assert (fine.config.stages, fine.grid_size, fine.hidden_size) == ([2, 3], 32, 40 + 112)  # stride 8 and 16
    assert (coarse.config.stages, coarse.grid_size) == ([3, 4], 8)  # the 128 px view as cambrian-nano has it
    with torch.no_grad():
        encoded = model.encode_images(**model.image_inputs([Image.new("RGB", (256, 256), (200, 30, 30))]))
    assert model.query_side == 8 and encoded.tokens[0].shape[0] == 8 * 8 + 8  # L x L tokens + L newlines
