"""Chat templates and the one label-masking routine: supervised tokens decode to exactly the assistant turns."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from cambrian.constants import IGNORE_INDEX, IMAGE_TOKEN
from cambrian.data.masking import image_token_id, render_text, tokenize_conversation
from cambrian.data.records import Turn
from cambrian.data.templates import CAMBRIAN_SYSTEM, TEMPLATES, get_template
from cambrian.data.tokenizer import load_tokenizer

SPECIALS = [
    "<unk>",
    "<pad>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
]
TURNS = [
    Turn("user", "<image>\nWhat is in the picture?"),
    Turn("assistant", "A red cube on a table."),
    Turn("user", "How many cubes?"),
    Turn("assistant", "Two cubes, side by side."),
]
# template -> (BOS the template wants or None, end-of-turn token)
EXPECT = {
    "llama_3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama_3_meta": ("<|begin_of_text|>", "<|eot_id|>"),
    "vicuna_v1": ("<s>", "</s>"),
    "chatml_direct": (None, "<|im_end|>"),
    "phi3": ("<s>", "<|end|>"),
}


def tiny_tokenizer(bos: str = "<s>", eos: str = "</s>") -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the template strings; like Llama's tokenizers it adds BOS by default, so a
    code path that forgot add_special_tokens=False would show a second BOS."""
    corpus = [render_text(TURNS, None, t) for t in EXPECT] * 20 + ["user assistant system USER ASSISTANT"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=SPECIALS[2:],
    )


def supervised_runs(tokenizer, ids, labels) -> list[str]:
    runs, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    return [tokenizer.decode(run) for run in runs]


@pytest.fixture(scope="module")
def smollm2():
    return load_tokenizer("smollm2")


@pytest.mark.parametrize("name", list(EXPECT))
def test_supervised_tokens_are_exactly_the_answers(name):
    bos, end = EXPECT[name]
    tokenizer = tiny_tokenizer(bos=bos or "<s>")
    out = tokenize_conversation(TURNS, tokenizer, name)
    answers = [t.text + end for t in TURNS if t.role == "assistant"]
    # byte-level BPE may glue the space before an answer to its first token (" A"); nothing else is allowed
    assert [run.removeprefix(" ") for run in supervised_runs(tokenizer, out.input_ids, out.labels)] == answers
    bos_id = tokenizer.convert_tokens_to_ids(bos or "<s>")
    assert out.input_ids.count(bos_id) == (1 if bos else 0)
    if bos:
        assert out.input_ids[0] == bos_id
    image_id = image_token_id(tokenizer)
    assert out.input_ids.count(image_id) == 1 and out.labels[out.input_ids.index(image_id)] == IGNORE_INDEX
    # the ids are the tokenization of the rendered text (nothing inserted or dropped by the masking)
    plain = tokenizer(out.text, add_special_tokens=False).input_ids
    assert out.input_ids[len(out.input_ids) - len(plain) :] == plain


def test_tokenizer_template_smollm2(smollm2):
    out = tokenize_conversation(TURNS, smollm2, "tokenizer")
    runs = supervised_runs(smollm2, out.input_ids, out.labels)
    assert runs == ["A red cube on a table.<|im_end|>", "Two cubes, side by side.<|im_end|>"]
    messages = [{"role": t.role, "content": t.text} for t in TURNS]
    reference = smollm2.apply_chat_template(messages, tokenize=False)
    assert out.text == reference
    assert out.input_ids == smollm2(reference, add_special_tokens=False).input_ids  # same ids inference sees
    prompt = tokenize_conversation(TURNS[:1], smollm2, "tokenizer", add_generation_prompt=True)
    assert prompt.text.endswith("<|im_start|>assistant\n") and all(x == IGNORE_INDEX for x in prompt.labels)


def test_tokenizer_template_with_system_turn(smollm2):
    turns = [Turn("system", "Be terse.")] + TURNS[:2]
    out = tokenize_conversation(turns, smollm2)
    assert "Be terse." in out.text and "SmolLM" not in out.text
    assert supervised_runs(smollm2, out.input_ids, out.labels) == ["A red cube on a table.<|im_end|>"]


# The official prompts, written out by hand from cambrian/conversation.py (official-cambrian.md 4.2)
OFFICIAL_SYS = (
    "You are Cambrian, a highly intelligent multimodal AI trained by NYU Vision X. \n    As a multimodal AI, you "
    "have the ability to process and analyze images. Whenever an image is present in the conversation, very "
    "carefully examine it and consider its content when formulating your response.\n    You should give concise "
    "responses to very simple questions, but provide thorough responses to more complex and open-ended questions. "
)


def test_llama_3_prompt_is_the_official_string_byte_for_byte():
    assert CAMBRIAN_SYSTEM == OFFICIAL_SYS
    official = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>" + OFFICIAL_SYS + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|><image>\nWhat is in the picture?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>"
    )
    prompt = render_text(TURNS[:1], None, "llama_3", add_generation_prompt=True)
    assert prompt.encode() == official.encode()
    tokenizer = tiny_tokenizer(bos="<|begin_of_text|>")
    ids = tokenize_conversation(TURNS[:1], tokenizer, "llama_3", add_generation_prompt=True).input_ids
    assert ids.count(tokenizer.convert_tokens_to_ids("<|begin_of_text|>")) == 1  # the official training path had 2


def test_other_official_prompts():
    q = [Turn("user", "<image>\nQ?")]
    vicuna = (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <image>\nQ? ASSISTANT:"
    )
    assert render_text(q, None, "vicuna_v1", add_generation_prompt=True) == vicuna
    two = render_text(q + [Turn("assistant", "A."), Turn("user", "R?")], None, "vicuna_v1", True)
    assert two.endswith("USER: <image>\nQ? ASSISTANT: A.</s>USER: R? ASSISTANT:")
    phi3 = "<|system|>\nYou are a helpful AI assistant.<|end|>\n<|user|>\n<image>\nQ?<|end|>\n<|assistant|>\n"
    assert render_text(q, None, "phi3", add_generation_prompt=True) == phi3
    chatml = render_text(q, None, "chatml_direct", add_generation_prompt=True)
    assert chatml.startswith("<|im_start|>system\nYou are Cambrian, a highly intelligent")
    assert chatml.endswith("questions.<|im_end|><|im_start|>user\n<image>\nQ?<|im_end|><|im_start|>assistant\n")
    meta = render_text(q, None, "llama_3_meta", add_generation_prompt=True)
    assert meta == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>\nQ?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_template_registry_errors():
    assert get_template("llama_v3") is TEMPLATES["llama_3"]
    with pytest.raises(KeyError, match="unknown chat template 'nope'.*llama_3"):
        get_template("nope")
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="no chat template"):
        tokenize_conversation(TURNS, tokenizer, "tokenizer")
    assert IMAGE_TOKEN in tokenizer.get_vocab() or image_token_id(tokenizer)
