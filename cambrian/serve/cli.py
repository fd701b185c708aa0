"""`cambrian chat --model DIR [--image PATH]`: a terminal chat with a Cambrian model.

Tokens stream as they are generated; the whole conversation (text and every image so far) is the prompt of each
turn; `/image PATH` attaches a new image to the next question, `/reset` clears the history, `/quit` leaves.
Nothing heavy is imported at module level (`cambrian --help` stays instant).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

DEFAULT_MODEL = Path("runs/quickstart/model")  # where `cambrian quickstart` writes its model
HELP = "commands: /image PATH (attach an image to your next message), /reset, /quit"
# models trained on one image per conversation (the quickstart's) answer yes/no questions about a second image
# wrongly after earlier turns: 0 % against 95 % alone (benchmarks/second_image.py)
EARLIER_TURNS_NOTE = "(the earlier turns stay in the history; /reset first to ask about this image alone)"


class ChatSession:
    """Multi-turn history with images; `ask` returns the answer and streams it through `on_text` as it comes."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 256, repetition_penalty: float = 1.1):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_tokens, self.repetition_penalty = max_new_tokens, repetition_penalty
        self.turns: list[dict] = []
        self.images: list = []  # PIL images in the order their placeholders appear
        self.pending = None  # an image waiting for the next user message

    def reset(self) -> None:
        self.turns, self.images, self.pending = [], [], None

    def attach(self, image) -> None:
        """A path or a PIL image; it goes with the next user message."""
        from PIL import Image

        self.pending = image if not isinstance(image, str | Path) else Image.open(image).convert("RGB")

    def ask(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        from threading import Thread

        import torch
        from transformers import TextIteratorStreamer

        from cambrian.constants import IMAGE_TOKEN
        from cambrian.data.masking import tokenize_conversation

        content = text
        if self.pending is not None:
            content = f"{IMAGE_TOKEN}\n{text}"
            self.images.append(self.pending)
            self.pending = None
        self.turns.append({"role": "user", "content": content})
        template = getattr(self.model.config.llm_config, "template", None) or "tokenizer"
        ids = tokenize_conversation(self.turns, self.tokenizer, template, add_generation_prompt=True).input_ids
        kwargs = self.model.image_inputs(self.images)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs.update(input_ids=torch.tensor([ids], device=self.model.device), max_new_tokens=self.max_new_tokens,
                      do_sample=False, repetition_penalty=self.repetition_penalty, streamer=streamer,
                      pad_token_id=self.tokenizer.pad_token_id)
        worker = Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        worker.start()
        pieces = []
        for piece in streamer:
            pieces.append(piece)
            if on_text:
                on_text(piece)
        worker.join()
        answer = "".join(pieces).strip()
        self.turns.append({"role": "assistant", "content": answer})
        return answer


def answer_once(model, tokenizer, image, question: str, max_new_tokens: int = 128) -> str:
    """One question about one image (no history): the report's and tests' entry point."""
    session = ChatSession(model, tokenizer, max_new_tokens=max_new_tokens)
    if image is not None:
        session.attach(image)
    return session.ask(question)


def chat(
    model: Path = typer.Option(DEFAULT_MODEL, help="model folder (default: the one `cambrian quickstart` wrote)"),
    image: Path | None = typer.Option(None, help="an image to talk about (more with /image PATH)"),
    max_new_tokens: int = typer.Option(256, help="longest answer, in tokens"),
) -> None:
    """Chat with a Cambrian model in the terminal: streamed answers, multi-turn history, images mid-conversation."""
    if not model.is_dir():
        typer.echo(f"no model folder at {model}: run `cambrian quickstart` first, or pass --model DIR", err=True)
        raise typer.Exit(1)
    if image is not None and not image.is_file():
        typer.echo(f"no image file at {image}", err=True)
        raise typer.Exit(1)
    from cambrian.models.builder import load_model

    typer.echo(f"loading {model} ...")
    loaded, tokenizer = load_model(model)
    session = ChatSession(loaded, tokenizer, max_new_tokens=max_new_tokens)
    if image is not None:
        session.attach(image)
        typer.echo(f"image: {image}")
    typer.echo(HELP)
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            break
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            session.reset()
            typer.echo("(history cleared)")
            continue
        if text.startswith("/image"):
            path = Path(text[len("/image"):].strip()).expanduser()
            if not path.is_file():
                typer.echo(f"no image file at {path}")
                continue
            session.attach(path)
            typer.echo(f"(image {path} attached to your next message)")
            if session.turns:
                typer.echo(EARLIER_TURNS_NOTE)
            continue
        typer.echo("cambrian> ", nl=False)
        session.ask(text, on_text=lambda piece: typer.echo(piece, nl=False))
        typer.echo("")


def register(app: typer.Typer) -> None:
    app.command(name="chat")(chat)
