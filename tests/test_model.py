"""CambrianForCausalLM on tiny random-init configs: batching, padding, generation, save/load, errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2Config

from cambrian.models.configuration import CambrianConfig
from cambrian.models.image_tokens import ImagePlaceholderError
from cambrian.models.modeling import CambrianForCausalLM
from cambrian.models.presets import cambrian_tiny


def image(width, height, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def prompt_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def batch(model, tokenizer, samples, side):
    """samples: [(text, [images])] -> padded model inputs (one <image> id per image)."""
    ids = [prompt_ids(tokenizer, text) for text, _ in samples]
    length = max(map(len, ids))
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(ids), length), pad)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for b, row in enumerate(ids):
        span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
        input_ids[b, span] = torch.tensor(row)
        mask[b, span] = 1
    images = [im for _, ims in samples for im in ims]
    return {"input_ids": input_ids, "attention_mask": mask, **model.image_inputs(images)}


A = ("<image>\nWhat shape is in the picture?", [image(48, 30, 1)])
TEXT_ONLY = ("Tell me a short story about a cat.", [])
TWO_IMAGES = ("<image> and <image>: which one is brighter?", [image(32, 32, 2), image(20, 40, 3)])


@pytest.mark.parametrize("side", ["left", "right"])
def test_sample_logits_equal_alone_and_in_mixed_batch(tiny, side):
    model, tokenizer = tiny
    with torch.no_grad():
        alone = model(**batch(model, tokenizer, [A], side)).logits[0]
        mixed = model(**batch(model, tokenizer, [TEXT_ONLY, A, TWO_IMAGES], side)).logits[1]
    n = alone.shape[0]
    mine = mixed[-n:] if side == "left" else mixed[:n]
    assert (mine - alone).abs().max() <= 1e-4


def test_greedy_generate_same_with_and_without_cache(tiny):
    model, tokenizer = tiny
    inputs = batch(model, tokenizer, [A, TWO_IMAGES, TEXT_ONLY], "left")
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    cached = model.generate(**inputs, use_cache=True, **kwargs)
    uncached = model.generate(**inputs, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert cached.shape[1] > inputs["input_ids"].shape[1]
    single = batch(model, tokenizer, [A], "right")  # no padding: generate drops the all-ones mask
    assert torch.equal(
        model.generate(**single, use_cache=True, **kwargs), model.generate(**single, use_cache=False, **kwargs)
    )


def test_save_load_round_trip_gives_identical_logits(tiny, tmp_path):
    from cambrian.models.builder import load_model, save_model

    model, tokenizer = tiny
    inputs = batch(model, tokenizer, [A, TWO_IMAGES], "right")
    save_model(model, tokenizer, tmp_path)
    assert list(tmp_path.glob("*.safetensors"))
    loaded, loaded_tokenizer = load_model(tmp_path)
    assert loaded_tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded.eval()(**inputs).logits)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    from transformers import AutoModelForCausalLM

    assert type(AutoModelForCausalLM.from_pretrained(tmp_path)) is CambrianForCausalLM


def test_wrong_placeholder_count_says_found_and_expected(tiny):
    model, tokenizer = tiny
    inputs = batch(model, tokenizer, [("<image> <image> two placeholders, one image", [image(32, 32, 4)])], "right")
    with pytest.raises(ImagePlaceholderError, match="found 2 image placeholder tokens .* expected 1"):
        model(**inputs)
    no_pixels = batch(model, tokenizer, [("<image> but no pixels", [])], "right")
    with pytest.raises(ImagePlaceholderError, match="found 1 image placeholder tokens but no pixel_values"):
        model(**no_pixels)


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    config = cambrian_tiny()
    model = CambrianForCausalLM(config)
    from cambrian.constants import add_image_token
    from cambrian.models.builder import _tokenizer_for

    tokenizer = _tokenizer_for(config)
    assert add_image_token(tokenizer) == config.image_token_id
    inputs = batch(model, tokenizer, [A, TWO_IMAGES], "right")
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("towers.1.") for n in trainable)  # the from-scratch ViT trains
    assert not any(n.startswith("towers.0.") for n in trainable)  # the CLIP tower is frozen by default
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad


def test_unpadding_and_newline_token_counts(tiny):
    model, _ = tiny
    L = model.query_side
    assert model.num_image_tokens((64, 64)) == L * (L + 1)
    assert model.num_image_tokens((64, 32)) == (L // 2) * (L + 1)  # wide image: padded rows dropped
    assert model.num_image_tokens((32, 64)) == L * (L // 2 + 1)


def test_any_hf_causal_lm_qwen2_and_no_multi_agg(tiny):
    _, tokenizer = tiny
    base = cambrian_tiny()
    text = Qwen2Config(
        vocab_size=49152,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        pad_token_id=2,
    )
    connector = dict(base.connector, in_llm=False)
    config = CambrianConfig(towers=base.towers, connector=connector, text_config=text, image_token_id=49152)
    model = CambrianForCausalLM(config).eval()
    assert len(model.connector.llm_layers) == 0
    inputs = batch(model, tokenizer, [A, TEXT_ONLY], "left")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=2)
    assert out.shape == (2, inputs["input_ids"].shape[1] + model.num_image_tokens(A[1][0].size) - 1 + 4)


def test_in_llm_blocks_take_part_in_prefill(tiny, monkeypatch):
    model, tokenizer = tiny
    inputs = batch(model, tokenizer, [("Look: <image> what is it?", [image(40, 40, 5)])], "right")
    with torch.no_grad():
        with_blocks = model(**inputs).logits
        monkeypatch.setattr(model.connector, "aggregate_in_llm", lambda k, hidden, *rest: hidden)
        without = model(**inputs).logits
    before_image = len(prompt_ids(tokenizer, "Look: "))
    assert torch.equal(with_blocks[:, :before_image], without[:, :before_image])  # causal: text before is untouched
    assert not torch.allclose(with_blocks[:, before_image:], without[:, before_image:])


def test_mlp_connector_model(tiny):
    _, tokenizer = tiny
    base = cambrian_tiny()
    config = CambrianConfig(
        towers=base.towers,
        connector=dict(base.connector, type="mlp", image_newline=False),
        text_config=base.text_config,
        image_token_id=49152,
    )
    model = CambrianForCausalLM(config).eval()
    inputs = batch(model, tokenizer, [A], "right")
    assert model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1] - 1 + model.num_image_tokens(A[1][0].size)


def test_generate_feeds_a_transformers_streamer(tiny):
    from transformers.generation.streamers import BaseStreamer

    class Collect(BaseStreamer):
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.reshape(-1))

        def end(self):
            self.ended = True

    model, tokenizer = tiny
    inputs = batch(model, tokenizer, [A], "right")
    streamer = Collect()
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False, streamer=streamer, pad_token_id=2)
    assert streamer.ended
    streamed = torch.cat(streamer.chunks[1:])  # the first put is the (expanded) prompt
    assert torch.equal(streamed, out[0, -len(streamed) :]) and len(streamed) == 6


def test_in_llm_context_belongs_to_one_call_and_survives_checkpointing():
    from cambrian.constants import add_image_token
    from cambrian.models.builder import _tokenizer_for

    torch.manual_seed(0)
    model = CambrianForCausalLM(cambrian_tiny()).train()
    tokenizer = _tokenizer_for(model.config)
    add_image_token(tokenizer)
    inputs = batch(model, tokenizer, [A, TWO_IMAGES], "right")

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads()
    text = torch.tensor([prompt_ids(tokenizer, "just text after a multimodal step")])
    with torch.no_grad():  # a bare LLM call right after a multimodal forward runs no SVA block
        after = model.language_model(input_ids=text).logits
        fresh = CambrianForCausalLM(model.config).language_model
        fresh.load_state_dict(model.language_model.state_dict())
        assert torch.equal(after, fresh.train()(input_ids=text).logits)
    model.gradient_checkpointing_enable()
    ckpt_loss, ckpt_grads = loss_and_grads()
    model.gradient_checkpointing_disable()
    assert torch.allclose(plain_loss, ckpt_loss, atol=1e-6)
    assert plain_grads.keys() == ckpt_grads.keys()
    assert all(torch.allclose(plain_grads[n], ckpt_grads[n], atol=1e-5) for n in plain_grads)


def test_generate_left_pads_an_unpadded_batch_whose_images_expand_differently(tiny):
    model, tokenizer = tiny
    wide, square = ("<image>\nWhat is this?", [image(64, 32, 6)]), ("<image>\nWhat is this?", [image(40, 40, 7)])
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    together = model.generate(**batch(model, tokenizer, [wide, square], "right"), **kwargs)  # no padding in the ids
    for row, sample in enumerate([wide, square]):
        alone = model.generate(**batch(model, tokenizer, [sample], "right"), **kwargs)
        assert torch.equal(together[row, -5:], alone[0, -5:])
