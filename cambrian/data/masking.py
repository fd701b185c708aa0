"""One label-masking routine for every template: tokenize the whole conversation once, label by offsets.

The rendered text is tokenized in one call (`add_special_tokens=False`: the template decides about BOS), so the
ids are exactly those inference sees. A token is supervised when its character span overlaps a supervised
segment (assistant answer + end-of-turn token); every other label is IGNORE_INDEX. Each `<image>` is one
placeholder id that the model expands into that image's visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cambrian.constants import IGNORE_INDEX, IMAGE_TOKEN, add_image_token
from cambrian.data.records import Turn
from cambrian.data.templates import ChatTemplate, get_template


def image_token_id(tokenizer) -> int:
    """The `<image>` id, registering it once (cheap to call per sample, unlike a vocab scan)."""
    token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if token_id is not None and token_id != tokenizer.unk_token_id:
        return token_id
    try:
        return add_image_token(tokenizer)
    except TypeError:  # transformers 5 renamed add_special_tokens' replace_* keyword
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
        return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int]
    text: str  # the rendered conversation (BOS id, if prepended, is not in it)

    def __len__(self) -> int:
        return len(self.input_ids)


def render_text(turns: list[Turn], tokenizer, template: str | ChatTemplate, add_generation_prompt: bool = False):
    """The prompt string a template produces (what inference feeds the tokenizer)."""
    return "".join(s.text for s in get_template(template).render(turns, tokenizer, add_generation_prompt))


def tokenize_conversation(
    turns: list[Turn] | list[dict],
    tokenizer,
    template: str | ChatTemplate = "tokenizer",
    add_generation_prompt: bool = False,
) -> TokenizedConversation:
    """Turns (or `{role, content}` dicts) -> ids and labels with IGNORE_INDEX everywhere but assistant answers."""
    turns = [t if isinstance(t, Turn) else Turn(t["role"], t["content"]) for t in turns]
    template = get_template(template)
    image_id = image_token_id(tokenizer)
    segments = template.render(turns, tokenizer, add_generation_prompt)
    text = "".join(s.text for s in segments)

    supervised = np.zeros(len(text) + 1, dtype=np.int64)  # +1 chars with a supervised char before them
    position = 0
    for segment in segments:
        if segment.supervised:
            supervised[position + 1 : position + 1 + len(segment.text)] = 1
        position += len(segment.text)
    cumulative = np.cumsum(supervised)

    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer: label masking needs offsets")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    is_supervised = cumulative[offsets[:, 1]] - cumulative[offsets[:, 0]] > 0
    labels = np.where(is_supervised, np.asarray(ids, dtype=np.int64), IGNORE_INDEX)
    labels[np.asarray(ids, dtype=np.int64) == image_id] = IGNORE_INDEX
    labels = labels.tolist()

    if template.add_bos:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ValueError(f"template {template.name!r} wants a BOS but the tokenizer has no bos_token")
        if not ids or ids[0] != bos:
            ids, labels = [bos] + ids, [IGNORE_INDEX] + labels
    if text.count(IMAGE_TOKEN) != ids.count(image_id):
        raise ValueError(f"`{IMAGE_TOKEN}` did not tokenize to one id each; is it a special token of the tokenizer?")
    return TokenizedConversation(ids, labels, text)
