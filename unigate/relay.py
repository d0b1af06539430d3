"""plan → attempt → decode → peek → commit. The only retry loop in the code.

``Relay.run`` — used by ``Relay.chat`` and by every other endpoint (relay_media.py), each
supplying only its one-attempt function — walks the Plan's attempts in order, within the request's attempt budget. The
retry table (routing/retry.py) decides what each failure means: retry or not, cool the channel,
cool the upstream key (then the same channel is tried again with its next key). A failure caused
by the client's own request is returned at once. When every attempt failed, the last error is
raised with its upstream status and message.

Streams commit late: an attempt's stream is read until its first content event (or its
complete end) before it is handed to the client. Any failure before that point is an ordinary
attempt failure, invisible to the client. After it, the stream belongs to the client: a later
failure ends it with an OpenAI-style in-band error event and ``[DONE]``, never a retry.

Two paths per attempt, chosen by the channel's dialect:

- **pass-through** (OpenAI-compatible channels, DESIGN.md's fast path): the client's JSON body
  with ``model`` and the channel's overrides patched; the upstream's SSE events re-framed and
  forwarded, ``model`` rewritten only when an alias differs from the upstream name.
- **translated** (Anthropic, Gemini, Vertex …): the body parsed once into the IR, encoded by
  the upstream dialect, and the answer decoded back and encoded as OpenAI JSON or chunks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson

from unigate import tracing
from unigate.config.compile import ClientKey, fingerprint
from unigate.dialects import openai_chat
from unigate.dialects.base import DialectOptions, Framer, UpstreamDialect
from unigate.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    redact,
)
from unigate.ir import ChatRequest, Usage
from unigate.limits import Limiter, limits_for
from unigate.providers.base import Provider
from unigate.providers.quirks import Quirks, injects_stream_usage, normalise_completion, quirks_for
from unigate.providers.registry import PROVIDERS, provider_for
from unigate.relay_body import apply_overrides, inline_images, upstream_body
from unigate.relay_streams import PassThroughStream, TranslatedStream, error_frames
from unigate.routing.plan import Attempt, Plan, Planner
from unigate.routing.retry import decide
from unigate.shared_state import SharedState
from unigate.tracing import attempt_span
from unigate.upstream import ImageFetcher, Timeouts, Upstream, UpstreamResponse

T = TypeVar("T")
AttemptFn = Callable[[Attempt, str | None, float], Awaitable[T]]
"""One attempt of an endpoint: ``(attempt, upstream key, deadline) -> result``; raises
``UpstreamError`` when the attempt failed (``Relay.run`` decides whether to try again)."""

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
    served: Served = field(default_factory=lambda: Served())
    _ir: ChatRequest | None = None
    _inlined: dict[str, Any] | None = None

    def ir(self) -> ChatRequest:
        """The validated IR of the body, parsed once, only when a route translates
        (a ``BadRequest`` here is the client's fault and ends the request with a 400)."""
        if self._ir is None:
            self._ir = openai_chat.parse_request(self.body)
        return self._ir

    async def with_inlined_images(self, fetcher: ImageFetcher, allow_private: bool) -> dict[str, Any]:
        """The body with every http(s) ``image_url`` fetched and replaced by a data URI, for
        channels with ``fetch_images`` (computed once per request, whatever the attempts)."""
        if self._inlined is None:
            self._inlined = await inline_images(self.body, fetcher, allow_private)
        return self._inlined


@dataclass(slots=True)
class AttemptLog:
    """One attempt as the statistics see it: the key only as a fingerprint."""

    channel: str
    upstream_model: str
    outcome: str
    status: int = 0
    key_fingerprint: str | None = None
    latency_ms: float = 0.0


@dataclass(slots=True)
class Served:
    """Bookkeeping the HTTP layer turns into headers (and, later, statistics records)."""

    channel: str = ""
    upstream_model: str = ""
    upstream_key: str | None = None
    attempts: list[AttemptLog] = field(default_factory=list)
    usage: Usage | None = None
    stream: PassThroughStream | TranslatedStream | None = None
    stream_error: UpstreamError | None = None

    def log(self, attempt: Attempt, outcome: str, status: int, api_key: str | None, started: float) -> None:
        self.attempts.append(
            AttemptLog(
                attempt.channel.name,
                attempt.candidate.upstream_model,
                outcome,
                status,
                fingerprint(api_key) if api_key else None,
                round((time.perf_counter() - started) * 1000, 3),
            )
        )

    def final_usage(self) -> Usage | None:
        """The usage the provider reported (non-stream, or a stream's usage chunk/event)."""
        if self.stream is not None and self.stream.usage is not None:
            return self.stream.usage
        return self.usage


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


def new_completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


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
        providers: Mapping[str, Provider] = PROVIDERS,
        images: ImageFetcher | None = None,
        limiter: Limiter | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.limiter = limiter or Limiter.memory()
        self.shared = shared
        self.tracer = tracing.tracer()
        self.planner = planner
        self.providers = providers
        self.images = images or ImageFetcher()
        self.upstream = upstream
        self.error_triggers = error_triggers
        self.deadline = deadline
        self.idle = idle

    async def _key_admits(self, attempt: Attempt, api_key: str) -> bool:
        """``api_key_rate_limit``: may this upstream key take one more request for this model?"""
        channel = attempt.channel
        if not channel.key_rate_limits:
            return True
        model = attempt.candidate.upstream_model
        limits = limits_for(channel.key_rate_limits, model)
        if not limits:
            return True
        scope = f"upkey:{channel.name}:{fingerprint(api_key)}:{model}"
        return (await self.limiter.acquire(scope, limits)).allowed

    def plan(self, call: ChatCall) -> Plan:
        """Plan a call (raises NotFound / PermissionDenied before anything is sent)."""
        return self.planner.plan(call.key, call.model)

    async def plan_shared(self, call: ChatCall) -> Plan:
        """:meth:`plan`, with the request's number drawn from the shared cursor when routing state
        is shared through Redis and the key's order depends on it (``shared_state``)."""
        tick = None
        if self.shared is not None and self.planner.needs_tick(call.key, call.model):
            tick = await self.shared.tick(call.key.id, call.model)
        return self.planner.plan(call.key, call.model, tick)

    async def chat(self, call: ChatCall, plan: Plan | None = None) -> Complete | Streaming:
        """Run the attempts of ``plan`` (made here when not given) until one succeeds."""
        if plan is None:
            plan = self.plan(call)
        served = call.served

        def once(attempt: Attempt, api_key: str | None, deadline_at: float) -> Awaitable[Complete | Streaming]:
            return self._attempt(call, attempt, api_key, served, deadline_at)

        return await self.run(call.model, served, plan, once)

    async def run(self, model: str, served: Served, plan: Plan, once: AttemptFn[T]) -> T:
        """The one retry loop, shared by every endpoint: walk ``plan``'s attempts within its
        budget, calling ``once(attempt, api_key, deadline_at)`` for each (channel, upstream key)
        pair, until one returns. ``once`` raises ``UpstreamError`` for a failed attempt; the
        retry table decides what that means. Attempts are logged in ``served``."""
        deadline_at = asyncio.get_running_loop().time() + self.deadline
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
                        if api_key is not None and not await self._key_admits(attempt, api_key):
                            tried.add(api_key)  # at its api_key_rate_limit: skipped like a cooling key
                            continue
                        budget -= 1
                        if api_key is not None:
                            tried.add(api_key)
                        started = time.perf_counter()
                        with attempt_span(
                            self.tracer,
                            attempt.channel.name,
                            attempt.candidate.upstream_model,
                            len(served.attempts) + 1,
                        ) as span:
                            try:
                                result = await once(attempt, api_key, deadline_at)
                            except UpstreamError as exc:
                                span.set_attribute("unigate.outcome", type(exc).__name__)
                                span.set_attribute("http.response.status_code", exc.upstream_status)
                                failure: UpstreamError | None = exc
                            else:
                                span.set_attribute("unigate.outcome", "ok")
                                failure = None
                        if failure is not None:
                            err = failure
                            action = decide(err)
                            served.log(attempt, type(err).__name__, err.upstream_status, api_key, started)
                            planner.record_failure(attempt, api_key, action, err.retry_after)
                            if not action.retry:
                                raise err
                            last = err
                            if action.cool_key == "none" or api_key is None:
                                break  # a channel-wide failure, or no other key to try here
                            continue
                        planner.record_success(attempt)
                        served.log(attempt, "ok", 200, api_key, started)
                        served.channel = attempt.channel.name
                        served.upstream_model = attempt.candidate.upstream_model
                        served.upstream_key = served.attempts[-1].key_fingerprint
                        return result
                    if budget <= 0:
                        break
        except TimeoutError:
            last = UpstreamTimeout(f"The request exceeded the gateway's deadline of {self.deadline:g} s.")
        if last is None:
            retry_after = planner.soonest_key_recovery(plan.attempts)
            raise UpstreamRateLimited(
                f"Every upstream key for '{model}' is cooling down after rate limits.",
                retry_after=retry_after,
            )
        if isinstance(last, UpstreamRateLimited):
            soonest = planner.soonest_key_recovery(plan.attempts)
            if soonest is not None:
                last.retry_after = soonest
        last.message = f"All {len(served.attempts)} attempt(s) for '{model}' failed; last: {last.message}"
        raise last

    async def _attempt(
        self, call: ChatCall, attempt: Attempt, api_key: str | None, served: Served, deadline_at: float
    ) -> Complete | Streaming:
        channel = attempt.channel
        candidate = attempt.candidate
        provider = provider_for(channel, self.providers)
        dialect = provider.dialect_for(channel, candidate.upstream_model)
        passthrough = dialect is openai_chat.DIALECT
        client_body = call.body
        if channel.fetch_images:
            client_body = await call.with_inlined_images(self.images, channel.fetch_images_allow_private)
        if passthrough:
            # The host's quirks, and whether to ask for the stream usage the client did not ask
            # for: decided once here, for the request body and the stream that answers it.
            quirks = quirks_for(channel)
            ask_usage = call.stream and injects_stream_usage(quirks, call.body)
            body = upstream_body(client_body, channel, candidate.alias, candidate.upstream_model, quirks, ask_usage)
        else:
            options = DialectOptions(
                upstream_model=candidate.upstream_model,
                client_model=candidate.alias,
                settings=provider.body_settings(channel, candidate.upstream_model),
            )
            request = call.ir() if client_body is call.body else openai_chat.parse_request(client_body)
            payload = dialect.encode_request(request, options)
            apply_overrides(payload, channel, candidate.alias, candidate.upstream_model)
            body = orjson.dumps(payload)
        upstream_call = provider.chat_call(channel, candidate.upstream_model, call.stream, api_key)
        upstream_call = await provider.authorize(channel, upstream_call, api_key)
        upstream_call = provider.sign_body(channel, upstream_call, body)
        resp = await self.upstream.send(
            "POST",
            upstream_call.url,
            headers=upstream_call.headers,
            params=upstream_call.params,
            body=body,
            timeouts=Timeouts(first_byte=attempt.timeout, idle=self.idle),
            proxy=channel.proxy,
        )
        secrets = (api_key,) if api_key else ()
        try:
            if resp.status >= 400:
                raw = await resp.read(limit=MAX_ERROR_BODY)
                raise dialect.decode_error(resp.status, resp.headers, raw)
            is_stream = dialect.stream_media_type in resp.headers.get("content-type", "")
            if call.stream and is_stream:
                state: PassThroughStream | TranslatedStream
                if passthrough:
                    state = PassThroughStream(
                        candidate.alias, candidate.upstream_model, self.error_triggers, quirks, strip_usage=ask_usage
                    )
                else:
                    encoder = openai_chat.StreamEncoder(
                        id=new_completion_id(),
                        model=candidate.alias,
                        created=int(time.time()),
                        include_usage=call.ir().include_usage,
                    )
                    state = TranslatedStream(dialect.stream_decoder(options), encoder, self.error_triggers)
                served.stream = state
                return await self._open_stream(resp, dialect.framer(), state, served, deadline_at)
            if call.stream:
                raise UpstreamProtocolError("upstream answered a streaming request without a stream")
            raw = await resp.read()
            resp.close()
            if passthrough:
                return Complete(self._passthrough_json(raw, resp, candidate.alias, served, quirks), served)
            return Complete(self._translated_json(raw, dialect, options, served), served)
        except UpstreamError as err:
            resp.close()
            err.message = redact(err.message, secrets)
            raise
        except BaseException:
            resp.close()
            raise

    def _passthrough_json(
        self, raw: bytes, resp: UpstreamResponse, alias: str, served: Served, quirks: Quirks
    ) -> bytes:
        """The upstream's completion with the client's model name and the channel's
        response-side host quirks applied (providers/quirks.py; none for plain OpenAI)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("upstream returned a body that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            if isinstance(data, dict) and "error" in data:
                raise openai_chat.DIALECT.decode_error(200, resp.headers, raw)
            raise UpstreamProtocolError("upstream returned JSON without choices")
        self._check_triggers(raw)
        if quirks.response:
            normalise_completion(quirks, data)
        served.usage = openai_chat.decode_usage(data.get("usage"))
        data["model"] = alias
        return orjson.dumps(data)

    def _translated_json(self, raw: bytes, dialect: UpstreamDialect, options: DialectOptions, served: Served) -> bytes:
        self._check_triggers(raw)
        answer = dialect.decode_response(raw, options)
        served.usage = answer.usage
        answer = replace(
            answer,
            id=answer.id or new_completion_id(),
            created=answer.created or int(time.time()),
            model=options.client_model,
        )
        return orjson.dumps(openai_chat.encode_response(answer))

    def _check_triggers(self, raw: bytes) -> None:
        if self.error_triggers:
            text = raw.decode("utf-8", "replace")
            if any(t in text for t in self.error_triggers):
                raise UpstreamProtocolError("upstream response matched an error trigger")

    async def _open_stream(
        self,
        resp: UpstreamResponse,
        framer: Framer,
        state: PassThroughStream | TranslatedStream,
        served: Served,
        deadline_at: float,
    ) -> Streaming:
        """Peek until the first content event; raise (so the caller retries) if the stream
        fails, matches an error trigger, or ends before it."""
        chunks = resp.iter_chunks()
        held: list[bytes] = []
        async for chunk in chunks:
            for event in framer.feed(chunk):
                held.extend(state.relay(event))
            if state.committed or state.done:
                break
        else:
            held.extend(state.relay_close(framer))
        if not state.committed:
            raise UpstreamProtocolError("upstream stream ended before any content")
        return Streaming(self._rest(resp, chunks, framer, state, held, deadline_at, served), served)

    async def _rest(
        self,
        resp: UpstreamResponse,
        chunks: AsyncIterator[bytes],
        framer: Framer,
        state: PassThroughStream | TranslatedStream,
        held: list[bytes],
        deadline_at: float,
        served: Served,
    ) -> AsyncIterator[bytes]:
        """The committed part of a stream: never retried; failures end it with an error event.

        The frames completed by one upstream read go to the client as one write (one ASGI
        message), not one write per SSE event; frames already produced when an error is
        raised are sent before the error event."""
        loop = asyncio.get_running_loop()
        pending: list[bytes] = []
        try:
            yield b"".join(held)  # the first content goes out now, not with the next read
            if state.done:
                return
            try:
                async for chunk in chunks:
                    for event in framer.feed(chunk):
                        pending.extend(state.relay(event))
                    if pending:
                        out, pending = b"".join(pending), []
                        yield out
                    if state.done:
                        return
                    if loop.time() > deadline_at:
                        raise UpstreamTimeout(f"The stream exceeded the gateway's deadline of {self.deadline:g} s.")
                pending.extend(state.relay_close(framer))
                yield b"".join(pending)
            except UpstreamError as err:
                served.stream_error = err
                yield b"".join([*pending, *error_frames(err)])
        finally:
            resp.close()
