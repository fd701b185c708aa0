"""Can stage 1 teach the connector to say a 3D CV-Bench answer? (issue 7)

`cvbench_oracle.py --tokens answer` showed that the LLM learns to pick the letter of the option its visual tokens
name. For Depth and Distance the answer is fixed by the image alone (the boxed objects are drawn on it; the question
only names them), so the connector could in principle be taught, in stage 1 and without the LLM, to put its tokens
on the right option's words: the class word of the closer object. This probe measures how well it learns that.

From a fresh cambrian-nano it runs the quickstart's stage 1 (`align.align_connector`: word alignment, frozen towers,
connector alone) on the Depth/Distance train questions of a finished quickstart run, each image aligned to the words
of its right option ("beach ball"), optionally mixed with the run's own alignment captions (`--captions`). Then, on
the train and the held-out test questions, a question counts as right when the image's visual tokens lie nearer (mean
cosine over the L x L tokens) to the LLM's embedding of the right option's first word than to the other option's.

`--relate-layers N` adds N self-attention layers over the L x L aggregated queries before the projector (cells see
each other; the SVA's queries each read one window), to see whether a connector that relates regions does better.
That block is the probe's own, not part of the model. `--train-world N` trains on the questions of a new train world
of N images (rendered and built once under `--out`) instead of the run's 300-image one; the test questions stay the
run's test world's. `--fine-view 2,3@32` puts the 256 px tower on EfficientNet stages 2 and 3 (strides 8 and 16)
on a 32 x 32 grid instead of stages 3 and 4 on 16 x 16, to see whether the drawn boxes' thin outlines are read better;
`--query-side 8` gives the SVA L = 8 (64 visual tokens) instead of 4. `--target colour` aligns each image to the colour
of the box drawn around the right option's object ("red", "blue", "green") instead of its class word: the comparison
alone, without recognising the object. `--tasks Relation` takes the Relation questions instead (their answer, "left",
"right", "above" or "below", is a word the image alone gives in most of them: `cvbench_box_rules.py`).

    .venv/bin/python benchmarks/cvbench_answer_alignment.py --run runs/quickstart [--steps 500] [--captions] \\
        [--relate-layers 0] [--train-world 2500] [--fine-view 2,3@32] [--query-side 8] [--score-train 2000] \\
        [--target word|colour] [--tasks Depth,Distance] [--per-task N] [--then-cvbench SECONDS] \\
        [--llm-from MODEL_DIR] [--flush-denormal] [--threads 2] [--out /tmp/cvbench-answer-alignment]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

TASKS = ("Depth", "Distance")


def box_colours(question: str, choices: list[str]) -> list[str]:
    """The colour of the box drawn around each choice's object, read off the question ("the tent (highlighted by a
    blue box)")."""
    from cambrian.cvbench.questions import boxed_objects

    colour = boxed_objects(question)
    return [colour[choice] for choice in choices]


def answer_items(bench_dir: Path, target: str = "word", tasks: tuple[str, ...] = TASKS
                 ) -> list[tuple[str, list[str], str, str]]:
    """(image path, choices, right choice, task) for every question of `tasks` in a bench. With target "colour" the
    choices are the colours of the options' boxes ("red", "blue") instead of their class words (Depth, Distance)."""
    items = []
    for line in open(bench_dir / "test.jsonl"):
        record = json.loads(line)
        if record["task"] in tasks:
            choices = record["choices"]
            if target == "colour":
                choices = box_colours(record["question"], choices)
            right = choices["ABCDEF".index(record["answer"].strip("()"))]
            items.append((str(bench_dir / record["filename"]), choices, right, record["task"]))
    return items


class RelateThenNorm(nn.Module):
    """Self-attention over an image's L x L aggregated queries, then the SVA's own BatchNorm (if it has one). It takes
    the place of `query_norm`, which the SVA calls on the queries (I * L * L, C) right before the projector."""

    def __init__(self, width: int, cells: int, layers: int, norm: nn.Module | None):
        super().__init__()
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, 0.0, batch_first=True, norm_first=True)
        self.relate = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pos = nn.Parameter(torch.randn(cells, width) * 0.02)
        self.norm = norm

    def forward(self, queries: torch.Tensor, images: int) -> torch.Tensor:
        x = self.relate(queries.view(images, -1, queries.shape[-1]) + self.pos).flatten(0, 1)
        return self.norm(x, images) if self.norm is not None else x


def add_relate_layers(connector, layers: int) -> None:
    """N pre-norm self-attention layers over the L x L aggregated queries (all G groups), before the BatchNorm."""
    width = connector.config.hidden_size * connector.config.num_groups
    connector.query_norm = RelateThenNorm(width, connector.config.query_side ** 2, layers, connector.query_norm)


