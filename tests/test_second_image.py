"""The second-image probe (benchmarks/second_image.py): its pairs differ in colour, and each conversation it plays
holds the first image, then the second, with the question asked after the second."""

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from cambrian.quickstart_lib.data import easyvqa_facts

easy_vqa = pytest.importorskip("easy_vqa")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "second_image.py"
_spec = importlib.util.spec_from_file_location("second_image", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_pairs_are_test_images_of_different_colours_named_by_their_facts():
    pairs = probe.colour_pairs(30)
    assert len(pairs) == 30 and all(a[1] != b[1] for a, b in pairs)
    test_paths = set(easy_vqa.get_test_image_paths().values())
    assert all(path in test_paths for pair in pairs for path, _ in pair)
    assert probe.colour_pairs(30) == pairs  # the same pairs for the same seed
    facts = easyvqa_facts(*easy_vqa.get_test_questions())
    by_path = {path: facts[i].get("color") for i, path in easy_vqa.get_test_image_paths().items() if i in facts}
    assert all(by_path[path] == colour for pair in pairs for path, colour in pair)


def test_the_question_is_asked_after_the_second_image(tiny, tmp_path, monkeypatch):
    from cambrian.serve import cli

    model, tokenizer = tiny
    seen = []
    ask = cli.ChatSession.ask

    def recording_ask(self, text, on_text=None):
        answer = ask(self, text, on_text)
        seen.append([im.size for im in self.images])
        return answer

    monkeypatch.setattr(cli.ChatSession, "ask", recording_ask)
    paths = []
    for k, size in enumerate([(40, 32), (32, 48)]):
        paths.append(str(tmp_path / f"{k}.png"))
        Image.new("RGB", size, (200, 30 * k, 30)).save(paths[-1])
    first, second = probe.second_answer(model, tokenizer, paths[0], paths[1], probe.YES_NO.format("red"))
    assert seen == [[(40, 32)], [(40, 32), (32, 48)]]  # the second question sees both images, in order
    assert isinstance(first, str) and isinstance(second, str)
    result = probe.play(model, tokenizer, [((paths[0], "red"), (paths[1], "blue"))])
    assert result["pairs"] == 1 and len(result["rows"]) == 1
    assert all(0.0 <= v <= 1.0 for k, v in result.items() if k not in ("pairs", "rows"))
