import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the random-init `cambrian-tiny` preset, built once per session."""
    import torch

    from cambrian.models.builder import build_model

    torch.manual_seed(0)
    model, tokenizer = build_model("cambrian-tiny")
    return model.eval(), tokenizer
