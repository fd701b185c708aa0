"""`cambrian quickstart`: the budgeted trainer's loss equals the model's own, its data and template, and (slow, run
by CI) the whole `--smoke` path end to end with real weights."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from cambrian.quickstart_lib import data as qdata
from cambrian.quickstart_lib.model import SHORT_CHAT_TEMPLATE, quickstart_config
from cambrian.quickstart_lib.train import StageConfig, batch_loss, collate, lr_factor, set_trainable, train_stage


def _examples(n=6, image_every=2):
    from PIL import Image

    examples = []
    for k in range(n):
        image = None
        if k % image_every == 0:
            path = f"/tmp/qs-test-{k}.png"
            Image.new("RGB", (40 + 8 * k, 32), (30 * k, 100, 200)).save(path)
            image = path
        question = f"what shape is it, number {k}?" + (" tell me more" * k)
        examples.append(qdata._qa(f"ex-{k}", "vqa", question, "circle" if k % 2 else "a red square", image))
    return examples


@pytest.fixture()
def tiny_short(tiny):
    model, tokenizer = tiny
    original = tokenizer.chat_template
    tokenizer.chat_template = SHORT_CHAT_TEMPLATE
    yield model, tokenizer
    tokenizer.chat_template = original


def test_tail_only_loss_equals_full_loss(tiny_short):
    """Left padding + logits for the last K columns gives exactly the model's loss over the full sequence."""
    model, tokenizer = tiny_short
    for chunk in (_examples()[::2], _examples()[1::2], _examples()):
        batch = collate(model, tokenizer, chunk, {})
        with torch.no_grad():
            fast = batch_loss(model, batch)
            full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         pixel_values=batch.get("pixel_values"), image_sizes=batch.get("image_sizes"),
                         labels=batch["labels"]).loss
        assert batch["keep"] < batch["input_ids"].shape[1]
        torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_stage_one_trains_the_connector_only_and_stage_two_the_llm(tiny_short):
    model, tokenizer = tiny_short
    groups = set_trainable(model, StageConfig("s1", 0, {"vqa": 1}, 1e-3))
    assert len(groups) == 1 and not any(p.requires_grad for p in model.language_model.parameters())
    assert not any(p.requires_grad for t in model.towers for p in t.parameters())
    groups = set_trainable(model, StageConfig("s2", 0, {"vqa": 1}, 1e-3, llm_lr=1e-4))
    assert len(groups) == 2 and all(p.requires_grad for p in model.language_model.parameters())
    model.requires_grad_(False)


def test_stage_two_can_leave_the_word_embedding_frozen(tiny_short):
    model, tokenizer = tiny_short
    llm = model.language_model
    embedding = llm.get_input_embeddings().weight
    others = {n: p.detach().clone() for n, p in llm.named_parameters() if p is not embedding}
    before = embedding.detach().clone()
    stage = StageConfig("s2", 0, {"vqa": 1}, 1e-3, llm_lr=1e-2, batch_size=3, max_steps=2, train_embedding=False)
    train_stage(model, tokenizer, {"vqa": _examples()}, stage)
    assert torch.equal(embedding, before)
    assert any(not torch.equal(p, others[n]) for n, p in llm.named_parameters() if n in others)
    groups = set_trainable(model, stage)
    assert all(p is not embedding for g in groups for p in g["params"])
    model.requires_grad_(False)


