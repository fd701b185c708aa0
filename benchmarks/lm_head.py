"""The quickstart's stage-2 loss with the LM head over the supervised tail against over the supervised tokens only.

`tail`: logits for the last K columns of the left-padded batch (every supervised token sits there:
`train.supervised_logits`), cross-entropy with the unsupervised columns ignored; `tokens`: logits only at the
positions that predict a supervised token (`train.batch_loss`, a boolean `logits_to_keep`). Both run forward +
backward on the same easy-VQA batches as stage 2 (cambrian-nano, connector + SmolLM2 training, embedding frozen),
taking turns in one process; the losses must agree. fp32 or bf16 autocast as the quickstart picks on this CPU.

    .venv/bin/python benchmarks/lm_head.py [--steps 6] [--threads 2] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed batches per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=8, help="conversations per batch (the quickstart's: 8)")
    args = parser.parse_args()
    from cambrian.quickstart_lib.cpu import bf16_matmul_is_fast, keep_freed_memory

    keep_freed_memory()  # as the quickstart's CPU runs do (benchmarks/README.md, "Allocator")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from cambrian.constants import IGNORE_INDEX
    from cambrian.quickstart_lib import data as qdata
    from cambrian.quickstart_lib.model import build_quickstart_model, use_short_template
    from cambrian.quickstart_lib.train import StageConfig, batch_loss, collate, set_trainable, supervised_logits

    model, tokenizer = build_quickstart_model()
    use_short_template(tokenizer)
    bf16 = bf16_matmul_is_fast()
    vqa = qdata.easyvqa_examples(args.batch * (args.steps + 1) * 3, 0, 0, seed=0, turns_per_image=3)["vqa"]
    set_trainable(model, StageConfig("stage 2", 0, {"vqa": 1.0}, connector_lr=1e-4, llm_lr=1e-4,
                                     train_embedding=False))
    model.train()

    def tail(batch):
        logits, targets = supervised_logits(model, batch, bf16)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)

    variants = {"tail": tail, "tokens": lambda batch: batch_loss(model, batch, bf16)}
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    cache: dict = {}
    columns = supervised = 0
    for step in range(args.steps + 1):
        batch = collate(model, tokenizer, vqa[step * args.batch:(step + 1) * args.batch], cache)
        losses = {}
        for name, loss_of in variants.items():
            t0 = time.perf_counter()
            loss = loss_of(batch)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            model.zero_grad(set_to_none=True)
            losses[name] = loss.item()
            if step:  # the first batch warms up the allocator
                times[name].append((t1 - t0, t2 - t1))
        if abs(losses["tail"] - losses["tokens"]) > 1e-3 * max(1.0, abs(losses["tail"])):
            raise SystemExit(f"batch {step}: the two losses differ ({losses})")
        if step:
            columns += batch["keep"] * len(batch["labels"])
            supervised += int((batch["labels"] != IGNORE_INDEX).sum())

    print(f"threads {args.threads}, {'bf16 autocast' if bf16 else 'fp32'}, batch {args.batch} conversations, "
          f"{args.steps} steps each (medians, seconds); LM-head positions per batch: tail {columns / args.steps:.0f}, "
          f"tokens {supervised / args.steps:.0f}")
    print(f"{'variant':8s} {'forward':>8s} {'backward':>8s} {'step':>7s} {'ratio':>6s}")
    base = None
    for name, rows in times.items():
        forward, backward = (statistics.median(column) for column in zip(*rows, strict=True))
        whole = statistics.median(sum(r) for r in rows)
        base = base or whole
        print(f"{name:8s} {forward:8.3f} {backward:8.3f} {whole:7.3f} {whole / base:6.2f}")


if __name__ == "__main__":
    main()
