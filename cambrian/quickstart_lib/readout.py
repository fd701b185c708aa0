"""Fitting the coordinate readout (`cambrian/models/connectors/coordinate_readout.py`) before stage 2.

CV-Bench's Depth, Distance and Relation answers are fixed by the image (the boxes are drawn on it), so the readout is
fitted on their answers alone, without the LLM, on the frozen 256 px tower's grids, with Gaussian noise on the
standardised cells: cross-entropy over the words of the right answer's group (the classes, left / right, above /
below), the softmax its token for that group is made with. Count's answer needs the class the question names, which
the readout does not see; its number token is fitted on the counts all the same and says mostly their prior ("1").
It needs many images: on the Depth / Distance / Relation questions of the quickstart's 300-image train world it
memorised them (train 100 %) and read the test world's Depth at 57-60 %; with a 3,000-image world (6,340 questions),
Depth 80-83 % with class words (`benchmarks/README.md`, "A readout that knows where the cells lie"). So
`cambrian quickstart --readout` renders a world of its own for it (its Count questions are left out: they would only
fit the prior, which the train world's fit as well, at a third of the tower pass's time). Session 18 fitted it with
a softmax over each question's two options alone, which left the mass on the other words free: the token of a
left / right question often said "beach ball", and the LLM did not learn to read it (docs/quickstart.md, sessions 18
and 19).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

READOUT_TASKS = ("Count", "Depth", "Distance", "Relation")
# each group's soft word 3 times after each image's grid. Session 18's single soft word (4 times; 1 in one run) was not
# read; the LLM that passed the readout's words on (benchmarks/README.md) had them in all 16 cells. 3 is not a
# measured optimum: it is the one value measured with the groups (docs/quickstart.md, session 19)
READOUT_TOKENS = 3
# the groups' softmax at logits / 0.25: CV-Bench alone after a quickstart, 61.5 % after 121 batches against 54.2 %
# after 126 at 1 (the same fitted readout; docs/quickstart.md, session 19)
READOUT_TEMPERATURE = 0.25
DIRECTIONS = ("left", "right", "above", "below")
# Count's options: the count and 3 more from max(0, count - 3) (cvbench/questions.py), a count at most 7 (8 objects
# of at least 2 classes, cvbench/world.py)
NUMBERS = tuple(str(n) for n in range(11))


def readout_words() -> list[str]:
    """Every answer the readout can give: the synthetic world's class words, Relation's directions, Count's numbers."""
    from cambrian.cvbench.world import CATEGORIES

    return [c.name for c in CATEGORIES] + list(DIRECTIONS) + list(NUMBERS)


def readout_groups() -> list[int]:
    """`readout_words` in groups, one token each: the classes (Depth, Distance), left / right, above / below (Relation),
    the numbers (Count: the image alone does not say which class is asked about, so mostly the counts' prior)."""
    return [len(readout_words()) - len(DIRECTIONS) - len(NUMBERS), 2, 2, len(NUMBERS)]


@dataclass
class ReadoutQuestion:
    image: object  # path or PNG bytes
    choices: list[str]
    answer: str


def readout_questions(bench_dir: Path, tasks: tuple[str, ...] = READOUT_TASKS) -> list[ReadoutQuestion]:
    """The questions of `tasks` in a CV-Bench folder, with the right option's words."""
    from cambrian.cvbench import load_cvbench

    unknown = sorted(set(tasks) - set(READOUT_TASKS))
    if unknown:
        raise ValueError(f"the readout is fitted on {READOUT_TASKS} only, not {unknown}")
    questions = []
    for r in load_cvbench(bench_dir):
        if r.task in tasks:
            image = r.image_bytes if r.image_bytes is not None else (r.root or bench_dir) / r.filename
            questions.append(ReadoutQuestion(image, list(r.choices), r.answer_text))
    return questions


def word_tokens(model, tokenizer, words: list[str]) -> torch.Tensor:
    """(words, d): for each word, the mean of its pieces' unit input embeddings (word_token_ids: the first token of
    each space-separated piece), at the embeddings' mean norm, as the LLM would read the word."""
    from cambrian.quickstart_lib.align import word_token_ids

    embeddings = model.language_model.get_input_embeddings().weight.detach().float()
    scale = embeddings.norm(dim=-1).mean()
    rows = []
    for word in words:
        unit = F.normalize(embeddings[word_token_ids(tokenizer, word.split())], dim=-1).mean(0)
        rows.append(F.normalize(unit, dim=0) * scale)
    return torch.stack(rows)


