"""How the fake OpenAI upstream performs each behaviour on the wire.

Owns :class:`Exchange` (one request's response side: OpenAI-like headers, fixed-length and
chunked SSE bodies, the ways to die) and one runner per behaviour type, dispatched through the
``RUNNERS`` table. Every runner returns whether the connection may serve another request.
The server (``openai_upstream.py``) owns routing, auth, queues and records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from tests.fakes.http11 import Conn
from tests.fakes.openai_azure import decorate_chunks, decorate_completion
from tests.fakes.openai_behaviours import (
    BadJSON,
    Behaviour,
    Delay,
    Echo,
    EmptyStream,
    Fail,
    Gate,
    Hang,
    Raw,
    RawStream,
    Refuse,
    Reply,
    Stall,
    StreamError,
    StreamThenDie,
    echo_answer,
    filler_answer,
    reply_answer,
)
from tests.fakes.openai_wire import (
    DONE,
    Answer,
    JsonObj,
    completion_json,
    default_error,
    dumps,
    error_json,
    sse,
    stream_chunks,
)

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
GATE_POLL_S = 0.002
"""How often a ``Gate`` looks at its ``threading.Event`` (without blocking the loop)."""


@dataclass
class Exchange:
    """The response side of one request. ``park`` waits on an awaitable while watching the
    peer (False = the client went away first); ``new_hang`` makes a future that
    ``FakeOpenAI.release()`` resolves. The chat fields are empty for non-chat routes."""

    conn: Conn
    keep_alive: bool
    park: Callable[[Awaitable[Any]], Awaitable[bool]]
    new_hang: Callable[[], asyncio.Future[None]]
    body: JsonObj = field(default_factory=dict)
    model: str = ""
    stream: bool = False
    include_usage: bool = False
    azure: bool = False
    """Answers carry Azure's content-filter annotations (``openai_azure``)."""

    def headers(self, content_type: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [
            ("date", formatdate(usegmt=True)),
            ("content-type", content_type),
            ("x-request-id", "req_" + uuid.uuid4().hex),
            ("openai-processing-ms", "1"),
            ("openai-version", "2020-10-01"),
            ("connection", "keep-alive" if self.keep_alive else "close"),
        ]
        return headers + list((extra or {}).items())

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: Mapping[str, str] | None = None,
        length: int | None = None,
    ) -> bool:
        """A fixed-length response; ``length`` lies about the Content-Length when given."""
        headers = self.headers(content_type, extra)
        headers.append(("content-length", str(len(body) if length is None else length)))
        await self.conn.send_head(status, headers)
        if body:
            await self.conn.send(body)
        return self.keep_alive and length is None

    async def error(self, status: int, message: str, code: str | None = None) -> bool:
        return await self.respond(status, dumps(error_json(message, "invalid_request_error", code)))

    async def stream_head(
        self, status: int = 200, extra: Mapping[str, str] | None = None, content_type: str = SSE_CONTENT_TYPE
    ) -> None:
        headers = self.headers(content_type, extra)
        headers += [("transfer-encoding", "chunked"), ("cache-control", "no-cache")]
        await self.conn.send_head(status, headers)

    async def send_events(self, chunks: Iterable[JsonObj], delay: float = 0.0) -> None:
        """Each event is one HTTP chunk and one socket write."""
        for chunk in chunks:
            await self.conn.send_chunk(sse(chunk))
            if delay:
                await asyncio.sleep(delay)

    async def end_stream(self) -> bool:
        await self.conn.end_chunks()
        return self.keep_alive

    async def die(self, how: str) -> bool:
        if how == "reset":
            await self.conn.flush()
            self.conn.reset()
            return False
        if how == "end" and self.stream:
            return await self.end_stream()
        await self.conn.close()
        return False

    async def partial_stream(self, chunks: int) -> None:
        """Stream head, then the role chunk and ``chunks`` content chunks (none if 0)."""
        await self.stream_head()
        if chunks > 0:
            events = stream_chunks(filler_answer(self.model, chunks), self.include_usage)
            await self.send_events(events[: chunks + 1])


Runner = Callable[[Any, Exchange], Awaitable[bool]]


async def run(behaviour: Behaviour, ex: Exchange) -> bool:
    return await RUNNERS[type(behaviour)](behaviour, ex)


async def send_answer(ex: Exchange, answer: Answer, delay: float = 0.0, extra: Mapping[str, str] | None = None) -> bool:
    if not ex.stream:
        body = completion_json(answer)
        return await ex.respond(200, dumps(decorate_completion(body) if ex.azure else body), extra=extra)
    await ex.stream_head(extra=extra)
    chunks = stream_chunks(answer, ex.include_usage)
    await ex.send_events(decorate_chunks(chunks) if ex.azure else chunks, delay)
    await ex.conn.send_chunk(DONE)
    return await ex.end_stream()


