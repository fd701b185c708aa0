"""The quickstart's stage-2 step with each AdamW implementation, with the LLM's embedding frozen or trained, and with
the whole LLM or only its top layers training, in fp32 or under bf16 autocast.

Every variant trains the quickstart's model (cambrian-nano: connector + SmolLM2, towers frozen) on the same easy-VQA
batches as stage 2 does (`quickstart_lib.train`: 8 conversations of up to three questions, left-padded, logits for
the supervised tail only, bf16 autocast where the CPU's bf16 matmuls are fast: `cpu.bf16_matmul_is_fast`). Variants
take turns on each batch in one process, so a busy machine slows them alike; each keeps its own optimizer state.
Phases are timed separately: forward (towers included), backward, optimizer step.

    .venv/bin/python benchmarks/optimizer_step.py [--steps 10] [--threads 2] [--variants foreach fused ...]

Variants: `foreach` (torch's default AdamW) or `fused` (what the quickstart uses), optionally followed by
`+frozen-embedding` (SmolLM2 ties its input embedding and LM head: 28.3M of its 134.5M parameters) and by `+top-N`
(only the top N of SmolLM2's 30 decoder layers train, with the in-LLM SVA blocks among them: `StageConfig.top_layers`)
and by `+fp32` or `+bf16` (the step's compute, with the attention `train_stage` picks for it: eager under CPU autocast,
SDPA in fp32; without one, what the quickstart picks on this machine), e.g. `fused+frozen-embedding+top-9+bf16`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import torch

VARIANT = re.compile(r"^(foreach|fused)(\+frozen-embedding)?(\+top-(\d+))?(\+(fp32|bf16))?$")


def variant_name(text: str) -> str:
    if not VARIANT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use foreach or fused, then optionally +frozen-embedding, +top-N, "
                                         "+fp32 or +bf16")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variants", nargs="+", default=["foreach", "fused"], type=variant_name)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc keeps freed memory mapped, as the quickstart asks (benchmarks/allocator.py)")
    args = parser.parse_args()
    if args.keep_freed_memory:
        from cambrian.quickstart_lib.cpu import keep_freed_memory

        if not keep_freed_memory():
            parser.error("--keep-freed-memory needs glibc")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from cambrian.quickstart_lib import data as qdata
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast
    from cambrian.quickstart_lib.model import build_quickstart_model, use_short_template
    from cambrian.quickstart_lib.train import StageConfig, batch_loss, collate, set_trainable

    model, tokenizer = build_quickstart_model()
    use_short_template(tokenizer)
    default_bf16 = bf16_matmul_is_fast()
    batch_size = 8
    vqa = qdata.easyvqa_examples(batch_size * (args.steps + 1) * 3, 0, 0, seed=0, turns_per_image=3)["vqa"]

    def stage(variant: str) -> StageConfig:
        _, frozen_embedding, _, top, _, _ = VARIANT.match(variant).groups()
        return StageConfig("stage 2", 0, {"vqa": 1.0}, connector_lr=1e-4, llm_lr=1e-4,
                           train_embedding=not frozen_embedding, top_layers=int(top) if top else None)

    stages = {v: stage(v) for v in args.variants}
    # stage 2's parameter groups, as the trainer builds them for each variant
    optimizers = {v: torch.optim.AdamW(set_trainable(model, s), weight_decay=0.0, betas=(0.9, 0.98),
                                       fused=v.startswith("fused")) for v, s in stages.items()}
    compute = {v: (VARIANT.match(v).group(6) or ("bf16" if default_bf16 else "fp32")) == "bf16" for v in args.variants}
    attention = model.language_model.config._attn_implementation
    model.train()
    cache: dict = {}
    times: dict[str, list[tuple[float, float, float]]] = {v: [] for v in args.variants}
    for step in range(args.steps + 1):
        batch = collate(model, tokenizer, vqa[step * batch_size:(step + 1) * batch_size], cache)
        for variant, opt in optimizers.items():
            set_trainable(model, stages[variant])  # which weights take a gradient
            bf16 = compute[variant]
            model.language_model.set_attn_implementation("eager" if bf16 else attention)  # as train_stage does
            t0 = time.perf_counter()
            loss = batch_loss(model, batch, bf16)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            if step:  # the first batch warms up allocators and optimizer state
                times[variant].append((t1 - t0, t2 - t1, t3 - t2))

    print(f"threads {args.threads}, bf16 matmul fast here: {default_bf16}, batch {batch_size} conversations, "
          f"{args.steps} steps each (medians, seconds)")
    print(f"{'variant':32s} {'forward':>8s} {'backward':>8s} {'optimizer':>9s} {'step':>7s} {'step ratio':>10s}")
    base = None
    for variant, rows in times.items():
        forward, backward, opt_step = (statistics.median(column) for column in zip(*rows, strict=True))
        whole = statistics.median(sum(r) for r in rows)
        base = base or whole
        print(f"{variant:32s} {forward:8.3f} {backward:8.3f} {opt_step:9.3f} {whole:7.3f} {whole / base:10.2f}")


if __name__ == "__main__":
    main()
