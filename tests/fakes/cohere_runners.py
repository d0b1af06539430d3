"""How the fake Cohere upstream performs each behaviour.

Owns :class:`CohereExchange` (Cohere-like response headers, named SSE events ending with
``data: [DONE]``, ``{"id", "message"}`` error bodies) and one runner per Cohere behaviour; the
generic ones come from ``loopback``. Every runner returns whether the connection may serve
another request. ``RUNNERS`` is a plain table so a test suite may add its own behaviours (the
battery adds its ``Paused``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from tests.fakes.cohere_behaviours import CEcho, CFail, CReply, CStreamError, echo_answer, reply_answer
from tests.fakes.cohere_wire import (
    DONE,
    Answer,
    Event,
    default_message,
    error_end,
    error_json,
    filler_answer,
    partial_events,
    response_json,
    sse_event,
    stream_events,
)
from tests.fakes.loopback import EmptyStream, Exchange, Stall, StreamThenDie, run_generic
from tests.fakes.openai_wire import dumps

SSE_CONTENT_TYPE = "text/event-stream"


@dataclass
class CohereExchange(Exchange):
    """The response side of one v2 Chat request (``body``, ``model``, ``stream`` filled in by the
    server before a behaviour runs)."""

    def headers(self, content_type: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [
            ("date", formatdate(usegmt=True)),
            ("content-type", content_type),
            ("x-debug-trace-id", uuid.uuid4().hex),
            ("vary", "Origin"),
            ("connection", "keep-alive" if self.keep_alive else "close"),
        ]
        return headers + list((extra or {}).items())

    async def error(self, status: int, message: str, code: str | None = None) -> bool:
        """A Cohere error body (``code`` is unused: Cohere's errors have none)."""
        return await self.respond(status, dumps(error_json(message)))

    async def cohere_stream_head(self, extra: Mapping[str, str] | None = None) -> None:
        await self.stream_head(extra=extra, content_type=SSE_CONTENT_TYPE)

    async def send_named(self, events: Iterable[Event], delay: float = 0.0) -> None:
        """Each event is one HTTP chunk and one socket write."""
        for name, obj in events:
            await self.conn.send_chunk(sse_event(name, obj))
            if delay:
                await asyncio.sleep(delay)

    async def end_cohere_stream(self) -> bool:
        await self.conn.send_chunk(DONE)
        return await self.end_stream()


async def send_answer(
    ex: CohereExchange, answer: Answer, delay: float = 0.0, extra: Mapping[str, str] | None = None
) -> bool:
    if not ex.stream:
        return await ex.respond(200, dumps(response_json(answer)), extra=extra)
    await ex.cohere_stream_head(extra)
    await ex.send_named(stream_events(answer), delay)
    return await ex.end_cohere_stream()


async def run_echo(b: CEcho, ex: CohereExchange) -> bool:
    return await send_answer(ex, echo_answer(b, ex.body))


async def run_reply(b: CReply, ex: CohereExchange) -> bool:
    return await send_answer(ex, reply_answer(b, ex.body), b.chunk_delay, b.headers)


async def run_fail(b: CFail, ex: CohereExchange) -> bool:
    body: bytes
    if b.body is None:
        body = dumps(error_json(b.message or default_message(b.status)))
    elif isinstance(b.body, bytes):
        body = b.body
    elif isinstance(b.body, str):
        body = b.body.encode()
    else:
        body = dumps(dict(b.body))
    return await ex.respond(b.status, body, b.content_type, b.headers)


async def run_stream_error(b: CStreamError, ex: CohereExchange) -> bool:
    if not ex.stream:
        return await ex.respond(b.status, dumps(error_json(b.message)))
    await ex.cohere_stream_head()
    events = partial_events(b.after) or stream_events(filler_answer(1))[:1]
    await ex.send_named([*events, error_end(b.message, b.finish_reason)])
    return await ex.end_cohere_stream()


def _half_response(chunks: int) -> bytes:
    return dumps(response_json(filler_answer(chunks)))


async def run_stream_then_die(b: StreamThenDie, ex: CohereExchange) -> bool:
    if ex.stream:
        await ex.cohere_stream_head()
        await ex.send_named(partial_events(b.chunks))
    else:
        full = _half_response(b.chunks)
        await ex.respond(200, full[: len(full) // 2], length=len(full))
    return await ex.die(b.how)


async def run_stall(b: Stall, ex: CohereExchange) -> bool:
    if ex.stream:
        await ex.cohere_stream_head()
        await ex.send_named(partial_events(b.chunks))
    else:
        await ex.respond(200, b"", length=len(_half_response(b.chunks)))
    if await ex.park(ex.new_hang()):
        await ex.conn.close()
    return False


async def run_empty_stream(b: EmptyStream, ex: CohereExchange) -> bool:
    if not ex.stream:
        return await ex.respond(200, b"")
    await ex.cohere_stream_head()
    if b.done:
        await ex.conn.send_chunk(DONE)
    return await ex.end_stream()


RUNNERS: dict[type[Any], Callable[[Any, CohereExchange], Awaitable[bool]]] = {
    CEcho: run_echo,
    CReply: run_reply,
    CFail: run_fail,
    CStreamError: run_stream_error,
    StreamThenDie: run_stream_then_die,
    Stall: run_stall,
    EmptyStream: run_empty_stream,
}


async def run(b: object, ex: CohereExchange) -> bool:
    """Perform ``b``; a ``then`` of ``None`` (``Gate``/``Delay``) means :class:`CEcho`."""
    runner = RUNNERS.get(type(b))
    if runner is not None:
        return await runner(b, ex)
    result = await run_generic(b, ex, lambda then: run(CEcho() if then is None else then, ex))
    if result is None:
        raise TypeError(f"not a behaviour of the Cohere fake: {b!r}")
    return result
