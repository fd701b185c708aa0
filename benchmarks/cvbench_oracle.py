"""Could cambrian-nano's LLM learn CV-Bench on this CPU if its visual tokens said what is where? (issue 7)

The quickstart's CV-Bench score equals the vision-off model's (docs/quickstart.md). Stage 1 aligns every visual
token to the words of what the *image* shows, not to *where*; this probe asks whether the LLM could use position if
the tokens had it. With `--tokens oracle` the connector's L x L tokens are replaced by the LLM's own input embeddings
of the words in each cell: the class words of the objects whose box centre lies in the cell, the colour of a drawn
box ("red", "blue", "green") whose centre lies there, else the ground ("grass"). Several words: the mean of their
unit embeddings, at the embeddings' mean norm. The in-LLM aggregation is off, so nothing but these tokens carries the
image. `--cell-position words` adds to every cell the words of where it lies ("top" / "upper" / "lower" / "bottom",
"far left" / "left" / "right" / "far right"): the token then says its place in the image, which otherwise only its
place in the sequence tells the LLM (the SVA gives every cell the same learned query). `--tokens answer` puts the
words of the question's right option in every cell ("sofa", "left", "2"): the image then says the answer, and
what is left to learn is to find that word among the options and answer its letter.
`--tokens answer-box` is the same except where the answer is a boxed object (Depth, Distance): there the cells hold
the colour of its box, so the LLM must also find which object the question says that box marks.
`--tokens vision` is the real model, as a control. `--tokens text` keeps the real tokens and starts every prompt with
the oracle's what-and-where in words, one clause an object ("In the image: a sofa in the red box at the upper far
left; a traffic cone at the upper right."): the same cells, but in the text stream, word by word, where the oracle
blends each cell's words into one token.

`--answers letter` asks CV-Bench's own questions (options, answered with a letter); `--answers word` asks the same
questions without the options, answered with the right option's text ("left", "traffic cone", "2"), which takes the
step from a name to its letter away. Word answers are scored by the first answer token (teacher-forced, argmax), per
task. A uniform guess scores as with letters (two names or directions, four counts), but counts are not uniform:
most are "1", so always answering "1" beats 25 %.

It starts from a finished quickstart run (`--run`, the folder `cambrian quickstart --out` wrote: its model, its
CV-Bench train questions and its test world), trains as stage 2 does (connector + LLM, AdamW, batch 8, warmup and
cosine, bf16 autocast where the CPU has AMX; the word embedding frozen unless `--train-embedding`) on the CV-Bench
train questions alone, and scores the test world's CV-Bench with the evaluation harness (official score) after each
of `--phases` phases of `--seconds` each (each phase a fresh optimizer, warmup and cosine). `--tasks` keeps some tasks'
questions only, for training and scoring; `--score-train` also scores the train questions (does the LLM fit them?).

    .venv/bin/python benchmarks/cvbench_oracle.py --run runs/quickstart \\
        [--tokens oracle|answer|answer-box|vision|text] [--cell-position none|words] [--seconds 200] \\
        [--answers letter] [--tasks Relation,Depth] [--score-train] [--phases 3] [--llm-lr 1e-4] [--top-layers N] \\
        [--train-embedding] [--force-readout] [--seed 0] [--threads 2] [--out /tmp/cvbench-oracle]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

BOX_COLOURS = ("red", "blue", "green")  # the order CV-Bench's drawn boxes come in (cambrian/cvbench/build.py)


def cell_of(box, size: tuple[int, int], side: int) -> tuple[int, int]:
    """(row, column) of the box's centre on a side x side grid over an image of size (width, height)."""
    x0, y0, x1, y1 = box
    width, height = size
    return min(side - 1, int((y0 + y1) / 2 / height * side)), min(side - 1, int((x0 + x1) / 2 / width * side))


