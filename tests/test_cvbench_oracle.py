"""The CV-Bench oracle probe (benchmarks/cvbench_oracle.py): each cell's words come from what lies in it, and the
LLM receives those words' embeddings in place of each image's own tokens, image by image."""

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "cvbench_oracle.py"
_spec = importlib.util.spec_from_file_location("cvbench_oracle", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_cell_words_place_objects_and_drawn_boxes_by_their_centres():
    objects = [("traffic cone", [10, 10, 30, 50]), ("sofa", [200, 20, 250, 60]), ("ball", [210, 40, 230, 50])]
    drawn = [[10, 10, 30, 50], [100, 200, 140, 250]]  # red around the cone, blue in the lower middle
    cells = probe.cell_words(objects, drawn, "wooden floor", (256, 256), 4)
    assert cells[0][0] == ("cone", "red", "traffic")
    assert cells[0][3] == ("ball", "sofa")  # two objects in one cell: both
    assert cells[3][1] == ("blue",)  # a drawn box with no object centre in its cell still names its colour
    assert cells[2][2] == ("wooden", "floor")  # nothing there: the ground
    assert sum(c == ("wooden", "floor") for row in cells for c in row) == 13


def test_cell_of_keeps_edge_boxes_on_the_grid():
    assert probe.cell_of([250, 250, 256, 256], (256, 256), 4) == (3, 3)
    assert probe.cell_of([0, 0, 4, 4], (128, 64), 4) == (0, 0)
    assert probe.cell_of([60, 0, 68, 64], (128, 64), 4) == (2, 2)  # (x, y) centre (64, 32) of a 128 x 64 image


def test_position_words_say_each_cells_row_and_column():
    assert probe.position_words(0, 0, 4) == ("top", "far", "left")
    assert probe.position_words(3, 2, 4) == ("bottom", "right")
    assert probe.position_words(1, 7, 8) == ("top", "far", "right")  # an 8 x 8 grid: two rows per row word
    grid = [[("grass",)] * 4 for _ in range(4)]
    grid[0][0], grid[2][3] = ("sofa",), ("red", "cone")
    cells = probe.with_position_words({"image": grid})
    assert cells["image"][0][0] == ("sofa", "top", "far", "left")
    assert cells["image"][2][3] == ("red", "cone", "lower", "far", "right")
    assert cells["image"][1][1] == ("grass", "upper", "left")


def test_oracle_tokens_follow_the_images_in_the_order_given(tiny):
    model, tokenizer = tiny
    model = copy.deepcopy(model)  # the probe patches the model it is given
    side = model.query_side
    red, blue = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    grass = [[("grass",)] * side for _ in range(side)]
    cells = {probe.image_key(red): [[("red",)] + [("grass",)] * (side - 1)] + grass[1:], probe.image_key(blue): grass}
    probe.use_oracle_tokens(model, tokenizer, cells)
    embeddings = model.language_model.get_input_embeddings().weight
    word = {w: embeddings[tokenizer(" " + w, add_special_tokens=False).input_ids[0]] for w in ("red", "grass")}

    encoded = model.encode_images(**model.image_inputs([blue, red]))
    blue_tokens, red_tokens = encoded.tokens  # each: L rows of L cells (+ a newline token per row, if any)
    assert F.cosine_similarity(red_tokens[0], word["red"], dim=0) > 0.999
    assert F.cosine_similarity(red_tokens[1], word["grass"], dim=0) > 0.999
    assert F.cosine_similarity(blue_tokens[0], word["grass"], dim=0) > 0.999
    assert torch.allclose(red_tokens[0].norm(), embeddings.norm(dim=-1).mean(), rtol=1e-4)
    assert encoded.vision is not None and model._in_llm_aggregation(torch.zeros(1, 1, dtype=torch.long),
                                                                     encoded) is None


def test_answer_cells_put_the_right_options_words_in_every_cell(write_tiny_cvbench, tmp_path):
    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((0, 0, 255), "B")])
    cells = probe.answer_cells(bench, 4)
    red, blue = (probe.image_key(Image.new("RGB", (16, 16), c)) for c in ((255, 0, 0), (0, 0, 255)))
    assert cells[red] == [[("traffic", "cone")] * 4] * 4
    assert cells[blue] == [[("sofa",)] * 4] * 4


