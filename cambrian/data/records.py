"""The record schema (LLaVA / Cambrian JSONL) and the reasons a record is rejected.

A record is `{id, image: str | list | absent, conversations: [{from, value}], source?, category?}`. Every check that
training, evaluation and `cambrian data validate` apply lives here or in `images.py`, so all three reject the same
records for the same reasons. A rejected record raises `RecordError`, which names the file, line, sample id, the
reason and what to do; nothing is silently dropped and no other sample is substituted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cambrian.constants import IMAGE_TOKEN

# reason -> what the user should do about it
REASONS: dict[str, str] = {
    "malformed_json": "fix the JSON on that line (one object per line)",
    "bad_schema": "give the record an `id` and `conversations: [{from, value}, ...]` with string values",
    "unknown_role": "use `from` in human/user, gpt/assistant or system (system only as the first turn)",
    "image_count_mismatch": "make the number of `<image>` placeholders in user turns equal the number of images "
    "(or remove them all: one `<image>` per image is then put at the start of the first user turn)",
    "empty_assistant": "remove the record or give every assistant turn a non-empty answer",
    "path_escape": "image paths must stay inside --image-root (no absolute paths, no `..` leaving it)",
    "missing_image": "check --image-root and that the image file exists",
    "undecodable_image": "re-encode or remove the image: PIL cannot decode it",
    "image_too_large": "downscale the image or raise max_pixels (this guards against decompression bombs)",
    "nothing_supervised": "raise max_length or shorten the prompt: truncation removed every assistant token",
}

ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
EMPTY_IMAGE_VALUES = ("", "none", "nan", "null")


@dataclass(frozen=True)
class Location:
    """Where a record came from: file and 1-based line (or row / tar member), and its id once known."""

    file: str
    line: int
    sample_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return where if self.sample_id is None else f"{where} (id {self.sample_id!r})"


class RecordError(ValueError):
    """A record that training, evaluation and validation all reject, with where and why."""

    def __init__(self, reason: str, detail: str, location: Location):
        assert reason in REASONS, reason
        self.reason, self.detail, self.location = reason, detail, location
        super().__init__(
            f"{location}: {reason}: {detail}. Fix: {REASONS[reason]}; or pass on_error='skip' "
            f"(CLI: --on-error skip) to send such records to a rejects file."
        )

    def to_json(self) -> dict:
        loc = self.location
        return {"file": loc.file, "line": loc.line, "id": loc.sample_id, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Turn:
    role: str  # "system" | "user" | "assistant"
    text: str


@dataclass
class Record:
    id: str
    turns: list[Turn]
    images: list[str | bytes] = field(default_factory=list)  # relative paths, or encoded bytes (parquet, tar)
    location: Location = Location("<memory>", 0)
    source: str | None = None
    category: str | None = None

    @property
    def num_images(self) -> int:
        return len(self.images)


def normalize_images(value) -> list:
    """The `image` field: a path, a list of paths, or absent / empty / None / "none" / "nan" for text-only."""
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = [value]
    if not isinstance(value, list):
        return [value]  # rejected by parse_record with a clear reason
    return [v for v in value if not (isinstance(v, str) and v.strip().lower() in EMPTY_IMAGE_VALUES)]


def parse_record(obj, location: Location, images: list | None = None) -> Record:
    """A decoded JSON object -> Record, checking the schema, roles and placeholders (not the image files).

    `images` overrides the `image` field (parquet and tar shards carry the image bytes beside the JSON).
    """
    if not isinstance(obj, dict):
        raise RecordError("bad_schema", f"expected a JSON object, got {type(obj).__name__}", location)
    sample_id = obj.get("id")
    sample_id = None if sample_id is None else str(sample_id)
    location = Location(location.file, location.line, sample_id)
    if sample_id is None:
        raise RecordError("bad_schema", "missing `id`", location)
    conversations = obj.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise RecordError("bad_schema", "`conversations` must be a non-empty list", location)
    turns = []
    for k, message in enumerate(conversations):
        if not isinstance(message, dict) or not isinstance(message.get("value"), str):
            raise RecordError("bad_schema", f"turn {k} must be {{from, value}} with a string value", location)
        role = ROLE_ALIASES.get(str(message.get("from", "")).lower())
        if role is None or (role == "system" and k != 0):
            raise RecordError("unknown_role", f"turn {k} has role {message.get('from')!r}", location)
        turns.append(Turn(role, message["value"]))
    image_list = normalize_images(obj.get("image") if images is None else images)
    if not all(isinstance(image, str | bytes) for image in image_list):
        raise RecordError("bad_schema", "`image` must be a path or a list of paths", location)
    check_turns(turns, len(image_list), location)
    return Record(
        id=sample_id,
        turns=insert_image_placeholders(turns, len(image_list)),
        images=image_list,
        location=location,
        source=obj.get("source"),
        category=obj.get("category"),
    )


def check_turns(turns: list[Turn], num_images: int, location: Location) -> None:
    if not any(turn.role == "assistant" for turn in turns):
        raise RecordError("bad_schema", "no assistant turn: nothing to learn from", location)
    if not any(turn.role == "user" for turn in turns):
        raise RecordError("bad_schema", "no user turn", location)
    for k, turn in enumerate(turns):
        if turn.role == "assistant" and not turn.text.strip():
            raise RecordError("empty_assistant", f"turn {k} is an empty assistant answer", location)
        if turn.role != "user" and IMAGE_TOKEN in turn.text:
            raise RecordError("image_count_mismatch", f"`<image>` in a {turn.role} turn (turn {k})", location)
    placeholders = sum(turn.text.count(IMAGE_TOKEN) for turn in turns)
    if placeholders and placeholders != num_images:
        raise RecordError(
            "image_count_mismatch", f"{placeholders} `<image>` placeholder(s) for {num_images} image(s)", location
        )


def insert_image_placeholders(turns: list[Turn], num_images: int) -> list[Turn]:
    """Where `<image>` is absent, put one `<image>\\n` per image at the start of the first user turn."""
    if num_images == 0 or any(IMAGE_TOKEN in turn.text for turn in turns):
        return turns
    first_user = next(k for k, turn in enumerate(turns) if turn.role == "user")
    turns = list(turns)
    turns[first_user] = Turn("user", (IMAGE_TOKEN + "\n") * num_images + turns[first_user].text)
    return turns