def cell_words(objects: list[tuple[str, list[float]]], drawn: list[list[float]], ground: str,
               size: tuple[int, int], side: int) -> list[list[tuple[str, ...]]]:
    """The words of each cell: objects' class words and drawn boxes' colours by box centre; the ground elsewhere."""
    cells: list[list[set[str]]] = [[set() for _ in range(side)] for _ in range(side)]
    for name, box in objects:
        row, col = cell_of(box, size, side)
        cells[row][col].update(name.split())
    for colour, box in zip(BOX_COLOURS, drawn, strict=False):
        row, col = cell_of(box, size, side)
        cells[row][col].add(colour)
    return [[tuple(sorted(c)) or tuple(ground.split()) for c in row] for row in cells]


ROW_WORDS = ("top", "upper", "lower", "bottom")
COLUMN_WORDS = (("far", "left"), ("left",), ("right",), ("far", "right"))


def position_words(row: int, col: int, side: int) -> tuple[str, ...]:
    """Words that say where a cell of a side x side grid lies: its row ("top" .. "bottom"), its column ("far left" ..
    "far right"), each picked by the cell centre's share of the image."""
    return (ROW_WORDS[int((row + 0.5) / side * len(ROW_WORDS))],
            *COLUMN_WORDS[int((col + 0.5) / side * len(COLUMN_WORDS))])


def with_position_words(cells: dict[str, list]) -> dict[str, list]:
    """Every cell's words and the words of where it lies."""
    return {key: [[words + position_words(r, c, len(rows)) for c, words in enumerate(row)]
                  for r, row in enumerate(rows)] for key, rows in cells.items()}


def world_objects(world_dir: Path, min_visibility: float) -> dict[str, list[tuple[str, list[float]]]]:
    """image file name -> (class name, tight 2D box) of each object at least `min_visibility` visible."""
    annotations = json.loads((world_dir / "annotations" / "omni3d.json").read_text())
    file_of = {im["id"]: Path(im["file_path"]).name for im in annotations["images"]}
    objects: dict[str, list] = {}
    for a in annotations["annotations"]:
        if a["visibility"] >= min_visibility:
            objects.setdefault(file_of[a["image_id"]], []).append((a["category_name"], a["bbox2D_tight"]))
    return objects


def scene_text(objects: list[tuple[str, list[float]]], drawn: list[list[float]], size: tuple[int, int],
               side: int) -> str:
    """The oracle's cells in words, one clause per object, left to right: its class, the drawn box it is in, where
    its box centre lies ("In the image: a sofa in the red box at the upper far left; a traffic cone at the upper
    right.")."""
    # a drawn box marks the object whose tight box it equals. Relation's boxes come from the world's coco.json, and a
    # few differ from omni3d.json's (16 of 210 train, 3 of 50 test questions in session 17's run): those scenes do
    # not say "in the red box"
    boxed = {tuple(box): colour for colour, box in zip(BOX_COLOURS, drawn, strict=False)}
    clauses = []
    for name, box in sorted(objects, key=lambda o: (o[1][0] + o[1][2]) / 2):
        row, col = cell_of(box, size, side)
        colour = boxed.get(tuple(float(v) for v in box))
        clauses.append(f"a {name}{f' in the {colour} box' if colour else ''} at the "
                       f"{' '.join(position_words(row, col, side))}")
    return f"In the image: {'; '.join(clauses)}." if clauses else "In the image: nothing."


def bench_copy(bench_dir: Path, out: Path, tasks: list[str] | None = None, world_dir: Path | None = None,
               side: int = 4, min_visibility: float = 0.25) -> Path:
    """A copy of a CV-Bench folder (official layout): only the questions of `tasks` when given; with `world_dir`
    (the world the bench was built from), every prompt starts with the question's `scene_text` on a side x side grid:
    the oracle's what-and-where as words in the text stream, not blended into one token a cell."""
    from dataclasses import replace

    from cambrian.cvbench import load_cvbench
    from cambrian.cvbench.layout import write_cvbench

    objects = world_objects(world_dir, min_visibility) if world_dir else {}
    records = []
    for record in load_cvbench(bench_dir):
        if tasks and record.task not in tasks:
            continue
        question, prompt = record.question, record.prompt
        if world_dir:  # the question too: `--answers word` asks it without the options
            scene = scene_text(objects.get(record.source_filename, []), record.bbox or [], record.image().size, side)
            question, prompt = f"{scene}\n{question}", f"{scene}\n{prompt}"
        image = record.image_bytes or (record.root / record.filename).read_bytes()
        records.append(replace(record, question=question, prompt=prompt, image_bytes=image))
    if not records:
        raise ValueError(f"{bench_dir}: no questions of the tasks {tasks}")
    return write_cvbench(out, records)


