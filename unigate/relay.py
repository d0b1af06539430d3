"""plan → attempt → decode → peek → commit. The only retry loop in the code.

``Relay.chat`` walks the Plan's attempts in order. An attempt that fails with an error the
retry table says to retry moves on to the next attempt; a failure caused by the client's own
request (``UpstreamRequestError``) is returned at once. When every attempt failed, the last
error is raised with its upstream status and message.

Streams commit late: ``_open_stream`` reads upstream events and holds them until the first
content event (or the end of a complete stream). Any failure before that point is an ordinary
attempt failure, invisible to the client. After it, the stream belongs to the client: a later
failure ends it with an OpenAI-style in-band error event and ``[DONE]``, never a retry.

Fast path (DESIGN.md): an OpenAI-compatible channel receives the client's JSON body with only
``model`` (and the channel's configured overrides) patched; the upstream's SSE events are
re-framed and forwarded as they come, rewriting ``model`` only when an alias differs from the
upstream name. Every event is still parsed once, to find the commit point, in-band errors,
the finish reason and usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from unigate.config.compile import Channel, ClientKey
from unigate.dialects import openai_chat
from unigate.dialects.sse import SSEFramer
from unigate.errors import (
    UnigateError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    redact,
)
from unigate.providers import openai as openai_host
from unigate.routing.candidates import Candidate
from unigate.routing.plan import Attempt, Plan, Planner
from unigate.routing.retry import decide
from unigate.upstream import Timeouts, Upstream, UpstreamResponse

DONE_FRAME = b"data: [DONE]\n\n"
DEFAULT_DEADLINE = 30 * 60.0
DEFAULT_IDLE = 120.0
MAX_ERROR_BODY = 1024 * 1024


@dataclass(slots=True)
class ChatCall:
    """One client chat request after authentication and light validation."""

    key: ClientKey
    body: dict[str, Any]
    model: str
    stream: bool
    request_id: str


@dataclass(slots=True)
class AttemptLog:
    channel: str
    upstream_model: str
    outcome: str
    status: int = 0


@dataclass(slots=True)
class Served:
    """Bookkeeping the HTTP layer turns into headers (and, later, statistics records)."""

    channel: str = ""
    upstream_model: str = ""
    attempts: list[AttemptLog] = field(default_factory=list)

    def log(self, attempt: Attempt, outcome: str, status: int) -> None:
        self.attempts.append(AttemptLog(attempt.channel.name, attempt.candidate.upstream_model, outcome, status))


@dataclass(slots=True)
class Complete:
    """A finished non-streamed answer: JSON bytes for the client."""

    body: bytes
    served: Served


@dataclass(slots=True)
class Streaming:
    """A committed stream: ``frames`` yields SSE bytes (the peeked ones first) and closes the
    upstream response when exhausted or closed (client disconnect)."""

    frames: AsyncIterator[bytes]
    served: Served


def _upstream_body(body: Mapping[str, Any], channel: Channel, alias: str, upstream_model: str) -> bytes:
    """Patch the client's body for an OpenAI-compatible channel (the fast path)."""
    out = dict(body)
    out["model"] = upstream_model
    if not channel.tools:
        _strip_tools(out)
    if not channel.image:
        _strip_images(out)
    if channel.overrides_all:
        out.update(channel.overrides_all)
    per_model = channel.overrides_by_model.get(alias) or channel.overrides_by_model.get(upstream_model)
    if per_model:
        out.update(per_model)
    for key in channel.remove_keys:
        out.pop(key, None)
    return orjson.dumps(out)


def _strip_tools(body: dict[str, Any]) -> None:
    """``tools: false`` channels: drop tool definitions and the tool turns of the history."""
    for key in ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"):
        body.pop(key, None)
    messages = []
    for message in body.get("messages", ()):
        if not isinstance(message, dict):
            messages.append(message)
            continue
        if message.get("role") == "tool":
            continue
        if "tool_calls" in message:
            message = {k: v for k, v in message.items() if k != "tool_calls"}
            if message.get("content") is None:
                continue
        messages.append(message)
    body["messages"] = messages


