"""Does a trained model answer about the image just attached, mid-conversation? (issue 7, `cambrian chat`)

`cambrian chat` accepts a new image mid-conversation (`/image PATH`): the conversation then holds both images, and a
question after the second one is about the second. This probe plays that conversation with a model folder: for
pairs of easy-VQA *test* images of different colours, it attaches the first, asks its colour, attaches the second
and asks the same question again. The second answer is scored against both images' colours: naming the second is
right; naming the first means the model looked at the wrong image. Two more conversations ask, after the second
image, whether the second image's colour is there (yes) and whether the first image's colour is there (no); and,
as the control, a conversation with the second image alone asks whether its colour is there (yes).

    .venv/bin/python benchmarks/second_image.py --model runs/quickstart/model [--pairs 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

QUESTION = "What color is the shape? Answer with a single word."
YES_NO = "Is there a {} shape? Answer with a single word."


def colour_pairs(n: int, seed: int = 0) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """n pairs ((path, colour), (path, colour)) of easy-VQA test images whose colours differ."""
    import easy_vqa

    from cambrian.quickstart_lib.data import easyvqa_facts

    questions, answers, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    facts = easyvqa_facts(questions, answers, image_ids)
    coloured = sorted((i, f["color"]) for i, f in facts.items() if "color" in f)
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        (a, colour_a), (b, colour_b) = rng.sample(coloured, 2)
        if colour_a != colour_b:
            pairs.append(((paths[a], colour_a), (paths[b], colour_b)))
    return pairs


def second_answer(model, tokenizer, path_a: str, path_b: str, question: str) -> tuple[str, str]:
    """(first answer, second answer): the colour question about image a, then `question` after attaching b."""
    from cambrian.serve.cli import ChatSession

    session = ChatSession(model, tokenizer, max_new_tokens=8)
    session.attach(path_a)
    first = session.ask(QUESTION).lower()
    session.attach(path_b)
    return first, session.ask(question).lower()


def play(model, tokenizer, pairs) -> dict:
    """The colour question after the second image; and, in two more conversations, "is there a {colour} shape?"
    naming the second image's colour (truth: yes) and the first's (truth: no)."""
    from cambrian.serve.cli import answer_once

    first_right = second_right = said_first = yes_right = no_right = alone_right = 0
    rows = []
    for (path_a, colour_a), (path_b, colour_b) in pairs:
        first, second = second_answer(model, tokenizer, path_a, path_b, QUESTION)
        _, own = second_answer(model, tokenizer, path_a, path_b, YES_NO.format(colour_b))
        _, other = second_answer(model, tokenizer, path_a, path_b, YES_NO.format(colour_a))
        alone = answer_once(model, tokenizer, path_b, YES_NO.format(colour_b), max_new_tokens=8).lower()
        first_right += colour_a in first
        second_right += colour_b in second
        said_first += colour_a in second and colour_b not in second
        yes_right += own.startswith("yes")
        no_right += other.startswith("no")
        alone_right += alone.startswith("yes")
        rows.append({"first": [path_a, colour_a, first], "second": [path_b, colour_b, second],
                     "yes_no": {f"{colour_b} (yes)": own, f"{colour_a} (no)": other, "alone (yes)": alone}})
    n = len(pairs)
    return {"pairs": n, "first_image_right": first_right / n, "second_image_right": second_right / n,
            "second_answered_with_first_colour": said_first / n, "yes_no_second_colour_right": yes_right / n,
            "yes_no_first_colour_right": no_right / n, "yes_no_second_image_alone_right": alone_right / n,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/model"))
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the result (with every answer) as JSON here")
    args = parser.parse_args()

    import torch

    from cambrian.models.builder import load_model

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    start = time.perf_counter()
    result = play(model, tokenizer, colour_pairs(args.pairs))
    result["seconds"] = time.perf_counter() - start
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
