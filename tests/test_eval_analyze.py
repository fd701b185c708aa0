"""`cambrian analyze`: vision on/off/random chart, PCA, correlation matrix and rankings from results JSONs."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cambrian.eval.analyze import correlation, pca_2d
from cambrian.eval.analyze_cli import app as analyze_app
from cambrian.eval.benchmarks import Sample, get_benchmark
from cambrian.eval.report import results_payload
from cambrian.eval.scoring import score_answers


def _samples():
    mc = lambda i, target, **meta: Sample(idx=i, prompt="q", target=target, choices=["x", "y"], meta=meta)  # noqa: E731
    return {
        "mme": [Sample(idx=i, prompt="q", target="yes" if i % 2 == 0 else "no", choices=["yes", "no"],
                       meta={"category": "existence", "image": i // 2}) for i in range(8)],
        "gqa": [Sample(idx=i, prompt="q", target="table") for i in range(8)],
        "mmvp": [mc(i, "A" if i % 2 == 0 else "B", pair=i // 2) for i in range(8)],
        "cvbench": [mc(i, "A", source=["COCO", "Omni3D"][i % 2], task="Count") for i in range(8)],
    }


def _results(tmp_path, name, right: int, vision=True):
    """A results JSON where the model gets the first `right` of 8 answers of every benchmark right."""
    out = []
    for bench_name, samples in _samples().items():
        bench = get_benchmark(bench_name)
        wrong = {"yes": "no", "no": "yes", "table": "chair", "A": "B", "B": "A"}
        answers = {s.idx: s.target if s.idx < right else wrong[s.target] for s in samples}
        out.append(score_answers(bench, samples, answers))
    payload = results_payload(out, {"model": name, "vision": vision})
    path = tmp_path / f"{name}{'' if vision else '.novision'}.json"
    path.write_text(json.dumps(payload))
    return path


def test_analyze_writes_four_outputs(tmp_path):
    files = [_results(tmp_path, "good", 8), _results(tmp_path, "mid", 5), _results(tmp_path, "good", 2, vision=False)]
    result = CliRunner().invoke(analyze_app, [*map(str, files), "--out", str(tmp_path / "analysis")])
    assert result.exit_code == 0, result.output
    for name in ("vision_on_off.png", "pca.png", "correlation.png"):
        with Image.open(tmp_path / "analysis" / name) as image:
            assert image.size[0] > 300
    md = (tmp_path / "analysis" / "analysis.md").read_text()
    # GQA: vision on (100 + 62.5) / 2 = 81.25, off 25, random 0
    assert "| GQA | General | 81.25 | 25.00 | 0.00 | 56.25 |" in md
    assert "| MME-P | General |" in md and "| 1 | good |" in md and "good (no vision)" in md
    ranking = md[md.index("### Average"):]
    assert ranking.index("| 1 | good |") < ranking.index("| 2 | mid |") < ranking.index("| 3 | good (no vision) |")

    result = CliRunner().invoke(analyze_app, [str(files[0]), "--out", str(tmp_path / "one")])
    assert result.exit_code == 1 and "at least two" in result.output


def test_pca_and_correlation_math():
    matrix = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    corr = correlation(matrix)
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == pytest.approx(-1.0) and np.isnan(corr[3, 0])
    coords, explained = pca_2d(matrix)
    assert coords[0] == pytest.approx(coords[1]) and abs(coords[0][0] - coords[2][0]) > 1  # same vs opposite trend
    assert explained.sum() == pytest.approx(1.0)


def test_models_sharing_a_folder_name_are_labelled_by_their_parents():
    from cambrian.eval.analyze import Run, _unique_labels

    runs = [Run("", model, vision, {}, {}, {}) for model, vision in [
        ("/runs/qs_a/model", True), ("/runs/qs_a/model", False), ("/runs/qs_b/model", True), ("/x/tiny", True),
        ("/x/tiny", True)]]
    _unique_labels(runs)
    assert [r.label for r in runs] == ["qs_a/model", "qs_a/model (no vision)", "qs_b/model", "x/tiny", "x/tiny #2"]
