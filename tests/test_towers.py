"""Vision towers: one interface, real adapters on tiny random-init configs, the packaged EfficientNet-Lite0."""

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModel

from cambrian.models.configuration import TowerConfig
from cambrian.models.towers.base import CPU_INFERENCE_CHUNK, resize_grid
from cambrian.models.towers.preprocess import ImageTransform
from cambrian.models.towers.registry import build_tower, resolve_tower
from cambrian.models.towers.timm_towers import efficientnet_lite0_weights

TINY_VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, patch_size=8)


def pixels(tower, batch=2):
    return torch.randn(batch, 3, tower.config.image_size, tower.config.image_size)


def test_hf_clip_penultimate_layer_without_cls():
    tower = build_tower(TowerConfig(name="clip", family="hf_clip", image_size=32, feature_layer=-2, arch=TINY_VIT))
    x = pixels(tower)
    grid = tower(x)
    assert grid.shape == (2, 4, 4, 32)
    reference = tower.model(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
    assert torch.equal(grid.reshape(2, 16, 32), reference)


def test_hf_siglip_and_dinov2_at_another_resolution():
    siglip = build_tower(TowerConfig(name="siglip", family="hf_siglip", image_size=32, arch=TINY_VIT))
    assert siglip(pixels(siglip)).shape == (2, 4, 4, 32)
    assert siglip.transform.mean == (0.5, 0.5, 0.5)
    # DINOv2 built for 32 px, run at 48 px: position embeddings are interpolated, CLS dropped
    dino_arch = dict(TINY_VIT, image_size=32, mlp_ratio=2)
    dino_arch.pop("intermediate_size")
    dino = build_tower(TowerConfig(name="dino", family="hf_dinov2", image_size=48, arch=dino_arch))
    assert dino(pixels(dino)).shape == (2, 6, 6, 32)
    assert dino.transform.mean == (0.485, 0.456, 0.406)


def test_open_clip_convnext_multi_stage_concatenates_stages_on_one_grid():
    config = resolve_tower(
        "clip-convnext-XXL-multi-stage-interp64", image_size=64, arch=dict(model_name="convnext_atto")
    )
    tower = build_tower(config)
    assert tower.hidden_size == 40 + 80 + 160 + 320
    x = pixels(tower)
    grid = tower(x)
    assert grid.shape == (2, 8, 8, 600)
    stages = tower.model.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    expected = torch.cat([resize_grid(s.permute(0, 2, 3, 1), 8) for s in stages], dim=-1)
    assert torch.equal(grid, expected)


def test_timm_vit_tokens_and_multi_stage_cnn():
    vit = build_tower(resolve_tower("vit-scratch"))
    assert vit.trainable and vit(pixels(vit)).shape == (2, 8, 8, 192)
    cnn = build_tower(resolve_tower("timm/convnext_atto", image_size=64, stages=[1, 2]))
    assert cnn(pixels(cnn)).shape == (2, 8, 8, 240)


def test_cpu_inference_in_chunks_gives_each_image_its_own_grid():
    tower = build_tower(resolve_tower("timm/convnext_atto", image_size=32, stages=[1, 2])).eval()
    x = pixels(tower, batch=2 * CPU_INFERENCE_CHUNK + 1)
    with torch.no_grad():
        chunked = tower(x)
        one_by_one = torch.cat([tower(image[None]) for image in x])
    with torch.enable_grad():
        whole = tower(x)  # gradients on (training path): the batch is not split
    assert chunked.shape == (len(x), 4, 4, 240)
    torch.testing.assert_close(chunked, one_by_one, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_resize_grid_is_fp32_bilinear_align_corners_false():
    grid = torch.randn(1, 27, 27, 5, dtype=torch.bfloat16)
    resized = resize_grid(grid, 24)
    assert resized.dtype == torch.bfloat16
    reference = F.interpolate(grid.permute(0, 3, 1, 2).float(), (24, 24), mode="bilinear", align_corners=False)
    assert torch.equal(resized, reference.permute(0, 2, 3, 1).to(torch.bfloat16))


def test_frozen_by_default_and_unfreezable():
    tower = build_tower(TowerConfig(name="clip", family="hf_clip", image_size=32, arch=TINY_VIT))
    assert not any(p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.model.training  # a frozen tower stays in eval mode
    tower.set_trainable(True)
    tower.train()
    assert tower.model.training and all(p.requires_grad for p in tower.parameters())
    tower(pixels(tower)).sum().backward()


def test_registry_knows_the_official_towers():
    siglip = resolve_tower("siglip/CLIP-ViT-SO400M-14-384-interp576")
    assert (siglip.family, siglip.image_size, siglip.grid_size) == ("open_clip", 384, 24)
    clip = resolve_tower("openai/clip-vit-large-patch14-336")
    assert (clip.family, clip.image_size, clip.feature_layer) == ("hf_clip", 336, -2)
    dino = resolve_tower("facebook/dinov2-giant-res378-interp576")
    assert (dino.family, dino.image_size, dino.grid_size, dino.source) == (
        "hf_dinov2",
        378,
        24,
        "facebook/dinov2-giant",
    )
    convnext = resolve_tower("clip-convnext-XXL-multi-stage-interp9216")
    assert (convnext.image_size, convnext.grid_size, convnext.stages) == (1024, 96, [0, 1, 2, 3])
    with pytest.raises(KeyError, match="unknown vision tower 'not-a-tower'"):
        resolve_tower("not-a-tower")


@pytest.mark.parametrize(
    "name", ["openai/clip-vit-large-patch14-336", "siglip/CLIP-ViT-SO400M-14-384", "timm/convnext_atto"]
)
def test_real_loaders_stop_at_the_network_boundary(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = resolve_tower(name)
    if config.family == "hf_clip":  # a tiny architecture: only the download is under test
        config.arch = TINY_VIT
        config.image_size = 32
    if config.family == "open_clip":
        config.arch = dict(model_name="vit_tiny_patch16_224", global_pool="")
        config.image_size = 32
        config.arch["patch_size"] = 8
    tower = build_tower(config)
    with pytest.raises((OSError, RuntimeError), match="(?i)hub|connect|download|cache"):
        tower.load_pretrained()


def test_local_folder_tower_loads_its_weights(tmp_path):
    torch.manual_seed(0)
    saved = CLIPVisionModel(CLIPVisionConfig(image_size=32, **TINY_VIT))
    saved.save_pretrained(tmp_path)
    tower = build_tower(str(tmp_path), load_weights=True)
    assert tower.config.family == "hf_clip" and tower.config.feature_layer == -2
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(tower(x).reshape(1, 16, 32), saved(x, output_hidden_states=True).hidden_states[-2][:, 1:])


def test_pad_to_square_uses_the_tower_fill_and_keeps_content():
    transform = ImageTransform(size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), fill=(1.0, 0.0, 0.0))
    image = Image.new("RGB", (8, 4), (0, 0, 255))
    out = transform(image)
    assert out.shape == (3, 8, 8)
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]), atol=0.02)  # red border, normalised
    assert torch.allclose(out[:, 4, 4], torch.tensor([-1.0, -1.0, 1.0]), atol=0.02)  # blue image


def test_packaged_efficientnet_lite0_recognises_an_espresso():
    skimage_data = pytest.importorskip("skimage.data")
    tower = build_tower("efficientnet-lite0", load_weights=True)
    assert tower.grid_size == 14 and tower.hidden_size == 112 + 320  # stages 3 + 4 at 224 px
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    classifier.load_state_dict(tower.model.state_dict(), strict=False)
    classifier.classifier.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    pixels = ImageTransform(224, mean=(0.5,) * 3, std=(0.5,) * 3)(Image.fromarray(np.asarray(skimage_data.coffee())))
    with torch.no_grad():
        probs = classifier(pixels[None]).softmax(-1)[0]
    assert int(probs.argmax()) == 967 and float(probs[967]) > 0.5  # ImageNet 967 = espresso