def forced_words(readout, words: list[str], examples: list) -> torch.Tensor | None:
    """Teacher forcing: (images, G) the index of the word each conversation's questions give as right in each group
    ("left" for a Relation question, "sofa" for a Depth one), -1 where they give none or disagree (two Count questions
    about one image); one row per example with an image, in the batch's order. None when no example has an answer to
    force. Stage 2's CV-Bench batches then carry the right word in the readout's token (CoordinateReadout.forced)."""
    index = {word: i for i, word in enumerate(words)}
    group_of = [g for g, size in enumerate(readout.groups) for _ in range(size)]  # word index -> its group
    rows, any_forced = [], False
    for e in examples:
        if e.image is None:
            continue
        given: dict[int, set[int]] = {}
        for answer in e.option_answers:
            if answer in index:
                given.setdefault(group_of[index[answer]], set()).add(index[answer])
        row = [-1] * len(readout.groups)
        for group, chosen in given.items():
            if len(chosen) == 1:
                row[group] = chosen.pop()
                any_forced = True
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long) if any_forced else None


@torch.no_grad()
def readout_grids(model, questions: list[ReadoutQuestion], bf16: bool, batch_size: int = 64,
                  progress=None) -> torch.Tensor:
    """(questions, g, g, C) bf16: tower 0's grid of each question's image (bf16 autocast where training uses it:
    0.57 of fp32's time on this 2-core machine, and the evaluation runs the model in bf16 as well)."""
    from cambrian.quickstart_lib.train import load_image
    from cambrian.train.loop import autocast

    tower = model.towers[0]
    rows = []
    with autocast("bf16" if bf16 else "fp32", model.device)():
        for start in range(0, len(questions), batch_size):
            chunk = questions[start:start + batch_size]
            pixels = torch.stack([tower.transform(load_image(q.image)) for q in chunk]).to(model.device)
            rows.append(tower(pixels).to(torch.bfloat16).cpu())
            if progress:
                progress(len(chunk))
    return torch.cat(rows)


def option_masks(questions: list[ReadoutQuestion], words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(questions, words) additive mask leaving each question's options, and the index of its right option."""
    mask = torch.full((len(questions), len(words)), float("-inf"))
    for row, q in enumerate(questions):
        mask[row, [words.index(c) for c in q.choices]] = 0.0
    return mask, torch.tensor([words.index(q.answer) for q in questions])


def group_masks(readout, right: torch.Tensor) -> torch.Tensor:
    """(questions, words) additive mask leaving the words of the group of each question's right answer: the softmax
    the readout's token for that group is made with."""
    mask = torch.full((len(right), sum(readout.groups)), float("-inf"))
    for row, word in enumerate(right.tolist()):
        mask[row, readout.group_of(word)] = 0.0
    return mask


def fit_readout(model, tokenizer, questions: list[ReadoutQuestion], steps: int, bf16: bool, lr: float = 3e-3,
                batch_size: int = 64, noise: float = 0.5, seed: int = 0, progress=None) -> dict:
    """Fits `model.readout` on the questions' answers (a softmax over the right answer's group of words, the one its
    token is made with); returns what it took and its accuracy on those questions (the right option scored above the
    other options, as the LLM compares them)."""
    readout = model.readout
    words = model.config.connector_config.readout_words
    unknown = sorted({c for q in questions for c in q.choices} - set(words))
    if unknown:
        raise ValueError(f"the readout's words ({words}) lack the options {unknown}: build the model with "
                         "ConnectorConfig.readout_words = quickstart_lib.readout.readout_words()")
    start = time.perf_counter()
    grids = readout_grids(model, questions, bf16, progress=progress)
    grids_s = time.perf_counter() - start
    device = readout.feature_mean.device
    readout.feature_mean.copy_(grids.float().mean((0, 1, 2)))
    readout.feature_std.copy_(grids.float().std((0, 1, 2)) + 1e-6)
    readout.word_tokens.copy_(word_tokens(model, tokenizer, words))
    options, right = option_masks(questions, words)
    mask = group_masks(readout, right)
    model.requires_grad_(False)
    readout.requires_grad_(True)
    readout.train()
    optimizer = torch.optim.AdamW(readout.parameters(), lr=lr, weight_decay=0.05)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, len(questions), (batch_size,), generator=generator)
        cells = readout.cells(grids[batch].float().to(device))
        cells = cells + noise * torch.randn(cells.shape, generator=generator).to(device)
        loss = F.cross_entropy(readout.word_logits(cells) + mask[batch].to(device), right[batch].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    readout.requires_grad_(False)
    readout.eval()
    with torch.no_grad():
        predicted = torch.cat([
            (readout.word_logits(readout.cells(grids[s:s + 256].float().to(device))) + options[s:s + 256].to(device))
            .argmax(-1).cpu() for s in range(0, len(questions), 256)])
    loss_last = round(sum(losses[-20:]) / 20, 3) if len(losses) >= 20 else (round(losses[-1], 3) if losses else None)
    return {"questions": len(questions), "steps": steps, "grids_seconds": round(grids_s, 1),
            "seconds": round(time.perf_counter() - start, 1), "loss_last": loss_last,
            "train_accuracy": round(100 * float((predicted == right).float().mean()), 1)}
