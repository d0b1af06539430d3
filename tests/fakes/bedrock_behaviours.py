"""What the fake Bedrock runtime does with one model request, and how it does it on the wire.

Behaviours (frozen dataclasses), for both APIs unless noted:

* ``AEcho`` / ``AReply`` (the Anthropic fake's own) — Claude answers on ``invoke`` and
  ``invoke-with-response-stream`` (``chunk`` frames when streaming).
* ``CEcho`` / ``CReply`` — Converse answers on ``converse`` / ``converse-stream``.
* ``BFail`` — a Bedrock error answer (``x-amzn-ErrorType`` + ``{"message"}``).
* ``BStreamError`` — a stream that sends ``after`` content events, then an in-stream exception frame,
  then ends the body; a non-streamed request gets the exception as an HTTP error instead.
* ``BPaused`` — a stream that sends ``first``, waits for ``gate``, then sends ``rest`` and ends the body
  as ``end`` says (``end``, ``reset``, ``fin``).
* the generic ones (``Hang``, ``Gate``, ``Delay``, ``Refuse``, ``Raw``, ``RawStream``,
  ``StreamThenDie``): "content chunks" are text deltas after ``messageStart`` (Converse) or after
  ``message_start`` and the text block's start (Claude).

An Anthropic behaviour scripted for a Converse request, or the reverse, is a test bug: recorded in the
fake's ``errors`` and answered with a 500.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Literal

from tests.fakes.anthropic_behaviours import AEcho, AReply, echo_answer, reply_answer
from tests.fakes.anthropic_wire import filler_answer, message_json, partial_events
from tests.fakes.bedrock_wire import (
    ConverseAnswer,
    ToolUse,
    claude_frames,
    converse_events,
    converse_frames,
    converse_input_tokens,
    converse_json,
    error_answer,
    filler_converse,
    forced_tool,
    invoke_frames,
    last_user_text,
    new_tool_use_id,
    partial_converse,
    stream_exception,
)
from tests.fakes.loopback import Exchange, StreamThenDie, run_generic
from tests.fakes.openai_wire import count_words, dumps

EVENTSTREAM = "application/vnd.amazon.eventstream"
POLL_S = 0.002
Api = Literal["invoke", "converse"]


@dataclass(frozen=True)
class CEcho:
    """Reply ``"echo: " + <text of the last user message>``; with a forcing ``toolChoice`` (``any``:
    the first tool, ``tool``: the named one) a ``toolUse`` of it with ``tool_input`` instead."""

    tool_input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CReply:
    """A fixed Converse answer. ``tool_uses`` are ``(name, input)`` pairs; ``reasoning`` is ``(text,
    signature)``; ``usage`` is ``(inputTokens, outputTokens)`` (word counts by default) and
    ``cache_read`` sets ``cacheReadInputTokens``; ``stop_reason`` defaults to ``tool_use`` with tool
    uses, else ``end_turn``."""

    text: str = ""
    tool_uses: Sequence[tuple[str, Mapping[str, Any]]] = ()
    reasoning: tuple[str, str] | None = None
    stop_reason: str | None = None
    usage: tuple[int, int] | None = None
    cache_read: int = 0


@dataclass(frozen=True)
class BFail:
    """A Bedrock error answer; ``status`` defaults to the exception's; ``body`` replaces the JSON body."""

    exception: str
    message: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class BStreamError:
    after: int = 0
    exception: str = "ModelStreamErrorException"
    message: str = "The model stream encountered an error."


@dataclass(frozen=True)
class BPaused:
    first: Sequence[bytes]
    gate: threading.Event
    rest: Sequence[bytes] = ()
    end: Literal["end", "reset", "fin"] = "end"


