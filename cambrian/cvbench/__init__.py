"""CV-Bench (paper Section 3.2): a synthetic 3D world, question generation, the official layout and score.

    render_world(out_dir, n, seed, size) -> image paths        cambrian/cvbench/synth.py
    load_world(dir) -> [WorldImage(path, scene, visibility)]   cambrian/cvbench/synth.py
    describe_scene(scene, visibility) -> caption               cambrian/cvbench/captions.py
    build_cvbench(out_dir, coco=..., ade20k=..., omni3d=...)   cambrian/cvbench/build.py
    build_from_world(out_dir, world_dir)                       cambrian/cvbench/build.py
    load_cvbench(dir) -> [CVBenchRecord]                       cambrian/cvbench/layout.py
    score_cvbench(records, {idx: text}) -> dict                cambrian/cvbench/score.py

Names resolve lazily so that `cambrian --help` does not import numpy, PIL or datasets.
"""

from importlib import import_module

_EXPORTS = {
    "render_world": "synth", "load_world": "synth", "describe_scene": "captions", "build_cvbench": "build",
    "build_from_world": "build", "BuildConfig": "questions", "load_cvbench": "layout", "CVBenchRecord": "layout",
    "score_cvbench": "score", "Scene": "world", "sample_scene": "world", "render_scene": "render",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"cambrian.cvbench.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cambrian.cvbench' has no attribute {name!r}")
