"""The quickstart's stage 1 (word alignment, `quickstart_lib.align`): the towers' pass over its images, and one step.

Towers: cambrian-nano's two EfficientNet-Lite0 views (256 px and 128 px) on easy-VQA train images, per image, with
the pixels in PyTorch's default (NCHW-contiguous) layout or channels-last, in fp32 or under bf16 autocast. The timm
backbone is called directly, so the layout is the one named (the tower itself always passes channels-last). The
relative error is each variant's grids against fp32 NCHW's (Frobenius norm of the difference over the norm).

Step: the SVA on 32 images' cached grids and the alignment loss, backward, clipping and AdamW, as `align_connector`
runs it: fp32 with torch's default (foreach) AdamW, as stage 1 ran before session 12, against bf16 autocast with the
fused AdamW. The variants take turns in one process, on the same batches; medians.

    .venv/bin/python benchmarks/word_alignment.py [--images 64] [--steps 12] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="easy-VQA train images for the towers' pass")
    parser.add_argument("--steps", type=int, default=12, help="timed stage-1 steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import easy_vqa

    from cambrian.quickstart_lib.align import tower_grids, word_alignment_loss, word_token_ids
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast, keep_freed_memory
    from cambrian.quickstart_lib.model import build_quickstart_model
    from cambrian.quickstart_lib.train import load_image
    from cambrian.train.loop import autocast

    keep_freed_memory()  # as the quickstart runs
    print(f"threads {args.threads}, bf16 matmul fast: {bf16_matmul_is_fast()}")
    model, tokenizer = build_quickstart_model()
    model.eval()
    train_paths = easy_vqa.get_train_image_paths()
    paths = [train_paths[i] for i in range(args.images)]
    pixels = model.image_inputs([load_image(p) for p in paths])["pixel_values"]

    @torch.no_grad()
    def tower_pass(layout: torch.memory_format, precision: str) -> tuple[float, list[torch.Tensor]]:
        grids = []
        with autocast(precision, model.device)():
            start = time.perf_counter()
            for tower in model.towers:
                for chunk in pixels[tower.name].split(32):
                    maps = tower.model.forward_intermediates(chunk.contiguous(memory_format=layout),
                                                             indices=tower.config.stages, intermediates_only=True)
                    grids.append(torch.cat([m.float().flatten(1) for m in maps], dim=1))
            seconds = time.perf_counter() - start
        return seconds / len(paths), grids

    tower_variants = {"fp32 NCHW": (torch.contiguous_format, "fp32"),
                      "fp32 channels-last": (torch.channels_last, "fp32"),
                      "bf16 NCHW": (torch.contiguous_format, "bf16"),
                      "bf16 channels-last": (torch.channels_last, "bf16")}
    tower_times: dict[str, list[float]] = {name: [] for name in tower_variants}
    errors: dict[str, float] = {}
    reference = None
    for _ in range(args.rounds):
        for name, (layout, precision) in tower_variants.items():
            seconds, grids = tower_pass(layout, precision)
            reference = reference or grids
            tower_times[name].append(seconds)
            errors[name] = max(float((g - r).norm() / r.norm()) for g, r in zip(grids, reference, strict=True))

    # stage 1's step on cached grids (the towers as the tower class runs them)
    grids, sizes = tower_grids(model, paths)
    words = ["red", "blue", "green", "circle", "square", "triangle"]
    vocab = model.language_model.get_input_embeddings().weight.detach()[word_token_ids(tokenizer, words)]
    own = torch.zeros(len(paths), len(words), dtype=torch.bool)
    for i in range(len(paths)):  # any two words per image: the step's cost does not depend on which
        own[i, [i % 3, 3 + i % 3]] = True
    params = [p for name, p in model.connector.named_parameters() if not name.startswith("llm_layers")]
    for p in params:
        p.requires_grad_(True)
    model.connector.train()
    step_variants = {"fp32, foreach AdamW": ("fp32", False), "bf16 autocast, fused AdamW": ("bf16", True)}
    optimizers = {name: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, betas=(0.9, 0.98), fused=fused)
                  for name, (_, fused) in step_variants.items()}
    step_times: dict[str, list[float]] = {name: [] for name in step_variants}
    rng = random.Random(0)
    for _ in range(args.rounds):
        for step in range(args.steps + 1):
            batch = rng.sample(range(len(paths)), min(32, len(paths)))
            for name, (precision, _) in step_variants.items():
                start = time.perf_counter()
                with autocast(precision, model.device)():
                    vision = model.connector.prepare([g[batch] for g in grids], [sizes[i] for i in batch])
                    tokens = model.connector(vision).flatten(1, 2)
                loss = word_alignment_loss(tokens, own[batch], vocab)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)
                if step:  # the first step of a round warms up
                    step_times[name].append(time.perf_counter() - start)

    print(f"towers' pass ({len(paths)} images, {args.rounds} rounds; median ms per image)")
    base = statistics.median(tower_times["fp32 NCHW"])
    for name, times in tower_times.items():
        median = statistics.median(times)
        print(f"  {name:20s} {median * 1000:7.1f} ms  ratio {median / base:5.2f}  relative error {errors[name]:.1e}")
    print(f"stage-1 step (batch 32, {args.steps} x {args.rounds} steps; median seconds)")
    base = statistics.median(step_times["fp32, foreach AdamW"])
    for name, times in step_times.items():
        median = statistics.median(times)
        print(f"  {name:28s} {median:6.3f} s  ratio {median / base:5.2f}")


if __name__ == "__main__":
    main()
