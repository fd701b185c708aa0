"""`cambrian chat`: streamed answers, multi-turn history, an image attached mid-conversation, the terminal loop."""

import pytest
from PIL import Image
from typer.testing import CliRunner

from cambrian.serve.cli import ChatSession


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (48, 40), (220, 20, 20)).save(path)
    return path


def test_history_images_and_streaming(tiny, image):
    model, tokenizer = tiny
    session = ChatSession(model, tokenizer, max_new_tokens=4)
    pieces = []
    first = session.ask("hello there", on_text=pieces.append)
    assert "".join(pieces).strip() == first
    session.attach(image)
    session.ask("what is in this picture?")
    session.ask("and its colour?")
    assert [t["role"] for t in session.turns] == ["user", "assistant"] * 3
    assert len(session.images) == 1 and session.turns[2]["content"].startswith("<image>\n")
    assert not session.turns[4]["content"].startswith("<image>")
    session.attach(image)
    session.ask("and now?")
    assert len(session.images) == 2
    session.reset()
    assert session.turns == [] and session.images == []


def test_chat_command_two_turns_about_an_image(tiny, image, tmp_path):
    import typer

    from cambrian.models.builder import save_model
    from cambrian.serve.cli import EARLIER_TURNS_NOTE, register

    model, tokenizer = tiny
    folder = tmp_path / "model"
    save_model(model, tokenizer, folder)
    app = typer.Typer()
    register(app)
    app.command(name="noop")(lambda: None)  # a second command keeps `chat` a named subcommand
    result = CliRunner().invoke(app, ["chat", "--model", str(folder), "--max-new-tokens", "3"],
                                input=f"/image {image}\nwhat is it?\nhi\n/image {image}\nand this?\nmore?\n"
                                      "/image /nope.png\n/quit\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("cambrian> ") == 4
    assert f"(image {image} attached" in result.output and "no image file at /nope.png" in result.output
    # an image attached after earlier turns says how to ask about it alone; the first one has nothing to say
    assert result.output.count(EARLIER_TURNS_NOTE) == 1


def test_chat_without_a_model_folder_says_what_to_do(tmp_path):
    import typer

    from cambrian.serve.cli import register

    app = typer.Typer()
    register(app)
    app.command(name="noop")(lambda: None)
    result = CliRunner().invoke(app, ["chat", "--model", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "cambrian quickstart" in result.output