@dataclass
class BedrockExchange(Exchange):
    """The response side of one model request (``api``, ``body``, ``model``, ``stream`` set by the server)."""

    api: Api = "converse"
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def headers(self, content_type: str, extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        headers = [
            ("date", formatdate(usegmt=True)),
            ("content-type", content_type),
            ("x-amzn-RequestId", self.request_id),
            ("connection", "keep-alive" if self.keep_alive else "close"),
        ]
        return headers + list((extra or {}).items())

    async def fail(self, exception: str, message: str | None = None) -> bool:
        status, headers, body = error_answer(exception, message)
        return await self.respond(status, body, extra=headers)

    async def event_stream(self, frames: Sequence[bytes]) -> None:
        extra = {"x-amzn-bedrock-content-type": "application/json"} if self.api == "invoke" else None
        await self.stream_head(extra=extra, content_type=EVENTSTREAM)
        for piece in frames:
            await self.conn.send_chunk(piece)


def _claude_answer(b: AEcho | AReply, ex: BedrockExchange) -> Any:
    return echo_answer(b, ex.body, ex.model) if isinstance(b, AEcho) else reply_answer(b, ex.body, ex.model)


def converse_answer(b: CEcho | CReply, body: Mapping[str, Any]) -> ConverseAnswer:
    prompt = converse_input_tokens(body)
    if isinstance(b, CEcho):
        forced = forced_tool(body)
        if forced is not None:
            use = ToolUse(new_tool_use_id(), forced, dict(b.tool_input))
            output = 1 + count_words(json.dumps(dict(use.input)))
            return ConverseAnswer(tool_uses=(use,), stop_reason="tool_use", input_tokens=prompt, output_tokens=output)
        text = "echo: " + last_user_text(body)
        return ConverseAnswer(text=text, input_tokens=prompt, output_tokens=count_words(text))
    uses = tuple(ToolUse(new_tool_use_id(), name, dict(args)) for name, args in b.tool_uses)
    if b.usage is not None:
        prompt, output = b.usage
    else:
        output = count_words(b.text) + (count_words(b.reasoning[0]) if b.reasoning else 0)
        output += sum(1 + count_words(json.dumps(dict(u.input))) for u in uses)
    return ConverseAnswer(
        text=b.text,
        tool_uses=uses,
        reasoning=b.reasoning,
        stop_reason=b.stop_reason or ("tool_use" if uses else "end_turn"),
        input_tokens=prompt,
        output_tokens=output,
        cache_read=b.cache_read,
    )


async def run_claude(b: AEcho | AReply, ex: BedrockExchange) -> bool:
    answer = _claude_answer(b, ex)
    if not ex.stream:
        return await ex.respond(200, dumps(message_json(answer)))
    await ex.event_stream(claude_frames(answer))
    return await ex.end_stream()


async def run_converse(b: CEcho | CReply, ex: BedrockExchange) -> bool:
    answer = converse_answer(b, ex.body)
    if not ex.stream:
        return await ex.respond(200, dumps(converse_json(answer)))
    await ex.event_stream(converse_frames(converse_events(answer)))
    return await ex.end_stream()


async def run_fail(b: BFail, ex: BedrockExchange) -> bool:
    status, headers, body = error_answer(b.exception, b.message)
    return await ex.respond(b.status or status, b.body if b.body is not None else body, extra={**headers, **b.headers})


def content_frames(api: Api, model: str, chunks: int) -> list[bytes]:
    """The first ``chunks`` content events of a text answer (none if 0), as frames."""
    if api == "converse":
        return partial_converse(chunks)
    return invoke_frames(partial_events(model, chunks)) if chunks > 0 else []


async def run_stream_error(b: BStreamError, ex: BedrockExchange) -> bool:
    if not ex.stream:
        return await ex.fail(b.exception, b.message)
    await ex.event_stream([*content_frames(ex.api, ex.model, b.after), stream_exception(b.exception, b.message)])
    return await ex.end_stream()


def _half_body(ex: BedrockExchange, chunks: int) -> bytes:
    if ex.api == "converse":
        return dumps(converse_json(filler_converse(chunks)))
    return dumps(message_json(filler_answer(ex.model, chunks)))


async def run_stream_then_die(b: StreamThenDie, ex: BedrockExchange) -> bool:
    if ex.stream:
        await ex.event_stream(content_frames(ex.api, ex.model, b.chunks))
    else:
        full = _half_body(ex, b.chunks)
        await ex.respond(200, full[: len(full) // 2], length=len(full))
    return await ex.die(b.how)


async def run_paused(b: BPaused, ex: BedrockExchange) -> bool:
    await ex.event_stream(b.first)
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


RUNNERS: dict[type[Any], Callable[[Any, BedrockExchange], Awaitable[bool]]] = {
    BFail: run_fail,
    BStreamError: run_stream_error,
    StreamThenDie: run_stream_then_die,
    BPaused: run_paused,
}
CLAUDE_ONLY = (AEcho, AReply)
CONVERSE_ONLY = (CEcho, CReply)


async def run(b: object, ex: BedrockExchange) -> bool:
    """Perform ``b`` (a ``then`` of ``None`` means the API's echo)."""
    if isinstance(b, CLAUDE_ONLY if ex.api == "converse" else CONVERSE_ONLY):
        raise TypeError(f"fake misuse: {b!r} cannot answer a {ex.api} request")
    if isinstance(b, (AEcho, AReply)):
        return await run_claude(b, ex)
    if isinstance(b, (CEcho, CReply)):
        return await run_converse(b, ex)
    runner = RUNNERS.get(type(b))
    if runner is not None:
        return await runner(b, ex)
    echo: object = AEcho() if ex.api == "invoke" else CEcho()
    result = await run_generic(b, ex, lambda then: run(echo if then is None else then, ex))
    if result is None:
        raise TypeError(f"not a behaviour of the Bedrock fake: {b!r}")
    return result
