"""Stage 1's word alignment (quickstart_lib/align.py) and stage 2's rebalanced easy-VQA yes/no questions: the loss
is lowest when the visual tokens are the image's own word embeddings, training moves the connector's tokens onto
the words and nothing else, and a redrawn question is answered from the image's facts with no wording prior."""

import random
import re

import pytest
import torch
from PIL import Image

from cambrian.quickstart_lib import data as qdata
from cambrian.quickstart_lib.align import (
    AlignConfig,
    align_connector,
    nearest_word_accuracy,
    word_alignment_loss,
    word_token_ids,
)


def test_loss_is_lowest_when_the_tokens_are_the_images_own_word_embeddings():
    torch.manual_seed(0)
    vocab = torch.randn(6, 32) * 2
    own = torch.zeros(2, 6, dtype=torch.bool)
    own[0, [0, 1]] = True
    own[1, [2, 3]] = True
    on_own = torch.stack([vocab[[0, 1] * 4], vocab[[2, 3] * 4]])  # (2 images, 8 tokens, d)
    on_others = torch.stack([vocab[[4, 5] * 4], vocab[[4, 5] * 4]])
    half = torch.stack([vocab[[0] * 8], vocab[[2] * 8]])  # every token on one own word: the other has none
    losses = [word_alignment_loss(t, own, vocab).item() for t in (on_own, half, on_others, torch.randn(2, 8, 32))]
    assert losses[0] < 0.05 and losses[0] < losses[1] < losses[2]
    assert losses[0] < losses[3]
    scaled = word_alignment_loss(on_own * 3, own, vocab).item()  # right direction, wrong scale
    assert scaled > losses[0] + 1


@pytest.fixture()
def colour_squares(tmp_path):
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    items = []
    for k in range(24):
        name = list(colours)[k % 3]
        image = Image.new("RGB", (48, 48), (250, 250, 250))
        image.paste(colours[name], (8 + k % 5, 8, 36, 30 + k % 7))
        path = tmp_path / f"{k}.png"
        image.save(path)
        items.append((path, (name, "square")))
    return items


def test_alignment_moves_the_connectors_tokens_onto_the_words_and_trains_nothing_else(colour_squares):
    from cambrian.models.builder import build_model

    torch.manual_seed(0)
    model, tokenizer = build_model("cambrian-tiny")
    vocabulary = ["red", "green", "blue", "square"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    accuracy_before = nearest_word_accuracy(model, tokenizer, colour_squares, vocabulary)
    log = align_connector(model, tokenizer, colour_squares, AlignConfig(seconds=600, max_steps=60, lr=3e-3,
                                                                        batch_size=12))
    assert len(log.steps) == 60 and log.loss[-1] < 0.5 * log.loss[0]
    accuracy_after = nearest_word_accuracy(model, tokenizer, colour_squares, vocabulary)
    assert accuracy_after >= 0.9 > accuracy_before
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("connector.") and ".llm_layers." not in n for n in changed)
    assert any(".projector." in n for n in changed)
    assert not any(p.requires_grad for p in model.parameters())


def test_alignment_ends_at_its_seconds_before_its_steps_and_runs_under_bf16_autocast(colour_squares):
    """Both limits hold (a slow machine ends at the seconds); bf16 autocast trains the connector, its weights fp32."""
    from cambrian.models.builder import build_model

    model, tokenizer = build_model("cambrian-tiny")
    assert align_connector(model, tokenizer, colour_squares, AlignConfig(seconds=0.0, max_steps=50)).steps == []
    log = align_connector(model, tokenizer, colour_squares, AlignConfig(seconds=600, max_steps=3, bf16=True))
    assert log.steps == [1, 2, 3] and all(torch.isfinite(torch.tensor(log.loss)))
    assert all(p.dtype == torch.float32 for p in model.connector.parameters())


def test_word_token_ids_are_the_mid_sentence_tokens(tiny):
    _, tokenizer = tiny
    ids = word_token_ids(tokenizer, ["red", "circle", "2"])
    assert [tokenizer.decode([i]) for i in ids] == [" red", " circle", "2"]  # a digit comes after a bare space


def test_rebalanced_yes_no_keeps_the_form_and_carries_no_wording_prior():
    easy_vqa = pytest.importorskip("easy_vqa")
    questions, answers, image_ids = easy_vqa.get_train_questions()
    facts = qdata.easyvqa_facts(questions, answers, image_ids)
    rng = random.Random(0)
    by_form: dict[str, list[bool]] = {}
    named_own = n = 0
    for q, a, i in zip(questions, answers, image_ids, strict=True):
        f = facts.get(i, {})
        if a not in ("yes", "no") or {"color", "shape"} - f.keys():
            continue
        redrawn, answer = qdata.rebalanced_yes_no(q, f["color"], f["shape"], rng)
        words = re.compile(rf"\b({'|'.join(qdata.COLOURS + qdata.SHAPES)})\b")
        assert words.sub("W", redrawn) == words.sub("W", q)  # only the named word changes
        named = words.search(redrawn).group(1)
        negated = re.search(r"\b(not|no)\b", redrawn) is not None
        assert answer == ("yes" if (named in (f["color"], f["shape"])) != negated else "no"), redrawn
        named_own += named in (f["color"], f["shape"])
        n += 1
        by_form.setdefault(words.sub("W", q), []).append(answer == "yes")
    assert n > 10000 and 0.47 < named_own / n < 0.53
    # in easy-VQA's own questions the form alone tells the answer ~85 % of the time; redrawn, about half
    assert all(0.4 < sum(v) / len(v) < 0.6 for v in by_form.values() if len(v) >= 200)


