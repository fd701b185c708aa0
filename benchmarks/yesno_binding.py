"""Can cambrian-nano's LLM compare the word a question names with the colour or shape it sees? (issue 7)

The quickstart answers easy-VQA's yes/no questions from their wording alone (docs/quickstart.md). This probe asks
whether the comparison can be learned at all, and where it breaks. Questions are easy-VQA's own yes/no forms ("is
there a red shape?", "does the image not contain a circle?"), filled from each image's true colour and shape with
the named word the true one half of the time: the wording carries no information, so accuracy above 50 % is
comparison. The image reaches the LLM in one of three ways:

    vision  the real model: towers -> SVA connector -> 16 visual tokens (+ in-LLM aggregation); with
            `--align-steps`, after the quickstart's stage 1 (word alignment, quickstart_lib/align.py)
    oracle  the connector's 16 tokens replaced by the LLM's input embeddings of the true colour and shape words
    text    no image: "The image shows a {colour} {shape} on a white background." before the question

Training is the quickstart's stage 2 (connector + LLM, AdamW, batch 16, lr 1e-4, bf16 autocast where the CPU has
AMX): `--colour-steps` of easy-VQA colour questions first (as the quickstart opens; `--colour-llm-frozen` trains only
the connector in them, as stage 1 does), then batches of these balanced
questions, a quarter of them easy-VQA "what" questions instead. Scored every `--every` steps on 128 balanced
questions about easy-VQA *test* images (first answer token, teacher-forced), and on 64 colour questions left out of
training (their images are train images).

    .venv/bin/python benchmarks/yesno_binding.py --tokens vision [--steps 100] [--colour-steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from cambrian.quickstart_lib.data import COLOUR_WORD as _COLOUR
from cambrian.quickstart_lib.data import COLOURS, SHAPES
from cambrian.quickstart_lib.data import SHAPE_WORD as _SHAPE


def question_forms(questions, answers) -> tuple[list[str], list[str]]:
    """easy-VQA's yes/no question forms, with "{}" where the colour (first list) or the shape (second) goes."""
    colour, shape = set(), set()
    for q, a in zip(questions, answers, strict=True):
        if a in ("yes", "no"):
            if _COLOUR.search(q):
                colour.add(_COLOUR.sub("{}", q))
            else:
                shape.add(_SHAPE.sub("{}", q))
    return sorted(colour), sorted(shape)


def image_facts(split: str) -> list[tuple[Path, str, str]]:
    """(image path, colour, shape) for every easy-VQA image of a split whose questions state both."""
    import easy_vqa

    from cambrian.quickstart_lib.data import easyvqa_facts

    get_questions = easy_vqa.get_train_questions if split == "train" else easy_vqa.get_test_questions
    get_paths = easy_vqa.get_train_image_paths if split == "train" else easy_vqa.get_test_image_paths
    paths, facts = get_paths(), easyvqa_facts(*get_questions())
    return [(Path(paths[i]), f["color"], f["shape"]) for i, f in sorted(facts.items())
            if {"color", "shape"} <= f.keys()]


class BalancedYesNo:
    """Yes/no questions whose named colour or shape is the true one with probability 1/2."""

    def __init__(self, forms: tuple[list[str], list[str]], tokens: str, seed: int):
        self.colour_forms, self.shape_forms = forms
        self.tokens, self.rng = tokens, random.Random(seed)

    def example(self, example_id: str, image: Path, colour: str, shape: str):
        from cambrian.data.system_prompts import SINGLE_WORD
        from cambrian.quickstart_lib.data import _qa, rebalanced_yes_no

        about_colour = self.rng.random() < 0.5
        form = self.rng.choice(self.colour_forms if about_colour else self.shape_forms)
        # the stage-2 redraw (data.py): the named word is the true one with probability 1/2, the answer from the facts
        question, answer = rebalanced_yes_no(form.format(colour if about_colour else shape), colour, shape, self.rng)
        question = f"{question}\n{SINGLE_WORD}"
        if self.tokens == "text":
            statement = f"The image shows a {colour} {shape} on a white background."
            return _qa(example_id, "vqa", f"{statement}\n{question}", answer, None)
        return _qa(example_id, "vqa", question, answer, image)


