"""The yes/no binding probe (benchmarks/yesno_binding.py): its questions are balanced and answered right, and its
oracle puts the LLM's word embeddings where the visual tokens go."""

import importlib.util
import random
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

easy_vqa = pytest.importorskip("easy_vqa")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "yesno_binding.py"
_spec = importlib.util.spec_from_file_location("yesno_binding", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


@pytest.fixture(scope="module")
def forms():
    return probe.question_forms(*easy_vqa.get_train_questions()[:2])


def test_question_forms_are_easy_vqa_yes_no_questions_with_one_slot(forms):
    colour, shape = forms
    assert len(colour) == 8 and len(shape) == 8
    assert all(f.count("{}") == 1 and not probe._COLOUR.search(f) and not probe._SHAPE.search(f)
               for f in colour + shape)
    assert "is there not a {} shape?" in colour and "is there a {}?" in shape


def test_balanced_questions_are_answered_from_the_facts_and_carry_no_wording_prior(forms):
    maker = probe.BalancedYesNo(forms, "vision", seed=0)
    images = probe.image_facts("test")
    rng = random.Random(0)
    named_true, by_form = 0, {}
    n = 2000
    for k in range(n):
        image, colour, shape = rng.choice(images)
        example = maker.example(f"q{k}", image, colour, shape)
        question = example.turns[0]["content"].split("\n")[1]
        answer = example.turns[1]["content"]
        named = (probe._COLOUR.search(question) or probe._SHAPE.search(question)).group(1)
        present = named in (colour, shape)
        negated = re.search(r"\b(not|no)\b", question) is not None
        assert answer == ("yes" if present != negated else "no"), question
        assert example.image == image
        named_true += present
        form = probe._SHAPE.sub("S", probe._COLOUR.sub("C", question))
        by_form.setdefault(form, []).append(answer == "yes")
    assert 0.45 < named_true / n < 0.55
    # every question form is about as often "yes" as "no": the wording tells nothing
    assert all(0.3 < sum(v) / len(v) < 0.7 for v in by_form.values() if len(v) >= 40)


def test_text_questions_state_the_facts_and_carry_no_image(forms):
    example = probe.BalancedYesNo(forms, "text", seed=1).example("t", Path("x.png"), "teal", "circle")
    assert example.image is None
    assert example.turns[0]["content"].startswith("The image shows a teal circle on a white background.\n")


def test_oracle_tokens_are_the_llm_embeddings_of_the_true_words(tiny):
    model, tokenizer = tiny
    current = ["a.png", "b.png"]
    saved = model.connector.forward
    try:
        probe.use_oracle_tokens(model, tokenizer, {"a.png": ("red", "circle"), "b.png": ("teal", "triangle")},
                                current)
        images = model.image_inputs([Image.new("RGB", (32, 32)), Image.new("RGB", (32, 32))])
        with torch.no_grad():
            tokens = model.encode_images(**images).tokens
    finally:
        model.connector.forward = saved
    table = model.language_model.get_input_embeddings().weight

    def word(w):
        return table[tokenizer(" " + w, add_special_tokens=False).input_ids[0]]

    assert torch.equal(tokens[0][0], word("red")) and torch.equal(tokens[0][1], word("circle"))
    assert torch.equal(tokens[1][0], word("teal")) and torch.equal(tokens[1][1], word("triangle"))
