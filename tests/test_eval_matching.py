"""Golden tests for every answer-matching rule, traps included (hand-computed expected values)."""

import pytest

from cambrian.eval.matching import (
    anls,
    extract_choice,
    extract_yes_no,
    is_refusal,
    normalize_vqa,
    numbers_match,
    ocrbench_match,
    parse_number,
    relaxed_match,
    short_answer_match,
    vocabulary_match,
    vqa_accuracy,
)
from cambrian.eval.metrics import all_correct, category_averages, cvbench_scores, mme_scores

CHOICES = ["a cat", "a dog", "a bird"]


# -- multiple choice ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,letter", [
    ("The answer is (B).", "B"),  # trap: lmms-eval's start-anchored extractor reads "T"
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("Answer: C", "C"), ("answer is c.", "C"),
    ("a dog", "B"), ("It is a dog.", "B"), ("C. a bird", "C"),
])
def test_choice_reads(text, letter):
    assert extract_choice(text, CHOICES) == letter


@pytest.mark.parametrize("text", ["A cat", "no idea", "", "D", "left or right", "(A) left (B) right", "A. right"])
def test_choice_never_guesses(text):
    assert extract_choice(text, ["left", "right"]) is None  # "A cat" is not A: the options are not letters


def test_choice_option_text_wins_over_a_bare_leading_article():
    assert extract_choice("A cat", CHOICES) == "A"  # the text of option A, not the letter "A"
    assert extract_choice("A cat", ["dog", "bird"]) is None
    assert extract_choice("no idea", CHOICES) is None and is_refusal("no idea")
    assert extract_choice("B. a cat", CHOICES) is None  # letter and text disagree: counted unparsable


# -- yes / no --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("Yes", "yes"), ("yes.", "yes"), ("No, there is none.", "no"), ("There is no dog.", "no"),
    ("The answer is yes", "yes"), ("no idea", None), ("Sorry, I cannot tell.", None), ("yes and no", None),
    ("maybe", None), ("", None),
])
def test_yes_no(text, expected):
    assert extract_yes_no(text) == expected


# -- numbers (5 % relative tolerance) ----------------------------------------------------------------------------------
def test_numbers():
    assert parse_number("The answer is 1,234.5.") == 1234.5
    assert parse_number("12%") == 12 and parse_number("-3") == -3
    assert parse_number("between 3 and 5") is None and parse_number("none") is None
    assert parse_number("3 or 3.0") == 3.0  # the same number twice is one number
    assert numbers_match(104.9, 100) and numbers_match(95, 100) and not numbers_match(105.1, 100)
    assert numbers_match(0, 0) and not numbers_match(0.01, 0)


# -- short answers (GQA) and closed vocabularies (easy-VQA) ------------------------------------------------------------
def test_short_answers():
    assert short_answer_match("Table.", "table") and short_answer_match("The answer is table", "table")
    assert not short_answer_match("the table", "table")  # exact: GQA's rule has no article stripping
    assert vocabulary_match("It is a red circle", "red", ["red", "blue"]) == "red"
    assert vocabulary_match("red or blue", "red", ["red", "blue"]) is None
    assert vocabulary_match("no idea", "no", ["yes", "no"]) is None


# -- VQA accuracy over 10 annotators -----------------------------------------------------------------------------------
def test_vqa_accuracy():
    answers = ["two"] * 3 + ["2"] + ["three"] * 6  # "two" normalises to "2": 4 annotators say 2
    # leave-one-out over 10: the 4 "2"-annotators leave 3 matches (min(1, 3/3) = 1), the other 6 leave 4 -> 1
    assert vqa_accuracy("2", answers) == 1.0
    one = ["stop"] + ["go"] * 9
    # "stop": 9 subsets keep the single match (1/3 each), 1 subset drops it (0): (9 * 1/3) / 10 = 0.3
    assert vqa_accuracy("Stop.", one) == pytest.approx(0.3)
    two = ["stop"] * 2 + ["go"] * 8  # 8 subsets keep 2 (2/3), 2 keep 1 (1/3): (8*2/3 + 2/3) / 10 = 0.6
    assert vqa_accuracy("stop", two) == pytest.approx(0.6)
    assert normalize_vqa("The Two dogs!") == "2 dogs" and normalize_vqa("dont") == "don't"
    assert vqa_accuracy("", one) == 0.0