def image_key(image) -> str:
    return hashlib.md5(image.convert("RGB").tobytes()).hexdigest()


def bench_cells(bench_dir: Path, world_dir: Path, side: int, min_visibility: float = 0.25) -> dict[str, list]:
    """image key -> cell words, for every question image of a CV-Bench built from a rendered world."""
    from cambrian.cvbench import load_cvbench, load_world

    objects = world_objects(world_dir, min_visibility)
    grounds = {w.path.name: w.scene.ground for w in load_world(world_dir)}
    cells = {}
    for record in load_cvbench(bench_dir):
        image = record.image()
        cells[image_key(image)] = cell_words(objects.get(record.source_filename, []), record.bbox or [],
                                             grounds[record.source_filename], image.size, side)
    return cells


def answer_box_colour(question: str, answer: str) -> str | None:
    """The colour of the box the question draws around the object named `answer` (Depth, Distance), else None."""
    from cambrian.cvbench.questions import boxed_objects

    return boxed_objects(question).get(answer)


def answer_cells(bench_dir: Path, side: int, box_colour: bool = False) -> dict[str, list]:
    """image key -> every cell holding the words of the question's right option ("sofa", "left", "2"); with
    `box_colour`, where the right option is a boxed object, the colour of its box instead ("red", "blue")."""
    from cambrian.cvbench import load_cvbench

    cells = {}
    for record in load_cvbench(bench_dir):
        answer = record.answer_text
        words = tuple(((box_colour and answer_box_colour(record.question, answer)) or answer).split())
        key = image_key(record.image())
        if key in cells and cells[key][0][0] != words:
            raise ValueError(f"{bench_dir}: question {record.idx} shares its image with another whose answer differs")
        cells[key] = [[words] * side for _ in range(side)]
    return cells


def readout_cells(bench_dir: Path, side: int, predictions: dict[str, str] | None = None) -> dict[str, list]:
    """image key -> every cell holding the words of the right option (train) or of what `coordinate_readout.py`
    answered (`predictions`, test) for Depth, Distance and Relation; Count's cells hold "image", as the readout does
    not answer it."""
    from cambrian.cvbench import load_cvbench

    cells = {}
    for record in load_cvbench(bench_dir):
        key = image_key(record.image())
        if record.task == "Count":
            words = ("image",)
        elif predictions is None:
            words = tuple(record.answer_text.split())
        elif key in predictions:
            words = tuple(predictions[key].split())
        else:
            raise ValueError(f"{bench_dir}: the readout's answers have no entry for question {record.idx} "
                             f"({record.task}); write them with coordinate_readout.py --predictions")
        cells[key] = [[words] * side for _ in range(side)]
    return cells


def use_oracle_tokens(model, tokenizer, cells: dict[str, list]) -> None:
    """The connector's output becomes the embeddings of each cell's words for the images `image_inputs` is given."""
    from cambrian.quickstart_lib.readout import word_tokens

    unique = sorted({words for rows in cells.values() for row in rows for words in row})
    token = dict(zip(unique, word_tokens(model, tokenizer, [" ".join(words) for words in unique]), strict=True))
    grids = {key: torch.stack([torch.stack([token[w] for w in row]) for row in rows]) for key, rows in cells.items()}
    current: list[torch.Tensor] = []
    image_inputs = model.image_inputs

    def remembering_inputs(images):
        current[:] = [grids[image_key(im)] for im in images]
        return image_inputs(images)

    model.image_inputs = remembering_inputs
    model.connector.forward = lambda vision: torch.stack(current).to(model.device)
    model.in_llm_layers = []  # no in-LLM aggregation: the tokens alone carry the image


