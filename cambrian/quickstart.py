"""`cambrian quickstart`: build cambrian-nano from packaged weights, make its data, train both stages inside a
wall-clock budget, evaluate with vision on / off / random-guess baselines, write a report, point at `cambrian chat`.

The recipe reads top to bottom in `run_quickstart`; its parts live in `cambrian/quickstart_lib/`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import typer


@dataclass
class Plan:
    """Sizes of one run; `smoke` shrinks every count so CI runs the same path in a few minutes."""

    easyvqa_train: int = 12000
    easyvqa_captions: int = 600
    easyvqa_describe: int = 300
    world_train: int = 300
    world_test: int = 70
    world_captions: int = 200
    world_describe: int = 100  # the train world's images after the 200 captioned ones
    # --readout: a coordinate readout (quickstart_lib/readout.py) fitted on the Depth / Distance / Relation questions
    # of a world of its own (on the 300-image train world's alone it memorised them: benchmarks/README.md) and on all
    # the train world's; 0 images: no readout. That world's questions also train stage 2's CV-Bench phase
    readout_world: int = 0
    readout_steps: int = 400
    # teacher forcing of the readout's tokens in stage 2's CV-Bench batches (StageConfig.force_readout). Off: the
    # 30-minute figures were measured without it, and two comparisons (CV-Bench alone, ~70 steps, an fp32 machine)
    # gave 50.7 against 47.9 % and 42.5 against 42.5 % (docs/quickstart.md, session 21)
    force_readout: bool = False
    self_chat_prompts: int = 16
    self_chat_tokens: int = 48
    eval_easyvqa: int | None = 300
    eval_cvbench: int | None = None
    # stage 1 (word alignment) runs stage1_steps or stage1_seconds, whichever ends first (the towers' pass over its
    # images included). It counts steps: on a slower machine a fixed 150 s gave it 255-294 steps, its loss ended at
    # 0.26-0.32 instead of 0.23, and those runs read colour 58-77 % (docs/quickstart.md, session 12)
    stage1_seconds: float = 210.0
    stage1_steps: int | None = 500
    stage2_steps: int | None = None
    balance_yes_no: bool = True  # easy-VQA's yes/no questions redrawn to name the image's own word half the time
    twin_share: float = 0.5  # ... and this share of them asked again with the negation flipped (data.negation_twin)
    turns_per_image: int = 3  # questions packed into one conversation about an image (easy-VQA, CV-Bench)
    connector_lr: float = 1e-3  # stage 1 (word alignment, align.py)
    stage2_connector_lr: float = 1e-4
    llm_lr: float = 1e-4
    # stage 2 leaves SmolLM2's word embedding (tied to its LM head: 28.3M parameters) frozen: with fused AdamW a step
    # costs 0.81 of one that trains it (benchmarks/optimizer_step.py); trained, it moved 0.7 % per row in a run anyway
    train_embedding: bool = False
    stage2_top_layers: int | None = None  # all 30: the top 9 alone learned yes/no and colour slower per second (docs)
    batch_size: int = 8  # short answers (x3 questions per conversation); captions, descriptions, chat: long_batch_size
    long_batch_size: int = 4
    # where stage 2 runs in fp32 on a CPU (no fast bf16: a step took 2.7x an AMX machine's), half the batch and so
    # about twice the steps: on an AMD EPYC Zen 3, 8 gave easy-VQA 63.0-81.7 % (47-88 steps, three runs) and 4 gave
    # 87.0-94.3 % (104-145 steps, four runs; docs/quickstart.md, session 22). The bf16 figures were all measured at 8
    fp32_batch_size: int = 4
    fp32_long_batch_size: int = 2

    @classmethod
    def smoke(cls) -> Plan:
        return cls(easyvqa_train=64, easyvqa_captions=16, easyvqa_describe=8, world_train=8, world_test=6,
                   world_captions=4, world_describe=4, self_chat_prompts=4, self_chat_tokens=16, eval_easyvqa=16,
                   eval_cvbench=8, stage1_steps=2, stage2_steps=3)

    def batch_sizes(self, fp32_cpu: bool) -> tuple[int, int]:
        """-> stage 2's (short-answer, long-answer) batch sizes for this compute."""
        if fp32_cpu:
            return self.fp32_batch_size, self.fp32_long_batch_size
        return self.batch_size, self.long_batch_size

    def with_readout(self, smoke: bool) -> Plan:
        return replace(self, readout_world=6 if smoke else 3000, readout_steps=3 if smoke else self.readout_steps)


