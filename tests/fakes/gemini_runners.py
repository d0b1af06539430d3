"""How the fake Gemini upstream (and Gemini on the fake Vertex) performs each behaviour.

Owns :class:`GeminiExchange` (Google-like response headers; stream bodies as ``?alt=sse``
events or, without ``alt=sse``, one JSON array sent element by element; Google RPC error
bodies) and one runner per Gemini behaviour; the generic ones come from ``loopback``.
Every runner returns whether the connection may serve another request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from tests.fakes.gemini_behaviours import (
    GBlocked,
    GEcho,
    GFail,
    GReply,
    GSafety,
    GStreamError,
    echo_answer,
    reply_answer,
)
from tests.fakes.gemini_wire import (
    Answer,
    JsonObj,
    blocked_json,
    error_json,
    filler_answer,
    prompt_tokens,
    quota_details,
    response_json,
    sse,
    stream_chunks,
)
from tests.fakes.loopback import EmptyStream, Exchange, Stall, StreamThenDie, run_generic
from tests.fakes.openai_wire import dumps

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


@dataclass
class GeminiExchange(Exchange):
    """The response side of one request. ``vertex`` selects the Vertex response variant;
    ``sse`` whether a stream is ``?alt=sse`` events (else a JSON array)."""

    vertex: bool = False
    sse: bool = True
    _sent: int = 0

    def headers(self, content_type: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [
            ("content-type", content_type),
            ("vary", "Origin, X-Origin, Referer"),
            ("date", formatdate(usegmt=True)),
            ("server", "scaffolding on HTTPServer2"),
            ("x-xss-protection", "0"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-content-type-options", "nosniff"),
            ("server-timing", "gfet4t7; dur=1"),
            ("connection", "keep-alive" if self.keep_alive else "close"),
        ]
        return headers + list((extra or {}).items())

    async def respond_json(self, status: int, obj: Any, extra: Mapping[str, str] | None = None) -> bool:
        return await self.respond(status, dumps(obj), JSON_CONTENT_TYPE, extra)

    async def error(self, status: int, message: str, code: str | None = None) -> bool:
        """A Google RPC error body; ``code`` is the ``status`` string (default from the HTTP status)."""
        return await self.respond_json(status, error_json(status, code, message))

    async def open_stream(self, extra: Mapping[str, str] | None = None) -> None:
        content_type = "text/event-stream" if self.sse else JSON_CONTENT_TYPE
        await self.stream_head(extra=extra, content_type=content_type)

    async def send_chunks(self, chunks: Iterable[JsonObj], delay: float = 0.0) -> None:
        """Each chunk is one HTTP chunk and one socket write."""
        for chunk in chunks:
            separator = b"[" if self._sent == 0 else b"\n,\r\n"
            data = sse(chunk) if self.sse else separator + dumps(chunk)
            self._sent += 1
            await self.conn.send_chunk(data)
            if delay:
                await asyncio.sleep(delay)

    async def close_stream(self) -> bool:
        if not self.sse:
            await self.conn.send_chunk(b"]" if self._sent else b"[]")
        return await self.end_stream()


async def send_answer(
    ex: GeminiExchange, answer: Answer, delay: float = 0.0, extra: Mapping[str, str] | None = None
) -> bool:
    if not ex.stream:
        return await ex.respond_json(200, response_json(answer), extra)
    await ex.open_stream(extra)
    await ex.send_chunks(stream_chunks(answer), delay)
    return await ex.close_stream()


async def send_single(ex: GeminiExchange, obj: JsonObj) -> bool:
    if not ex.stream:
        return await ex.respond_json(200, obj)
    await ex.open_stream()
    await ex.send_chunks([obj])
    return await ex.close_stream()


async def run_echo(b: GEcho, ex: GeminiExchange) -> bool:
    return await send_answer(ex, echo_answer(b, ex.body, ex.model, ex.vertex))


async def run_reply(b: GReply, ex: GeminiExchange) -> bool:
    return await send_answer(ex, reply_answer(b, ex.body, ex.model, ex.vertex), b.chunk_delay, b.headers)


async def run_fail(b: GFail, ex: GeminiExchange) -> bool:
    body: bytes
    if b.body is None:
        details = b.details
        if details is None and b.status == 429:
            details = quota_details(ex.model, b.retry_delay)
        body = dumps(error_json(b.status, b.google_status, b.message, details))
    elif isinstance(b.body, bytes):
        body = b.body
    elif isinstance(b.body, str):
        body = b.body.encode()
    else:
        body = dumps(dict(b.body))
    return await ex.respond(b.status, body, b.content_type, b.headers)


async def partial_stream(ex: GeminiExchange, chunks: int) -> None:
    await ex.open_stream()
    if chunks > 0:
        await ex.send_chunks(stream_chunks(filler_answer(ex.model, chunks, ex.vertex))[:chunks])


async def run_stream_error(b: GStreamError, ex: GeminiExchange) -> bool:
    payload = error_json(b.code, b.google_status, b.message)
    if not ex.stream:
        return await ex.respond_json(b.code, payload)
    await partial_stream(ex, b.after)
    await ex.send_chunks([payload])
    return await ex.close_stream()


async def run_safety(b: GSafety, ex: GeminiExchange) -> bool:
    answer = Answer(ex.model, finish_reason=b.finish_reason, prompt_tokens=prompt_tokens(ex.body), vertex=ex.vertex)
    return await send_single(ex, response_json(answer))


async def run_blocked(b: GBlocked, ex: GeminiExchange) -> bool:
    answer = Answer(ex.model, prompt_tokens=prompt_tokens(ex.body), vertex=ex.vertex)
    return await send_single(ex, blocked_json(answer, b.reason))


def _full_body(ex: GeminiExchange, chunks: int) -> bytes:
    return dumps(response_json(filler_answer(ex.model, chunks, ex.vertex)))


async def run_stream_then_die(b: StreamThenDie, ex: GeminiExchange) -> bool:
    if ex.stream:
        await partial_stream(ex, b.chunks)
    else:
        full = _full_body(ex, b.chunks)
        await ex.respond(200, full[: len(full) // 2], JSON_CONTENT_TYPE, length=len(full))
    return await ex.die(b.how)


async def run_stall(b: Stall, ex: GeminiExchange) -> bool:
    if ex.stream:
        await partial_stream(ex, b.chunks)
    else:
        await ex.respond(200, b"", JSON_CONTENT_TYPE, length=len(_full_body(ex, b.chunks)))
    if await ex.park(ex.new_hang()):
        await ex.conn.close()
    return False


async def run_empty_stream(b: EmptyStream, ex: GeminiExchange) -> bool:
    if not ex.stream:
        return await ex.respond(200, b"", JSON_CONTENT_TYPE)
    await ex.open_stream()
    return await ex.end_stream()


RUNNERS: dict[type[Any], Callable[[Any, GeminiExchange], Awaitable[bool]]] = {
    GEcho: run_echo,
    GReply: run_reply,
    GFail: run_fail,
    GStreamError: run_stream_error,
    GSafety: run_safety,
    GBlocked: run_blocked,
    StreamThenDie: run_stream_then_die,
    Stall: run_stall,
    EmptyStream: run_empty_stream,
}


async def run(b: object, ex: GeminiExchange) -> bool:
    """Perform ``b``; a ``then`` of ``None`` (``Gate``/``Delay``) means :class:`GEcho`."""
    runner = RUNNERS.get(type(b))
    if runner is not None:
        return await runner(b, ex)
    result = await run_generic(b, ex, lambda then: run(GEcho() if then is None else then, ex))
    if result is None:
        raise TypeError(f"not a behaviour of the Gemini fake: {b!r}")
    return result