def test_stage_two_can_train_only_the_top_layers_and_the_blocks_among_them(tiny_short):
    """The layers below the top N, the connector's samplers and the in-LLM block after layer 0 keep their weights and
    get no gradient at all (the backward pass stops at the first trained layer); the top layers and the block after
    layer 2 (tiny: 4 layers, blocks after 0 and 2) train."""
    from cambrian.models.llm import decoder_layers

    model, tokenizer = tiny_short
    layers = decoder_layers(model.language_model)
    assert model.in_llm_layers == [0, 2]
    stage = StageConfig("s2", 0, {"vqa": 1}, 1e-2, llm_lr=1e-2, batch_size=3, max_steps=2, train_embedding=False,
                        top_layers=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_stage(model, tokenizer, {"vqa": _examples()}, stage)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    kept = set(before) - moved
    for trained in ("language_model.model.layers.2.", "language_model.model.layers.3.", "connector.llm_layers.1."):
        assert any(n.startswith(trained) for n in moved), trained
    frozen = ("language_model.model.layers.0.", "language_model.model.layers.1.", "connector.samplers",
              "connector.projector", "connector.llm_layers.0.", "towers.")
    assert not any(n.startswith(frozen) for n in moved)
    assert "language_model.model.embed_tokens.weight" in kept

    set_trainable(model, stage)
    batch = collate(model, tokenizer, _examples()[:3], {})
    batch_loss(model, batch).backward()
    assert all(p.grad is None for p in [*layers[:2].parameters(), *model.connector.samplers.parameters()])
    assert all(p.grad is not None for p in layers[3].parameters())
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="top_layers=5: the LLM has 4 decoder layers"):
        set_trainable(model, StageConfig("s2", 0, {"vqa": 1}, 1e-2, llm_lr=1e-2, top_layers=5))
    model.requires_grad_(False)