STAGE2_MIX = {"vqa": 0.72, "cvbench": 0.08, "describe": 0.12, "chat": 0.08}
# with --readout: the LLM read the readout's grouped tokens within 121 CV-Bench-only batches after a quickstart that had
# learned easy-VQA (61.5 %), and 180 CV-Bench batches mixed in from the start gave 52.4 % (docs/quickstart.md, session
# 19). So stage 2 comes in two phases, each with its own warmup and cosine: easy-VQA first (learned in 85-201 vqa
# batches, sessions 18-19), then mostly CV-Bench with easy-VQA kept in view
READOUT_FIRST_MIX = {"vqa": 0.8, "describe": 0.12, "chat": 0.08}
# Phase 2 at vqa 0.2 / cvbench 0.7: two 30-minute runs, CV-Bench 66.6 and 68.7 %, easy-VQA 94.0 and 87.0 %; at 0.35 /
# 0.55: CV-Bench 66.7 %, easy-VQA 93.3 % (session 20)
READOUT_SECOND_MIX = {"vqa": 0.35, "cvbench": 0.55, "describe": 0.06, "chat": 0.04}
# the first phase's share of stage 2: at most 0.45, and no more than ~240 s on this CPU (82 steps, 63 of them vqa,
# then 20 vqa among phase 2's gave easy-VQA 92.3 % in a 15-minute run, session 20): a longer budget goes to CV-Bench
READOUT_FIRST_SHARE = 0.45
READOUT_FIRST_SECONDS = 240.0
# No colour-only opening any more (sessions 4-6 needed one: colour was never learned in the mix without it): after
# stage 1's word alignment colour is read from the mix (86-93 %), and the opening cost yes/no its steps
# (docs/quickstart.md, "Word alignment").
DEVICES = ("cpu", "cuda")
# The evaluation reserve is measured, not assumed: one batch of each evaluation run is timed before training
# (evaluate.time_evaluation). A fixed 0.22 / 0.11 s per question (vision on / off) held on the machine of sessions 7-10,
# and on a slower day the evaluation took 255 s against the 213 s it kept: the run ended at 16:12.
# The whole evaluation against its timed batches, measured: 107 s against 88 s (1.22; easy-VQA with vision 1.37, the
# others 0.95-1.22) in the first run with this reserve, which then ended 8 s inside the 15 minutes. 1.5 leaves ~30 s.
# That was a bf16 evaluation (an AMX CPU). An fp32 one (AMD EPYC Zen 3) took 0.91-1.10 of its timed batches in five
# runs (172 s of 188, 196 of 179 with --readout, session 21; 177 of 192, 184 of 178, 189 of 208, session 22): 1.5 and
# then 1.25 left 1.5-2.5 minutes unused, 30-45 stage-2 steps of batch 4
EVAL_MARGIN = {"bf16": 1.5, "fp32": 1.1}
# saving the model, example answers, plots, the interpreter's exit (its start is on the clock): 19 s in a run on an
# AMD EPYC Zen 3 (8 s from stage 2's end to the evaluation, 11 s after the report's clock stopped; session 23)
FINAL_RESERVE_S = 30.0
# the evaluation's own Python process (evaluate.evaluate_in_fresh_process): its start (importing torch and transformers,
# loading the saved model) and its scoring took 7.0 s beyond the runs' own seconds in a smoke run, 7.7 and 8.3 s in
# two full runs on this 2-core machine (docs/quickstart.md, session 14)
EVAL_PROCESS_START_S = 15.0