def _strip_images(body: dict[str, Any]) -> None:
    """``image: false`` channels (uni-api's documented switch): image parts are removed from
    message contents, because the operator said this upstream cannot take them."""
    messages = []
    for message in body.get("messages", ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            kept = [p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")]
            message = {**message, "content": kept}
        messages.append(message)
    body["messages"] = messages


def _is_content(chunk: Mapping[str, Any]) -> bool:
    """Does this OpenAI chunk carry anything the client must see (the commit point)?"""
    choices = chunk.get("choices")
    if not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
        if delta.get("reasoning_content") or delta.get("reasoning") or delta.get("function_call"):
            return True
    return False


def error_frames(err: UnigateError) -> list[bytes]:
    """The end of a committed stream that failed: an in-band error event, then ``[DONE]``.
    The official ``openai`` SDK raises ``APIError`` when a data event has an ``error`` key."""
    return [b"data: " + orjson.dumps(err.to_openai()) + b"\n\n", DONE_FRAME]


class Relay:
    """Executes plans. Holds no per-request state; the planner holds health and cursors.

    ``deadline`` bounds a whole client request (every attempt, and a stream's full length);
    ``idle`` bounds the silence between two chunks of an upstream body.
    """

    def __init__(
        self,
        planner: Planner,
        upstream: Upstream,
        *,
        error_triggers: tuple[str, ...] = (),
        deadline: float = DEFAULT_DEADLINE,
        idle: float = DEFAULT_IDLE,
    ) -> None:
        self.planner = planner
        self.upstream = upstream
        self.error_triggers = error_triggers
        self.deadline = deadline
        self.idle = idle

    def plan(self, call: ChatCall) -> Plan:
        """Plan a call (raises NotFound / PermissionDenied before anything is sent)."""
        return self.planner.plan(call.key, call.model)

    async def chat(self, call: ChatCall, plan: Plan | None = None) -> Complete | Streaming:
        """Run the attempts of ``plan`` (made here when not given) until one succeeds."""
        if plan is None:
            plan = self.plan(call)
        served = Served()
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.deadline
        last: UpstreamError | None = None
        budget = plan.budget
        planner = self.planner
        try:
            async with asyncio.timeout_at(deadline_at):
                for attempt in plan.attempts:
                    tried: set[str] = set()
                    while budget > 0:
                        usable, api_key = planner.pick_key(attempt.channel, frozenset(tried))
                        if not usable:
                            break
                        budget -= 1
                        if api_key is not None:
                            tried.add(api_key)
                        try:
                            result = await self._attempt(call, attempt, api_key, served, deadline_at)
                        except UpstreamError as err:
                            action = decide(err)
                            served.log(attempt, type(err).__name__, err.upstream_status)
                            planner.record_failure(attempt, api_key, action, err.retry_after)
                            if not action.retry:
                                raise
                            last = err
                            if action.cool_key == "none":
                                break
                            continue
                        planner.record_success(attempt)
                        served.log(attempt, "ok", 200)
                        served.channel = attempt.channel.name
                        served.upstream_model = attempt.candidate.upstream_model
                        return result
                    if budget <= 0:
                        break
        except TimeoutError:
            last = UpstreamTimeout(f"The request exceeded the gateway's deadline of {self.deadline:g} s.")
        if last is None:
            retry_after = planner.soonest_key_recovery(plan.attempts)
            raise UpstreamRateLimited(
                f"Every upstream key for '{call.model}' is cooling down after rate limits.",
                retry_after=retry_after,
            )
        if isinstance(last, UpstreamRateLimited):
            soonest = planner.soonest_key_recovery(plan.attempts)
            if soonest is not None:
                last.retry_after = soonest
        last.message = f"All {len(served.attempts)} attempt(s) for '{call.model}' failed; last: {last.message}"
        raise last

    async def _attempt(
        self, call: ChatCall, attempt: Attempt, api_key: str | None, served: Served, deadline_at: float
    ) -> Complete | Streaming:
        channel = attempt.channel
        candidate = attempt.candidate
        body = _upstream_body(call.body, channel, candidate.alias, candidate.upstream_model)
        timeouts = Timeouts(first_byte=attempt.timeout, idle=self.idle)
        resp = await self.upstream.send(
            "POST",
            channel.chat_url,
            headers=openai_host.chat_headers(channel, api_key),
            body=body,
            timeouts=timeouts,
            proxy=channel.proxy,
        )
        secrets = (api_key,) if api_key else ()
        try:
            if resp.status >= 400:
                raw = await resp.read(limit=MAX_ERROR_BODY)
                raise openai_chat.DIALECT.decode_error(resp.status, resp.headers, raw)
            if call.stream and "text/event-stream" in resp.headers.get("content-type", ""):
                return await self._open_stream(resp, candidate, served, deadline_at)
            return Complete(await self._read_json(resp, candidate.alias, call.stream), served)
        except UpstreamError as err:
            resp.close()
            err.message = redact(err.message, secrets)
            raise
        except BaseException:
            resp.close()
            raise

    async def _read_json(self, resp: UpstreamResponse, alias: str, stream: bool) -> bytes:
        raw = await resp.read()
        resp.close()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("upstream returned a body that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            if isinstance(data, dict) and "error" in data:
                raise openai_chat.DIALECT.decode_error(502, resp.headers, raw)
            raise UpstreamProtocolError("upstream returned JSON without choices")
        if stream:
            raise UpstreamProtocolError("upstream answered a streaming request with JSON")
        if self.error_triggers:
            text = raw.decode("utf-8", "replace")
            if any(t in text for t in self.error_triggers):
                raise UpstreamProtocolError("upstream response matched an error trigger")
        data["model"] = alias
        return orjson.dumps(data)

    async def _open_stream(
        self, resp: UpstreamResponse, candidate: Candidate, served: Served, deadline_at: float
    ) -> Streaming:
        """Peek until the first content event; raise (so the caller retries) if the stream
        fails, matches an error trigger, or ends before it."""
        framer = SSEFramer()
        chunks = resp.iter_chunks()
        state = _StreamState(candidate.alias, candidate.upstream_model, self.error_triggers)
        held: list[bytes] = []
        async for chunk in chunks:
            for event in framer.feed(chunk):
                held.extend(state.relay(event.data))
            if state.committed or state.done:
                break
        else:
            held.extend(state.relay_close(framer))
        if not state.committed:
            raise UpstreamProtocolError("upstream stream ended before any content")
        return Streaming(self._rest(resp, chunks, framer, state, held, deadline_at), served)

    async def _rest(
        self,
        resp: UpstreamResponse,
        chunks: AsyncIterator[bytes],
        framer: SSEFramer,
        state: _StreamState,
        held: list[bytes],
        deadline_at: float,
    ) -> AsyncIterator[bytes]:
        """The committed part of a stream: never retried; failures end it with an error event."""
        loop = asyncio.get_running_loop()
        try:
            for frame in held:
                yield frame
            if state.done:
                return
            try:
                async for chunk in chunks:
                    frames: list[bytes] = []
                    for event in framer.feed(chunk):
                        frames.extend(state.relay(event.data))
                    for frame in frames:
                        yield frame
                    if state.done:
                        return
                    if loop.time() > deadline_at:
                        raise UpstreamTimeout(f"The stream exceeded the gateway's deadline of {self.deadline:g} s.")
                for frame in state.relay_close(framer):
                    yield frame
            except UpstreamError as err:
                for frame in error_frames(err):
                    yield frame
        finally:
            resp.close()


class _StreamState:
    """The pass-through stream's state machine.

    ``committed``: a content event has been produced (from then on frames go to the client as
    they come). ``done``: ``[DONE]`` was seen (or synthesised after a finish_reason at EOF).
    ``finished``: some chunk carried a ``finish_reason``. Before commit, an event containing one
    of the configured ``error_triggers`` fails the attempt (uni-api's rule). In-band ``{"error": …}`` events raise a
    classified ``UpstreamError`` — before commit the relay retries, after it ``_rest`` ends the
    stream with an error event.
    """

    __slots__ = ("alias", "committed", "done", "finished", "rewrite", "triggers", "upstream_model")

    def __init__(self, alias: str, upstream_model: str, triggers: tuple[str, ...] = ()) -> None:
        self.alias = alias
        self.triggers = triggers
        self.upstream_model = upstream_model
        self.rewrite = alias != upstream_model
        self.committed = False
        self.done = False
        self.finished = False

    def relay(self, data: str) -> list[bytes]:
        if self.done:
            return []
        if data == "[DONE]":
            self.done = True
            if not self.committed:
                raise UpstreamProtocolError("upstream stream ended before any content")
            return [DONE_FRAME]
        if not self.committed and self.triggers and any(t in data for t in self.triggers):
            raise UpstreamProtocolError("upstream stream matched an error trigger before any content")
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("upstream sent an event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        if "error" in chunk and not chunk.get("choices"):
            raise openai_chat.DIALECT.decode_error(200, {}, data.encode())
        if not self.committed and _is_content(chunk):
            self.committed = True
        if not self.finished:
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    self.finished = True
        if self.rewrite and "model" in chunk:
            chunk["model"] = self.alias
            return [b"data: " + orjson.dumps(chunk) + b"\n\n"]
        return [b"data: " + data.encode() + b"\n\n"]

    def relay_close(self, framer: SSEFramer) -> list[bytes]:
        """End of the upstream body: flush the framer; a stream that never finished is a
        truncated stream (an error), one that finished without ``[DONE]`` gets one."""
        frames: list[bytes] = []
        for event in framer.close():
            frames.extend(self.relay(event.data))
        if self.done:
            return frames
        if not self.finished:
            raise UpstreamProtocolError("upstream stream ended without finishing (truncated)")
        self.done = True
        frames.append(DONE_FRAME)
        return frames
