"""Curation pass 2: the kept lines in input order, with the short-answer system prompts (paper Section 5.3).

A kept line is copied as raw bytes. With prompts on, its `conversations` are decoded (msgspec, nothing else of the
record; kept records only: planning prompts for the whole pool in pass 1 cost more than this second look at the
survivors) and each prompt is spliced into the raw bytes just before the closing quote of its question, so the
output equals parse-modify-serialise everywhere else in the line.
"""

from __future__ import annotations

import os
from itertools import compress
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np
import orjson

from cambrian.data.curate_chunks import imap_ordered, read_chunk, split_chunks, without_gc
from cambrian.data.curate_scan import PoolScan
from cambrian.data.system_prompts import PROMPTS, add_system_prompts, prompt_plan


class Conversations(msgspec.Struct):
    conversations: list  # turns as dicts, as orjson would give them; pass 1 made sure it is an array


CONVERSATIONS = msgspec.json.Decoder(Conversations)
TURNS = attrgetter("conversations")
# "\n" + prompt as it appears inside a JSON string (the prompts hold no quote or backslash)
SPLICED = {kind: orjson.dumps("\n" + prompt)[1:-1] for kind, prompt in PROMPTS.items()}


def with_prompts(data: bytes, start: int, end: int, conversations: list, plan: list) -> bytes:
    """The line data[start:end] with the prompts of `plan`, each spliced in before the closing quote of its question's
    JSON string. The record is re-serialised instead when a question's encoding is not found exactly once in the
    line (another escaping style, or the same text twice) or ends in whitespace (the prompt replaces it)."""
    pieces, cut, dumps = [], start, orjson.dumps
    for index, kind in plan:
        question = conversations[index]["value"]
        encoded = dumps(question)
        at = data.find(encoded, start, end)
        if at < 0 or question != question.rstrip() or data.find(encoded, at + 1, end) >= 0:
            record = orjson.loads(data[start:end])
            add_system_prompts(record["conversations"])
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        at += len(encoded) - 1
        pieces += (data[cut:at], SPLICED[kind])
        cut = at
    pieces.append(data[cut:end])
    return b"".join(pieces)


@without_gc
def write_chunk(task: tuple) -> tuple[bytes, dict[str, int], int]:
    """Pass 2 over one byte range: (output bytes, prompts added by kind, records that got one).

    Line boundaries come from one numpy scan for newlines; decoding and planning run as map() over the kept lines,
    and a Python loop only visits the lines that get a prompt.
    """
    path, start, end, keep, blank_lines, prompts = task
    data = read_chunk(path, start, end)
    if not data.endswith(b"\n"):
        data += b"\n"
    line_ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n")) + 1
    line_starts = np.concatenate([[0], line_ends[:-1]])
    kept = np.flatnonzero(keep)
    starts = np.delete(line_starts, blank_lines)[kept].tolist()
    ends = np.delete(line_ends, blank_lines)[kept].tolist()
    lines = list(map(memoryview(data).__getitem__, map(slice, starts, ends)))
    if not prompts:
        return b"".join(lines), {}, 0
    conversations = list(map(TURNS, map(CONVERSATIONS.decode, lines)))
    plans = list(map(prompt_plan, conversations))
    kinds = dict.fromkeys(PROMPTS, 0)
    prompted = list(compress(range(len(plans)), plans))
    for index in prompted:
        plan = plans[index]
        lines[index] = with_prompts(data, starts[index], ends[index], conversations[index], plan)
        for _, kind in plan:
            kinds[kind] += 1
    return b"".join(lines), kinds, len(prompted)


def write_selected(
    paths: list[Path],
    pool: PoolScan,
    mask: np.ndarray,
    out_path: Path,
    prompts: bool = True,
    workers: int = 1,
    chunks: list | None = None,
) -> dict:
    """Pass 2: the kept lines in input order; chunks are processed in parallel and written in order."""
    chunks = chunks if chunks is not None else split_chunks(paths)
    bounds = np.concatenate([[0], np.cumsum(pool.chunk_records)]).astype(np.int64)
    tasks = [  # numpy slices: compact to hold and to pickle
        (path, start, end, mask[bounds[c] : bounds[c + 1]], pool.chunk_blank_lines[c], prompts)
        for c, (path, start, end) in enumerate(chunks)
    ]
    kinds = dict.fromkeys(PROMPTS, 0)
    with_prompt = 0
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as out:
        for data, chunk_kinds, chunk_with_prompt in imap_ordered(write_chunk, tasks, workers):
            out.write(data)
            with_prompt += chunk_with_prompt
            for kind, n in chunk_kinds.items():
                kinds[kind] += n
    os.replace(tmp, out_path)
    return {
        "records_with_prompt": with_prompt,
        "prompts_by_kind": {kind: n for kind, n in sorted(kinds.items()) if n},
    }