@dataclass(frozen=True)
class Measured:
    """Stage-2 runs of this recipe at one short-answer batch size (docs/quickstart.md)."""

    # the fewest stage-2 steps of a run that learned easy-VQA's yes/no comparison with the image (yes/no 100 %, the
    # questions that name the image's own colour or shape included): with fewer, runs answered yes/no from the wording
    steps_learned: int
    steps: tuple[int, int]  # the fewest and most steps of the runs measured
    easyvqa: tuple[float, float]  # their lowest and highest easy-VQA %


# Batch 8 (bf16 on AMX, frozen word embedding): 130, 162, 170, 188 and 197 steps gave easy-VQA 91.7, 99.0, 89.0, 98.3,
# 98.0 % (session 10); 137, 293 and 305 steps gave 100.0, 99.0 and 100.0 % (sessions 18-20; yes/no 100.0, 99.5, 100.0)
# Batch 4 (fp32 on Zen 3): 104, 113, 119 and 145 steps gave 87.0, 89.7, 92.3 and 94.3 %, yes/no answered mostly from
# the wording (session 22); 169 and 196 steps (15 minutes on a faster day) and 296 (--budget-minutes 20) 100.0 %, all
# 31 questions naming the image's own word right (session 23)
STAGE2_MEASURED = {8: Measured(137, (130, 305), (89.0, 100.0)), 4: Measured(169, (104, 296), (87.0, 100.0))}
# --readout (bf16 on AMX, batch 8, session 20): 64 CV-Bench batches in stage 2 (15 minutes) left CV-Bench at 45.2 %
# (vision off 44.3); 271, 288 and 325 (30 minutes) read it: 66.7, 66.6 and 68.7 %. In conversations: 2,168 and up.
# Not measured at another batch size; the note counts conversations
READOUT_CVBENCH_READ = (271, 8)  # (CV-Bench batches, their batch size) of the fewest of a run that read CV-Bench


def evaluation_reserve(timed_s: float, eval_dtype: str) -> float:
    """Seconds kept after stage 2: the evaluation (its timed batches with this dtype's margin), its process's start,
    and the rest of the run's end."""
    return EVAL_MARGIN[eval_dtype] * timed_s + EVAL_PROCESS_START_S + FINAL_RESERVE_S


def register(app: typer.Typer) -> None:
    app.command(name="quickstart")(quickstart)


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="where the model folder, data and report go"),
    budget_minutes: float = typer.Option(15.0, help="wall-time budget for the whole run; training gets what is left"),
    smoke: bool = typer.Option(False, help="the same path with tiny step counts (CI)"),
    device: str = typer.Option("auto", help="cpu, cuda, or auto (CUDA when one is visible)"),
    readout: bool = typer.Option(False, help="add a coordinate readout fitted on a 3,000-image world's CV-Bench "
                                 "answers (~3 more minutes before stage 2), and a stage 2 that ends mostly on "
                                 "CV-Bench; give it --budget-minutes 30 on a CPU with fast bf16 (AMX), where it "
                                 "reached CV-Bench 66.7 % and easy-VQA 93.3 % (docs/quickstart.md, session 20); a "
                                 "CPU without it trains at a third of the speed (session 21)"),
) -> None:
    """Build, train (2 stages), evaluate and report a real small Cambrian on this CPU (or a GPU), then chat with it."""
    from cambrian.quickstart_lib.cpu import seconds_since_process_start

    plan = Plan.smoke() if smoke else Plan()
    run_quickstart(out, budget_minutes * 60, plan.with_readout(smoke) if readout else plan, smoke, device,
                   spent_s=seconds_since_process_start())  # the interpreter's start is on the clock (cpu.py: why)


