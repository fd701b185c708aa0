"""An lmms-eval chat model for Cambrian models, so lmms-eval runs `cambrian` on its own tasks.

    lmms-eval --model cambrian --model_args pretrained=cambrian-nano,batch_size=8,dtype=bf16 --tasks mme

lmms-eval finds it through the `lmms_eval.models` entry point (payload: `manifest()` below). It answers
`generate_until` requests in both request flavours, batched with the harness's own `Generator` (left padding,
greedy), grouped by generation settings and restored to request order:

    chat    args = (context, doc_to_messages, gen_kwargs, doc_id, task, split)
    simple  args = (context, gen_kwargs, doc_to_visual, doc_id, task, split)

lmms-eval is an optional, heavy dependency: it is imported only when this module is (never by `cambrian`).
"""

from __future__ import annotations

from collections import defaultdict

from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from cambrian.eval.benchmarks.base import Sample
from cambrian.eval.generation import Generator, Prompt

DEFAULT_MAX_NEW_TOKENS = 64


def manifest() -> ModelManifest:
    """The entry-point payload: `--model cambrian` (alias `cambrian_local`) resolves to the chat class below."""
    return ModelManifest(model_id="cambrian", chat_class_path="cambrian.eval.lmms_adapter.CambrianLMMS",
                         aliases=("cambrian_local",))


def _from_messages(doc_to_messages, doc, ctx) -> tuple[str, list]:
    messages = doc_to_messages(doc)
    texts, images = [], []
    for message in messages:
        if message["role"] != "user":
            continue
        for part in message["content"]:
            if part["type"] == "text":
                texts.append(part["text"])
            elif part["type"] == "image":
                images.append(part["url"])
    return "\n".join(texts) if texts else ctx, images


class CambrianLMMS(lmms):
    is_simple = False

    def __init__(self, pretrained: str = "cambrian-nano", batch_size: int | str = 8, template: str | None = None,
                 device: str = "auto", seed: int = 0, dtype: str = "fp32", **kwargs) -> None:
        super().__init__()
        from cambrian.eval.runner import load_for_eval

        self.model, self.tokenizer = load_for_eval(pretrained, seed, device, dtype)
        self.generator = Generator(self.model, self.tokenizer, template, vision=True)
        self.batch_size = int(batch_size)

    def _unpack_chat(self, request) -> tuple[str, list, dict]:
        args = request.args
        if len(args) >= 6 and callable(args[1]):
            ctx, doc_to_messages, gen_kwargs, doc_id, task, split = args[:6]
            text, images = _from_messages(doc_to_messages, self.task_dict[task][split][doc_id], ctx)
            return text, images, dict(gen_kwargs or {})
        ctx, gen_kwargs, doc_to_visual, doc_id, task, split = args[:6]
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
        return ctx, [v for v in visuals if hasattr(v, "convert")], dict(gen_kwargs or {})

    def generate_until(self, requests) -> list[str]:
        prompts: list[Prompt] = []
        budgets: list[int] = []
        for request in requests:
            text, images, gen_kwargs = self._unpack_chat(request)
            if gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature", 0) or 0) > 0:
                raise ValueError("the cambrian adapter decodes greedily; the task asks for sampling "
                                 f"({gen_kwargs}); set temperature 0")
            # one `<image>` per image before the text, exactly as `cambrian eval` builds its prompts
            sample = Sample(idx=len(prompts), prompt=text.replace("<image>", "").strip(), target=None,
                            images=[b""] * len(images))
            ids = self.generator.encode(sample, with_images=False).input_ids
            prompts.append(Prompt(ids, [im.convert("RGB") for im in images]))
            budgets.append(int(gen_kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)))
        answers: list[str | None] = [None] * len(requests)
        groups: dict[int, list[int]] = defaultdict(list)  # same token budget -> may share a batch
        for i, budget in enumerate(budgets):
            groups[budget].append(i)
        for budget, members in groups.items():
            members.sort(key=lambda i: (len(prompts[i].input_ids), i))
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                for i, answer in zip(batch, self.generator.generate([prompts[i] for i in batch], budget),
                                     strict=True):
                    answers[i] = _cut_at_stop(answer, requests[i])
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError("the cambrian adapter answers generate_until requests only")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("the cambrian adapter answers single-round generate_until requests only")


def _cut_at_stop(answer: str, request) -> str:
    """Apply lmms-eval's `until` stop strings to the decoded answer."""
    args = request.args
    gen_kwargs = args[2] if len(args) >= 6 and callable(args[1]) else args[1]
    until = (gen_kwargs or {}).get("until") or []
    for stop in [until] if isinstance(until, str) else until:
        if stop and stop in answer:
            answer = answer[: answer.index(stop)]
    return answer