def new_train_bench(out: Path, images: int, seed: int) -> Path:
    """A CV-Bench built from a new rendered world of `images` images (the quickstart's size), kept under `out`."""
    from cambrian.cvbench import render_world
    from cambrian.quickstart_lib.data import WORLD_SIZE, build_bench

    world = out / f"world-seed{seed}-n{images}"
    if not (world / "annotations" / "omni3d.json").exists():
        render_world(world, n=images, seed=seed, size=WORLD_SIZE, workers=2)
    bench = out / f"cvbench-seed{seed}-n{images}"
    build_bench(world, bench)
    return bench


def build_variant(fine_view: str | None = None, query_side: int | None = None):
    """cambrian-nano with its 256 px tower on other EfficientNet stages and grid (fine_view "2,3@32") and/or another
    L (query_side: L x L visual tokens); the rest unchanged."""
    from dataclasses import asdict

    from cambrian.models.builder import build_model
    from cambrian.models.towers.registry import resolve_tower
    from cambrian.quickstart_lib.model import quickstart_config

    config = quickstart_config()
    if fine_view is not None:
        stages, grid = fine_view.split("@")
        fine = resolve_tower(config.towers[0]["name"], stages=[int(s) for s in stages.split(",")],
                             grid_size=int(grid))
        config.towers[0] = asdict(fine)
    if query_side is not None:
        config.connector["query_side"] = query_side
    return build_model(config)