def run_quickstart(out: Path, budget_s: float, plan: Plan, smoke: bool, device: str = "auto",
                   spent_s: float = 0.0) -> dict:
    """`spent_s`: seconds of the budget already gone (the CLI: its interpreter's start and imports)."""
    import random

    import torch
    from tqdm.auto import tqdm

    from cambrian.quickstart_lib import data as qdata
    from cambrian.quickstart_lib.model import build_quickstart_model, use_short_template
    from cambrian.quickstart_lib.readout import READOUT_TOKENS
    from cambrian.quickstart_lib.self_chat import self_chat
    from cambrian.quickstart_lib.train import StageConfig, train_stage

    start = time.perf_counter() - spent_s
    deadline = start + budget_s
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    say = tqdm.write

    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast, bf16_matmul_probe, choose_threads, keep_freed_memory

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type not in DEVICES:
        raise typer.BadParameter(f"{device.type} is not supported: use cpu, cuda or auto", param_hint="--device")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("no CUDA device is visible to torch: use --device cpu or auto", param_hint="--device")
    on_cpu = device.type == "cpu"
    kept_freed_memory = on_cpu and keep_freed_memory()  # a stage-2 step: 0.87 of the time (benchmarks/allocator.py)
    if on_cpu:
        threads, probe = choose_threads()
        matmul = bf16_matmul_probe()  # with the threads chosen; a bf16 step took 0.55 of fp32's on an AMD EPYC (Zen 4)
        bf16 = bf16_matmul_is_fast(matmul)
        where = (f"CPU threads: {threads} (probe: " + ", ".join(f"{n} thread(s) {t * 1000:.0f} ms"
                                                                for n, t in probe.items())
                 + f"; probed again before each stage); a bf16 matmul takes {matmul['ratio']:.2f} of fp32's time")
    else:
        threads, probe, matmul = torch.get_num_threads(), {}, {}
        bf16 = torch.cuda.is_bf16_supported()
        where = f"device: {torch.cuda.get_device_name(device)}"
    say(f"{where}; training compute: {'bf16 autocast' if bf16 else 'fp32'}")
    readout = plan.readout_world > 0
    say("[1/6] building cambrian-nano: EfficientNet-Lite0 @256 (16x16) + @128 (8x8), SVA, "
        + ("coordinate readout, " if readout else "") + "SmolLM2-135M-Instruct")
    model, tokenizer = build_quickstart_model(readout)
    model.to(device)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    say(f"      {millions:.1f}M parameters, built in {time.perf_counter() - start:.0f} s")

    say("[2/6] making data")
    with tqdm(total=plan.self_chat_prompts, desc="self-distilled chat", unit="prompt") as bar:
        chat_rows = self_chat(model, tokenizer, plan.self_chat_prompts, plan.self_chat_tokens, progress=bar.update)
    use_short_template(tokenizer)  # from here on: training, evaluation and chat without the default system turn
    with tqdm(total=plan.world_train + plan.world_test + plan.readout_world, desc="synthetic worlds",
              unit="image") as bar:
        train_world, test_world, *readout_world = qdata.render_worlds(out / "data", plan.world_train,
                                                                      plan.world_test, plan.readout_world, bar.update)
    easy = qdata.easyvqa_examples(plan.easyvqa_train, plan.easyvqa_captions, plan.easyvqa_describe, seed=0,
                                  turns_per_image=plan.turns_per_image, balance_yes_no=plan.balance_yes_no,
                                  twin_share=plan.twin_share)
    world = qdata.world_examples(train_world, out / "data" / "cvbench-train", plan.world_captions,
                                 plan.world_describe, seed=0, turns_per_image=plan.turns_per_image)
    test_bench, readout_bench = out / "data" / "cvbench-test", out / "data" / "cvbench-readout"
    qdata.build_bench(test_world, test_bench)
    chat = [qdata.Example(f"chat-{k}", "chat", [{"role": "user", "content": r["prompt"]},
                                               {"role": "assistant", "content": r["answer"]}])
            for k, r in enumerate(chat_rows)]
    stage1_data = {"caption": easy["caption"] + world["caption"]}
    cvbench_train = world["cvbench"]
    if readout:  # the readout world's questions train the LLM too: ten times the train world's
        cvbench_train = cvbench_train + qdata.bench_examples(
            qdata.build_bench(readout_world[0], readout_bench), readout_bench, "cvbench-readout",
            plan.turns_per_image, random.Random(1))
    stage2_data = {"vqa": easy["vqa"], "cvbench": cvbench_train,
                   "describe": easy["describe"] + world["describe"], "chat": chat}
    qdata.write_jsonl(stage1_data["caption"], out / "data" / "alignment.jsonl")
    qdata.write_jsonl([e for v in stage2_data.values() for e in v], out / "data" / "instruct.jsonl")
    counts = {"alignment captions": len(stage1_data["caption"]), **{f"stage 2 {k}": len(v)
                                                                     for k, v in stage2_data.items()}}
    say("      " + ", ".join(f"{k}: {v}" for k, v in counts.items()))

    from cambrian.quickstart_lib.evaluate import time_evaluation

    # evaluation runs in bf16 where training does (the model cast, its LM head kept fp32: cambrian.eval.precision): on
    # this 2-core machine 0.49-0.64 of fp32's time per question, 1-5 % of answers different (benchmarks/eval_dtype.py)
    eval_dtype = "bf16" if bf16 else "fp32"
    eval_timing = time_evaluation(model, tokenizer, test_bench, plan.eval_easyvqa, plan.eval_cvbench, eval_dtype)
    reserve = evaluation_reserve(eval_timing["seconds"], eval_dtype)
    train_s = max(30.0, deadline - time.perf_counter() - reserve)
    say(f"[3/6] training for about {train_s:.0f} s ({reserve:.0f} s kept for the report and the evaluation, whose "
        f"{eval_dtype} batches were timed at {eval_timing['seconds']:.0f} s in all; timed again before stage 2)")
    import easy_vqa

    from cambrian.quickstart_lib.align import AlignConfig, align_connector
    from cambrian.quickstart_lib.evaluate import visual_token_spread

    test_paths = easy_vqa.get_test_image_paths()  # lists the folder on every call
    probe_images = [test_paths[i] for i in range(8)]
    spread = {"before training": visual_token_spread(model, probe_images)}

    def bar_for(name: str, steps: int | None, seconds: float):
        total = steps or int(seconds)
        bar = tqdm(total=total, desc=name, unit="step" if steps else "s")

        def progress(step, loss, kind, elapsed):
            bar.n = step if steps else min(total, int(elapsed))
            bar.set_postfix(step=step, loss=f"{loss:.3f}", batch=kind, refresh=False)
            bar.refresh()
        return bar, progress

    def probe_threads(phase: str) -> None:
        if on_cpu:  # other jobs come and go on a shared machine: probe again per phase
            say(f"      {phase}: {choose_threads()[0]} CPU thread(s)")

    probe_threads("stage 1")
    # stage 1: the connector learns to put its tokens on the words the captions name (align.py: why, and the loss)
    words = [(e.image, e.words) for e in stage1_data["caption"] if e.words]
    # stage 1 stays fp32 (AlignConfig.bf16 off): its step takes ~0.7 of the time under bf16 autocast, but the three runs
    # that aligned on bf16 tower features read colour 72-77 % (brown as red, blue as green) against 84-95 % (session 12)
    align = AlignConfig(min(plan.stage1_seconds, train_s / 3), max_steps=plan.stage1_steps, lr=plan.connector_lr)
    bar, progress = bar_for("stage 1 (word alignment)", align.max_steps, align.seconds)
    with bar:
        logs = [align_connector(model, tokenizer, words, align, progress=progress)]
    readout_log = None
    if readout:
        from cambrian.quickstart_lib.readout import fit_readout, readout_questions

        # Count's number token says mostly the counts' prior (readout.py): the train world's Count questions fit it,
        # and the readout world's (a third of its questions) are left out of the tower pass
        questions = (readout_questions(readout_bench, ("Depth", "Distance", "Relation"))
                     + readout_questions(out / "data" / "cvbench-train"))
        with tqdm(total=len(questions), desc="coordinate readout (tower grids)", unit="image") as bar:
            readout_log = fit_readout(model, tokenizer, questions, plan.readout_steps, bf16, progress=bar.update)
        say(f"      coordinate readout: {readout_log['questions']} Count / Depth / Distance / Relation questions, "
            f"tower grids in {readout_log['grids_seconds']:.0f} s, {readout_log['steps']} steps, "
            f"{readout_log['seconds']:.0f} s in all; {readout_log['train_accuracy']:.1f} % of those questions read "
            "right")
    # timed again now, a few minutes later: each run keeps its faster timing (a brief slowdown is not the evaluation's)
    eval_timing = time_evaluation(model, tokenizer, test_bench, plan.eval_easyvqa, plan.eval_cvbench, eval_dtype,
                                  earlier=eval_timing)
    reserve = evaluation_reserve(eval_timing["seconds"], eval_dtype)
    mix = READOUT_SECOND_MIX if readout else STAGE2_MIX
    batch_size, long_batch_size = plan.batch_sizes(fp32_cpu=on_cpu and not bf16)
    stage2 = StageConfig("stage 2 (instruction tuning)", max(10.0, deadline - time.perf_counter() - reserve), mix,
                         plan.stage2_connector_lr, plan.llm_lr, max_steps=plan.stage2_steps, bf16=bf16,
                         batch_size=batch_size, long_batch_size=long_batch_size,
                         train_embedding=plan.train_embedding, top_layers=plan.stage2_top_layers)
    if readout:
        stage2 = replace(stage2, first_mix=READOUT_FIRST_MIX, restart_lr=True, force_readout=plan.force_readout,
                         first_share=min(READOUT_FIRST_SHARE, READOUT_FIRST_SECONDS / stage2.seconds))
    say(f"      evaluation timed again: {eval_timing['seconds']:.0f} s with each run's faster timing; stage 2 gets "
        f"{stage2.seconds:.0f} s")
    probe_threads(stage2.name)
    bar, progress = bar_for(stage2.name, stage2.max_steps, stage2.seconds)
    with bar:
        logs.append(train_stage(model, tokenizer, stage2_data, stage2, progress=progress))

    notes = training_notes(logs[-1], budget_s, smoke, batch_size, readout)
    for note in notes:
        say(f"      note: {note}")
    spread["after training"] = visual_token_spread(model, probe_images)
    say("      visual-token spread across 8 test images (near 0: every image looks the same to the LLM): "
        + ", ".join(f"{k} {v:.3f}" for k, v in spread.items()))
    say(f"[4/6] saving the model to {out / 'model'}")
    from cambrian.models.builder import save_model

    model_dir = out / "model"
    save_model(model, tokenizer, model_dir)

    threads = choose_threads()[0] if on_cpu else threads
    say(f"[5/6] evaluating (vision on, vision off; random-guess expectations from the harness; {eval_dtype}, "
        + (f"{threads} thread(s))" if on_cpu else f"{device.type})"))
    from cambrian.quickstart_lib.evaluate import evaluate_in_fresh_process

    examples = example_answers(model, tokenizer, test_world, out, random.Random(0), smoke)  # fp32, as chat answers
    del model  # the evaluation loads the saved one in a fresh process (evaluate.py says why)
    if not on_cpu:
        torch.cuda.empty_cache()
    evaluation_start = time.perf_counter()
    scores = evaluate_in_fresh_process(model_dir, test_bench, out / "eval", plan.eval_easyvqa, plan.eval_cvbench,
                                       eval_dtype, device.type, threads, log=say)
    eval_timing["measured_seconds"] = time.perf_counter() - evaluation_start

    say("[6/6] writing the report")
    from cambrian.quickstart_lib.report import named_yes_no, write_report

    report = {
        "smoke": smoke, "budget_seconds": budget_s, "wall_seconds": time.perf_counter() - start,
        "plan": asdict(plan), "stage2_mix": mix, "stage2_first_mix": stage2.first_mix,
        "stage2_first_share": stage2.first_share, "stage2_force_readout": stage2.force_readout,
        "stage2_batch_sizes": {"short": batch_size, "long": long_batch_size},
        "device": str(device), "cpu_threads": threads, "thread_probe_s": probe, "bf16_matmul_probe_s": matmul,
        "kept_freed_memory": kept_freed_memory,
        "training_compute": "bf16 autocast" if bf16 else "fp32",
        "model": {"path": str(model_dir), "parameters_millions": millions, "summary": (
            "Towers: EfficientNet-Lite0 (packaged ImageNet weights, frozen) stages 3+4 at 256 px on a 16x16 grid and "
            "at 128 px on an 8x8 grid; SVA connector L=4 (16 visual tokens + 4 newline tokens), D=2, G=1, in-LLM "
            "aggregation after decoder layers 0, 10, 20, BatchNorm before the projector; "
            + ("a coordinate readout (4 soft-word tokens: a class, left / right, above / below, a number; each "
               f"{READOUT_TOKENS} times after each image's grid, fitted on Count / Depth / Distance / Relation "
               "answers); " if readout else "")
            + "LLM SmolLM2-135M-Instruct; chat template without the default system turn.")},
        "data": {"counts": counts, "train_world": str(train_world), "test_world": str(test_world),
                 "readout_world": str(readout_world[0]) if readout else None, "test_bench": str(test_bench)},
        "training": {"stages": [log.to_dict() for log in logs], "coordinate_readout": readout_log,
                     "visual_token_spread": spread},
        "evaluation": scores, "evaluation_dtype": eval_dtype, "evaluation_timing": eval_timing,
        "examples": examples,
        "chat_command": f"cambrian chat --model {model_dir} --image {examples[0]['image'] if examples else 'IMG'}",
    }
    report["targets"] = targets(report)
    report["notes"] = notes
    report["wall_seconds"] = time.perf_counter() - start
    files = write_report(report, out)
    minutes = report["wall_seconds"] / 60
    say(f"done in {minutes:.1f} min (budget {budget_s / 60:g} min{', smoke' if smoke else ''})")
    for bench, e in scores.items():
        say(f"  {bench:8s} vision on {e['vision_on']:.1f}%  vision off {e['vision_off']:.1f}%  "
            f"random {e['random']:.1f}%  (n={e['n']})")
    if line := named_yes_no(scores.get("easyvqa", {})):
        say(f"           {line}")
    say(f"  model:  {model_dir}")
    say(f"  report: {files['markdown']} (+ report.json, {', '.join(report['plots'].values())})")
    say(f"  chat:   {report['chat_command']}")
    for note in notes:
        say(f"  note:   {note}")
    return report


