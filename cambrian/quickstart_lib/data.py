"""The quickstart's data, made from what installs here (DESIGN.md "Offline first"):

- alignment (stage 1): captions written from ground truth, of easy-VQA images (their shape and colour, read back
  from the dataset's own questions) and of the synthetic world's scenes (`describe_scene`), each with the words it
  names (`Example.words`: what stage 1 aligns the visual tokens to, align.py);
- instruction tuning (stage 2): easy-VQA train questions (their yes/no questions redrawn so that the wording does not
  give the answer, `rebalanced_yes_no`) and CV-Bench-style questions built from a synthetic *train* world, both with
  the short-answer prompts of Section 5.3; open "describe" questions answered with the captions (so long questions
  keep long answers); and text-only chat self-distilled from the LLM (self_chat.py).

The test world is rendered from another seed; train and test share no image.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from cambrian.constants import IMAGE_TOKEN
from cambrian.data.system_prompts import OPTION_LETTER, SINGLE_WORD
from cambrian.eval.benchmarks.vision import EASYVQA_NEGATION, easyvqa_named

TRAIN_WORLD_SEED, TEST_WORLD_SEED, READOUT_WORLD_SEED = 1, 2, 3
WORLD_SIZE = 256  # the fine tower's resolution: rendering larger only costs time
DESCRIBE_PROMPTS = ("Describe this image.", "Describe this image in detail.", "What do you see in this picture?",
                    "What is in this image?", "Tell me about this image.")
# the instruction of the eval (SINGLE_WORD) most of the time, a plainer wording otherwise, so both give one word
WORD_PROMPTS = (SINGLE_WORD, SINGLE_WORD, SINGLE_WORD, "Answer with a single word.")


@dataclass
class Example:
    """One conversation; `image` is a file path, PNG bytes or None (text only)."""

    id: str
    kind: str  # caption | vqa | vqa-colour | cvbench | describe | chat
    turns: list[dict]
    image: Path | bytes | None = None
    words: tuple[str, ...] = ()  # captions: the words naming what the image shows (stage 1's word alignment)
    # cvbench: each question's right option ("sofa", "left", "2"), for teacher forcing the readout's tokens (train.py)
    option_answers: tuple[str, ...] = ()

    def to_llava(self) -> dict:
        roles = {"user": "human", "assistant": "gpt"}
        image = str(self.image) if isinstance(self.image, Path) else (f"{self.id}.png" if self.image else None)
        record = {"id": self.id, "conversations": [{"from": roles[t["role"]], "value": t["content"]}
                                                   for t in self.turns], "source": self.kind, "category": self.kind}
        if image:
            record["image"] = image
        if self.words:
            record["words"] = list(self.words)
        return record


def _qa(example_id: str, kind: str, question: str, answer: str, image, words: tuple[str, ...] = ()) -> Example:
    user = f"{IMAGE_TOKEN}\n{question}" if image is not None else question
    return Example(example_id, kind, [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                   image, words)


def packed_by_image(example_id: str, kind: str, items: list[tuple], max_turns: int,
                    rng: random.Random) -> list[Example]:
    """(question, answer, image key[, right option's text]) items -> conversations of up to `max_turns` turns about one
    image, as in LLaVA's instruction data: the image is encoded once and every answer is supervised, so a training step
    sees several answers per image for little more than the tokens of one (the visual tokens and the template come
    once). The option texts, when given, become the conversation's `option_answers`."""
    by_image: dict[object, list[tuple]] = {}
    for question, answer, image, *option in items:
        by_image.setdefault(image, []).append((question, answer, *option))
    conversations = []
    for image, pairs in by_image.items():
        rng.shuffle(pairs)
        for start in range(0, len(pairs), max_turns):
            turns, options = [], []
            for k, (question, answer, *option) in enumerate(pairs[start:start + max_turns]):
                turns += [{"role": "user", "content": f"{IMAGE_TOKEN}\n{question}" if k == 0 else question},
                          {"role": "assistant", "content": answer}]
                options += option
            conversations.append(Example(f"{example_id}-{len(conversations)}", kind, turns, image,
                                         option_answers=tuple(options)))
    rng.shuffle(conversations)
    return conversations


# -- easy-VQA --

COLOURS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
_WHAT_IS = re.compile(r"what is the (\w+) shape\?")
COLOUR_WORD = re.compile(rf"\b({'|'.join(COLOURS)})\b")
SHAPE_WORD = re.compile(rf"\b({'|'.join(SHAPES)})\b")


def rebalanced_yes_no(question: str, colour: str, shape: str, rng: random.Random) -> tuple[str, str]:
    """An easy-VQA yes/no question with its colour or shape word redrawn so that it names the image's own one half
    of the time, and its answer recomputed from the facts. easy-VQA's own questions name a wrong word ~85 % of the
    time, so their wording alone answers them (docs/quickstart.md, "On a GPU"); redrawn, only the image does."""
    pattern, true, words = ((COLOUR_WORD, colour, COLOURS) if COLOUR_WORD.search(question)
                            else (SHAPE_WORD, shape, SHAPES))
    named = true if rng.random() < 0.5 else rng.choice([w for w in words if w != true])
    question = pattern.sub(named, question, count=1)
    return question, "yes" if (named == true) != bool(EASYVQA_NEGATION.search(question)) else "no"


# easy-VQA's yes/no forms in pairs (plain, negated): "is there a red shape?" / "is there not a red shape?"
_NEGATED_FORMS = (("does the image contain ", "does the image not contain "), ("is a ", "is no "),
                  ("is there a ", "is there not a "))


def negation_twin(question: str, answer: str) -> tuple[str, str] | None:
    """The same yes/no question with its negation flipped and so its answer ("is there a red shape?" "no" ->
    "is there not a red shape?" "yes"); None for a question of no known form. Asked about the same image, a twin
    differs from its question by the negation alone: the step that failed in the 73.3 % run (docs/quickstart.md)."""
    for plain, negated in _NEGATED_FORMS:
        for this, that in ((plain, negated), (negated, plain)):
            if question.startswith(this):
                return that + question[len(this):], {"yes": "no", "no": "yes"}[answer]
    return None


def is_colour_question(question: str) -> bool:
    """"what color is the shape?", "what is the color of the circle?" (not "what is the red shape?")."""
    return question.startswith("what") and " color" in question.split("?")[0]


def easyvqa_facts(questions, answers, image_ids) -> dict[int, dict[str, str]]:
    """image id -> {"shape": ..., "color": ...}, read from the questions that state them: the "what" questions, and
    the yes/no questions whose answer says the named colour or shape is there ("is there a red shape?" "yes")."""
    facts: dict[int, dict[str, str]] = {}
    for q, a, i in zip(questions, answers, image_ids, strict=True):
        f = facts.setdefault(i, {})
        if q.startswith("what shape"):
            f["shape"] = a
        elif q.startswith("what color"):
            f["color"] = a
        elif m := _WHAT_IS.match(q):
            f["color"], f["shape"] = m.group(1), a
        elif a in ("yes", "no") and easyvqa_named(q, a) == "present":
            if m := COLOUR_WORD.search(q):
                f["color"] = m.group(1)
            elif m := SHAPE_WORD.search(q):
                f["shape"] = m.group(1)
    return facts


def easyvqa_caption(color: str, shape: str, rng: random.Random) -> str:
    first = rng.choice([f"The image shows a single {color} {shape} on a plain white background.",
                        f"This is a simple picture of a {color} {shape} on a white background.",
                        f"A {color} {shape} is drawn on a plain white background."])
    second = rng.choice([f"The {shape} is filled with a solid {color} colour and has clean, sharp edges.",
                         f"It is a flat {shape}, coloured {color}, with no texture or shading.",
                         f"The shape is a {shape} and its colour is {color}."])
    third = rng.choice(["There are no other objects in the picture.", "Nothing else appears in the image.",
                        "The rest of the image is empty."])
    return f"{first} {second} {third}"


def easyvqa_examples(n_vqa: int, n_captions: int, n_describe: int, seed: int, turns_per_image: int = 1,
                     balance_yes_no: bool = False, twin_share: float = 0.0) -> dict[str, list[Example]]:
    """`twin_share`: the share of yes/no questions also asked as their `negation_twin` about the same image."""
    import easy_vqa

    rng = random.Random(seed)
    questions, answers, image_ids = easy_vqa.get_train_questions()
    paths = easy_vqa.get_train_image_paths()
    facts = easyvqa_facts(questions, answers, image_ids)
    # whole images at a time (all their questions), so that packing finds several questions per image
    by_image: dict[int, list[int]] = {}
    for k, i in enumerate(image_ids):
        by_image.setdefault(i, []).append(k)
    images = sorted(by_image)
    rng.shuffle(images)
    order = [k for i in images for k in by_image[i]][:n_vqa]

    def asked(k: int) -> tuple[str, str]:
        f = facts.get(image_ids[k], {})
        if balance_yes_no and answers[k] in ("yes", "no") and {"shape", "color"} <= f.keys():
            return rebalanced_yes_no(questions[k], f["color"], f["shape"], rng)
        return questions[k], answers[k]

    def with_twin(k: int) -> list[tuple[str, str]]:
        q, a = asked(k)
        twin = negation_twin(q, a) if twin_share > 0 and a in ("yes", "no") and rng.random() < twin_share else None
        return [(q, a)] + ([twin] if twin else [])

    vqa = packed_by_image("easyvqa", "vqa", [(f"{q}\n{rng.choice(WORD_PROMPTS)}", a, Path(paths[image_ids[k]]))
                                             for k in order for q, a in with_twin(k)], turns_per_image, rng)
    # the same colour questions again, one per conversation (the colour steps of benchmarks/yesno_binding.py)
    colour = [_qa(f"easyvqa-colour-{k}", "vqa-colour", f"{questions[k]}\n{rng.choice(WORD_PROMPTS)}", answers[k],
                  Path(paths[image_ids[k]])) for k in order if is_colour_question(questions[k])]
    described = [i for i in sorted(facts) if {"shape", "color"} <= facts[i].keys()]
    rng.shuffle(described)
    captions = [_qa(f"easyvqa-cap-{i}", "caption", rng.choice(DESCRIBE_PROMPTS),
                    easyvqa_caption(facts[i]["color"], facts[i]["shape"], rng), Path(paths[i]),
                    (facts[i]["color"], facts[i]["shape"])) for i in described[:n_captions]]
    describe = [_qa(f"easyvqa-desc-{i}", "describe", rng.choice(DESCRIBE_PROMPTS),
                    easyvqa_caption(facts[i]["color"], facts[i]["shape"], rng), Path(paths[i]))
                for i in described[n_captions:n_captions + n_describe]]
    return {"vqa": vqa, "vqa-colour": colour, "caption": captions, "describe": describe}


# -- synthetic world --

def render_worlds(root: Path, n_train: int, n_test: int, n_readout: int = 0, progress=None) -> tuple[Path, ...]:
    """Train, test and (n_readout > 0) readout worlds from different seeds; each rendered once (kept if complete)."""
    from cambrian.cvbench import render_world

    worlds = []
    for name, n, seed in (("train", n_train, TRAIN_WORLD_SEED), ("test", n_test, TEST_WORLD_SEED),
                          ("readout", n_readout, READOUT_WORLD_SEED)):
        if not n:
            continue
        folder = root / f"world-{name}-seed{seed}-n{n}"
        if not (folder / "annotations" / "omni3d.json").exists():
            render_world(folder, n=n, seed=seed, size=WORLD_SIZE, workers=2)
        worlds.append(folder)
        if progress:
            progress(n)
    return tuple(worlds)


def scene_words(image, min_visibility: float = 0.25) -> tuple[str, ...]:
    """The words a scene's caption names: its ground ("sand", "wooden floor"), and the colours and class words of its
    objects (`describe_scene`'s visibility rule). The ground tells a scene from an easy-VQA shape by more than its
    colours: in two quickstart runs without it "Describe this image." called a yellow circle a scene, in two with it
    a yellow circle (docs/quickstart.md, "Word alignment")."""
    words: set[str] = set(image.scene.ground.split())
    for obj in image.scene.objects:
        if image.visibility.get(obj.id, 0.0) >= min_visibility:
            words.update([obj.spec.color_name, *obj.spec.name.split()])
    return tuple(sorted(words))


def build_bench(world: Path, out: Path):
    """CV-Bench questions (official layout) from a rendered world; built once."""
    from cambrian.cvbench import build_from_world, load_cvbench

    if not any(out.glob("test*")):
        build_from_world(out, world)
    return load_cvbench(out)


def world_examples(world: Path, bench_dir: Path, n_captions: int, n_describe: int, seed: int, turns_per_image: int = 1):
    from cambrian.cvbench import load_world

    rng = random.Random(seed)
    images = load_world(world)
    rng.shuffle(images)
    captions = [_qa(f"world-cap-{k}", "caption", rng.choice(DESCRIBE_PROMPTS), im.caption(), im.path,
                    scene_words(im)) for k, im in enumerate(images[:n_captions])]
    describe = [_qa(f"world-desc-{k}", "describe", rng.choice(DESCRIBE_PROMPTS), im.caption(), im.path)
                for k, im in enumerate(images[n_captions:n_captions + n_describe])]
    cvbench = bench_examples(build_bench(world, bench_dir), bench_dir, "cvbench-train", turns_per_image, rng)
    return {"caption": captions, "describe": describe, "cvbench": cvbench}


def bench_examples(records, bench_dir: Path, example_id: str, turns_per_image: int,
                   rng: random.Random) -> list[Example]:
    """CV-Bench records -> stage-2 "cvbench" conversations: each question with the option-letter prompt (and the right
    option's text in `option_answers`)."""
    questions = []
    for r in records:
        prompt = r.model_prompt if OPTION_LETTER in r.model_prompt else f"{r.prompt}\n{OPTION_LETTER}"
        image = r.image_bytes if r.image_bytes is not None else (r.root or bench_dir) / r.filename
        questions.append((prompt, r.answer_letter, image, r.answer_text))
    return packed_by_image(example_id, "cvbench", questions, turns_per_image, rng)


def write_jsonl(examples: list[Example], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for e in examples:
            f.write(json.dumps(e.to_llava()) + "\n")
    return path