def word_items(bench_dir: Path) -> list[tuple[str, str, object, str]]:
    """(question without its options, the right option's text, image, task) for every question of a bench."""
    from cambrian.cvbench import load_cvbench
    from cambrian.data.system_prompts import SINGLE_WORD

    return [(f"{r.question}\n{SINGLE_WORD}", r.answer_text,
             r.image_bytes or (r.root or bench_dir) / r.filename, r.task) for r in load_cvbench(bench_dir)]


def word_questions(bench_dir: Path, turns_per_image: int = 3) -> list:
    """Training conversations of word questions, packed by image as the quickstart packs CV-Bench's."""
    import random

    from cambrian.quickstart_lib.data import packed_by_image

    items = [(q, a, image) for q, a, image, _ in word_items(bench_dir)]
    return packed_by_image("cvbench-words", "cvbench", items, turns_per_image, random.Random(0))


@torch.no_grad()
def first_token_accuracy(model, tokenizer, bench_dir: Path) -> dict:
    """Per task and overall (mean of tasks): share of word questions whose first answer token is right."""
    from cambrian.constants import IGNORE_INDEX
    from cambrian.quickstart_lib.data import _qa
    from cambrian.quickstart_lib.train import collate, supervised_logits

    items = word_items(bench_dir)
    right: dict[str, list[bool]] = {}
    for start in range(0, len(items), 32):
        chunk = items[start:start + 32]
        examples = [_qa(f"word-{start + k}", "cvbench", q, a, image) for k, (q, a, image, _) in enumerate(chunk)]
        logits, targets = supervised_logits(model, collate(model, tokenizer, examples, {}))
        first = (targets != IGNORE_INDEX).float().argmax(dim=1)
        rows = torch.arange(len(chunk))
        hits = (logits[rows, first].argmax(-1) == targets[rows, first]).tolist()
        for (*_, task), hit in zip(chunk, hits, strict=True):
            right.setdefault(task, []).append(hit)
    per_task = {task: round(100 * sum(h) / len(h), 1) for task, h in sorted(right.items())}
    return {"score": round(sum(per_task.values()) / len(per_task), 1), "per_task": per_task}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `cambrian quickstart --out` folder")
    parser.add_argument("--tokens", choices=("oracle", "answer", "answer-box", "vision", "text", "readout"),
                        default="oracle",
                        help="text: the real visual tokens, and every prompt starts with the oracle's cells in words; "
                             "readout: the right option's words on train, --readout's answers on test")
    parser.add_argument("--readout", type=Path, default=None,
                        help="with --tokens readout: coordinate_readout.py --predictions's file")
    parser.add_argument("--cell-position", choices=("none", "words"), default="none",
                        help="words: each oracle cell also holds the words of where it lies (\"top\", \"far left\")")
    parser.add_argument("--answers", choices=("letter", "word"), default="letter")
    parser.add_argument("--seconds", type=float, default=200.0, help="training time per phase")
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--llm-lr", type=float, default=1e-4)
    parser.add_argument("--connector-lr", type=float, default=1e-4)
    parser.add_argument("--train-embedding", action="store_true",
                        help="train the LLM's word embedding too (the quickstart's stage 2 keeps it frozen)")
    parser.add_argument("--top-layers", type=int, default=None,
                        help="train only the LLM's top N decoder layers (and the in-LLM SVA blocks among them)")
    parser.add_argument("--force-readout", action="store_true",
                        help="teacher forcing: in training the readout's tokens say the right answers' words (the "
                             "scores use the readout's own)")
    parser.add_argument("--tasks", type=lambda v: v.split(","), default=None,
                        help="train and score only these tasks' questions (e.g. Relation,Depth)")
    parser.add_argument("--score-train", action="store_true",
                        help="also score the train questions after each phase (does the LLM fit them?)")
    parser.add_argument("--seed", type=int, default=0, help="phase k draws its batches with seed + k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cvbench-oracle"))
    args = parser.parse_args()
    if (args.tokens == "readout") != (args.readout is not None):
        parser.error("--tokens readout takes the test answers from --readout FILE, and --readout needs it")
    if args.cell_position != "none" and args.tokens != "oracle":
        parser.error("--cell-position adds words to the oracle's cells: use it with --tokens oracle")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from cambrian.eval.runner import EvalConfig, run_eval
    from cambrian.models.builder import load_model
    from cambrian.quickstart_lib import data as qdata
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast
    from cambrian.quickstart_lib.train import StageConfig, train_stage

    data = args.run / "data"
    train_world, test_world = next(data.glob("world-train-*")), next(data.glob("world-test-*"))
    train_bench, test_bench = data / "cvbench-train", data / "cvbench-test"
    model, tokenizer = load_model(args.run / "model")
    if args.tokens == "oracle":
        cells = {**bench_cells(train_bench, train_world, model.query_side),
                 **bench_cells(test_bench, test_world, model.query_side)}
        use_oracle_tokens(model, tokenizer, with_position_words(cells) if args.cell_position == "words" else cells)
    elif args.tokens in ("answer", "answer-box"):
        box = args.tokens == "answer-box"
        use_oracle_tokens(model, tokenizer, {**answer_cells(train_bench, model.query_side, box),
                                             **answer_cells(test_bench, model.query_side, box)})
    elif args.tokens == "readout":
        predictions = json.loads(args.readout.read_text())
        use_oracle_tokens(model, tokenizer, {**readout_cells(train_bench, model.query_side),
                                             **readout_cells(test_bench, model.query_side, predictions)})
    if args.tokens == "text" or args.tasks:
        text = args.tokens == "text"
        train_bench = bench_copy(train_bench, args.out / "bench-train", args.tasks, train_world if text else None,
                                 model.query_side)
        test_bench = bench_copy(test_bench, args.out / "bench-test", args.tasks, test_world if text else None,
                                model.query_side)
    if args.answers == "word":
        questions = word_questions(train_bench)
    else:
        questions = qdata.world_examples(train_world, train_bench, 0, 0, seed=0, turns_per_image=3)["cvbench"]

    def score(tag: str, bench: Path) -> dict:
        if args.answers == "word":
            return first_token_accuracy(model, tokenizer, bench)
        config = EvalConfig(model=str(args.run / "model"), benches=[f"cvbench:{bench}"], out=args.out / tag,
                            batch_size=16, vision=True)
        result = run_eval(config, model=model, tokenizer=tokenizer, log=lambda *a: None).results[0]
        return {"score": round(result.score, 1),
                "per_task": {k: round(v, 1) for k, v in result.metrics.get("per_task", {}).items()}}

    rows, start, steps = [], time.perf_counter(), 0
    for phase in range(args.phases):
        stage = StageConfig(f"phase {phase + 1}", args.seconds, {"cvbench": 1.0}, args.connector_lr, args.llm_lr,
                            batch_size=8, bf16=bf16_matmul_is_fast(), seed=args.seed + phase,
                            train_embedding=args.train_embedding, top_layers=args.top_layers,
                            force_readout=args.force_readout)
        log = train_stage(model, tokenizer, {"cvbench": questions}, stage)
        steps += len(log.steps)
        rows.append({"phase": phase + 1, "steps": steps, "conversations_seen": steps * 8,
                     "loss_first_last": [round(sum(log.loss[:10]) / 10, 3), round(sum(log.loss[-10:]) / 10, 3)],
                     **score(f"phase{phase + 1}", test_bench), "wall_s": round(time.perf_counter() - start)})
        if args.score_train:
            rows[-1]["train"] = score(f"phase{phase + 1}-train", train_bench)
        print(json.dumps(rows[-1]), flush=True)
    summary = {"tokens": args.tokens, "cell_position": args.cell_position, "answers": args.answers, "tasks": args.tasks,
               "llm_lr": args.llm_lr, "train_embedding": args.train_embedding, "top_layers": args.top_layers,
               "force_readout": args.force_readout, "seed": args.seed,
               "train_conversations": len(questions), "phases": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cvbench_oracle.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