# -- relaxed accuracy (ChartQA) ----------------------------------------------------------------------------------------
def test_relaxed():
    assert relaxed_match("104", "100") and not relaxed_match("106", "100")
    assert relaxed_match("12%", "0.12")  # "12%" reads as 0.12
    assert relaxed_match("Yes", "yes") and not relaxed_match("yes.", "no")
    assert relaxed_match("0", "0") and not relaxed_match("0.01", "0")  # target 0 compares as text


# -- ANLS (DocVQA) and OCRBench ---------------------------------------------------------------------------------------
def test_anls_and_ocrbench():
    assert anls("Hello World", ["hello world"]) == 1.0
    assert anls("hallo", ["hello"]) == pytest.approx(0.8)  # 1 edit over 5 chars
    assert anls("abc", ["xyz"]) == 0.0  # NL = 1 >= 0.5
    assert anls("helo", ["hello", "help"]) == pytest.approx(0.8)  # max over answers: 1 - 1/5 vs 1 - 1/4 = 0.75
    assert ocrbench_match("Coca Cola", ["coca cola"]) and not ocrbench_match("it says coca cola", ["coca cola"])
    assert ocrbench_match("it says coca cola", ["coca cola"], exact=False)  # official OCRBench: containment
    assert ocrbench_match("x ^ 2", ["x^2"], dataset="HME100k")


# -- grouped scores ---------------------------------------------------------------------------------------------------
def test_mme_acc_and_acc_plus():
    # existence: image 1 both right, image 2 one right -> acc 75, acc+ 50, score 125; OCR: 1 of 2, 0 -> 50
    cats = ["existence"] * 4 + ["OCR"] * 2
    images = [1, 1, 2, 2, 3, 3]
    scores = mme_scores(cats, images, [1, 1, 1, 0, 1, 0])
    assert scores["per_category"]["existence"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0}
    assert scores["perception"] == 175.0 and scores["cognition"] == 0 and not scores["complete"]
    # random guess: acc 50, acc+ 25 per category -> 75 each
    assert mme_scores(cats, images, [0.5] * 6)["perception"] == 150.0


def test_circular_and_pairs():
    # MMBench: question 7 has 3 rotations all right, question 8 has one wrong rotation -> 50 %
    assert all_correct([7, 7, 7, 8, 8], [1, 1, 1, 1, 0]) == 50.0
    assert all_correct([7, 7, 7, 8, 8], [0.25] * 5) == pytest.approx(100 * (0.25 ** 3 + 0.25 ** 2) / 2)
    assert all_correct([0, 0, 1, 1], [1, 1, 1, 0]) == 50.0  # MMVP: pair 0 right, pair 1 not


def test_cvbench_macro():
    s = cvbench_scores(["ADE20K"] * 4 + ["COCO"] * 2 + ["Omni3D"] * 4, [1, 1, 1, 0, 1, 0, 1, 0, 0, 0])
    assert s["2d"] == 62.5 and s["3d"] == 25.0 and s["overall"] == 43.75


def test_category_averages_reproduce_the_paper():
    # Cambrian-1 8B, paper Table 5: MME-P enters as 1547.1 / 20 = 77.355
    paper = {"MME-P": 1547.1, "MMB": 75.9, "SEED-I": 74.7, "GQA": 64.6, "SQA-I": 80.4, "MMMU": 42.7,
             "MathVista": 49.0, "AI2D": 73.0, "ChartQA": 73.3, "OCRBench": 62.4, "TextVQA": 71.7, "DocVQA": 77.8,
             "MMVP": 51.3, "RealWorldQA": 64.2, "CV-Bench-2D": 72.3, "CV-Bench-3D": 72.0}
    avg = category_averages(paper)
    assert avg["General"] == pytest.approx(73.13875) and avg["Knowledge"] == pytest.approx(61.275)
    assert avg["OCR & Chart"] == pytest.approx(71.3) and avg["Vision-Centric"] == pytest.approx(64.95)
    assert avg["Average"] == pytest.approx(67.6659375)
    del paper["GQA"]
    assert category_averages(paper)["General"] is None and category_averages(paper)["Average"] is None
