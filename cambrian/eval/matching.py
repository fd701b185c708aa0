"""Multiple-choice answer extraction that never guesses.

`extract_choice(text, choices)` returns the chosen letter ("A", "B", ...) or None. Rules, in order; the first that
applies decides, and a rule that finds two different answers returns None rather than picking one:

1. the whole answer is a letter form: "B", "b", "(B)", "B.", "B)", "**B**", "Option B";
2. an explicit phrase: "answer is B", "Answer: (B)", "the correct option is B" (the last such phrase counts);
3. a leading letter with a delimiter: "B. right", "(B) right", "B) right", "B: right" (a bare "A cat" is not one);
4. exactly one parenthesised letter anywhere: "I would pick (B) here";
5. the option text: the answer equals one option's text, or exactly one option's text appears in it as whole words.

Letters outside the offered choices (an "E" for two choices) are not answers. This is stricter than lmms-eval's
CV-Bench extractor (which reads the first letter, so "The answer is B" gives "T") and never falls back to a random
choice like VLMEvalKit's.
"""

from __future__ import annotations

import re

_WRAP = re.compile(r"^[\s*_`\"']*(?:option|choice)?\s*\(?\s*([A-Za-z])\s*\)?[.:)]?[\s*_`\"'.]*$", re.IGNORECASE)
_PHRASE = re.compile(  # keywords in any case; the letter uppercase, parenthesised, or alone before punctuation
    r"(?i:answer|option|choice)(?:\s+(?i:is|would\s+be)\s*:?|\s*:)\s*[*_`\"']*(?:(?i:option|choice)\s+)?"
    r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=\s*(?:[.,;:!)*]|$)))"
)
_LEADING = re.compile(r"^[\s*_`]*(?:\(([A-Z])\)|([A-Z])[.:)])(?:\s|$)")
_PAREN = re.compile(r"\(([A-Z])\)")


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _in_range(letter: str | None, n_choices: int) -> str | None:
    if letter is None:
        return None
    letter = letter.upper()
    return letter if 0 <= ord(letter) - 65 < n_choices else None


