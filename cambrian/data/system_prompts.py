"""Short-answer prompts against the "answer machine" (paper Section 5.3, official-cambrian.md 7.3).

A question whose answer is a single word or phrase, an option letter or a number gets the matching instruction
appended, so the model learns that terse answers are what *that instruction* asks for, and keeps answering open
questions at length.
"""

from __future__ import annotations

import re
from functools import lru_cache

SINGLE_WORD = "Answer the question using a single word or phrase."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."
NUMBER = "Answer the question using a single number or phrase."
PROMPTS = {"word": SINGLE_WORD, "letter": OPTION_LETTER, "number": NUMBER}
# the family used by Cambrian's data and evaluation: a question holding any of these is already instructed
FAMILY = (
    SINGLE_WORD,
    OPTION_LETTER,
    "Please answer directly with only the letter of the correct option and nothing else.",
    NUMBER,
    "Give the short answer directly.",
    "When the provided information is insufficient, respond with 'Unanswerable'.",
)

_LETTER = re.compile(r"^\(?([A-H])\)?[.:)]?$")
# An option marker ("A.", "(B)", "C:") at the start or after whitespace or "(": (?:^|[\s(])\(?[A-D][.):]\s*\S with
# MULTILINE, written to start with a character class, which the regex engine skips to quickly (2x faster); the
# question gets a leading space to stand for its start (after a newline, ^ and [\s(] find the same matches).
_OPTIONS = re.compile(r"[\s(]\(?[A-D][.):]\s*\S")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?")
_DIGIT = re.compile(r"\d")
MAX_PHRASE_WORDS = 3
MAX_PHRASE_CHARS = 40
MAX_ANSWER_CHARS = 48  # longest answer that may count as short (letters, numbers like "12,345.6%", phrases)


def short_answer_kind(question: str, answer: str) -> str | None:
    """ "letter" | "number" | "word" for short answers, None for answers that deserve no instruction."""
    could_be_letter, kind = _answer_kind(answer)
    if could_be_letter and len(_OPTIONS.findall(" " + question)) >= 2:
        return "letter"
    return kind


@lru_cache(maxsize=1 << 16)  # short answers repeat (yes, no, 2, B, ...): curation asks about millions of them
def _answer_kind(answer: str) -> tuple[bool, str | None]:
    """(whether the answer may be an option letter, its kind otherwise): the part that ignores the question."""
    answer = answer.strip()
    if not answer or "\n" in answer or len(answer) > MAX_ANSWER_CHARS:
        return False, None
    could_be_letter = len(answer) <= 4 and _LETTER.match(answer) is not None
    bare = answer.rstrip(".")
    if _NUMBER.fullmatch(bare) and _DIGIT.search(bare):
        return could_be_letter, "number"
    if len(bare) <= MAX_PHRASE_CHARS and len(bare.split()) <= MAX_PHRASE_WORDS and bare[-1:] not in "!?":
        return could_be_letter, "word"
    return could_be_letter, None


_FAMILY = re.compile("|".join(re.escape(prompt) for prompt in FAMILY))


# a substring every prompt of the family holds: one fast `in` test spares most questions the regex search
_FAMILY_MARK = "nswer" if all("nswer" in prompt for prompt in FAMILY) else ""


def has_instruction(question: str) -> bool:
    return _FAMILY_MARK in question and _FAMILY.search(question) is not None


USER_ROLES = frozenset(("human", "user"))
ASSISTANT_ROLES = frozenset(("gpt", "assistant"))


def prompt_plan(conversations: list) -> list[tuple[int, str]]:
    """(question turn index, prompt kind) for each user turn whose answer is short and that has no instruction.

    Cheap for long answers: curation runs this on every record it keeps.
    """
    plan = []
    question = None
    for k, answer in enumerate(conversations):
        if type(answer) is dict and type(question) is dict:
            value = answer.get("value")
            if type(value) is str and (len(value) <= MAX_ANSWER_CHARS or len(value.strip()) <= MAX_ANSWER_CHARS):
                text = question.get("value")
                if (
                    type(text) is str
                    and question.get("from") in USER_ROLES
                    and answer.get("from") in ASSISTANT_ROLES
                    and (kind := short_answer_kind(text, value)) is not None
                    and not has_instruction(text)
                ):
                    plan.append((k - 1, kind))
        question = answer
    return plan


def with_prompt(question: str, kind: str) -> str:
    return question.rstrip() + "\n" + PROMPTS[kind]


def add_system_prompts(conversations: list[dict]) -> list[str]:
    """Append the matching prompt to each user turn answered briefly (in place); returns the kinds added."""
    plan = prompt_plan(conversations)
    for index, kind in plan:
        conversations[index]["value"] = with_prompt(conversations[index]["value"], kind)
    return [kind for _, kind in plan]