async def run_echo(b: Echo, ex: Exchange) -> bool:
    return await send_answer(ex, echo_answer(b, ex.body, ex.model))


async def run_reply(b: Reply, ex: Exchange) -> bool:
    return await send_answer(ex, reply_answer(b, ex.body, ex.model), b.chunk_delay, b.headers)


async def run_fail(b: Fail, ex: Exchange) -> bool:
    body: bytes
    if b.body is None:
        body = dumps(default_error(b.status, b.message, b.code))
    elif isinstance(b.body, bytes):
        body = b.body
    elif isinstance(b.body, str):
        body = b.body.encode()
    else:
        body = dumps(dict(b.body))
    return await ex.respond(b.status, body, b.content_type, b.headers)


async def run_hang(b: Hang, ex: Exchange) -> bool:
    if not await ex.park(ex.new_hang()):
        return False
    if b.then is not None:
        return await run(b.then, ex)
    await ex.conn.close()
    return False


async def run_refuse(b: Refuse, ex: Exchange) -> bool:
    ex.conn.reset()
    return False


async def run_stream_then_die(b: StreamThenDie, ex: Exchange) -> bool:
    if ex.stream:
        await ex.partial_stream(b.chunks)
    else:
        full = dumps(completion_json(filler_answer(ex.model, b.chunks)))
        await ex.respond(200, full[: len(full) // 2], length=len(full))
    return await ex.die(b.how)


async def run_empty_stream(b: EmptyStream, ex: Exchange) -> bool:
    if not ex.stream:
        return await ex.respond(200, b"")
    await ex.stream_head()
    if b.done:
        await ex.conn.send_chunk(DONE)
    return await ex.end_stream()


async def run_bad_json(b: BadJSON, ex: Exchange) -> bool:
    answer = echo_answer(Echo(), ex.body, ex.model)
    if not ex.stream:
        full = dumps(completion_json(answer))
        return await ex.respond(200, full[: len(full) // 2])
    first, second = stream_chunks(answer, ex.include_usage)[:2]
    await ex.stream_head()
    await ex.send_events([first])
    text = dumps(second)
    await ex.conn.send_chunk(b"data: " + text[: len(text) // 2] + b"\n\n")
    await ex.conn.send_chunk(DONE)
    return await ex.end_stream()


async def run_stream_error(b: StreamError, ex: Exchange) -> bool:
    payload = {"error": dict(b.error)}
    if not ex.stream:
        return await ex.respond(b.status, dumps(payload))
    await ex.partial_stream(b.after)
    await ex.conn.send_chunk(sse(payload))
    return await ex.end_stream()


async def run_gate(b: Gate, ex: Exchange) -> bool:
    async def opened() -> None:
        while not b.event.is_set():
            await asyncio.sleep(GATE_POLL_S)

    if not await ex.park(opened()):
        return False
    return await run(b.then, ex)


async def run_delay(b: Delay, ex: Exchange) -> bool:
    if not await ex.park(asyncio.sleep(b.seconds)):
        return False
    return await run(b.then, ex)


async def run_stall(b: Stall, ex: Exchange) -> bool:
    if ex.stream:
        await ex.partial_stream(b.chunks)
    else:
        full = dumps(completion_json(filler_answer(ex.model, b.chunks)))
        await ex.respond(200, b"", length=len(full))
    if await ex.park(ex.new_hang()):
        await ex.conn.close()
    return False


async def run_raw(b: Raw, ex: Exchange) -> bool:
    await ex.conn.send(b.data)
    if b.close:
        await ex.conn.close()
        return False
    return ex.keep_alive


async def run_raw_stream(b: RawStream, ex: Exchange) -> bool:
    await ex.stream_head(b.status, content_type=b.content_type)
    for piece in b.pieces:
        if piece:
            await ex.conn.send_chunk(piece)
    if b.end:
        return await ex.end_stream()
    await ex.conn.close()
    return False


RUNNERS: dict[type[Any], Runner] = {
    Echo: run_echo,
    Reply: run_reply,
    Fail: run_fail,
    Hang: run_hang,
    Refuse: run_refuse,
    StreamThenDie: run_stream_then_die,
    EmptyStream: run_empty_stream,
    BadJSON: run_bad_json,
    StreamError: run_stream_error,
    Gate: run_gate,
    Delay: run_delay,
    Stall: run_stall,
    Raw: run_raw,
    RawStream: run_raw_stream,
}
