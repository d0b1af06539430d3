"""How the fake Anthropic upstream (and Claude on the fake Vertex) performs each behaviour.

Owns :class:`AnthropicExchange` (Anthropic-like response headers, named SSE events, error bodies)
and one runner per Anthropic behaviour; the generic ones come from ``loopback``.
Every runner returns whether the connection may serve another request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from tests.fakes.anthropic_behaviours import AEcho, AFail, AReply, AStreamError, echo_answer, reply_answer
from tests.fakes.anthropic_wire import (
    STATUS_OF_TYPE,
    Answer,
    Event,
    default_error,
    error_json,
    filler_answer,
    message_json,
    new_request_id,
    partial_events,
    sse_event,
    stream_events,
)
from tests.fakes.loopback import EmptyStream, Exchange, Stall, StreamThenDie, run_generic
from tests.fakes.openai_wire import dumps


@dataclass
class AnthropicExchange(Exchange):
    """The response side of one Messages request (``body``, ``model``, ``stream`` filled in by
    the server before a behaviour runs)."""

    request_id: str = ""

    def __post_init__(self) -> None:
        self.request_id = self.request_id or new_request_id()

    def headers(self, content_type: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [
            ("date", formatdate(usegmt=True)),
            ("content-type", content_type),
            ("request-id", self.request_id),
            ("anthropic-organization-id", "00000000-0000-4000-8000-00000000fake"),
            ("connection", "keep-alive" if self.keep_alive else "close"),
        ]
        return headers + list((extra or {}).items())

    async def error(self, status: int, message: str, code: str | None = None) -> bool:
        """An Anthropic error body; ``code`` is the error ``type`` (default from the status)."""
        error_type, text = default_error(status, code, message)
        body = error_json(error_type, text, self.request_id)
        return await self.respond(status, dumps(body))

    async def send_named(self, events: Iterable[Event], delay: float = 0.0) -> None:
        """Each event is one HTTP chunk and one socket write."""
        for name, obj in events:
            await self.conn.send_chunk(sse_event(name, obj))
            if delay:
                await asyncio.sleep(delay)


async def send_answer(
    ex: AnthropicExchange, answer: Answer, delay: float = 0.0, extra: Mapping[str, str] | None = None
) -> bool:
    if not ex.stream:
        return await ex.respond(200, dumps(message_json(answer)), extra=extra)
    await ex.stream_head(extra=extra)
    await ex.send_named(stream_events(answer), delay)
    return await ex.end_stream()


async def run_echo(b: AEcho, ex: AnthropicExchange) -> bool:
    return await send_answer(ex, echo_answer(b, ex.body, ex.model))


async def run_reply(b: AReply, ex: AnthropicExchange) -> bool:
    return await send_answer(ex, reply_answer(b, ex.body, ex.model), b.chunk_delay, b.headers)


async def run_fail(b: AFail, ex: AnthropicExchange) -> bool:
    body: bytes
    if b.body is None:
        error_type, message = default_error(b.status, b.error_type, b.message)
        body = dumps(error_json(error_type, message, ex.request_id))
    elif isinstance(b.body, bytes):
        body = b.body
    elif isinstance(b.body, str):
        body = b.body.encode()
    else:
        body = dumps(dict(b.body))
    return await ex.respond(b.status, body, b.content_type, b.headers)


async def run_stream_error(b: AStreamError, ex: AnthropicExchange) -> bool:
    payload = {"type": "error", "error": {"type": b.error_type, "message": b.message}}
    if not ex.stream:
        status = b.status or default_status(b.error_type)
        return await ex.respond(status, dumps(payload | {"request_id": ex.request_id}))
    await ex.stream_head()
    events = partial_events(ex.model, b.after) or stream_events(filler_answer(ex.model, 1))[:1]
    await ex.send_named(events)
    await ex.send_named([("error", payload)])
    return await ex.end_stream()


def default_status(error_type: str) -> int:
    return STATUS_OF_TYPE.get(error_type, 500)


async def partial_stream(ex: AnthropicExchange, chunks: int) -> None:
    await ex.stream_head()
    await ex.send_named(partial_events(ex.model, chunks))


def _half_message(ex: AnthropicExchange, chunks: int) -> bytes:
    return dumps(message_json(filler_answer(ex.model, chunks)))


async def run_stream_then_die(b: StreamThenDie, ex: AnthropicExchange) -> bool:
    if ex.stream:
        await partial_stream(ex, b.chunks)
    else:
        full = _half_message(ex, b.chunks)
        await ex.respond(200, full[: len(full) // 2], length=len(full))
    return await ex.die(b.how)


async def run_stall(b: Stall, ex: AnthropicExchange) -> bool:
    if ex.stream:
        await partial_stream(ex, b.chunks)
    else:
        await ex.respond(200, b"", length=len(_half_message(ex, b.chunks)))
    if await ex.park(ex.new_hang()):
        await ex.conn.close()
    return False


async def run_empty_stream(b: EmptyStream, ex: AnthropicExchange) -> bool:
    if not ex.stream:
        return await ex.respond(200, b"")
    await ex.stream_head()
    return await ex.end_stream()


RUNNERS: dict[type[Any], Callable[[Any, AnthropicExchange], Awaitable[bool]]] = {
    AEcho: run_echo,
    AReply: run_reply,
    AFail: run_fail,
    AStreamError: run_stream_error,
    StreamThenDie: run_stream_then_die,
    Stall: run_stall,
    EmptyStream: run_empty_stream,
}


async def run(b: object, ex: AnthropicExchange) -> bool:
    """Perform ``b``; a ``then`` of ``None`` (``Gate``/``Delay``) means :class:`AEcho`."""
    runner = RUNNERS.get(type(b))
    if runner is not None:
        return await runner(b, ex)
    result = await run_generic(b, ex, lambda then: run(AEcho() if then is None else then, ex))
    if result is None:
        raise TypeError(f"not a behaviour of the Anthropic fake: {b!r}")
    return result
