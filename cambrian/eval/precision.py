"""Compute precision for evaluation: `fp32` (default) or `bf16`.

bf16 casts the whole model (towers, connector, LLM) to bfloat16: on this project's CPU (AMX) that was faster than
`torch.autocast` at both batch 1 and batch 16 (nano, 16 CV-Bench questions: 15.2 s / 3.3 s against 17.5 s / 4.3 s),
and it is how inference usually runs on GPUs. The LM head alone stays fp32 (an fp32 copy of its weight): bf16 logits
are rounded to 1/16 to 1/8 around typical values, so greedy decoding met near-ties that any other rounding of the
hidden states flipped; at M = 1 the fp32 head costs ~1 ms more per step (7.4 ms against 6.4 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COMPUTE_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


def compute_dtype(name: str) -> torch.dtype:
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


class Float32LMHead(nn.Module):
    """The LM head on an fp32 copy of its weight, fed the (bf16) hidden states upcast: fp32 logits."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(head.weight.detach().float().clone(), requires_grad=False)
        self.bias = None if head.bias is None else nn.Parameter(head.bias.detach().float().clone(),
                                                                requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden.float(), self.weight, self.bias)


def to_compute_dtype(model, name: str):
    """Cast an evaluation model (in place) to the compute dtype `name`; bf16 keeps an fp32 LM head. Inference only:
    the fp32 head unties the output embedding from the input one."""
    dtype = compute_dtype(name)
    if dtype == torch.float32:
        return model.float()
    head = model.get_output_embeddings()
    fp32_head = Float32LMHead(head) if isinstance(head, nn.Linear) else None
    model.to(dtype)
    if fp32_head is not None:
        model.language_model.set_output_embeddings(fp32_head.to(head.weight.device))
    return model