def training_notes(stage2, budget_s: float, smoke: bool, batch_size: int, readout: bool = False) -> list[str]:
    """What a user should know when stage 2 got fewer steps than a measured run that learned the yes/no comparison,
    or (--readout) fewer CV-Bench conversations than one that read CV-Bench (a slower machine)."""
    steps, measured = len(stage2.steps), STAGE2_MEASURED.get(batch_size)
    if smoke or not steps:
        return []
    notes = readout_note(stage2, budget_s, batch_size) if readout else []
    if measured is None or steps >= measured.steps_learned:
        return notes
    per_step = stage2.seconds[-1] / steps
    minutes = math.ceil((budget_s + (measured.steps_learned - steps) * per_step) / 60)
    (fewest, most), (low, high) = measured.steps, measured.easyvqa
    return [f"stage 2 got {steps} steps of batch {batch_size} ({per_step:.1f} s each), fewer than the "
            f"{measured.steps_learned} with which a measured run learned easy-VQA's yes/no comparison with the image "
            f"(runs of this recipe: {fewest}-{most} steps, easy-VQA {low:.1f}-{high:.1f} %; docs/quickstart.md): its "
            "yes/no answers may come from the questions' wording (the evaluation's line on the yes/no questions that "
            f"name the image's own colour or shape tells). About {minutes} minutes (--budget-minutes {minutes}) would "
            f"give this machine {measured.steps_learned}."] + notes


