"""`cambrian eval` end to end on cambrian-tiny: batch-size invariance, vision off, output shapes, and a SIGKILLed
run resumed with --resume ending identical to an uninterrupted one."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cambrian.cvbench.layout import CVBenchRecord, format_prompt, write_cvbench
from cambrian.eval.cli import app as eval_app
from cambrian.eval.runner import EvalConfig, run_eval


@pytest.fixture(scope="module")
def noisy_tiny(tmp_path_factory):
    """cambrian-tiny with larger random weights (the default init answers "\\n" to everything), saved to a folder."""
    from cambrian.models.builder import build_model, save_model

    torch.manual_seed(0)
    model, tokenizer = build_model("cambrian-tiny")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 2 / p.shape[-1] ** 0.5)
    folder = tmp_path_factory.mktemp("model") / "noisy-tiny"
    save_model(model, tokenizer, folder)
    from cambrian.models.builder import load_model

    loaded, tokenizer = load_model(folder)
    return str(folder), loaded.eval(), tokenizer


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    records = []
    for idx in range(6):
        kind, source = ("3D", "Omni3D") if idx % 3 == 2 else ("2D", "COCO")
        buffer = io.BytesIO()
        Image.new("RGB", (24 + 4 * idx, 20), (40 * idx, 120, 200)).save(buffer, format="PNG")
        q = f"Which side is object {idx} on?"
        records.append(CVBenchRecord(idx=idx, type=kind, task="Depth" if kind == "3D" else "Relation", question=q,
                                     choices=["left", "right"], answer="(A)",
                                     prompt=format_prompt(q, ["left", "right"]),
                                     filename=f"img/{kind}/x/{idx}.png", source=source, source_dataset=source,
                                     source_filename=f"{idx}.jpg", image_bytes=buffer.getvalue()))
    return write_cvbench(tmp_path_factory.mktemp("cvb") / "bench", records)


def _run(folder, model, tokenizer, out, benches, **kw):
    config = EvalConfig(model=folder, benches=benches, out=out, max_new_tokens=kw.pop("max_new_tokens", 5), **kw)
    return run_eval(config, model, tokenizer, log=lambda m: None)


def _answers(out, name):
    return [json.loads(line) for line in (out / "predictions" / name).read_text().splitlines()]


def test_batch_size_does_not_change_answers_and_outputs_are_shaped(noisy_tiny, bench, tmp_path):
    folder, model, tokenizer = noisy_tiny
    benches = [f"cvbench:{bench}", "easyvqa"]
    one = _run(folder, model, tokenizer, tmp_path / "b1", benches, batch_size=1, limit=6)
    _run(folder, model, tokenizer, tmp_path / "b4", benches, batch_size=4, limit=6)
    for name in ("cvbench.jsonl", "easyvqa.jsonl"):
        a = sorted(_answers(tmp_path / "b1", name), key=lambda r: r["idx"])
        b = sorted(_answers(tmp_path / "b4", name), key=lambda r: r["idx"])
        assert a == b and len(a) == 6
    assert len({r["text"] for r in _answers(tmp_path / "b1", "easyvqa.jsonl")}) > 1  # answers really vary

    payload = json.loads(one.files["results"].read_text())
    assert {"results", "config", "git_hash", "date"} <= set(payload)
    assert payload["results"]["cvbench"]["alias"] == "CV-Bench" and "overall,none" in payload["results"]["cvbench"]
    assert payload["config"]["batch_size"] == 1 and payload["config"]["vision"] is True
    c = payload["cambrian"]
    assert c["benchmarks"]["cvbench"]["random"] == 50.0 and c["random_scores"]["CV-Bench-2D"] == 50.0
    assert set(c["category_averages"]) == {"General", "Knowledge", "OCR & Chart", "Vision-Centric", "Average"}
    lines = one.files["samples"].read_text().splitlines()
    assert len(lines) == 12 and {"doc_id", "target", "input", "resps", "filtered_resps"} <= set(json.loads(lines[0]))
    assert json.loads(lines[0])["input"].startswith("<image>\n")
    assert "| CV-Bench | overall |" in one.files["markdown"].read_text()


def test_generator_equals_transformers_greedy_generate_prompt_by_prompt(noisy_tiny, bench, monkeypatch):
    """The Generator's own loop (shared-prefix cache, finished rows decoding on unread, then leaving the batch)
    answers exactly what `model.generate` answers for each prompt alone, with no prefix cache, at any batch size."""
    from cambrian.eval.benchmarks import get_benchmark, load_samples
    from cambrian.eval.generation import Generator

    _, model, tokenizer = noisy_tiny
    generator = Generator(model, tokenizer)
    samples = load_samples(get_benchmark("cvbench"), bench) + load_samples(get_benchmark("easyvqa"), None, 6)
    prompts = [generator.encode(s) for s in samples]  # images of 6 sizes: different visual token counts
    assert generator.prefix_ids and all(p.input_ids[:len(generator.prefix_ids)] == generator.prefix_ids
                                        for p in prompts)
    continuations = []  # transformers' greedy tokens for each prompt alone (the noisy model never stops in 6)
    for p in prompts:
        ids = torch.tensor([p.input_ids])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=generator.pad_id, **model.image_inputs(p.images))
        continuations.append(out[0, len(p.input_ids) + sum(model.num_image_tokens(im.size) - 1 for im in p.images):])
    # Extra stop tokens: in the batch of 12, rows 0, 7 and 8 finish at the first token (fewer than a third: they
    # decode on, unread) and row 1 at the second (then the four leave the batch). A stop token changes no greedy
    # token before it, so the expected answers are transformers' continuations cut at the first stop.
    generator.stop_ids |= {int(continuations[0][0]), int(continuations[7][0]), int(continuations[1][1])}
    expected = []
    for new in continuations:
        new = new.tolist()
        cut = next((i for i, t in enumerate(new) if t in generator.stop_ids), len(new))
        expected.append(tokenizer.decode(new[:cut], skip_special_tokens=True).strip())
    assert len(set(expected)) > 1 and any(len(e) < max(map(len, expected)) for e in expected)
    steps = []  # per forward: (rows of its batch's prefill, rows now, whether a row is fed its stop token again)
    original = model.forward

    def spy(**kw):
        ids = kw["input_ids"]
        width = len(ids) if ids.shape[1] > 1 else steps[-1][0]
        steps.append((width, len(ids), ids.shape[1] == 1 and any(t in generator.stop_ids for t in ids[:, 0].tolist())))
        return original(**kw)

    monkeypatch.setattr(model, "forward", spy)
    for size in (1, 4, 12):
        answers = [a for start in range(0, len(prompts), size)
                   for a in generator.generate(prompts[start:start + size], 6)]
        assert answers == expected, size
    assert len(prompts) == 12 and (12, 12, True) in steps and (12, 8, False) in steps  # kept, then left


def test_vision_disabled_drops_image_and_pixels(noisy_tiny, bench, tmp_path, monkeypatch):
    folder, model, tokenizer = noisy_tiny
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda **kw: calls.append(kw) or original(**kw))
    run = _run(folder, model, tokenizer, tmp_path, [f"cvbench:{bench}"], vision=False, batch_size=3)
    prefills = [kw for kw in calls if kw["input_ids"].shape[1] > 1]  # shared prefix + one prompt batch each
    assert all("pixel_values" not in kw for kw in calls) and len(prefills) == 3
    assert all(int((kw["input_ids"] == model.config.image_token_id).sum()) == 0 for kw in calls)
    assert run.files["results"].name == "results.novision.json"
    sample = json.loads(run.files["samples"].read_text().splitlines()[0])
    assert "<image>" not in sample["input"]
    assert json.loads(run.files["results"].read_text())["cambrian"]["vision"] is False


def test_sigkill_then_resume_equals_uninterrupted(noisy_tiny, tmp_path):
    folder, model, tokenizer = noisy_tiny
    args = ["--model", folder, "--bench", "easyvqa", "--limit", "40", "--batch-size", "2", "--max-new-tokens", "6"]
    killed = tmp_path / "killed"
    cache = killed / "predictions" / "easyvqa.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "cambrian.eval.cli", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if cache.exists() and cache.read_text().count("\n") >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = cache.read_text().count("\n")
    assert 8 <= done_before < 40 and not (killed / "results.json").exists()
    with open(cache, "a") as f:
        f.write('{"idx": 39, "te')  # a torn last line, as a kill in the middle of a write leaves

    result = CliRunner().invoke(eval_app, [*args, "--out", str(killed), "--resume"])
    assert result.exit_code == 0, result.output
    straight = _run(folder, model, tokenizer, tmp_path / "straight", ["easyvqa"], limit=40, batch_size=2,
                    max_new_tokens=6)
    resumed = json.loads((killed / "results.json").read_text())
    expected = json.loads(straight.files["results"].read_text())
    assert resumed["results"] == expected["results"] and resumed["cambrian"] == expected["cambrian"]
    key = lambda r: r["idx"]  # noqa: E731
    assert sorted(_answers(killed, "easyvqa.jsonl"), key=key) == sorted(_answers(tmp_path / "straight",
                                                                                 "easyvqa.jsonl"), key=key)
    assert (killed / "samples.jsonl").read_text() == straight.files["samples"].read_text()

    changed = CliRunner().invoke(eval_app, [*args[:-2], "--max-new-tokens", "7", "--out", str(killed), "--resume"])
    assert changed.exit_code == 1 and "max_new_tokens was 6, now 7" in changed.output


def test_bf16_eval_runs_with_fp32_logits_and_records_dtype(noisy_tiny, bench, tmp_path):
    folder, model, tokenizer = noisy_tiny
    out = tmp_path / "bf16"
    result = CliRunner().invoke(eval_app, ["--model", folder, "--bench", f"cvbench:{bench}", "--out", str(out),
                                           "--batch-size", "3", "--max-new-tokens", "4", "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["dtype"] == "bf16" and payload["config"]["model_args"].endswith(",dtype=bf16")
    assert len(_answers(out, "cvbench.jsonl")) == 6
    assert json.loads((out / "predictions" / "cvbench.meta.json").read_text())["dtype"] == "bf16"

    from cambrian.eval.runner import load_for_eval

    bf16_model, _ = load_for_eval(folder, device="cpu", dtype="bf16")
    assert bf16_model.dtype == torch.bfloat16 and next(bf16_model.towers.parameters()).dtype == torch.bfloat16
    assert bf16_model.get_output_embeddings().weight.dtype == torch.float32  # greedy argmax over fp32 logits
    with pytest.raises(ValueError, match="asks for bf16"):  # an fp32 model is not silently evaluated as bf16
        _run(folder, model, tokenizer, tmp_path / "mismatch", [f"cvbench:{bench}"], dtype="bf16")
    bad = CliRunner().invoke(eval_app, ["--model", folder, "--bench", f"cvbench:{bench}", "--out", str(tmp_path / "x"),
                                        "--dtype", "fp16"])
    assert bad.exit_code == 1 and "unknown dtype 'fp16'" in bad.output