def _by_text(text: str, choices: list[str]) -> str | None:
    answer = _normalize(text)
    norm = [_normalize(c) for c in choices]
    exact = [i for i, c in enumerate(norm) if c and c == answer]
    if len(exact) == 1:
        return chr(65 + exact[0])
    hits = {i for i, c in enumerate(norm) if c and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", answer)}
    # an option contained in another hit ("ball" in "beach ball") is not a separate hit
    hits = {i for i in hits if not any(j != i and norm[i] in norm[j] and norm[i] != norm[j] for j in hits)}
    return chr(65 + hits.pop()) if len(hits) == 1 else None


def extract_choice(text: str | None, choices: list[str]) -> str | None:
    """The letter a free-form answer picks among `choices`, or None when it does not pick exactly one."""
    if not text or not text.strip():
        return None
    n = len(choices)
    text = text.strip()

    m = _WRAP.match(text)
    if m:
        return _in_range(m.group(1), n)

    phrases = [next(g for g in m.groups() if g) for m in _PHRASE.finditer(text)]
    if phrases:
        return _in_range(phrases[-1], n)

    parens = {p for p in _PAREN.findall(text) if _in_range(p, n)}
    if len(parens) > 1:
        return None  # "(A) left (B) right": the options echoed, not one chosen

    m = _LEADING.match(text)
    if m:
        letter = _in_range(m.group(1) or m.group(2), n)
        rest = _by_text(text[m.end():], choices) if text[m.end():].strip() else None
        if letter is not None and rest is not None and rest != letter:
            return None  # "A. right" when (A) is "left": contradictory
        return letter

    if len(parens) == 1:
        return parens.pop()

    return _by_text(text, choices)


# -- the other answer kinds --------------------------------------------------------------------------------------
# Each judge reads one free-form answer. None means "unparsable": it is counted, scored as wrong, never guessed.

_REFUSAL = re.compile(
    r"\b(?:no idea|not sure|unsure|cannot (?:tell|determine|say|answer|be determined)|can ?not (?:tell|determine)"
    r"|can't (?:tell|determine|say|answer)|unable to|i don'?t know|i do not know|impossible to (?:tell|determine|say)"
    r"|not possible to (?:tell|determine|say)|insufficient information|sorry)\b",
    re.IGNORECASE,
)
_ANSWER_IS = re.compile(r"(?i)(?:answer\s+is|answer\s*:)")


def is_refusal(text: str | None) -> bool:
    """ "no idea", "I cannot tell", "Sorry, ..." and the like: counted apart from other unparsable answers."""
    return bool(text) and bool(_REFUSAL.search(text))


def after_answer_phrase(text: str) -> str:
    """The text after the last "answer is" / "answer:" (the official scripts cut there), else the whole text."""
    parts = _ANSWER_IS.split(text)
    return parts[-1] if len(parts) > 1 else text


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def extract_yes_no(text: str | None) -> str | None:
    """ "yes" / "no", or None. Exactly one of the two words must appear ("Yes." -> yes, "There is no dog" -> no,
    "yes and no" -> None), as in VLMEvalKit's YOrN extraction. Refusals ("No idea.") are None, not "no"."""
    if not text or not text.strip() or is_refusal(text):
        return None
    found = {w for w in _words(after_answer_phrase(text)) if w in ("yes", "no")}
    return found.pop() if len(found) == 1 else None


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")


def parse_number(text: str | None) -> float | None:
    """The one number an answer states ("12", "1,234.5", "The answer is 12.", "12%"), or None when it states none or
    several different ones ("between 3 and 5")."""
    if not text:
        return None
    values = {float(m.replace(",", "")) for m in _NUMBER.findall(after_answer_phrase(text))}
    return values.pop() if len(values) == 1 else None


def numbers_match(prediction: float, target: float, rel_tol: float = 0.05) -> bool:
    """|pred - gt| <= rel_tol * |gt| (the 5 % tolerance of ChartQA, MathVista, MMMU); gt = 0 needs pred = 0."""
    return abs(prediction - target) <= rel_tol * abs(target)


def short_answer_match(text: str | None, target: str) -> bool:
    """GQA / easy-VQA rule: lowercase, cut after "answer is", strip spaces and a trailing period, compare exactly."""
    if not text:
        return False
    clean = lambda s: s.strip().lower().rstrip(".").strip()  # noqa: E731
    return clean(after_answer_phrase(text)) == clean(target)


def vocabulary_match(text: str | None, target: str, vocabulary: list[str]) -> str | None:
    """The vocabulary word an answer names (exactly, or as the only vocabulary word in it), or None."""
    if not text or is_refusal(text):
        return None
    letter = _by_text(after_answer_phrase(text), vocabulary)
    return vocabulary[ord(letter) - 65] if letter else None


def relaxed_match(text: str | None, target: str, max_relative_change: float = 0.05) -> bool:
    """ChartQA relaxed accuracy (Methani et al.; pix2struct's `relaxed_correctness`): numbers within 5 % of the
    target ("12%" reads as 0.12 on both sides), anything else an exact case-insensitive match. A target of 0 is
    compared as text, as in pix2struct."""
    if not text:
        return False
    prediction = after_answer_phrase(text).strip().rstrip(".").strip()

    def to_float(s: str) -> float | None:
        try:
            return float(s.rstrip("%")) / 100 if s.endswith("%") else float(s)
        except ValueError:
            return None

    p, t = to_float(prediction), to_float(target.strip())
    if p is not None and t:
        return abs(p - t) / abs(t) <= max_relative_change
    return prediction.lower() == target.strip().lower()


# TextVQA / VizWiz answer normalisation (the EvalAI / m4c `EvalAIAnswerProcessor`, abridged contraction table)
_CONTRACTIONS = {
    "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't", "hes": "he's", "im": "i'm",
    "isnt": "isn't", "itd": "it'd", "itll": "it'll", "ive": "i've", "shouldnt": "shouldn't", "thats": "that's",
    "theres": "there's", "theyre": "they're", "wasnt": "wasn't", "werent": "weren't", "whats": "what's",
    "wont": "won't", "wouldnt": "wouldn't", "youre": "you're", "youve": "you've", "lets": "let's",
}
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def normalize_vqa(answer: str) -> str:
    """Lowercase; strip punctuation the EvalAI way (kept inside numbers); number words -> digits; no articles."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD_STRIP.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(text: str | None, answers: list[str]) -> float:
    """VQA accuracy over the annotators: for each leave-one-out subset of the (usually 10) answers,
    min(1, #matching / 3); averaged. One matching annotator of 10 gives 0.3, three or more give 1."""
    if not answers:
        raise ValueError("VQA accuracy needs the annotators' answers")
    if not text:
        return 0.0
    prediction = normalize_vqa(after_answer_phrase(text))
    gts = [normalize_vqa(a) for a in answers]
    scores = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1 :]
        scores.append(min(1.0, sum(g == prediction for g in others) / 3))
    return sum(scores) / len(scores)


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(text: str | None, answers: list[str], threshold: float = 0.5) -> float:
    """DocVQA's Average Normalized Levenshtein Similarity for one question: max over answers of 1 - NL, where NL is
    the edit distance over the longer length (case and spacing normalised); NL >= threshold scores 0."""
    if not answers:
        raise ValueError("ANLS needs at least one reference answer")
    prediction = " ".join((text or "").strip().lower().split())
    best = 0.0
    for answer in answers:
        gt = " ".join(answer.strip().lower().split())
        longest = max(len(gt), len(prediction))
        nl = _levenshtein(gt, prediction) / longest if longest else 0.0
        best = max(best, 1 - nl if nl < threshold else 0.0)
    return best


def ocrbench_match(text: str | None, answers: list[str], dataset: str = "", exact: bool = True) -> bool:
    """OCRBench: Cambrian's default (`extra_penalization`) is an exact lowercase match; the official OCRBench rule
    (`exact=False`) is containment of an answer in the prediction. Math expressions (HME100k) ignore whitespace."""
    if not text:
        return False
    squash = (lambda s: "".join(s.split())) if dataset == "HME100k" else (lambda s: s.strip())
    prediction = squash(text.lower())
    for answer in answers:
        gt = squash(answer.lower())
        if (prediction == gt) if exact else (gt in prediction):
            return True
    return False