def readout_note(stage2, budget_s: float, batch_size: int) -> list[str]:
    """--readout: a note when stage 2 had fewer CV-Bench conversations than the fewest of a run that read CV-Bench,
    with the budget that would give them at this run's pace in its CV-Bench phase."""
    read_batches, read_size = READOUT_CVBENCH_READ
    needed, batches = read_batches * read_size, stage2.kind.count("cvbench")
    if batches * batch_size >= needed:
        return []
    said = (f"stage 2 got {batches} CV-Bench batches of {batch_size} conversations ({batches * batch_size}); the "
            f"--readout runs that read CV-Bench (66.6-68.7 %) had {read_batches} or more of {read_size} ({needed} or "
            "more; 30 minutes on a CPU with fast bf16), and one with 64 of 8 stayed at its vision-off score "
            "(docs/quickstart.md, session 20)")
    if not batches:
        return [said + ". CV-Bench is not read yet: give it a longer --budget-minutes."]
    first = stage2.kind.index("cvbench")  # the CV-Bench phase begins about here
    began = stage2.seconds[first - 1] if first else 0.0
    per_conversation = (stage2.seconds[-1] - began) / (batches * batch_size)
    minutes = math.ceil((budget_s + (needed - batches * batch_size) * per_conversation) / 60)
    return [f"{said}. About {minutes} minutes (--budget-minutes {minutes}) would give this machine {needed}."]


