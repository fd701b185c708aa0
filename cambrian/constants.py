"""Constants shared by data, model and evaluation."""

IGNORE_INDEX = -100  # label value ignored by the loss (torch CrossEntropyLoss default)
IMAGE_TOKEN = "<image>"  # one placeholder per image in text and ids; the model expands it to that image's visual tokens


def add_image_token(tokenizer) -> int:
    """Register `<image>` as a special token (idempotent) and return its id.

    The id may lie past the LLM's embedding table: the model never embeds it, it replaces it by visual tokens, so
    no embedding resize is needed.
    """
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
