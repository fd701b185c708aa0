"""Text-only chat self-distilled from the LLM (DESIGN.md): its own answers to varied prompts, generated once with its
own chat template and cached, are replayed during instruction tuning so that it keeps its conversational voice."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

PROMPTS = (
    "What is the capital of France?", "Give me three tips for staying focused while studying.",
    "Explain what a neural network is in simple terms.", "Write a short poem about the sea.",
    "How do plants make their food?", "What are the primary colors?", "Why is the sky blue?",
    "Suggest a name for a friendly robot.", "How many legs does a spider have?",
    "What is the difference between a circle and a sphere?", "Tell me a fun fact about elephants.",
    "How can I make a good cup of tea?", "What does a triangle look like?", "Summarise the water cycle.",
    "What should I pack for a day at the beach?", "Hello! How are you today?",
    "What is 12 times 7?", "Explain why exercise is good for health.", "Describe a sunset to someone.",
    "What are some good habits for sleeping well?", "What is the largest planet in the solar system?",
    "Give me an idea for a weekend project.", "What is a synonym for happy?", "How does a camera work?",
    "What is the boiling point of water?", "Write one sentence encouraging a friend before an exam.",
    "Why do we have seasons?", "What is the color of grass and why?", "Name three animals that live in the ocean.",
    "What makes a good teacher?", "How do I start learning to draw?", "What is gravity?",
)


def cache_dir() -> Path:
    return Path(os.environ.get("CAMBRIAN_CACHE", Path.home() / ".cache" / "cambrian")) / "quickstart"


def self_chat(model, tokenizer, n_prompts: int, max_new_tokens: int, batch_size: int = 8,
              progress=None) -> list[dict]:
    """-> [{"prompt", "answer"}], from the cache when the same LLM, prompts and length were used before.

    Generated with the tokenizer's *original* template (its default system prompt, the LLM's natural voice) and
    greedy decoding; answers cut at the last full sentence when the length limit stops them."""
    import torch

    prompts = list(PROMPTS[:n_prompts])
    key = hashlib.sha256(json.dumps([tokenizer.name_or_path, prompts, max_new_tokens]).encode()).hexdigest()[:12]
    path = cache_dir() / f"self_chat-{key}.jsonl"
    if path.exists():
        if progress:
            progress(len(prompts))
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pad = tokenizer.pad_token_id
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in chunk]
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        width = max(map(len, ids))
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for r, row in enumerate(ids):
            input_ids[r, width - len(row):] = torch.tensor(row)
            mask[r, width - len(row):] = 1
        with torch.no_grad():
            out = model.language_model.generate(input_ids=input_ids.to(model.device),
                                                attention_mask=mask.to(model.device), do_sample=False,
                                                max_new_tokens=max_new_tokens, repetition_penalty=1.1,
                                                pad_token_id=pad)
        for prompt, row in zip(chunk, out[:, width:].tolist(), strict=True):
            finished = tokenizer.eos_token_id in row or tokenizer.convert_tokens_to_ids("<|im_end|>") in row
            answer = tokenizer.decode(row, skip_special_tokens=True).strip()
            if not finished and "." in answer:
                answer = answer[:answer.rfind(".") + 1]
            if answer:
                rows.append({"prompt": prompt, "answer": answer})
        if progress:
            progress(len(chunk))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