def test_train_stage_stops_at_max_steps_and_moves_the_weights(tiny_short):
    model, tokenizer = tiny_short
    before = model.connector.projector.state_dict() if hasattr(model.connector, "projector") else None
    before = {k: v.clone() for k, v in (before or {}).items()}
    log = train_stage(model, tokenizer, {"vqa": _examples()}, StageConfig("s", 0, {"vqa": 1}, 1e-2, batch_size=3,
                                                                          max_steps=3))
    assert log.steps == [1, 2, 3] and len(log.loss) == 3 and log.samples == 9
    assert all(torch.isfinite(torch.tensor(log.loss)))
    after = model.connector.projector.state_dict() if before else {}
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_a_step_with_a_nan_gradient_is_not_applied(tiny_short):
    model, tokenizer = tiny_short
    weight = next(model.connector.parameters())
    calls = []

    def nan_once(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 2 else grad

    hook = weight.requires_grad_(True).register_hook(nan_once)  # train_stage trains the connector
    try:
        log = train_stage(model, tokenizer, {"vqa": _examples()}, StageConfig("s", 0, {"vqa": 1}, 1e-2, batch_size=3,
                                                                              max_steps=4))
    finally:
        hook.remove()
    assert [s["step"] for s in log.skipped] == [2] and log.skipped[0]["kind"] == "vqa"
    assert len(log.skipped[0]["ids"]) == 3 and log.stopped is None and log.steps == [1, 2, 3, 4]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_stage_whose_loss_stays_nan_stops_with_finite_weights(tiny_short):
    model, tokenizer = tiny_short
    hook = model.language_model.get_output_embeddings().register_forward_hook(lambda m, i, out: out * float("nan"))
    try:
        log = train_stage(model, tokenizer, {"vqa": _examples()}, StageConfig("s", 0, {"vqa": 1}, 1e-2, batch_size=3,
                                                                              max_steps=50))
    finally:
        hook.remove()
    assert len(log.steps) == 10 and len(log.skipped) == 10 and "10 steps in a row" in log.stopped
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_clear_error_before_any_work(tmp_path):
    import typer

    from cambrian.quickstart import Plan, run_quickstart

    with pytest.raises(typer.BadParameter, match="--device cpu"):
        run_quickstart(tmp_path / "qs", 60, Plan.smoke(), True, "cuda")
    assert not any((tmp_path / "qs").iterdir())


def test_first_phase_draws_from_its_own_mix_then_the_stage_mix(tiny_short):
    model, tokenizer = tiny_short
    examples = {"vqa": _examples(), "vqa-colour": _examples(4)}
    stage = StageConfig("s", 0, {"vqa": 1}, 1e-3, batch_size=2, max_steps=4, first_mix={"vqa-colour": 1},
                        first_share=0.5)
    assert train_stage(model, tokenizer, examples, stage).kind == ["vqa-colour"] * 2 + ["vqa"] * 2
    # an empty first pool skips the phase instead of failing the run
    stage.first_mix = {"absent": 1}
    assert train_stage(model, tokenizer, examples, stage).kind == ["vqa"] * 4


def test_a_text_only_batch_in_a_connector_only_stage_is_a_step_without_an_update(tiny_short):
    model, tokenizer = tiny_short
    text_only = [e for e in _examples() if e.image is None]
    before = [p.detach().clone() for p in model.connector.parameters()]
    log = train_stage(model, tokenizer, {"vqa": text_only}, StageConfig("s", 0, {"vqa": 1}, 1e-2, batch_size=2,
                                                                       max_steps=2))
    assert log.steps == [1, 2] and not log.skipped
    assert all(torch.equal(a, b) for a, b in zip(before, model.connector.parameters(), strict=True))


def test_the_second_phase_restarts_the_warmup_and_cosine_only_when_asked():
    stage = StageConfig("s", 0, {"vqa": 1}, 1e-3, max_steps=10, warmup_steps=2)
    assert lr_factor(stage, 0, 0.0) == pytest.approx(0.5)  # half-way through the warmup
    assert lr_factor(stage, 5, 0.0) == pytest.approx(0.1 + 0.9 * 0.5)  # the cosine's middle
    assert lr_factor(stage, 9, 0.0) < 0.2
    # restarted at step 6: warmup again, then the cosine over the 4 steps left
    assert lr_factor(stage, 6, 0.0, restart=(6, 0.0)) == pytest.approx(0.5)
    assert lr_factor(stage, 7, 0.0, restart=(6, 0.0)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    # by seconds when the stage has no step count
    timed = StageConfig("s", 100.0, {"vqa": 1}, 1e-3, warmup_steps=1)
    assert lr_factor(timed, 50, 50.0) == pytest.approx(0.55)
    assert lr_factor(timed, 50, 50.0, restart=(50, 50.0)) == pytest.approx(1.0)
    assert lr_factor(timed, 80, 75.0, restart=(50, 50.0)) == pytest.approx(0.55)


def test_colour_questions_are_told_from_questions_naming_a_colour():
    assert qdata.is_colour_question("what color is the shape?")
    assert qdata.is_colour_question("what is the color of the circle?")
    assert not qdata.is_colour_question("what is the red shape?")
    assert not qdata.is_colour_question("is there a red shape?")


def test_packed_conversations_supervise_every_answer_and_hold_one_image(tiny_short):
    import random

    from cambrian.constants import IGNORE_INDEX, IMAGE_TOKEN
    from cambrian.data.masking import tokenize_conversation

    model, tokenizer = tiny_short
    items = [(f"question {k}?", f"answer{k}", f"image-{k % 3}") for k in range(10)]  # 4 + 3 + 3 per image
    packed = qdata.packed_by_image("p", "vqa", items, max_turns=2, rng=random.Random(0))
    assert sorted(len(e.turns) // 2 for e in packed) == [1, 1, 2, 2, 2, 2]
    seen = set()
    for e in packed:
        users = [t["content"] for t in e.turns if t["role"] == "user"]
        assert users[0].startswith(f"{IMAGE_TOKEN}\n") and not any(IMAGE_TOKEN in u for u in users[1:])
        answers = [t["content"] for t in e.turns if t["role"] == "assistant"]
        assert all(items[int(a[6:])][2] == e.image for a in answers)  # every question is about this image
        tokens = tokenize_conversation(e.turns, tokenizer, "tokenizer")
        supervised = tokenizer.decode([i for i, lab in zip(tokens.input_ids, tokens.labels, strict=True)
                                       if lab != IGNORE_INDEX])
        assert supervised == "".join(f"{a}<|im_end|>" for a in answers)
        seen.update(answers)
    assert seen == {f"answer{k}" for k in range(10)}
    # with each question's right option text, a conversation keeps its questions' options in their order
    items = [(f"question {k}?", f"answer{k}", f"image-{k % 3}", f"option{k}") for k in range(10)]
    for e in qdata.packed_by_image("p", "cvbench", items, max_turns=2, rng=random.Random(0)):
        answers = [t["content"] for t in e.turns if t["role"] == "assistant"]
        assert e.option_answers == tuple(f"option{a[6:]}" for a in answers)


def test_short_template_has_no_system_turn(tiny_short):
    _, tokenizer = tiny_short
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_quickstart_config_has_two_pretrained_towers_on_different_grids():
    config = quickstart_config()
    towers = config.tower_configs
    assert [t.image_size for t in towers] == [256, 128] and [t.grid_size for t in towers] == [16, 8]
    assert all(t.source and not t.trainable for t in towers)


def test_easyvqa_facts_and_captions():
    facts = qdata.easyvqa_facts(["what is the blue shape?", "what color is the shape?", "what shape is in the image?"],
                                ["rectangle", "red", "circle"], [0, 1, 1])
    assert facts == {0: {"color": "blue", "shape": "rectangle"}, 1: {"color": "red", "shape": "circle"}}
    import random

    caption = qdata.easyvqa_caption("red", "circle", random.Random(0))
    assert caption.count(".") >= 3 and "red" in caption and "circle" in caption


@pytest.mark.slow
def test_quickstart_smoke_end_to_end(tmp_path):
    out = tmp_path / "qs"
    env = dict(os.environ, HF_HUB_OFFLINE="1", CAMBRIAN_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", "from cambrian.cli import main; main()", "quickstart", "--smoke",
                             "--out", str(out)], capture_output=True, text=True, env=env, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert f"cambrian chat --model {out / 'model'}" in printed
    assert (out / "model" / "config.json").exists() and (out / "model" / "tokenizer_config.json").exists()
    for name in ("report.md", "report.json", "loss.png", "accuracy.png", "examples.png",
                 "data/alignment.jsonl", "data/instruct.jsonl"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["smoke"] and [len(s["steps"]) for s in report["training"]["stages"]] == [2, 3]
    assert report["notes"] == []  # smoke's 3 steps are by design, not a slow machine
    assert report["training"]["stages"][0]["name"] == "stage 1 (word alignment)"
    assert report["training"]["coordinate_readout"] is None  # only with --readout
    captions = [json.loads(line) for line in (out / "data" / "alignment.jsonl").read_text().splitlines()]
    assert all(c["words"] for c in captions if c["id"].startswith("easyvqa"))  # what stage 1 aligns the tokens to
    assert any(c["words"] for c in captions if c["id"].startswith("world"))
    for bench in ("easyvqa", "cvbench"):
        entry = report["evaluation"][bench]
        assert {"vision_on", "vision_off", "random", "n"} <= entry.keys() and entry["n"] > 0
    timing = report["evaluation_timing"]  # the reserve was timed before training; the evaluation itself after
    assert len(timing["per_question"]) == 4 and timing["seconds"] > 0 and timing["measured_seconds"] > 0
    assert len(timing["timings"]) == 2  # before training, and again before stage 2
    assert report["evaluation_dtype"] == ("bf16" if report["training_compute"] == "bf16 autocast" else "fp32")
    assert report["bf16_matmul_probe_s"]["ratio"] > 0  # the measurement behind training_compute
    assert len(report["examples"]) == 3 and all(isinstance(e["answer"], str) for e in report["examples"])
    for bench in ("easyvqa", "cvbench"):  # one folder each: neither benchmark's results overwrite the other's
        results = json.loads((out / "eval" / bench / "results.json").read_text())
        assert list(results["results"]) == [bench] and (out / "eval" / bench / "results.novision.json").exists()


def test_a_short_stage_two_gets_a_note_with_the_budget_that_would_suffice():
    from cambrian.quickstart import STAGE2_MEASURED, training_notes
    from cambrian.quickstart_lib.report import markdown
    from cambrian.quickstart_lib.train import StageLog

    def stage(steps: int, seconds: float) -> StageLog:
        return StageLog("stage 2", steps=list(range(1, steps + 1)),
                        seconds=[seconds * k / steps for k in range(1, steps + 1)])

    fewest = STAGE2_MEASURED[8].steps_learned
    slow = training_notes(stage(120, 519.0), 900.0, smoke=False, batch_size=8)  # 4.3 s per step
    # 17 more steps at 4.325 s: 900 + 74 s -> 17 minutes
    assert len(slow) == 1 and "120 steps of batch 8 (4.3 s each)" in slow[0] and "--budget-minutes 17" in slow[0]
    assert f"give this machine {fewest}" in slow[0]
    assert training_notes(stage(fewest, 522.0), 900.0, smoke=False, batch_size=8) == []
    assert training_notes(stage(3, 9.0), 900.0, smoke=True, batch_size=8) == []
    assert training_notes(stage(0, 0.0), 900.0, smoke=False, batch_size=8) == []
    # each batch size against its own measured runs; one never measured gets no note
    fewest_at_4 = STAGE2_MEASURED[4].steps_learned
    assert training_notes(stage(fewest_at_4, 500.0), 900.0, smoke=False, batch_size=4) == []
    # session 22's final run: 145 steps in 436 s; 24 more at 3.0 s -> 900 + 72 s -> 17 minutes
    assert "145 steps of batch 4 (3.0 s each)" in training_notes(stage(145, 436.0), 900.0, smoke=False,
                                                                 batch_size=4)[0]
    assert "--budget-minutes 17" in training_notes(stage(145, 436.0), 900.0, smoke=False, batch_size=4)[0]
    assert training_notes(stage(10, 100.0), 900.0, smoke=False, batch_size=6) == []

    report = {"wall_seconds": 846.0, "budget_seconds": 900.0, "cpu_threads": 2, "training_compute": "fp32",
              "smoke": False, "model": {"summary": "cambrian-nano", "path": "runs/quickstart/model"},
              "data": {"counts": {}}, "training": {"stages": []}, "evaluation": {}, "examples": [], "targets": {},
              "chat_command": "cambrian chat", "notes": slow}
    assert f"- {slow[0]}" in markdown(report).split("## Evaluation")[0]  # with the training table


def test_a_readout_run_short_of_cvbench_conversations_gets_a_note_with_the_budget_that_would_give_them():
    from cambrian.quickstart import READOUT_CVBENCH_READ, training_notes
    from cambrian.quickstart_lib.train import StageLog

    def stage(kinds: list[str], seconds: float) -> StageLog:
        n = len(kinds)
        return StageLog("stage 2", steps=list(range(1, n + 1)), seconds=[seconds * k / n for k in range(1, n + 1)],
                        kind=kinds)

    # about session 20's 15-minute --readout run: 82 steps of phase 1 (no CV-Bench), then 97 with 65 CV-Bench batches
    # (that run had 64)
    fifteen = stage(["vqa"] * 82 + (["cvbench", "cvbench", "vqa"] * 33)[:97], 461.0)
    assert fifteen.kind.count("cvbench") == 65
    notes = training_notes(fifteen, 900.0, smoke=False, batch_size=8, readout=True)
    readout = [n for n in notes if "CV-Bench batches" in n]
    # phase 2: 461 * 97 / 179 = 249.8 s for 520 conversations; 1,648 more at 0.48 s -> 900 + 792 s -> 29 minutes
    assert len(readout) == 1 and "65 CV-Bench batches of 8 conversations (520)" in readout[0]
    assert "--budget-minutes 29" in readout[0]
    enough = stage(["vqa"] * 100 + ["cvbench"] * READOUT_CVBENCH_READ[0] + ["vqa"] * 200, 1369.0)
    assert not [n for n in training_notes(enough, 1800.0, smoke=False, batch_size=8, readout=True)
                if "CV-Bench batches" in n]
    # an fp32 machine's 15 minutes with --readout (session 21): two steps, no CV-Bench batch yet
    none = training_notes(stage(["vqa", "vqa"], 10.0), 900.0, smoke=False, batch_size=4, readout=True)
    assert any("got 0 CV-Bench batches" in n and "longer --budget-minutes" in n for n in none)
    assert not [n for n in training_notes(fifteen, 900.0, smoke=False, batch_size=8) if "CV-Bench batches" in n]


def test_the_report_gives_the_yes_no_questions_that_name_the_image_s_own_word():
    from cambrian.quickstart_lib.report import markdown, named_yes_no

    on = {"accuracy": 89.7, "per_category/yes/no": 85.4, "yes_no_named/absent": 99.4, "yes_no_named/present": 3.2,
          "yes_no_named_n/absent": 181.0, "yes_no_named_n/present": 31.0}
    entry = {"n": 300, "vision_on": 89.7, "vision_off": 70.7, "random": 42.1, "vision_on_metrics": on,
             "vision_off_metrics": {**on, "yes_no_named/present": 0.0},
             "random_metrics": {**on, "yes_no_named/present": 50.0}}
    line = named_yes_no(entry)
    assert "vision on 3.2%, off 0.0%, random 50.0% (n=31 of 212; the other 181" in line
    assert named_yes_no({"vision_on_metrics": {"accuracy": 50.0}}) is None  # an evaluation without the split
    report = {"wall_seconds": 846.0, "budget_seconds": 900.0, "cpu_threads": 2, "training_compute": "fp32",
              "smoke": False, "model": {"summary": "cambrian-nano", "path": "runs/quickstart/model"},
              "data": {"counts": {}}, "training": {"stages": []}, "evaluation": {"easyvqa": entry}, "examples": [],
              "targets": {}, "chat_command": "cambrian chat"}
    assert f"easy-VQA {line}." in markdown(report).split("## Evaluation")[1]


def test_evaluation_is_timed_per_run_on_a_copy_in_the_evaluation_dtype(tiny_short, write_tiny_cvbench,
                                                                        tmp_path):
    from cambrian.quickstart_lib.evaluate import PROBE_QUESTIONS, time_evaluation

    model, tokenizer = tiny_short
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bench = write_tiny_cvbench(tmp_path / "bench", [((80 * k, 90, 160), "A") for k in range(3)])
    timing = time_evaluation(model, tokenizer, bench, 40, None, dtype="bf16")
    assert list(timing["per_question"]) == ["easyvqa vision on", "easyvqa vision off", "cvbench vision on",
                                            "cvbench vision off"]
    assert all(s > 0 for s in timing["per_question"].values())
    # each run's whole question count (40 easy-VQA, the bench's 3) at its timed seconds per question
    per = timing["per_question"]
    expected = 40 * (per["easyvqa vision on"] + per["easyvqa vision off"]) + 3 * (per["cvbench vision on"] +
                                                                                   per["cvbench vision off"])
    assert timing["seconds"] == pytest.approx(expected) and PROBE_QUESTIONS < 40
    # the model being trained is left as it was: fp32, same weights
    assert all(v.dtype == before[k].dtype and torch.equal(v, before[k]) for k, v in model.state_dict().items())

    # timed again with an earlier timing: each run keeps the faster of the two
    slower = {"per_question": {k: 1000 * v for k, v in per.items()}, "timings": [{k: 1000 * v for k, v in per.items()}]}
    faster = {"per_question": {k: v / 1000 for k, v in per.items()}, "timings": [{k: v / 1000 for k, v in per.items()}]}
    again = time_evaluation(model, tokenizer, tmp_path / "bench", 40, None, dtype="bf16", earlier=slower)
    assert len(again["timings"]) == 2 and again["timings"][0] == slower["timings"][0]
    assert again["per_question"] == again["timings"][1]  # this call's own timings beat 1000 times the first call's
    kept = time_evaluation(model, tokenizer, tmp_path / "bench", 40, None, dtype="bf16", earlier=faster)
    assert kept["per_question"] == faster["per_question"]


def test_the_saved_model_is_evaluated_in_a_fresh_process_as_in_this_one(tiny_short, write_tiny_cvbench, tmp_path):
    from cambrian.models.builder import load_model, save_model
    from cambrian.quickstart_lib.evaluate import evaluate, evaluate_in_fresh_process

    model, tokenizer = tiny_short
    save_model(model, tokenizer, tmp_path / "model")
    bench = write_tiny_cvbench(tmp_path / "bench", [((80 * k, 90, 160), "AB"[k % 2]) for k in range(3)])
    lines = []
    fresh = evaluate_in_fresh_process(tmp_path / "model", bench, tmp_path / "fresh", 8, None, "fp32", "cpu", 1,
                                      log=lines.append)
    assert any(line.startswith("cvbench: 3 samples") for line in lines)  # the process's log, passed on
    assert not any("Loading weights" in line for line in lines)  # transformers' progress bar stays out of it
    assert json.loads((tmp_path / "fresh" / "scores.json").read_text()) == fresh
    here = evaluate(*load_model(tmp_path / "model"), tmp_path / "model", bench, tmp_path / "here", 8, None,
                    log=lambda *a: None)
    for name in ("easyvqa", "cvbench"):
        assert fresh[name]["n"] == here[name]["n"] > 0
        for key in ("vision_on", "vision_off", "random"):
            assert fresh[name][key] == pytest.approx(here[name][key])
        assert [s["resps"] for s in fresh[name]["samples"]] == [s["resps"] for s in here[name]["samples"]]

    with pytest.raises(RuntimeError, match="exited with 1.*rerun alone: .*cambrian.quickstart_lib.evaluate"):
        evaluate_in_fresh_process(tmp_path / "no-model", bench, tmp_path / "none", 8, None, "fp32", "cpu", 1,
                                  log=lines.append)


def test_freed_memory_is_kept_where_the_c_library_is_glibc():
    import platform

    from cambrian.quickstart_lib.cpu import keep_freed_memory

    kept = keep_freed_memory()
    assert kept is (platform.libc_ver()[0] == "glibc")


def test_bf16_is_chosen_by_a_timed_matmul_not_by_a_cpu_flag():
    from cambrian.quickstart_lib.cpu import BF16_FAST_RATIO, bf16_matmul_is_fast, bf16_matmul_probe

    probe = bf16_matmul_probe()
    assert probe["fp32"] > 0 and probe["bf16"] > 0 and probe["ratio"] == pytest.approx(probe["bf16"] / probe["fp32"])
    assert bf16_matmul_is_fast(probe) is (probe["ratio"] <= BF16_FAST_RATIO)
    # the decision follows the timings whatever the CPU calls itself (an AMD Zen 4 has AVX-512 BF16 but no AMX)
    assert bf16_matmul_is_fast({"fp32": 0.038, "bf16": 0.017, "ratio": 0.44})
    assert not bf16_matmul_is_fast({"fp32": 0.038, "bf16": 0.076, "ratio": 2.0})  # emulated bf16


def test_one_thread_is_chosen_only_when_clearly_faster(monkeypatch):
    from cambrian.quickstart_lib import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for one, two, chosen in ((0.045, 0.050, 2), (0.030, 0.050, 1), (0.050, 0.043, 2)):
        monkeypatch.setattr(cpu, "_probe", lambda n, t={1: one, 2: two}: t[n])
        assert cpu.choose_threads()[0] == chosen


def test_the_budget_clock_starts_with_the_process():
    code = ("import time; time.sleep(1.0); from cambrian.quickstart_lib.cpu import seconds_since_process_start; "
            "print(seconds_since_process_start())")
    seconds = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 1.0 <= seconds < 60.0


def test_matmul_probe_stops_once_the_answer_is_known(monkeypatch):
    """Emulated bf16 (~100x fp32's time) needs no five rounds to be called slow: the first call decides."""
    import torch

    from cambrian.quickstart_lib import cpu

    calls = []
    matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: calls.append(1) or matmul(a, b))
    cpu._matmul_seconds(torch.float32, enough=0.0)
    assert len(calls) == 1
    calls.clear()
    cpu._matmul_seconds(torch.float32)
    assert len(calls) == 1 + 5 * 4


def test_quickstart_smoke_with_the_coordinate_readout(tmp_path):
    out = tmp_path / "qs"
    env = dict(os.environ, HF_HUB_OFFLINE="1", CAMBRIAN_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", "from cambrian.cli import main; main()", "quickstart", "--smoke",
                             "--readout", "--out", str(out)], capture_output=True, text=True, env=env, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "coordinate readout: " in result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    readout = report["training"]["coordinate_readout"]
    assert readout["questions"] > 0 and readout["steps"] == 3  # the readout world's and the train world's questions
    assert report["stage2_mix"]["cvbench"] > 0.08 and report["data"]["readout_world"]
    # two phases: easy-VQA first, then mostly CV-Bench, the readout world's questions among its examples
    assert "cvbench" not in report["stage2_first_mix"] and 0 < report["stage2_first_share"] < 1
    assert report["stage2_force_readout"] is False  # the recipe the 30-minute figures were measured with
    train_questions = len((out / "data" / "cvbench-train" / "test.jsonl").read_text().splitlines())
    assert report["data"]["counts"]["stage 2 cvbench"] > train_questions
    config = json.loads((out / "model" / "config.json").read_text())
    from cambrian.quickstart_lib.readout import READOUT_TEMPERATURE, READOUT_TOKENS, readout_groups

    connector = config["connector"]
    assert "sofa" in connector["readout_words"] and "2" in connector["readout_words"]  # classes ... Count's numbers
    assert connector["readout_groups"] == readout_groups() and sum(readout_groups()) == len(connector["readout_words"])
    assert connector["readout_tokens"] == READOUT_TOKENS and connector["readout_temperature"] == READOUT_TEMPERATURE
    from cambrian.models.builder import load_model

    model, _ = load_model(out / "model")  # the fitted readout comes back with the model
    assert model.readout is not None and model.readout.word_tokens.abs().sum() > 0
    assert model.readout.groups == readout_groups() and model.readout.temperature == READOUT_TEMPERATURE


def test_stage_two_halves_its_batch_where_it_trains_in_fp32_on_a_cpu():
    from cambrian.quickstart import Plan

    plan = Plan()
    assert plan.batch_sizes(fp32_cpu=False) == (plan.batch_size, plan.long_batch_size) == (8, 4)
    assert plan.batch_sizes(fp32_cpu=True) == (plan.fp32_batch_size, plan.fp32_long_batch_size) == (4, 2)


def test_batch_kinds_are_dealt_in_the_mix_shares_and_spread_evenly():
    from collections import Counter

    from cambrian.quickstart_lib.train import Batcher

    pools = {"vqa": list(range(40)), "cvbench": list(range(40)), "describe": list(range(40)), "chat": list(range(40))}
    batcher = Batcher(pools, {"vqa": 0.72, "cvbench": 0.08, "describe": 0.12, "chat": 0.08, "absent": 0.5},
                      dict.fromkeys(pools, 4), seed=0)
    kinds = [batcher.next()[0] for _ in range(100)]
    assert Counter(kinds) == {"vqa": 72, "describe": 12, "cvbench": 8, "chat": 8}
    for n in (10, 25, 47, 88):  # within one batch of its share at any length (a random draw gave 26 vqa of 47)
        counts = Counter(kinds[:n])
        assert all(abs(counts[k] - share * n) <= 1 for k, share in (("vqa", 0.72), ("describe", 0.12),
                                                                  ("cvbench", 0.08), ("chat", 0.08)))
