"""One training step of cambrian-nano (towers frozen) against the bare LLM on text of the same total length.

Both steps are forward + backward + AdamW update with the same trainable LLM, the same batch and the same number
of positions in the LLM: the Cambrian batch holds one 64x64 image per sample (expanded to its visual tokens) and
text; the bare-LLM batch holds text only, padded to the same length. Timed alternately in one process.

    .venv/bin/python benchmarks/train_step.py [--batch 8] [--text-tokens 108] [--repeats 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from cambrian.models.builder import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text-tokens", type=int, default=108, help="text tokens per sample besides the image")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)

    model, tokenizer = build_model("cambrian-nano")
    for tower in model.towers:  # towers frozen, as in the released recipe
        tower.set_trainable(False)
    model.train()
    llm = model.language_model

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(args.batch)]
    image_inputs = model.image_inputs(images)
    image_tokens = model.num_image_tokens((64, 64))
    vocab = llm.config.vocab_size
    text = torch.randint(100, vocab - 100, (args.batch, args.text_tokens))
    cambrian_ids = torch.cat([torch.full((args.batch, 1), model.config.image_token_id), text], dim=1)
    total = image_tokens + args.text_tokens  # positions the LLM sees per sample, in both workloads
    llm_ids = torch.randint(100, vocab - 100, (args.batch, total))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)

    def cambrian_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=cambrian_ids, labels=cambrian_ids, **image_inputs)
        out.loss.backward()
        optimizer.step()

    def llm_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        llm(input_ids=llm_ids, labels=llm_ids).loss.backward()
        optimizer.step()

    cambrian_step(), llm_step()  # warm-up (allocations, AdamW state)
    times: dict[str, list[float]] = {"cambrian": [], "llm": []}
    for _ in range(args.repeats):
        for name, step in (("cambrian", cambrian_step), ("llm", llm_step)):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    tokens = args.batch * total
    cam, bare = statistics.median(times["cambrian"]), statistics.median(times["llm"])
    trainable = sum(p.numel() for p in params) / 1e6
    print(
        f"cambrian-nano, towers frozen, {trainable:.1f}M trainable; batch {args.batch} x {total} LLM positions "
        f"({image_tokens} visual + {args.text_tokens} text); {torch.get_num_threads()} threads"
    )
    print(f"cambrian step: median {cam:.2f} s over {args.repeats} -> {tokens / cam:,.0f} tokens/s")
    print(f"bare LLM step: median {bare:.2f} s over {args.repeats} -> {tokens / bare:,.0f} tokens/s")
    print(f"cost ratio cambrian / bare LLM: {cam / bare:.2f}  (target <= 1.50)")


if __name__ == "__main__":
    main()
