"""cambrian: Cambrian-1 (Tong et al., 2024) as an installable toolkit.

`from cambrian import CambrianConfig, CambrianForCausalLM` is resolved lazily so that light commands
(`cambrian --help`, data tools) do not pay for importing torch and transformers.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "CambrianConfig": "cambrian.models.configuration",
    "CambrianForCausalLM": "cambrian.models.modeling",
    "build_model": "cambrian.models.builder",
}

__all__ = list(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cambrian' has no attribute {name!r}")