def test_answer_cells_refuse_one_image_with_two_answers(write_tiny_cvbench, tmp_path):
    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((255, 0, 0), "B")])
    with pytest.raises(ValueError, match="question 1 shares its image"):
        probe.answer_cells(bench, 4)


def test_answer_box_colour_is_the_colour_the_question_gives_the_right_object():
    depth = ("Which object is closer to the camera taking this photo, the traffic cone (highlighted by a red box) or "
             "the sofa (highlighted by a blue box)?")
    assert probe.answer_box_colour(depth, "sofa") == "blue"
    assert probe.answer_box_colour(depth, "traffic cone") == "red"
    assert probe.answer_box_colour("How many sofas are in the image?", "2") is None


def test_scene_text_names_each_object_its_drawn_box_and_its_place_left_to_right():
    objects = [("sofa", [200, 20, 250, 60]), ("traffic cone", [10, 200, 30, 250]), ("ball", [100, 100, 120, 120])]
    drawn = [[200.0, 20.0, 250.0, 60.0], [10.0, 200.0, 30.0, 250.0]]  # red around the sofa, blue around the cone
    assert probe.scene_text(objects, drawn, (256, 256), 4) == (
        "In the image: a traffic cone in the blue box at the bottom far left; a ball at the upper left; "
        "a sofa in the red box at the top far right.")
    assert probe.scene_text([], [], (256, 256), 4) == "In the image: nothing."


def test_bench_copy_with_a_world_prefixes_every_prompt_with_its_scene_and_keeps_the_rest(write_tiny_cvbench,
                                                                                          tmp_path):
    import json

    from cambrian.cvbench import load_cvbench

    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((0, 0, 255), "B")])
    world = tmp_path / "world" / "annotations"
    world.mkdir(parents=True)
    objects = [{"image_id": 0, "category_name": "sofa", "bbox2D_tight": [0, 0, 4, 4], "visibility": 1.0},
               {"image_id": 0, "category_name": "ball", "bbox2D_tight": [12, 12, 16, 16], "visibility": 0.1}]
    (world / "omni3d.json").write_text(json.dumps({"images": [{"id": 0, "file_path": "images/0.jpg"}],
                                                   "annotations": objects}))
    copy_dir = probe.bench_copy(bench, tmp_path / "text", world_dir=world.parent, side=4)
    before, after = load_cvbench(bench), load_cvbench(copy_dir)
    assert after[0].prompt == "In the image: a sofa at the top far left.\n" + before[0].prompt  # the ball: hidden
    assert after[1].prompt == "In the image: nothing.\n" + before[1].prompt
    assert after[1].question == "In the image: nothing.\n" + before[1].question  # `--answers word` asks this
    assert [r.answer for r in after] == [r.answer for r in before]
    assert after[1].image().getpixel((0, 0)) == (0, 0, 255)


def test_bench_copy_keeps_only_the_tasks_asked_for(write_tiny_cvbench, tmp_path):
    from cambrian.cvbench import load_cvbench

    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((0, 0, 255), "B")])  # Depth questions
    assert [r.idx for r in load_cvbench(probe.bench_copy(bench, tmp_path / "depth", ["Depth"]))] == [0, 1]
    with pytest.raises(ValueError, match="no questions of the tasks"):
        probe.bench_copy(bench, tmp_path / "count", ["Count"])


def test_readout_cells_hold_the_truth_on_train_and_the_readouts_answers_on_test(write_tiny_cvbench, tmp_path):
    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((0, 0, 255), "B")])
    red, blue = (probe.image_key(Image.new("RGB", (16, 16), c)) for c in ((255, 0, 0), (0, 0, 255)))
    assert probe.readout_cells(bench, 2)[red] == [[("traffic", "cone")] * 2] * 2
    answered = probe.readout_cells(bench, 2, {red: "sofa", blue: "sofa"})
    assert answered[red] == answered[blue] == [[("sofa",)] * 2] * 2  # the readout's answer, right or wrong
    with pytest.raises(ValueError, match="no entry for question 1 .Depth.; write them with coordinate_readout"):
        probe.readout_cells(bench, 2, {red: "sofa"})
