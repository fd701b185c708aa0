"""benchmarks/box_outline_probe.py: the cells a drawn box's outline passes through, and the AUC it reports."""

import importlib.util
from pathlib import Path

import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "box_outline_probe.py"
_spec = importlib.util.spec_from_file_location("box_outline_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_outline_cells_follow_the_drawn_box():
    import numpy as np
    from PIL import Image, ImageDraw

    box = [20.0, 40.0, 100.0, 90.0]  # x1, y1, x2, y2 on a 128 px image, grid 8: cells of 16 px
    cells = probe.outline_cells(box, 128, 8)
    # drawn as cambrian.cvbench.build.draw_boxes draws it: the cells holding red pixels are the ones named
    image = Image.new("RGB", (128, 128))
    ImageDraw.Draw(image).rectangle([20, 40, 99, 89], outline=(255, 0, 0), width=probe.OUTLINE_PX)
    red = torch.from_numpy(np.asarray(image)[..., 0] > 0)
    assert torch.equal(cells, red.view(8, 16, 8, 16).any(dim=3).any(dim=1))
    assert not cells[3, 3]  # inside the box, away from its outline
    bottom = probe.outline_cells(box, 128, 8, bottom_only=True)
    assert bottom.nonzero()[:, 0].unique().tolist() == [5]  # y 88-89: row 5 (80-95) alone
    assert bottom.sum() < cells.sum() and bool((bottom & ~cells).sum() == 0)


def test_auc_ranks_positives_above_negatives():
    labels = torch.tensor([True, True, False, False])
    assert probe.auc(torch.tensor([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert probe.auc(torch.tensor([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert probe.auc(torch.tensor([0.9, 0.1, 0.5, 0.2]), labels) == 0.5
