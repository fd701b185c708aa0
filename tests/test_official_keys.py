"""Every key of a released Cambrian-1-8B checkpoint (official-cambrian.md 8.3) maps onto our 8B preset, same shape."""

import torch

from cambrian.models.modeling import CambrianForCausalLM
from cambrian.models.official import check_against, convert_official_state_dict
from cambrian.models.presets import get_preset

CHANNELS = [1152, 1024, 1536, 5760]


def official_8b_shapes() -> dict[str, tuple[int, ...]]:
    """The released key names and shapes, written from the official module definitions."""
    shapes = {
        "lm_head.weight": (128256, 4096),
        "model.embed_tokens.weight": (128256, 4096),
        "model.norm.weight": (4096,),
    }
    for i in range(32):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (4096, 4096),
            p + "self_attn.k_proj.weight": (1024, 4096),
            p + "self_attn.v_proj.weight": (1024, 4096),
            p + "self_attn.o_proj.weight": (4096, 4096),
            p + "mlp.gate_proj.weight": (14336, 4096),
            p + "mlp.up_proj.weight": (14336, 4096),
            p + "mlp.down_proj.weight": (4096, 14336),
            p + "input_layernorm.weight": (4096,),
            p + "post_attention_layernorm.weight": (4096,),
        }
    shapes |= {
        "model.image_newline": (4096,),
        "model.vision_query": (1, 1024),
        "model.mm_projector.0.weight": (4096, 1024),
        "model.mm_projector.0.bias": (4096,),
        "model.mm_projector.2.weight": (4096, 4096),
        "model.mm_projector.2.bias": (4096,),
    }
    for t, c in enumerate(CHANNELS):
        p = f"model.mm_projector_aux_{t}."
        shapes |= {
            p + "0.weight": (1024, c),
            p + "0.bias": (1024,),
            p + "2.weight": (1024, 1024),
            p + "2.bias": (1024,),
            p + "3.weight": (1024,),
            p + "3.bias": (1024,),
        }

    def layer(prefix: str, q_dim: int) -> dict:
        s = {
            prefix + "proj_context.weight": (1024, 1024),
            prefix + "proj_in.weight": (1024, q_dim + 1024),
            prefix + "proj_out.linear_1.weight": (1024, 1024),
            prefix + "proj_out.linear_2.weight": (q_dim, 1024),
            prefix + "norm.weight": (1024,),
            prefix + "norm.bias": (1024,),
            prefix + "cross_attn.q_proj.0.weight": (1024,),
            prefix + "cross_attn.q_proj.0.bias": (1024,),
            prefix + "cross_attn.q_proj.1.weight": (1024, 1024),
            prefix + "cross_attn.o_proj.weight": (1024, 1024),
            prefix + "pos_embed_3": (16, 1024),
        }
        for t in range(4):
            for kv in "kv":
                s |= {
                    prefix + f"cross_attn.{kv}_proj_{t}.0.weight": (1024,),
                    prefix + f"cross_attn.{kv}_proj_{t}.0.bias": (1024,),
                    prefix + f"cross_attn.{kv}_proj_{t}.1.weight": (1024, 1024),
                }
        return s

    for j in range(3):
        shapes |= layer(f"model.vision_sampler_0.layers.{j}.", 1024)
    for k in range(10):
        shapes |= layer(f"model.vision_sampler_layers.{k}.layers.0.", 4096)
    return shapes


def test_released_8b_keys_map_onto_the_preset_with_equal_shapes():
    with torch.device("meta"):
        model = CambrianForCausalLM(get_preset("cambrian-8b"))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = official_8b_shapes()
    converted = convert_official_state_dict(official)
    missing, unexpected = check_against(converted, ours)
    assert not missing and not unexpected
    assert all(ours[key] == shape for key, shape in converted.items())
