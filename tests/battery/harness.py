"""One harness per provider for the scenario battery: a fake upstream plus a real unigate.

Every harness serves three client-facing routes:

* ``battery`` — two channels, ``a`` then ``b`` (fixed priority), so failover is observable;
* ``solo`` — one channel, for "the only channel answered 429".

Channels are told apart by the upstream model each one maps (the fakes script per model:
``script_for``), so one fake serves all three. Keyed providers give ``a`` and ``b`` two keys each
(a refused key is followed by the channel's other key); Vertex channels authenticate with a
service account and have no keys.

Scripting speaks the battery's neutral vocabulary — :class:`Say` (an answer), ``fail(kind)``,
``stream_error``, ``die``, ``pause_after_content`` — and each harness turns it into its
provider's native behaviour.
Reading back, :meth:`Harness.sent` returns the native request bodies the upstream received since
the current test started (:meth:`Harness.begin`, called by the ``h`` fixture).

The planner's clock is injected and jumps a day forward at every ``begin``, so cooldowns left
by one test never reach the next.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import openai

from tests.battery import paused
from tests.clock import FakeClock
from tests.fakes.anthropic_upstream import AFail, AReply, AStreamError, FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini, GFail, GReply, GStreamError
from tests.fakes.loopback import LoopbackFake, RecordedRequest, StreamThenDie
from tests.fakes.openai_upstream import Fail, FakeOpenAI, RawStream, Reply, StreamError
from tests.fakes.openai_wire import Answer as OpenAIAnswer
from tests.fakes.openai_wire import ToolCall as OpenAIToolCall
from tests.fakes.openai_wire import completion_json, dumps, new_call_id
from tests.fakes.openai_wire import stream_chunks as openai_stream_chunks
from tests.fakes.vertex_upstream import FakeVertex
from tests.gateway.harness import RunningGateway, run_gateway

CLIENT_KEY = "sk-battery-client-2b7e"
MODEL = "battery"
SOLO = "solo"
RETRY_AFTER = 7
DAY = 86_400.0
THINKING_SIGNATURE = "EqQBCkgIARABGAIiQL2battery-signature"

Channel = Literal["a", "b", "solo"]
Family = Literal["openai", "anthropic", "gemini"]
Finish = Literal["stop", "length", "tool_calls"]
ErrorKind = Literal["bad_request", "unauthorized", "forbidden", "rate_limited", "server", "overloaded"]

ERROR_MESSAGE = "battery-upstream-says-no"
"""Every scripted upstream error carries this message, so tests can see it reach the client."""


@dataclass(frozen=True)
class Say:
    """A successful answer in neutral terms.

    ``calls`` are ``(name, arguments)`` pairs; ``usage`` is ``(prompt, completion)`` exactly as
    the client must see them (each harness converts to its provider's counting rules, e.g.
    Anthropic's ``input_tokens`` excludes cached input); ``cached`` is the cached part of the
    prompt; ``finish`` defaults to ``tool_calls`` with calls, else ``stop``.
    """

    text: str = ""
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    reasoning: str | None = None
    usage: tuple[int, int] | None = None
    cached: int = 0
    finish: Finish | None = None

    @property
    def finish_reason(self) -> Finish:
        return self.finish or ("tool_calls" if self.calls else "stop")


@dataclass(frozen=True)
class Sent:
    """One model request as the upstream received it."""

    channel: Channel
    path: str
    query: str
    headers: Mapping[str, str]
    json: dict[str, Any]
    credential: str | None


@dataclass
class Harness:
    """What every provider harness offers; subclasses fill in the native parts."""

    name: str
    family: Family
    fake: LoopbackFake[Any] | FakeOpenAI
    models: Mapping[Channel, str]
    keys: Mapping[Channel, tuple[str, ...]]
    overloaded_status: int
    clock: FakeClock = field(default_factory=FakeClock)
    gw: RunningGateway | None = None
    _mark: int = 0
    _client: openai.OpenAI | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def begin(self) -> None:
        """Start a test: forget earlier requests and scripts, let every cooldown expire."""
        self.clock.advance(DAY)
        fake = self.fake
        with fake._cond:  # a failed test may leave scripts behind; the next test must not see them
            fake._queue.clear()
            fake._per_model.clear()
        self._mark = len(fake.requests)

    def end(self) -> None:
        """Finish a test: every scripted behaviour must have been consumed, and the fake stayed sane."""
        assert self.fake.pending_scripts == 0, f"{self.name}: scripted behaviours were not consumed"
        assert not self.fake.errors, self.fake.errors

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """The official SDK pointed at the gateway (no SDK retries); one shared instance unless
        ``kwargs`` ask for another (making one costs an SSL context)."""
        assert self.gw is not None
        if kwargs:
            return self.gw.client(CLIENT_KEY, **kwargs)
        if self._client is None:
            self._client = self.gw.client(CLIENT_KEY)
        return self._client

    # ---- reading back -------------------------------------------------------------------------

    def sent(self, channel: Channel | None = None) -> list[Sent]:
        """Model requests received since :meth:`begin` (token exchanges excluded), oldest first."""
        out: list[Sent] = []
        for req in self.fake.requests[self._mark :]:
            model = self._model_of(req)
            if model is None:
                continue
            ch = self._channel_of(model)
            if channel is None or ch == channel:
                out.append(Sent(ch, req.path, req.query, req.headers, req.json, self._credential(req)))
        return out

    def last(self) -> dict[str, Any]:
        """The native body of the only model request of this test."""
        sent = self.sent()
        assert len(sent) == 1, f"expected one upstream request, got {len(sent)}"
        return sent[0].json

    def _channel_of(self, model: str) -> Channel:
        for channel, name in self.models.items():
            if name == model:
                return channel
        raise AssertionError(f"{self.name}: request for unknown upstream model {model!r}")

    def _model_of(self, req: RecordedRequest) -> str | None:
        raise NotImplementedError

    def _credential(self, req: RecordedRequest) -> str | None:
        raise NotImplementedError

    # ---- scripting ----------------------------------------------------------------------------

    def script(self, channel: Channel, *behaviours: object) -> None:
        self.fake.script_for(self.models[channel], *behaviours)  # type: ignore[arg-type]

    def say(self, answer: Say, channel: Channel = "a", *, stream: bool = False) -> None:
        """Script one answer (``stream`` matters only where the native form differs)."""
        self.script(channel, self._answer(answer, stream))

    def fail(self, kind: ErrorKind, channel: Channel = "a", times: int = 1) -> None:
        self.script(channel, *[self._error(kind) for _ in range(times)])

    def fail_every_key(self, kind: ErrorKind, channel: Channel = "a") -> None:
        """Fail once per upstream key of ``channel`` (once for a keyless channel)."""
        self.fail(kind, channel, max(1, len(self.keys[channel])))

    def stream_error(self, after: int, channel: Channel = "a") -> None:
        """A stream that sends ``after`` content chunks, then an in-band error event."""
        self.script(channel, self._stream_error(after))

    def die(self, chunks: int, how: Literal["reset", "fin", "end"], channel: Channel = "a") -> None:
        """A stream (or body) that dies after ``chunks`` content chunks, without its ending."""
        self.script(channel, StreamThenDie(chunks=chunks, how=how))

    def pause_after_content(
        self, gate: threading.Event, *, then: Literal["error", "end", "reset", "fin"], chunks: int = 2
    ) -> None:
        """A stream on channel ``a`` that sends ``chunks`` content events, waits for ``gate``, then
        sends an in-band error event (``then="error"``) or just ends/dies without finishing."""
        family = paused.PIECES[self.family]
        first = family.content(self.models["a"], chunks)
        rest = family.error(ERROR_MESSAGE) if then == "error" else []
        self.script("a", paused.Paused(first, gate, rest, "end" if then == "error" else then))

    def _answer(self, answer: Say, stream: bool) -> object:
        raise NotImplementedError

    def _error(self, kind: ErrorKind) -> object:
        raise NotImplementedError

    def _stream_error(self, after: int) -> object:
        raise NotImplementedError

    def status_of(self, kind: ErrorKind) -> int:
        return {
            "bad_request": 400,
            "unauthorized": 401,
            "forbidden": 403,
            "rate_limited": 429,
            "server": 500,
            "overloaded": self.overloaded_status,
        }[kind]


def _bearer(req: RecordedRequest) -> str | None:
    value = req.headers.get("authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


# ---------------------------------------------------------------------------------- OpenAI


class OpenAIHarness(Harness):
    """Pass-through: the fake is OpenAI itself."""

    def _model_of(self, req: RecordedRequest) -> str | None:
        if req.method == "POST" and req.path.rstrip("/").endswith("/chat/completions") and isinstance(req.json, dict):
            return str(req.json.get("model"))
        return None

    def _credential(self, req: RecordedRequest) -> str | None:
        return _bearer(req)

    def _answer(self, answer: Say, stream: bool) -> object:
        calls = [(n, json.dumps(dict(a))) for n, a in answer.calls]
        if not answer.cached:
            return Reply(
                text=answer.text,
                tool_calls=calls,
                reasoning=answer.reasoning,
                finish_reason=answer.finish_reason,
                usage=answer.usage,
            )
        # The fake reports no cached tokens: send the same wire shapes with the usage patched.
        prompt, completion = answer.usage or (10, 10)
        native = OpenAIAnswer(
            "upstream",
            answer.text,
            tuple(OpenAIToolCall(new_call_id(), n, a) for n, a in calls),
            reasoning=answer.reasoning,
            finish_reason=answer.finish_reason,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )
        if not stream:
            body = completion_json(native)
            body["usage"]["prompt_tokens_details"]["cached_tokens"] = answer.cached
            return Fail(200, body=body)
        chunks = openai_stream_chunks(native, include_usage=True)
        chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] = answer.cached
        return RawStream([b"data: " + dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"])

    def _error(self, kind: ErrorKind) -> object:
        status = self.status_of(kind)
        headers = {"retry-after": str(RETRY_AFTER)} if kind == "rate_limited" else {}
        return Fail(status, message=ERROR_MESSAGE, headers=headers)

    def _stream_error(self, after: int) -> object:
        return StreamError(after=after, error={"message": ERROR_MESSAGE, "type": "server_error", "code": None})


# ---------------------------------------------------------------------------------- Anthropic family

_ANTHROPIC_STOP: Mapping[Finish, str] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _anthropic_answer(answer: Say) -> object:
    usage = None
    if answer.usage is not None:
        prompt, completion = answer.usage
        usage = (prompt - answer.cached, completion)
    return AReply(
        text=answer.text,
        tool_uses=answer.calls,
        thinking=(answer.reasoning, THINKING_SIGNATURE) if answer.reasoning else None,
        stop_reason=_ANTHROPIC_STOP[answer.finish_reason],
        usage=usage,
        cache_read=answer.cached,
    )


def _anthropic_error(kind: ErrorKind, status: int) -> object:
    headers = {"retry-after": str(RETRY_AFTER)} if kind == "rate_limited" else {}
    if kind == "overloaded":
        return AFail(529, error_type="overloaded_error", message=ERROR_MESSAGE)
    return AFail(status, message=ERROR_MESSAGE, headers=headers)


class AnthropicHarness(Harness):
    def _model_of(self, req: RecordedRequest) -> str | None:
        if req.method == "POST" and req.path.rstrip("/").endswith("/messages") and isinstance(req.json, dict):
            return str(req.json.get("model"))
        return None

    def _credential(self, req: RecordedRequest) -> str | None:
        return req.headers.get("x-api-key")

    def _answer(self, answer: Say, stream: bool) -> object:
        return _anthropic_answer(answer)

    def _error(self, kind: ErrorKind) -> object:
        return _anthropic_error(kind, self.status_of(kind))

    def _stream_error(self, after: int) -> object:
        return AStreamError(after=after, error_type="overloaded_error", message=ERROR_MESSAGE)


# ---------------------------------------------------------------------------------- Gemini family

_GEMINI_FINISH: Mapping[Finish, str] = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):(?:generateContent|streamGenerateContent|rawPredict|streamRawPredict)$")


def _gemini_answer(answer: Say) -> object:
    usage = None
    if answer.usage is not None:
        prompt, completion = answer.usage
        usage = (prompt, completion, 0)
    return GReply(
        text=answer.text,
        function_calls=answer.calls,
        thoughts=(answer.reasoning, "") if answer.reasoning else None,
        finish_reason=_GEMINI_FINISH[answer.finish_reason],
        usage=usage,
        cached=answer.cached,
    )


def _gemini_error(kind: ErrorKind, status: int) -> object:
    if kind == "rate_limited":
        return GFail(429, message=ERROR_MESSAGE, retry_delay=f"{RETRY_AFTER}s")
    return GFail(status, message=ERROR_MESSAGE)


def _model_in_path(req: RecordedRequest) -> str | None:
    found = _MODEL_IN_PATH.search(req.path) if req.method == "POST" else None
    return found.group(1).replace("%40", "@") if found else None


class GeminiHarness(Harness):
    def _model_of(self, req: RecordedRequest) -> str | None:
        return _model_in_path(req)

    def _credential(self, req: RecordedRequest) -> str | None:
        return req.headers.get("x-goog-api-key")

    def _answer(self, answer: Say, stream: bool) -> object:
        return _gemini_answer(answer)

    def _error(self, kind: ErrorKind) -> object:
        return _gemini_error(kind, self.status_of(kind))

    def _stream_error(self, after: int) -> object:
        return GStreamError(after=after, code=500, message=ERROR_MESSAGE)


# ---------------------------------------------------------------------------------- Vertex


class VertexHarness(Harness):
    """Either publisher on the fake Vertex; ``family`` says which dialect the models speak."""

    def _model_of(self, req: RecordedRequest) -> str | None:
        return _model_in_path(req)

    def _credential(self, req: RecordedRequest) -> str | None:
        return _bearer(req)

    def _answer(self, answer: Say, stream: bool) -> object:
        return _anthropic_answer(answer) if self.family == "anthropic" else _gemini_answer(answer)

    def _error(self, kind: ErrorKind) -> object:
        if self.family == "anthropic":
            return _anthropic_error(kind, self.status_of(kind))
        return _gemini_error(kind, self.status_of(kind))

    def _stream_error(self, after: int) -> object:
        if self.family == "anthropic":
            return AStreamError(after=after, error_type="overloaded_error", message=ERROR_MESSAGE)
        return GStreamError(after=after, code=500, message=ERROR_MESSAGE)


# ---------------------------------------------------------------------------------- configs

KEYS: Mapping[Channel, tuple[str, ...]] = {
    "a": ("up-key-a1-battery", "up-key-a2-battery"),
    "b": ("up-key-b1-battery", "up-key-b2-battery"),
    "solo": ("up-key-solo-battery",),
}
NO_KEYS: Mapping[Channel, tuple[str, ...]] = {"a": (), "b": (), "solo": ()}


def _channel_block(name: str, head: str, upstream: str, alias: str, keys: tuple[str, ...]) -> str:
    api = f"    api: [{', '.join(keys)}]\n" if keys else ""
    return f"  - provider: {name}\n{head}{api}    model:\n      - {upstream}: {alias}\n"


def config_text(
    provider: str, head: str, models: Mapping[Channel, str], keys: Mapping[Channel, tuple[str, ...]]
) -> str:
    """The api.yaml of a harness: ``head`` is the engine-specific part of every channel."""
    blocks = [
        _channel_block(f"{provider}-{ch}", head, models[ch], SOLO if ch == "solo" else MODEL, keys[ch])
        for ch in ("a", "b", "solo")
    ]
    return "providers:\n" + "".join(blocks) + f"api_keys:\n  - api: {CLIENT_KEY}\n    model: [all]\n"


OPENAI_MODELS: Mapping[Channel, str] = {"a": "gpt-4o", "b": "gpt-4o-mini", "solo": "gpt-4.1"}
ANTHROPIC_MODELS: Mapping[Channel, str] = {"a": "claude-sonnet-4-6", "b": "claude-haiku-4-5", "solo": "claude-opus-4-1"}
GEMINI_MODELS: Mapping[Channel, str] = {"a": "gemini-2.5-flash", "b": "gemini-2.5-pro", "solo": "gemini-2.5-flash-lite"}
VERTEX_CLAUDE_MODELS: Mapping[Channel, str] = {
    "a": "claude-sonnet-4-6@20250929",
    "b": "claude-haiku-4-5@20251001",
    "solo": "claude-opus-4-1@20250805",
}


@contextlib.contextmanager
def _serve(harness: Harness, config: str, env: Mapping[str, str] | None = None) -> Iterator[Harness]:
    with run_gateway(config, env=env, clock=harness.clock) as gw:
        harness.gw = gw
        try:
            yield harness
        finally:
            if harness._client is not None:
                harness._client.close()


@contextlib.contextmanager
def start(provider: str) -> Iterator[Harness]:
    """Start the fake and a gateway for ``provider`` (one of ``matrix.PROVIDERS``)."""
    if provider == "openai":
        with FakeOpenAI(models=OPENAI_MODELS.values()) as fo:
            oh = OpenAIHarness(provider, "openai", fo, OPENAI_MODELS, KEYS, 503)
            head = f"    base_url: {fo.base_url}\n"
            with _serve(oh, config_text(provider, head, OPENAI_MODELS, KEYS)) as h:
                yield h
    elif provider == "anthropic":
        with FakeAnthropic(models=ANTHROPIC_MODELS.values()) as fa:
            ah = AnthropicHarness(provider, "anthropic", fa, ANTHROPIC_MODELS, KEYS, 529)
            head = f"    engine: claude\n    base_url: {fa.url}\n"
            with _serve(ah, config_text(provider, head, ANTHROPIC_MODELS, KEYS)) as h:
                yield h
    elif provider == "gemini":
        with FakeGemini(models=GEMINI_MODELS.values()) as fg:
            gh = GeminiHarness(provider, "gemini", fg, GEMINI_MODELS, KEYS, 503)
            head = f"    engine: gemini\n    base_url: {fg.url}/v1beta\n"
            with _serve(gh, config_text(provider, head, GEMINI_MODELS, KEYS)) as h:
                yield h
    elif provider in ("vertex-gemini", "vertex-claude"):
        claude = provider == "vertex-claude"
        models = VERTEX_CLAUDE_MODELS if claude else GEMINI_MODELS
        fake_models: dict[str, Any] = (
            {"anthropic_models": models.values()} if claude else {"gemini_models": models.values()}
        )
        with FakeVertex(project="battery-project", region="us-east5", **fake_models) as fv:
            family: Family = "anthropic" if claude else "gemini"
            vh = VertexHarness(provider, family, fv, models, NO_KEYS, 529 if claude else 503)
            info = fv.service_account_info()
            # Google's jwt-bearer grant does not need a ``kid`` header (unigate sends none); the
            # fake trusts the key with its id unless told otherwise.
            fv.trust(info["client_email"], info["private_key"])
            head = (
                "    engine: vertex\n"
                f"    base_url: {fv.url}\n"
                f"    project_id: {info['project_id']}\n"
                f"    client_email: {info['client_email']}\n"
                f"    private_key: {json.dumps(info['private_key'])}\n"
                "    region: us-east5\n"
            )
            env = {"UNIGATE_VERTEX_TOKEN_URI": fv.token_uri}
            with _serve(vh, config_text(provider, head, models, NO_KEYS), env) as h:
                yield h
    else:
        from tests.battery.more_providers import STARTERS

        if provider not in STARTERS:
            raise ValueError(f"unknown provider {provider!r}")
        with STARTERS[provider]() as h:
            yield h
