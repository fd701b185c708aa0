"""The lmms-eval adapter: discovered through the `lmms_eval.models` entry point, answering `generate_until`
requests (chat and simple flavours) for a local image task, batched like a one-by-one run.

lmms-eval 0.7.3 is installed `--no-deps` (its full dependency set is ~155 packages, CUDA torch included); importing
its model registry and base class needs only `loguru` and `pytz` besides what cambrian already has. Without them
the test is skipped with that message.
"""

import importlib
import importlib.metadata
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("lmms_eval", reason="lmms-eval not installed (pip install --no-deps lmms-eval==0.7.3)")
for _dep in ("loguru", "pytz"):
    pytest.importorskip(_dep, reason=f"lmms-eval's model registry imports {_dep} (pip install {_dep})")

ENTRY_POINTS = "[lmms_eval.models]\ncambrian = cambrian.eval.lmms_adapter:manifest\n"


@pytest.fixture
def entry_point(tmp_path, monkeypatch):
    """A dist-info declaring the entry point exactly as pyproject's [project.entry-points."lmms_eval.models"]."""
    dist = tmp_path / "cambrian_lmms_entrypoint-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cambrian-lmms-entrypoint\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return dist


def _image(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (28 + 4 * seed, 32, 3), dtype=np.uint8))


def _local_task():
    docs = [{"image": _image(i), "question": f"What colour dominates picture {i}?"} for i in range(5)]
    docs.append({"image": None, "question": "Say hello."})  # a text-only request in the same batch

    def doc_to_messages(doc):
        content = ([{"type": "image", "url": doc["image"]}] if doc["image"] is not None else [])
        return [{"role": "user", "content": content + [{"type": "text", "text": doc["question"]}]}]

    def doc_to_visual(doc):
        return [doc["image"]] if doc["image"] is not None else []

    return {"local_images": {"test": docs}}, doc_to_messages, doc_to_visual


def _requests(doc_to_messages, doc_to_visual, n, simple=False):
    from lmms_eval.api.instance import Instance

    gen_kwargs = {"max_new_tokens": 6, "temperature": 0, "until": ["\n\n"]}
    out = []
    for i in range(n):
        args = (("ctx", gen_kwargs, doc_to_visual, i, "local_images", "test") if simple else
                ("ctx", doc_to_messages, gen_kwargs, i, "local_images", "test"))
        out.append(Instance("generate_until", args, idx=0, metadata={"task": "local_images", "doc_id": i,
                                                                     "repeats": 1}))
    return out


def test_discovered_by_entry_point_and_answers_generate_until(entry_point, monkeypatch):
    from lmms_eval.models import _initialize_model_registry

    eps = importlib.metadata.entry_points().select(group="lmms_eval.models")
    assert "cambrian" in {ep.name for ep in eps}
    registry = _initialize_model_registry()  # built-ins, then entry points: what `lmms-eval --model` uses
    resolved = registry.resolve("cambrian")
    assert resolved.model_type == "chat" and registry.resolve("cambrian_local").model_id == "cambrian"
    cls = registry.get_model_class("cambrian")
    assert cls.__name__ == "CambrianLMMS" and "cambrian.eval.lmms_adapter" in sys.modules

    import torch

    torch.manual_seed(0)
    model = cls.create_from_arg_string("pretrained=cambrian-tiny,batch_size=4")
    task_dict, doc_to_messages, doc_to_visual = _local_task()
    model.task_dict = task_dict
    calls = []
    original = model.model.forward
    monkeypatch.setattr(model.model, "forward", lambda **kw: calls.append(kw) or original(**kw))

    batched = model.generate_until(_requests(doc_to_messages, doc_to_visual, 6))
    assert len(batched) == 6 and all(isinstance(a, str) for a in batched)
    prefills = [kw for kw in calls if kw.get("image_sizes")]  # 6 requests, batch 4: two prefills with pixels
    assert len(prefills) == 2 and sum(len(kw["image_sizes"]) for kw in prefills) == 5

    model.batch_size = 1
    assert model.generate_until(_requests(doc_to_messages, doc_to_visual, 6)) == batched
    assert model.generate_until(_requests(doc_to_messages, doc_to_visual, 6, simple=True)) == batched

    sampling = _requests(doc_to_messages, doc_to_visual, 1)
    sampling[0].arguments[2]["temperature"] = 0.7
    with pytest.raises(ValueError, match="decodes greedily"):
        model.generate_until(sampling)
