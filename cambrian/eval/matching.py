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