@torch.no_grad()
def answer_accuracy(model, tokenizer, items, chunk: int = 256) -> dict[str, float]:
    """Per task: share of questions whose tokens lie nearer the right option's first word than the other's. Images go
    through the towers and the connector `chunk` at a time (all 11,443 of an 8,000-image world at once ran out of
    24 GB)."""
    from cambrian.quickstart_lib.align import tower_grids, word_token_ids

    embeddings = model.language_model.get_input_embeddings().weight.detach()
    tokens = []
    for start in range(0, len(items), chunk):
        grids, sizes = tower_grids(model, [path for path, *_ in items[start:start + chunk]])
        tokens.append(F.normalize(model.connector(model.connector.prepare(grids, sizes)).flatten(1, 2).float(),
                                  dim=-1))
    tokens = torch.cat(tokens)
    right: dict[str, list[bool]] = {}
    for k, (_, choices, answer, task) in enumerate(items):
        words = F.normalize(embeddings[word_token_ids(tokenizer, [c.split()[0] for c in choices])].float(), dim=-1)
        nearest = choices[int((tokens[k] @ words.T).mean(0).argmax())]
        right.setdefault(task, []).append(nearest == answer)
    return {task: round(100 * sum(hits) / len(hits), 1) for task, hits in sorted(right.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `cambrian quickstart --out` folder")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--captions", action="store_true", help="mix in the run's own alignment captions")
    parser.add_argument("--relate-layers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    parser.add_argument("--train-world", type=int, default=None, help="train on a new world of this many images")
    parser.add_argument("--world-seed", type=int, default=11)
    parser.add_argument("--query-side", type=int, default=None, help="L (L x L visual tokens) instead of 4")
    parser.add_argument("--score-train", type=int, default=2000, help="about this many train questions scored")
    parser.add_argument("--fine-view", default=None, metavar="STAGES@GRID",
                        help="the 256 px tower's EfficientNet stages and grid instead of 3,4@16, e.g. 2,3@32 "
                             "(stride 8: a drawn box's 2 px outline on a finer grid)")
    parser.add_argument("--target", choices=("word", "colour"), default="word",
                        help="align each image to its right option's class word, or to the colour of the box drawn "
                             "around it (red / blue / green: the comparison without naming the object)")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="CV-Bench tasks whose questions are aligned and scored: Depth, Distance and Relation "
                             "(its answer, left / right / above / below, is a direction word)")
    parser.add_argument("--per-task", type=int, default=None,
                        help="at most this many train questions per task (peak RSS measured: 8.5 GB with 5,420 "
                             "images, 11.3 GB with 8,130, 15.0 GB with 11,443)")
    parser.add_argument("--then-cvbench", type=float, default=None, metavar="SECONDS",
                        help="then train connector + LLM on the run's CV-Bench train questions (letter answers, as "
                             "the quickstart's stage 2 does) for SECONDS, and score the test world's CV-Bench with "
                             "vision on and off; with --train-world, the run's train questions of --tasks join the "
                             "alignment")
    parser.add_argument("--llm-from", type=Path, default=None, metavar="MODEL_DIR",
                        help="with --then-cvbench: start stage 2 from this saved model's LLM (a quickstart's, which "
                             "has learned easy-VQA) instead of the pretrained SmolLM2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/cvbench-answer-alignment"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)

    from cambrian.quickstart_lib.align import AlignConfig, align_connector

    train_bench = args.run / "data" / "cvbench-train"
    if args.train_world:
        train_bench = new_train_bench(args.out, args.train_world, args.world_seed)
    if args.llm_from is not None and args.then_cvbench is None:
        parser.error("--llm-from sets the LLM that --then-cvbench trains; give --then-cvbench SECONDS too")
    tasks = tuple(args.tasks.split(","))
    if args.target == "colour" and "Relation" in tasks:
        parser.error("--target colour needs boxed options: Depth and Distance, not Relation")
    train = answer_items(train_bench, args.target, tasks)
    if args.per_task:
        train = [item for task in tasks for item in [i for i in train if i[3] == task][:args.per_task]]
    if args.then_cvbench is not None and args.train_world:
        train += answer_items(args.run / "data" / "cvbench-train", args.target, tasks)
    test = answer_items(args.run / "data" / "cvbench-test", args.target, tasks)
    captions = []
    if args.captions:
        with open(args.run / "data" / "alignment.jsonl") as f:
            captions = [(row["image"], row["words"]) for row in map(json.loads, f)]
    model, tokenizer = build_variant(args.fine_view, args.query_side)
    if args.relate_layers:
        add_relate_layers(model.connector, args.relate_layers)
    items = captions + [(path, answer.split()) for path, _, answer, _ in train]
    start = time.perf_counter()

    def progress(step, loss, kind, elapsed):
        if step % 100 == 0:
            print(f"  step {step}: loss {loss:.3f}, {elapsed:.0f} s", flush=True)

    log = align_connector(model, tokenizer, items, AlignConfig(seconds=float("inf"), max_steps=args.steps),
                          progress=progress)
    print(f"stage 1: {args.steps} steps over {len(items)} images ({len(train)} questions of {args.tasks}, "
          f"{len(captions)} captions), relate layers {args.relate_layers}: {time.perf_counter() - start:.0f} s, loss "
          f"{log.loss[0]:.3f} -> {log.loss[-1]:.3f}")
    # the train score on --score-train of its questions, spread over them (the world's questions come task by task)
    for name, split in (("train", train[::max(1, len(train) // args.score_train)]), ("test", test)):
        scores = answer_accuracy(model, tokenizer, split)
        print(f"{name:5s} ({len(split)} questions): " + ", ".join(f"{t} {v:.1f} %" for t, v in scores.items()))
    if args.then_cvbench is not None:
        if args.llm_from is not None:
            from cambrian.models.builder import load_model

            model.language_model.load_state_dict(load_model(args.llm_from)[0].language_model.state_dict())
        cvbench_end_to_end(model, tokenizer, args.run, args.then_cvbench, args.out)


def cvbench_end_to_end(model, tokenizer, run: Path, seconds: float, out: Path) -> None:
    """Stage 2 on CV-Bench alone from the aligned connector and the model's LLM (the pretrained SmolLM2, or the one
    --llm-from loaded), as `cvbench_oracle.py` trains it (connector + LLM at 1e-4, batch 8, the word embedding
    frozen), then the test world's official score with vision on and off."""
    from cambrian.eval.runner import EvalConfig, run_eval
    from cambrian.quickstart_lib import data as qdata
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast
    from cambrian.quickstart_lib.model import use_short_template
    from cambrian.quickstart_lib.train import StageConfig, train_stage

    use_short_template(tokenizer)
    data = run / "data"
    questions = qdata.world_examples(next(data.glob("world-train-*")), data / "cvbench-train", 0, 0, seed=0,
                                     turns_per_image=3)["cvbench"]
    stage = StageConfig("stage 2 (CV-Bench only)", seconds, {"cvbench": 1.0}, 1e-4, 1e-4, batch_size=8,
                        bf16=bf16_matmul_is_fast(), train_embedding=False)
    start = time.perf_counter()
    log = train_stage(model, tokenizer, {"cvbench": questions}, stage)
    print(f"stage 2: {len(log.steps)} CV-Bench batches in {time.perf_counter() - start:.0f} s, loss (mean of 10) "
          f"{statistics.fmean(log.loss[:10]):.3f} -> {statistics.fmean(log.loss[-10:]):.3f}", flush=True)
    for vision in (True, False):
        config = EvalConfig(model=str(run / "model"), benches=[f"cvbench:{data / 'cvbench-test'}"],
                            out=out / ("eval" if vision else "eval-novision"), batch_size=16, vision=vision)
        result = run_eval(config, model=model, tokenizer=tokenizer, log=lambda *a: None).results[0]
        per_task = ", ".join(f"{k} {v:.1f}" for k, v in sorted(result.metrics.get("per_task", {}).items()))
        print(f"CV-Bench, vision {'on' if vision else 'off'}: {result.score:.1f} % ({per_task})", flush=True)


if __name__ == "__main__":
    main()
