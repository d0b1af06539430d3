"""A stream that pauses after its first content until the test lets it go on — for every fake.

The relay commits a stream when its first content event reaches the client; before that, a
failure is retried on the next channel. So "an error *after* content" is only deterministic if
the error leaves the upstream after the client has seen content. The fakes' own partial-stream
behaviours write everything at once (the gateway may read content and error in one chunk and,
rightly, fail over), so the battery adds one behaviour: :class:`Paused` sends ``first``, waits
until ``gate`` is set (the test sets it after reading content from the gateway), then sends
``rest`` and ends the body as ``end`` says.

The fakes dispatch behaviours through their ``RUNNERS`` tables; :func:`register` adds ``Paused``
to the OpenAI, Anthropic and Gemini tables (the Vertex fake uses the latter two).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tests.fakes import anthropic_runners, gemini_runners, openai_runners
from tests.fakes.anthropic_wire import partial_events, sse_event
from tests.fakes.gemini_wire import error_json as google_error_json
from tests.fakes.gemini_wire import filler_answer as gemini_filler
from tests.fakes.gemini_wire import sse as gemini_sse
from tests.fakes.gemini_wire import stream_chunks as gemini_chunks
from tests.fakes.openai_behaviours import filler_answer as openai_filler
from tests.fakes.openai_runners import Exchange
from tests.fakes.openai_wire import dumps, sse
from tests.fakes.openai_wire import stream_chunks as openai_chunks

POLL_S = 0.002
End = Literal["end", "reset", "fin"]


@dataclass(frozen=True)
class Paused:
    first: Sequence[bytes]
    gate: threading.Event
    rest: Sequence[bytes] = ()
    end: End = "end"


async def run_paused(b: Paused, ex: Exchange) -> bool:
    await ex.stream_head(content_type="text/event-stream")
    for piece in b.first:
        await ex.conn.send_chunk(piece)
    gate = b.gate

    async def opened() -> None:
        while not gate.is_set():
            await asyncio.sleep(POLL_S)

    if not await ex.park(opened()):
        return False
    for piece in b.rest:
        await ex.conn.send_chunk(piece)
    if b.end == "end":
        return await ex.end_stream()
    if b.end == "reset":
        await ex.conn.flush()
        ex.conn.reset()
        return False
    await ex.conn.close()
    return False


def register() -> None:
    for table in (openai_runners.RUNNERS, anthropic_runners.RUNNERS, gemini_runners.RUNNERS):
        table[Paused] = run_paused


# ---- native pieces: ``chunks`` content events, and an in-band error event ----------------------


def openai_content(model: str, chunks: int) -> list[bytes]:
    """The role chunk and ``chunks`` content chunks (``part0 part1 …``)."""
    return [sse(c) for c in openai_chunks(openai_filler(model, chunks), False)[: chunks + 1]]


def openai_error(message: str) -> list[bytes]:
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return [b"data: " + dumps({"error": error}) + b"\n\n"]


def anthropic_content(model: str, chunks: int) -> list[bytes]:
    """``message_start``, the text block's start, ``ping`` and ``chunks`` text deltas."""
    return [sse_event(name, obj) for name, obj in partial_events(model, chunks)]


def anthropic_error(message: str) -> list[bytes]:
    return [sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})]


def gemini_content(model: str, chunks: int) -> list[bytes]:
    """``chunks`` chunks of one text part each, without a ``finishReason`` (a filler one word
    longer, cut before its last chunk: the last chunk is the one that carries it)."""
    return [gemini_sse(c) for c in gemini_chunks(gemini_filler(model, chunks + 1))[:chunks]]


def gemini_error(message: str) -> list[bytes]:
    return [gemini_sse(google_error_json(500, None, message))]


@dataclass(frozen=True)
class Pieces:
    content: Callable[[str, int], list[bytes]]
    error: Callable[[str], list[bytes]]


PIECES: Mapping[str, Pieces] = {
    "openai": Pieces(openai_content, openai_error),
    "anthropic": Pieces(anthropic_content, anthropic_error),
    "gemini": Pieces(gemini_content, gemini_error),
}
"""By dialect family (Vertex speaks the Anthropic or the Gemini one)."""

register()
