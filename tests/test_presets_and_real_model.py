"""Presets: the released shapes match the official parameter counts; the real nano model builds offline."""

import numpy as np
import pytest
import torch
from PIL import Image

from cambrian.models.modeling import CambrianForCausalLM
from cambrian.models.presets import get_preset


def millions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize(
    "name, in_llm_layers, connector_millions",
    [
        ("cambrian-8b", list(range(0, 30, 3)), 302.8),
        ("cambrian-13b", list(range(0, 40, 4)), 334.2),
        ("cambrian-34b", list(range(0, 63, 7)), 375.1),
    ],
)
def test_released_shapes(name, in_llm_layers, connector_millions):
    config = get_preset(name)
    with torch.device("meta"):
        model = CambrianForCausalLM(config)
    assert [t.grid_size for t in model.towers] == [24, 24, 24, 96]
    assert [t.hidden_size for t in model.towers] == [1152, 1024, 1536, 5760]  # official-cambrian.md 2.3
    assert model.connector.window_sides == [1, 1, 1, 4]
    assert model.in_llm_layers == in_llm_layers
    sva = model.connector
    # official-cambrian.md 2.6 (8B): projectors 13.9M, sampler 47.3M, in-LLM 220.6M, MLP 21.0M, total ~303M
    connector = millions(sva) + model.image_newline.numel() / 1e6
    assert connector == pytest.approx(connector_millions, abs=0.1)
    if name == "cambrian-8b":
        assert millions(sva.tower_projectors) == pytest.approx(13.9, abs=0.05)
        assert millions(sva.samplers) == pytest.approx(47.3, abs=0.05)
        assert millions(sva.llm_layers) == pytest.approx(220.6, abs=0.05)
        assert millions(sva.projector) == pytest.approx(21.0, abs=0.05)


@pytest.mark.slow
def test_real_efficientnet_and_smollm2_answer_offline():
    from cambrian.models.builder import build_model

    model, tokenizer = build_model("cambrian-nano")
    model.eval()
    assert model.towers[0].name.startswith("efficientnet-lite0")

    def ask(question, images=()):
        content = "<image>\n" * len(images) + question
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        inputs = {"input_ids": ids, **model.image_inputs(list(images))}
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
        return tokenizer.decode(out[0, -12:], skip_special_tokens=True)

    assert "Paris" in ask("What is the capital of France?")  # the real pretrained LLM, unchanged
    picture = Image.fromarray(np.full((96, 128, 3), (200, 30, 30), dtype=np.uint8))
    assert len(ask("What is in this image?", [picture]).strip()) > 0