def targets(report: dict) -> dict:
    """The issue's acceptance figures (scores are percentages, as the eval harness reports them)."""
    easy, cvb = report["evaluation"]["easyvqa"], report["evaluation"]["cvbench"]
    return {
        "wall time <= 15 min": {"value": f"{report['wall_seconds'] / 60:.1f} min",
                                "met": report["wall_seconds"] <= 15 * 60},
        "easy-VQA >= 90%": {"value": f"{easy['vision_on']:.1f}%", "met": easy["vision_on"] >= 90},
        "CV-Bench >= 60% and >= 15 points above vision off and random": {
            "value": f"{cvb['vision_on']:.1f}% (off {cvb['vision_off']:.1f}%, random {cvb['random']:.1f}%)",
            "met": cvb["vision_on"] >= 60 and cvb["vision_on"] - max(cvb["vision_off"], cvb["random"]) >= 15},
    }


def example_answers(model, tokenizer, test_world: Path, out: Path, rng, smoke: bool) -> list[dict]:
    """Open and one-word answers about held-out images (easy-VQA test, test world), for the report."""
    import easy_vqa

    from cambrian.cvbench import load_world
    from cambrian.serve.cli import answer_once

    questions, answers, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    color = next(k for k, q in enumerate(questions) if q.startswith("what color"))
    scene = load_world(test_world)[0]
    asks = [(paths[image_ids[color]], "Describe this image.", "(open question)"),
            (paths[image_ids[color]], "What color is the shape? Answer with a single word.", answers[color]),
            (str(scene.path), "Describe this image.", scene.caption())]
    limit = 24 if smoke else 128
    return [{"image": str(image), "question": q, "answer": answer_once(model, tokenizer, image, q, limit),
             "truth": truth} for image, q, truth in asks]
