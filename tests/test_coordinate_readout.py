"""The coordinate readout: attention maps over one tower's cells pool where the cells lie, an MLP scores words, and
the model puts each group's probability-weighted word embeddings after each image's grid as more visual tokens."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cambrian.models.connectors.coordinate_readout import CoordinateReadout, cell_coordinates
from cambrian.models.modeling import CambrianForCausalLM
from cambrian.models.presets import cambrian_tiny

WORDS = ["traffic cone", "sofa", "left"]


def tiny_with_readout(words=WORDS, tokens: int = 1, groups=None):
    from cambrian.constants import add_image_token
    from cambrian.models.builder import _tokenizer_for

    torch.manual_seed(0)
    config = cambrian_tiny()
    config.connector = {**config.connector, "readout_words": list(words), "readout_tokens": tokens,
                        "readout_groups": list(groups or [])}
    tokenizer = _tokenizer_for(config)
    add_image_token(tokenizer)
    return CambrianForCausalLM(config).eval(), tokenizer


def test_cell_coordinates_follow_the_grids_row_by_row_flattening():
    coordinates = cell_coordinates(4)
    assert coordinates.shape == (16, 2)
    assert coordinates[0].tolist() == [-1.0, -1.0]  # top left
    assert coordinates[3].tolist() == [1.0, -1.0]  # top right: x runs along a row
    assert coordinates[12].tolist() == [-1.0, 1.0]  # bottom left: y runs down the rows


def test_the_readout_learns_which_of_two_marked_cells_is_lower_on_grids_it_never_saw():
    torch.manual_seed(0)
    grid, channels = 6, 4

    def grids(n):  # channel 0 marks a "red" cell, channel 1 a "blue" one, channels 2-3 are noise
        cells = torch.randn(n, grid * grid, channels) * 0.1
        red, blue = torch.randint(0, grid * grid, (n,)), torch.randint(0, grid * grid, (n,))
        keep = red // grid != blue // grid  # the two marks in different rows
        rows = torch.arange(n)
        cells[rows, red, 0] += 4.0
        cells[rows, blue, 1] += 4.0
        return cells[keep], (red // grid < blue // grid).long()[keep]  # 1 when blue is lower

    train, train_label = grids(2000)
    test, test_label = grids(300)
    readout = CoordinateReadout(channels, grid, words=2, llm_width=8, heads=2, values=0)
    optimizer = torch.optim.AdamW(readout.parameters(), lr=1e-2)
    for _ in range(300):
        batch = torch.randint(0, len(train), (64,))
        loss = F.cross_entropy(readout.word_logits(train[batch]), train_label[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (readout.word_logits(test).argmax(-1) == test_label).float().mean().item()
    assert accuracy > 0.95


def test_the_token_is_the_probability_weighted_word_embedding_and_the_grid_side_is_checked():
    readout = CoordinateReadout(channels=3, grid=2, words=2, llm_width=4, heads=1, values=1)
    readout.word_tokens.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    with torch.no_grad():
        readout.mlp[-1].weight.zero_()
        readout.mlp[-1].bias.copy_(torch.tensor([0.0, 50.0]))  # the second word, whatever the image
    assert torch.allclose(readout(torch.randn(5, 2, 2, 3)), torch.tensor([0.0, 1.0, 0, 0]).expand(5, 1, 4))
    with torch.no_grad():
        readout.mlp[-1].bias.zero_()  # both words alike: their mean
    assert torch.allclose(readout(torch.randn(1, 2, 2, 3)), torch.tensor([[[0.5, 0.5, 0, 0]]]))
    with pytest.raises(ValueError, match="reads a 2 x 2 grid, got .3, 3.: its tower's grid_size changed"):
        readout(torch.randn(1, 3, 3, 3))


def test_each_group_gives_a_soft_word_over_its_own_words_only():
    readout = CoordinateReadout(channels=3, grid=2, words=5, llm_width=5, heads=1, values=0, groups=[3, 2])
    readout.word_tokens.copy_(torch.eye(5))
    with torch.no_grad():
        readout.mlp[-1].weight.zero_()
        readout.mlp[-1].bias.copy_(torch.tensor([0.0, 50.0, 0.0, 0.0, 0.0]))  # word 1 wins its group, not the other
    tokens = readout(torch.randn(2, 2, 2, 3))
    assert tokens.shape == (2, 2, 5)
    assert torch.allclose(tokens[:, 0], torch.tensor([0.0, 1.0, 0, 0, 0]).expand(2, 5), atol=1e-6)
    assert torch.allclose(tokens[:, 1], torch.tensor([0.0, 0, 0, 0.5, 0.5]).expand(2, 5))  # a sure word elsewhere
    assert readout.group_of(1) == slice(0, 3) and readout.group_of(4) == slice(3, 5)
    with pytest.raises(ValueError, match=r"groups \[3, 3\] must split the 5 words"):
        CoordinateReadout(channels=3, grid=2, words=5, llm_width=5, groups=[3, 3])


def test_a_temperature_below_one_moves_the_soft_word_toward_its_likeliest_word():
    def readout_at(temperature):
        readout = CoordinateReadout(channels=3, grid=2, words=2, llm_width=2, heads=1, values=0,
                                    temperature=temperature)
        readout.word_tokens.copy_(torch.eye(2))
        with torch.no_grad():
            readout.mlp[-1].weight.zero_()
            readout.mlp[-1].bias.copy_(torch.tensor([0.0, 1.0]))
        return readout(torch.randn(1, 2, 2, 3))[0, 0]

    assert torch.allclose(readout_at(1.0), torch.tensor([1.0, 1.0 * torch.e]) / (1 + torch.e))
    assert torch.allclose(readout_at(0.25), torch.tensor([1.0, torch.e ** 4]) / (1 + torch.e ** 4))
    with pytest.raises(ValueError, match="temperature must be positive"):
        readout_at(0.0)


def test_a_forced_word_replaces_its_groups_soft_word_and_minus_one_keeps_the_readouts_own():
    readout = CoordinateReadout(channels=3, grid=2, words=5, llm_width=5, heads=1, values=0, groups=[3, 2])
    readout.word_tokens.copy_(torch.eye(5))
    with torch.no_grad():
        readout.mlp[-1].weight.zero_()
        readout.mlp[-1].bias.copy_(torch.tensor([0.0, 50.0, 0.0, 0.0, 0.0]))
    grid = torch.randn(2, 2, 2, 3)
    own = readout(grid)
    readout.forced = torch.tensor([[2, -1], [-1, 4]])  # image 0: word 2 in group 0; image 1: word 4 in group 1
    forced = readout(grid)
    readout.forced = None
    assert torch.equal(forced[0, 0], torch.eye(5)[2]) and torch.equal(forced[1, 1], torch.eye(5)[4])
    assert torch.equal(forced[0, 1], own[0, 1]) and torch.equal(forced[1, 0], own[1, 0])
    assert torch.equal(readout(grid), own)


def test_forced_words_give_each_conversations_right_answers_where_its_questions_agree():
    from cambrian.quickstart_lib.data import Example
    from cambrian.quickstart_lib.readout import forced_words

    words = ["sofa", "chair", "left", "right", "1", "2"]
    readout = CoordinateReadout(channels=3, grid=2, words=6, llm_width=4, groups=[2, 2, 2])

    def example(*answers, image=b"png"):
        return Example("e", "cvbench", [], image, option_answers=answers)

    rows = forced_words(readout, words, [example("chair"), example("left", "1"), example("1", "2"),
                                         example("sofa", image=None), example("blue")])
    # the text-only example has no row (no image); two counts that disagree and an unknown answer force nothing
    assert rows.tolist() == [[1, -1, -1], [-1, 2, 4], [-1, -1, -1], [-1, -1, -1]]
    assert forced_words(readout, words, [example("2", "1"), Example("v", "vqa", [], b"png")]) is None


def test_stage_two_forces_the_readout_tokens_of_its_batches_and_only_while_it_trains(tmp_path):
    from cambrian.constants import IMAGE_TOKEN
    from cambrian.quickstart_lib.data import Example
    from cambrian.quickstart_lib.model import SHORT_CHAT_TEMPLATE
    from cambrian.quickstart_lib.train import StageConfig, train_stage

    model, tokenizer = tiny_with_readout(groups=[2, 1])  # ["traffic cone", "sofa"], ["left"]
    tokenizer.chat_template = SHORT_CHAT_TEMPLATE
    image = tmp_path / "scene.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(image)

    def question(name: str, right: str) -> Example:
        turns = [{"role": "user", "content": f"{IMAGE_TOKEN}\nWhich one?"}, {"role": "assistant", "content": "A"}]
        return Example(name, "cvbench", turns, image, option_answers=(right,))

    seen = []
    model.readout.register_forward_hook(
        lambda module, args, out: seen.append(None if module.forced is None else sorted(module.forced.tolist())))
    examples = {"cvbench": [question("q0", "sofa"), question("q1", "left")]}
    train_stage(model, tokenizer, examples, StageConfig("s", 0, {"cvbench": 1}, 1e-3, 1e-3, batch_size=2,
                                                        max_steps=1, force_readout=True))
    assert seen == [[[-1, 2], [1, -1]]]  # "sofa" in the classes' group, "left" in the other
    assert model.readout.forced is None  # nothing forced after the step
    train_stage(model, tokenizer, examples, StageConfig("s", 0, {"cvbench": 1}, 1e-3, 1e-3, batch_size=2,
                                                        max_steps=1))
    assert seen[-1] is None


def test_each_image_gets_its_soft_words_r_times_after_its_grid_and_the_model_still_runs():
    model, tokenizer = tiny_with_readout(tokens=2, groups=[2, 1])
    L = model.query_side
    assert model.num_image_tokens((64, 64)) == L * (L + 1) + 4
    assert model.num_image_tokens((64, 32)) == (L // 2) * (L + 1) + 4  # unpadded rows, and 2 groups x 2 tokens
    images = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (64, 32), (0, 0, 255))]
    encoded = model.encode_images(**model.image_inputs(images))
    assert encoded.tokens_per_image == [model.num_image_tokens(im.size) for im in images]
    with torch.no_grad():
        words = model.readout(model.towers[0](model.image_inputs(images)["pixel_values"][model.towers[0].name]))
    for tokens, word in zip(encoded.tokens, words, strict=True):  # word: (groups, d)
        assert torch.equal(tokens[-4:], word.repeat_interleave(2, dim=0))
    ids = tokenizer("<image> what is closer? <image>", add_special_tokens=False, return_tensors="pt").input_ids
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **model.image_inputs(images)}
    with torch.no_grad():  # the in-LLM blocks read the grid's cells, not the readout's token
        logits = model(**inputs).logits
    assert logits.shape[1] == ids.shape[1] - 2 + sum(encoded.tokens_per_image)
    assert torch.isfinite(logits).all()


def test_the_fitted_readout_is_saved_and_loaded_with_the_model(tmp_path):
    from cambrian.models.builder import load_model, save_model

    model, tokenizer = tiny_with_readout()
    model.readout.feature_mean.fill_(0.25)
    model.readout.word_tokens.normal_()
    save_model(model, tokenizer, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded.config.connector_config.readout_words == WORDS
    for name in ("feature_mean", "feature_std", "word_tokens", "score.weight", "mlp.2.bias"):
        assert torch.equal(loaded.readout.get_buffer(name) if "." not in name else loaded.readout.get_parameter(name),
                           model.readout.get_buffer(name) if "." not in name else model.readout.get_parameter(name))
    grid = torch.randn(2, model.readout.grid, model.readout.grid, model.towers[0].hidden_size)
    with torch.no_grad():  # the same tokens: a non-persistent buffer came back uninitialised (NaN) from from_pretrained
        assert torch.isfinite(loaded.readout(grid)).all() and torch.allclose(loaded.readout(grid), model.readout(grid))


def test_fit_readout_learns_the_answers_and_sets_the_llms_word_embeddings(write_tiny_cvbench, tmp_path):
    from cambrian.quickstart_lib.readout import fit_readout, readout_questions, word_tokens

    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A"), ((0, 0, 255), "B")] * 4)
    questions = readout_questions(bench)  # red: the traffic cone (A), blue: the sofa (B)
    assert [q.answer for q in questions[:2]] == ["traffic cone", "sofa"]
    model, tokenizer = tiny_with_readout(groups=[2, 1])  # the classes, and "left" alone
    log = fit_readout(model, tokenizer, questions, steps=60, bf16=False, noise=0.0)
    assert log["questions"] == 8 and log["train_accuracy"] == 100.0
    assert torch.equal(model.readout.word_tokens, word_tokens(model, tokenizer, WORDS))
    with torch.no_grad():  # the classes' token is the right class's word: fitted with the group's softmax
        pixels = model.image_inputs([Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))])
        classes = model.readout(model.towers[0](pixels["pixel_values"][model.towers[0].name]))[:, 0]
    assert F.cosine_similarity(classes, model.readout.word_tokens[:2], dim=-1).min() > 0.9
    embeddings = model.language_model.get_input_embeddings().weight
    sofa = embeddings[tokenizer(" sofa", add_special_tokens=False).input_ids[0]]
    assert F.cosine_similarity(model.readout.word_tokens[1], sofa, dim=0) > 0.999
    assert not any(p.requires_grad for p in model.parameters())  # frozen again: stage 2 does not train it


def test_fit_readout_refuses_options_it_has_no_word_for(write_tiny_cvbench, tmp_path):
    from cambrian.quickstart_lib.readout import fit_readout, readout_questions

    bench = write_tiny_cvbench(tmp_path / "bench", [((255, 0, 0), "A")])
    model, tokenizer = tiny_with_readout(["sofa", "left"])
    with pytest.raises(ValueError, match=r"lack the options \['traffic cone'\]"):
        fit_readout(model, tokenizer, readout_questions(bench), steps=1, bf16=False)


def test_the_benchmarks_option_masks_leave_each_questions_options_and_index_its_answer():
    bench_dir = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench_dir))  # the probe imports its sibling benchmarks
    spec = importlib.util.spec_from_file_location("coordinate_readout", bench_dir / "coordinate_readout.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    items = [("a.png", ["red", "blue"], "blue", "Depth"), ("b.png", ["left", "right"], "left", "Relation")]
    mask, right = probe.option_masks(items, ["blue", "left", "red", "right"])
    assert right.tolist() == [0, 1]
    assert torch.isinf(mask).tolist() == [[False, True, False, True], [True, False, True, False]]