def _wording_prior(conversations) -> float:
    """Share of yes/no answers that the question's form (its colour or shape word blanked) predicts best."""
    words = re.compile(rf"\b({'|'.join(qdata.COLOURS + qdata.SHAPES)})\b")
    by_form: dict[str, list[int]] = {}
    for e in conversations:
        for user, reply in zip(e.turns[::2], e.turns[1::2], strict=True):
            if reply["content"] in ("yes", "no"):
                counts = by_form.setdefault(words.sub("W", user["content"].split("\n")[-2]), [0, 0])
                counts[reply["content"] == "yes"] += 1
    return sum(max(c) for c in by_form.values()) / sum(sum(c) for c in by_form.values())


def test_balanced_easyvqa_conversations_use_the_redrawn_questions():
    pytest.importorskip("easy_vqa")
    plain = qdata.easyvqa_examples(4000, 4, 0, seed=0, turns_per_image=3)["vqa"]
    balanced = qdata.easyvqa_examples(4000, 4, 0, seed=0, turns_per_image=3, balance_yes_no=True)["vqa"]
    assert _wording_prior(plain) > 0.8 and _wording_prior(balanced) < 0.6
    captions = qdata.easyvqa_examples(0, 4, 0, seed=0)["caption"]
    assert all(len(c.words) == 2 and set(c.words) <= set(qdata.COLOURS + qdata.SHAPES) for c in captions)
    assert all(w in c.turns[1]["content"] for c in captions for w in c.words)


def test_facts_read_from_yes_no_answers_agree_with_the_what_questions():
    easy_vqa = pytest.importorskip("easy_vqa")
    questions, answers, image_ids = easy_vqa.get_train_questions()
    what = [k for k, q in enumerate(questions) if q.startswith("what")]
    yes_no = [k for k, a in enumerate(answers) if a in ("yes", "no")]
    from_what = qdata.easyvqa_facts(*[[seq[k] for k in what] for seq in (questions, answers, image_ids)])
    from_yes_no = qdata.easyvqa_facts(*[[seq[k] for k in yes_no] for seq in (questions, answers, image_ids)])
    both = [(i, key) for i, f in from_yes_no.items() for key in f if key in from_what.get(i, {})]
    assert len(both) > 1000 and all(from_yes_no[i][key] == from_what[i][key] for i, key in both)
    merged = qdata.easyvqa_facts(questions, answers, image_ids)
    assert sum({"color", "shape"} <= f.keys() for f in merged.values()) > sum(
        {"color", "shape"} <= f.keys() for f in from_what.values())


def test_every_yes_no_form_has_a_negation_twin_with_the_flipped_answer():
    easy_vqa = pytest.importorskip("easy_vqa")
    questions, answers, image_ids = easy_vqa.get_train_questions()
    facts = qdata.easyvqa_facts(questions, answers, image_ids)
    negation = re.compile(r"\b(not|no)\b")
    checked = 0
    for q, a, i in zip(questions, answers, image_ids, strict=True):
        if a not in ("yes", "no"):
            assert qdata.negation_twin(q, a) is None
            continue
        twin, flipped = qdata.negation_twin(q, a)
        assert twin != q and flipped != a
        assert bool(negation.search(twin)) != bool(negation.search(q)), (q, twin)
        assert qdata.negation_twin(twin, flipped) == (q, a)  # the twin's twin is the question
        f = facts.get(i, {})
        named = (qdata.COLOUR_WORD.search(twin) or qdata.SHAPE_WORD.search(twin)).group(1)
        if {"color", "shape"} <= f.keys():  # the flipped answer is the image's truth
            assert flipped == ("yes" if (named in (f["color"], f["shape"])) != bool(negation.search(twin)) else "no")
            checked += 1
    assert checked > 10000


def test_twins_are_asked_about_the_same_image():
    pytest.importorskip("easy_vqa")
    twins = qdata.easyvqa_examples(3000, 0, 0, seed=0, turns_per_image=3, balance_yes_no=True, twin_share=1.0)["vqa"]
    plain = qdata.easyvqa_examples(3000, 0, 0, seed=0, turns_per_image=3, balance_yes_no=True)["vqa"]
    per_image: dict[object, set[tuple[str, str]]] = {}
    for e in twins:
        for user, reply in zip(e.turns[::2], e.turns[1::2], strict=True):
            per_image.setdefault(e.image, set()).add((user["content"].removeprefix("<image>\n").split("\n")[0],
                                                      reply["content"]))
    assert all(qdata.negation_twin(q, a) in per_image[image] for image, asked in per_image.items()
               for q, a in asked if a in ("yes", "no"))
    yes_no = [sum(r["content"] in ("yes", "no") for e in runs for r in e.turns[1::2]) for runs in (twins, plain)]
    assert yes_no[0] == 2 * yes_no[1] > 1000  # every yes/no question once more, negated