def use_oracle_tokens(model, tokenizer, facts_of: dict[str, tuple[str, str]], current: list) -> None:
    """The connector's output becomes the LLM's own embeddings of the true colour and shape words (a 4x4 grid of
    them, alternating), for the images of the batch being run (`current`, their paths in order)."""
    embeddings = model.language_model.get_input_embeddings()

    def word(w: str) -> torch.Tensor:
        return embeddings.weight[tokenizer(" " + w, add_special_tokens=False).input_ids[0]].detach()

    side = model.query_side  # L: the connector's L x L grid

    def oracle(vision):
        grids = []
        for path in current:
            colour, shape = facts_of[path]
            pair = torch.stack([word(colour), word(shape)])
            grids.append(pair.repeat(side * side // 2, 1).view(side, side, -1))
        return torch.stack(grids)

    model.connector.forward = oracle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", choices=("vision", "oracle", "text"), default="vision")
    parser.add_argument("--steps", type=int, default=100, help="steps after the colour steps")
    parser.add_argument("--colour-steps", type=int, default=30)
    parser.add_argument("--align-steps", type=int, default=0,
                        help="first, this many steps of the quickstart's stage 1 (word alignment, align.py)")
    parser.add_argument("--align-images", type=int, default=1000, help="easy-VQA train images the alignment uses")
    parser.add_argument("--what-share", type=float, default=0.25, help="share of batches of easy-VQA 'what' questions")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--colour-lr", type=float, default=None, help="the connector's lr in the colour steps")
    parser.add_argument("--colour-llm-frozen", action="store_true",
                        help="train only the connector in the colour steps (as stage 1 does)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the scores here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import easy_vqa

    from cambrian.constants import IGNORE_INDEX
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast
    from cambrian.quickstart_lib.data import easyvqa_examples
    from cambrian.quickstart_lib.model import build_quickstart_model, use_short_template
    from cambrian.quickstart_lib.train import StageConfig, batch_loss, collate, set_trainable, supervised_logits

    model, tokenizer = build_quickstart_model()
    use_short_template(tokenizer)
    bf16 = bf16_matmul_is_fast()
    train_images, test_images = image_facts("train"), image_facts("test")
    facts_of = {str(p): (c, s) for p, c, s in train_images + test_images}
    current: list[str] = []
    if args.tokens == "oracle":
        use_oracle_tokens(model, tokenizer, facts_of, current)
    if args.align_steps:
        from cambrian.quickstart_lib.align import AlignConfig, align_connector, nearest_word_accuracy

        words = [(p, (c, s)) for p, c, s in train_images[:args.align_images]]
        log = align_connector(model, tokenizer, words, AlignConfig(seconds=float("inf"), max_steps=args.align_steps))
        aligned = nearest_word_accuracy(model, tokenizer, [(p, (c, s)) for p, c, s in test_images[:256]],
                                        list(COLOURS + SHAPES))
        print(json.dumps({"align_steps": args.align_steps, "loss": round(log.loss[-1], 4),
                          "seconds": round(log.seconds[-1]), "test_images_all_tokens_on_own_words": aligned}))

    easy = easyvqa_examples(4000, 0, 0, seed=0)
    known = [e for e in easy["vqa-colour"] + easy["vqa"] if str(e.image) in facts_of]  # the oracle needs both facts
    colour_questions = [e for e in known if e.kind == "vqa-colour"]
    colour_train, colour_test = colour_questions[:-64], colour_questions[-64:]
    what = [e for e in known if e.kind == "vqa" and e.turns[0]["content"].split("\n")[1].startswith("what")]
    maker = BalancedYesNo(question_forms(*easy_vqa.get_train_questions()[:2]), args.tokens, seed=0)
    test = [maker.example(f"test-{k}", *random.Random(k).choice(test_images)) for k in range(128)]
    rng = random.Random(1)

    cache: dict = {}

    def run(examples) -> dict:
        current[:] = [str(e.image) for e in examples if e.image is not None]
        return collate(model, tokenizer, examples, cache)

    @torch.no_grad()
    def first_token_accuracy(examples) -> float:
        model.eval()
        right = 0
        for start in range(0, len(examples), 32):
            logits, targets = supervised_logits(model, run(examples[start:start + 32]), bf16)
            first = (targets != IGNORE_INDEX).float().argmax(dim=1)  # the first answer token of each row
            rows = torch.arange(len(first))
            right += (logits[rows, first].argmax(-1) == targets[rows, first]).sum().item()
        model.train()
        return right / len(examples)

    def optimizer_for(connector_lr: float, llm_lr: float):
        groups = set_trainable(model, StageConfig("probe", 0.0, {}, connector_lr, llm_lr, bf16=bf16))
        for g in groups:
            g["base_lr"] = g["lr"]
        return groups, torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.98))

    colour_lr = args.colour_lr or args.lr
    groups, optimizer = optimizer_for(colour_lr, 0.0 if args.colour_llm_frozen else args.lr)
    model.train()
    scores, start = [], time.perf_counter()
    total, created = args.colour_steps + args.steps, 0  # created: the step before the optimizer's first (warmup)
    for step in range(1, total + 1):
        if step == args.colour_steps + 1 and (args.colour_llm_frozen or colour_lr != args.lr):
            groups, optimizer = optimizer_for(args.lr, args.lr)
            model.train()
            created = args.colour_steps
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * min(1.0, (step - created) / 3)
        if step <= args.colour_steps:
            examples = rng.sample(colour_train, 16)
        elif rng.random() < args.what_share:
            examples = rng.sample(what, 16)
        else:
            examples = [maker.example(f"train-{step}-{k}", *rng.choice(train_images)) for k in range(16)]
        loss = batch_loss(model, run(examples), bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % args.every == 0 or step == total:
            row = {"tokens": args.tokens, "step": step, "phase": "colour" if step <= args.colour_steps else "yes/no",
                   "loss": round(loss.item(), 3), "balanced_yes_no": first_token_accuracy(test),
                   "colour": first_token_accuracy(colour_test), "seconds": round(time.perf_counter() - start)}
            scores.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "scores": scores}))


if __name__ == "__main__":
    main()
