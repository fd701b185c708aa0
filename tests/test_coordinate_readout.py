"""The coordinate readout probe (benchmarks/coordinate_readout.py): attention maps over the grid cells pool where
the cells lie, so a comparison of two places is a function of the pooled coordinates."""

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_DIR))  # the probe imports its sibling benchmarks
_spec = importlib.util.spec_from_file_location("coordinate_readout", _DIR / "coordinate_readout.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_cell_coordinates_follow_the_grids_row_by_row_flattening():
    coordinates = probe.cell_coordinates(4)
    assert coordinates.shape == (16, 2)
    assert coordinates[0].tolist() == [-1.0, -1.0]  # top left
    assert coordinates[3].tolist() == [1.0, -1.0]  # top right: x runs along a row
    assert coordinates[12].tolist() == [-1.0, 1.0]  # bottom left: y runs down the rows


def test_the_readout_learns_which_of_two_marked_cells_is_lower_on_grids_it_never_saw():
    torch.manual_seed(0)
    grid, channels = 6, 4

    def grids(n):  # channel 0 marks a "red" cell, channel 1 a "blue" one, channels 2-3 are noise
        cells = torch.randn(n, grid * grid, channels) * 0.1
        red, blue = torch.randint(0, grid * grid, (n,)), torch.randint(0, grid * grid, (n,))
        keep = red // grid != blue // grid  # the two marks in different rows
        rows = torch.arange(n)
        cells[rows, red, 0] += 4.0
        cells[rows, blue, 1] += 4.0
        return cells[keep], (red // grid < blue // grid).long()[keep]  # 1 when blue is lower

    train, train_label = grids(2000)
    test, test_label = grids(300)
    readout = probe.CoordinateReadout(channels, grid, words=2, heads=2)
    optimizer = torch.optim.AdamW(readout.parameters(), lr=1e-2)
    for _ in range(300):
        batch = torch.randint(0, len(train), (64,))
        loss = F.cross_entropy(readout(train[batch]), train_label[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (readout(test).argmax(-1) == test_label).float().mean().item()
    assert accuracy > 0.95


def test_option_masks_leave_each_questions_options_and_index_its_answer():
    items = [("a.png", ["red", "blue"], "blue", "Depth"), ("b.png", ["left", "right"], "left", "Relation")]
    vocabulary = ["blue", "left", "red", "right"]
    mask, right = probe.option_masks(items, vocabulary)
    assert right.tolist() == [0, 1]
    assert torch.isinf(mask).tolist() == [[False, True, False, True], [True, False, True, False]]
