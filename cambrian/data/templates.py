"""Chat templates: a conversation -> text segments, each marked supervised or not.

A template only *renders*; `masking.tokenize_conversation` tokenizes the whole text once and labels the tokens
whose character offsets fall in supervised segments. One masking routine therefore serves every template, and
there is no per-template `preprocess_*` with hand-counted token offsets (the official Llama-3 path is off by a BOS
per round, official-cambrian.md 4.4).

Supervised = each assistant answer plus the end-of-turn token that follows it, nothing else.

Named templates reproduce the official Cambrian strings exactly (official-cambrian.md 4.2); `tokenizer` uses the
tokenizer's own Jinja chat template (the default: SmolLM2, Qwen, Llama-3-Instruct... all work unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cambrian.data.records import Turn

CAMBRIAN_SYSTEM = (
    "You are Cambrian, a highly intelligent multimodal AI trained by NYU Vision X. \n"
    "    As a multimodal AI, you have the ability to process and analyze images. Whenever an image is present in "
    "the conversation, very carefully examine it and consider its content when formulating your response.\n"
    "    You should give concise responses to very simple questions, but provide thorough responses to more "
    "complex and open-ended questions. "
)
CAMBRIAN_SYSTEM_ONE_LINE = (
    "You are Cambrian, a highly intelligent multimodal AI trained by NYU Vision X. As a multimodal AI, you have "
    "the ability to process and analyze images. Whenever an image is present in the conversation, very carefully "
    "examine it and consider its content when formulating your response. You should give concise responses to "
    "very simple questions, but provide thorough responses to more complex and open-ended questions."
)
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


@dataclass(frozen=True)
class Segment:
    text: str
    supervised: bool = False


class ChatTemplate(Protocol):
    name: str
    add_bos: bool  # prepend the tokenizer's BOS id (templates whose text does not already hold it)

    def render(self, turns: list[Turn], tokenizer, add_generation_prompt: bool = False) -> list[Segment]: ...


@dataclass(frozen=True)
class FormatTemplate:
    """A template given by its strings: `{content}` marks where the message text goes."""

    name: str
    user: str
    assistant_header: str  # before each answer, not supervised
    assistant_end: str  # after each answer, supervised with it
    generation_prompt: str  # what ends a prompt that asks for the next answer
    system: str = "{content}"
    default_system: str = ""
    prefix: str = ""  # literal text before everything (e.g. "<|begin_of_text|>")
    add_bos: bool = False

    def render(self, turns: list[Turn], tokenizer=None, add_generation_prompt: bool = False) -> list[Segment]:
        system = self.default_system
        if turns and turns[0].role == "system":
            system, turns = turns[0].text, turns[1:]
        segments = [Segment(self.prefix + (self.system.format(content=system) if system else ""))]
        for turn in turns:
            if turn.role == "user":
                segments.append(Segment(self.user.format(content=turn.text)))
            else:
                segments.append(Segment(self.assistant_header))
                segments.append(Segment(turn.text + self.assistant_end, supervised=True))
        if add_generation_prompt:
            segments.append(Segment(self.generation_prompt))
        return [s for s in segments if s.text]


@dataclass(frozen=True)
class TokenizerTemplate:
    """The tokenizer's own Jinja chat template; assistant spans found by rendering growing prefixes.

    The answer to turn i is what rendering messages[:i+1] adds to messages[:i] + generation prompt; within it,
    the answer text and the first special token after it (the end of turn) are supervised.
    """

    name: str = "tokenizer"
    add_bos: bool = False  # HF convention: the chat template writes the BOS itself

    def render(self, turns: list[Turn], tokenizer, add_generation_prompt: bool = False) -> list[Segment]:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"tokenizer {tokenizer.name_or_path!r} has no chat template; pick a named template "
                f"({', '.join(t for t in TEMPLATES if t != 'tokenizer')})"
            )
        messages = [{"role": turn.role, "content": turn.text} for turn in turns]
        specials = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
        segments, done = [], ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = _apply(tokenizer, messages[:i], generation_prompt=True)
            after = _apply(tokenizer, messages[: i + 1], generation_prompt=False)
            _check_prefix(done, before, self.name)
            _check_prefix(before, after, self.name)
            segments.append(Segment(before[len(done) :]))
            added = after[len(before) :]
            answer = message["content"].strip()
            start = added.find(answer)
            if start < 0:
                raise ValueError(
                    f"chat template of {tokenizer.name_or_path!r} rewrites assistant text; use a named template"
                )
            end = start + len(answer)
            rest = added[end:]
            stripped = rest.lstrip()
            end_token = next((t for t in specials if stripped.startswith(t)), "")
            if end_token:
                end += len(rest) - len(stripped) + len(end_token)
            segments += [Segment(added[:start]), Segment(added[start:end], True), Segment(added[end:])]
            done = after
        full = _apply(
            tokenizer, messages, generation_prompt=add_generation_prompt and messages[-1]["role"] != "assistant"
        )
        _check_prefix(done, full, self.name)
        segments.append(Segment(full[len(done) :]))
        return [s for s in segments if s.text]


def _apply(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _check_prefix(prefix: str, text: str, name: str) -> None:
    if not text.startswith(prefix):
        raise ValueError(
            f"template {name!r} renders earlier turns differently once later turns are added "
            "(e.g. it drops past reasoning); label spans cannot be located. Use a named template."
        )


LLAMA_3_HEADER = "<|start_header_id|>{role}<|end_header_id|>"

TEMPLATES: dict[str, ChatTemplate] = {
    # Cambrian-8B: no "\n\n" after the headers, the indented system prompt (official-cambrian.md 4.2).
    "llama_3": FormatTemplate(
        name="llama_3",
        prefix="<|begin_of_text|>",
        system=LLAMA_3_HEADER.format(role="system") + "{content}<|eot_id|>",
        default_system=CAMBRIAN_SYSTEM,
        user=LLAMA_3_HEADER.format(role="user") + "{content}<|eot_id|>",
        assistant_header=LLAMA_3_HEADER.format(role="assistant"),
        assistant_end="<|eot_id|>",
        generation_prompt=LLAMA_3_HEADER.format(role="assistant"),
    ),
    # Meta's Llama-3-Instruct format ("\n\n" after every header, no default system prompt).
    "llama_3_meta": FormatTemplate(
        name="llama_3_meta",
        prefix="<|begin_of_text|>",
        system=LLAMA_3_HEADER.format(role="system") + "\n\n{content}<|eot_id|>",
        user=LLAMA_3_HEADER.format(role="user") + "\n\n{content}<|eot_id|>",
        assistant_header=LLAMA_3_HEADER.format(role="assistant") + "\n\n",
        assistant_end="<|eot_id|>",
        generation_prompt=LLAMA_3_HEADER.format(role="assistant") + "\n\n",
    ),
    # Cambrian-13B (Vicuna-1.5): "SYS USER: q ASSISTANT: a</s>USER: ..."; the tokenizer's <s> starts it.
    "vicuna_v1": FormatTemplate(
        name="vicuna_v1",
        system="{content} ",
        default_system=VICUNA_SYSTEM,
        user="USER: {content} ",
        assistant_header="ASSISTANT: ",
        assistant_end="</s>",
        generation_prompt="ASSISTANT:",
        add_bos=True,
    ),
    # Cambrian-34B (Yi): ChatML with no newline between turns.
    "chatml_direct": FormatTemplate(
        name="chatml_direct",
        system="<|im_start|>system\n{content}<|im_end|>",
        default_system=CAMBRIAN_SYSTEM_ONE_LINE,
        user="<|im_start|>user\n{content}<|im_end|>",
        assistant_header="<|im_start|>assistant\n",
        assistant_end="<|im_end|>",
        generation_prompt="<|im_start|>assistant\n",
    ),
    # Cambrian-Phi3-3B.
    "phi3": FormatTemplate(
        name="phi3",
        system="<|system|>\n{content}<|end|>",
        default_system="You are a helpful AI assistant.",
        user="\n<|user|>\n{content}<|end|>",
        assistant_header="\n<|assistant|>\n",
        assistant_end="<|end|>",
        generation_prompt="\n<|assistant|>\n",
        add_bos=True,
    ),
    "tokenizer": TokenizerTemplate(),
}
ALIASES = {
    "llama_v3": "llama_3",
    "v1": "vicuna_v1",
    "llama3": "llama_3_meta",
    "chatml": "chatml_direct",
    "default": "tokenizer",
    "auto": "tokenizer",
}


def get_template(name: str | ChatTemplate = "tokenizer") -> ChatTemplate:
    if not isinstance(name, str):
        return name
    key = ALIASES.get(name, name)
    if key not in TEMPLATES:
        raise KeyError(f"unknown chat template {name!r}; known: {', '.join(TEMPLATES)} (aliases: {', '.join(ALIASES)})")
    return TEMPLATES[key]
