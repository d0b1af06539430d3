"""Embeddings, images, audio and moderations through the same routing as chat.

Each endpoint is an :class:`Endpoint` row; a request is a :class:`MediaCall`. ``plan_media`` asks
the planner for the model's attempts (aliases, the key's permissions, scheduling, cooldowns,
timeouts — exactly as chat) and keeps the channels whose engine serves the endpoint.
``run_media`` hands one attempt function to ``Relay.run``, the one retry loop, so retries,
key and channel cooldowns, the attempt budget and the deadline are chat's.

One attempt, by engine — two tables, no per-engine branches in the attempt:

- ``PASS_THROUGH``: engines that take the OpenAI body as is, each with its call builder (URL,
  credential header) and the endpoint paths it serves: ``openai`` (every endpoint, ``{API root}
  {path}``), ``azure`` (every endpoint but moderations: providers/azure.py), ``cloudflare``
  (embeddings: providers/cloudflare.py).
- ``TRANSLATED``: engines whose embeddings API has another shape, each with its pure dialect
  module (encode / decode) and call builder: ``gemini`` (dialects/gemini_embed.py), ``cohere``
  (dialects/cohere_embed.py).

Every call then goes through the provider's ``authorize`` and, for byte bodies, ``sign_body``,
exactly as chat does (so a signed host needs no special case here).

- **Pass-through**: the request goes to the engine's URL for the endpoint path. A JSON body
  is the client's with ``model`` set to the upstream name and the channel's per-model
  ``post_body_parameter_overrides`` merged (the global ones are written for chat bodies and are
  not applied here). A multipart body is re-emitted from its spool (relay_form.py). The answer:
  a non-2xx status is classified by the OpenAI error table (retry, cooldowns) exactly as for
  chat; JSON is checked for its endpoint's key (``data``, ``results``, ``text``) — a 200 without it,
  or with an ``error`` object, fails the attempt — its ``model`` rewritten when an alias differs,
  its ``usage`` recorded; audio, SSE and octet streams are streamed (below); other bodies
  (``text``/``srt``/``vtt`` transcripts) are passed through with their content type.
- **Translated** (embeddings only): the vectors come back in the client's ``encoding_format``
  with the engine's usage (or none: the record's tokens are then estimated).

Streamed bodies commit late, like chat streams: the attempt reads until the first non-empty
chunk; a 200 with an empty body (what uni-api's early ``/v1/audio/speech`` answered) fails the
attempt and the next channel is tried. After the first chunk the body belongs to the client: a
later failure sets ``served.stream_error`` and is raised to the HTTP layer, which cuts the
response (bytes cannot carry an in-band error).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from unigate.config.compile import Channel, ClientKey
from unigate.dialects import cohere_embed, gemini_embed, openai_chat, openai_embed
from unigate.dialects.base import UpstreamDialect
from unigate.dialects.cohere import DIALECT as COHERE
from unigate.dialects.gemini import DIALECT as GEMINI
from unigate.errors import BadRequest, UpstreamError, UpstreamProtocolError, UpstreamTimeout, redact
from unigate.ir import Usage
from unigate.providers import azure as azure_host
from unigate.providers import cloudflare as cloudflare_host
from unigate.providers import cohere as cohere_host
from unigate.providers import gemini as gemini_host
from unigate.providers import openai as openai_host
from unigate.providers.base import UpstreamCall
from unigate.providers.registry import provider_for
from unigate.relay import MAX_ERROR_BODY, Relay, Served
from unigate.relay_form import Form, encode_form, new_boundary
from unigate.routing.candidates import candidates_for
from unigate.routing.plan import Attempt, Plan, attempt_budget, resolve_timeout
from unigate.upstream import Timeouts, UpstreamResponse

_ENGINE_NAMES = {
    "openai": "OpenAI-compatible",
    "azure": "Azure OpenAI",
    "cloudflare": "Cloudflare",
    "gemini": "Gemini",
    "cohere": "Cohere",
}
_STREAMED = ("audio/", "video/", "text/event-stream", "application/octet-stream")

# (channel, upstream model, endpoint path, upstream key, body content type) -> where it goes.
CallBuilder = Callable[[Channel, str, str, str | None, str | None], UpstreamCall]


@dataclass(frozen=True, slots=True)
class PassThrough:
    """An engine that takes OpenAI bodies: its call builder and the endpoint paths it serves
    (``channel_serves`` narrows them per channel, e.g. Azure's Foundry models endpoint)."""

    call: CallBuilder
    paths: frozenset[str]
    channel_serves: Callable[[Channel, str], bool] | None = None


@dataclass(frozen=True, slots=True)
class Translated:
    """An engine whose embeddings API is translated. ``encode(body, upstream_model)`` → a request
    object with a ``payload``; ``call(channel, upstream_model, request, key)``; ``decode(raw,
    request)`` → (vectors, usage); ``dialect`` classifies its errors."""

    encode: Callable[[Mapping[str, Any], str], Any]
    call: Callable[[Channel, str, Any, str | None], UpstreamCall]
    decode: Callable[[bytes, Any], tuple[list[list[float]], Usage | None]]
    dialect: UpstreamDialect


def _openai_call(
    channel: Channel, upstream_model: str, path: str, api_key: str | None, content_type: str | None
) -> UpstreamCall:
    return openai_host.endpoint_call(channel, path, api_key, content_type)


ALL_PATHS = frozenset(
    {
        "/embeddings",
        "/images/generations",
        "/images/edits",
        "/audio/speech",
        "/audio/transcriptions",
        "/audio/translations",
        "/moderations",
    }
)
PASS_THROUGH: Mapping[str, PassThrough] = {
    "openai": PassThrough(_openai_call, ALL_PATHS),
    "azure": PassThrough(azure_host.endpoint_call, azure_host.ENDPOINT_PATHS, azure_host.serves),
    "cloudflare": PassThrough(cloudflare_host.endpoint_call, cloudflare_host.ENDPOINT_PATHS),
}
TRANSLATED: Mapping[str, Translated] = {
    "gemini": Translated(
        gemini_embed.encode_request,
        lambda channel, model, request, key: gemini_host.embed_call(channel, model, request.batch, key),
        gemini_embed.decode_response,
        GEMINI,
    ),
    "cohere": Translated(
        cohere_embed.encode_request,
        lambda channel, model, request, key: cohere_host.embed_call(channel, key),
        cohere_embed.decode_response,
        COHERE,
    ),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One non-chat endpoint. ``name`` is the record's endpoint label; ``path`` is under the
    OpenAI API root; a JSON answer must hold ``answer_key``; ``audio`` answers are bytes (an
    empty one is a failure). Which engines serve it comes from the tables above."""

    name: str
    path: str
    answer_key: str | None
    audio: bool = False

    @property
    def route(self) -> str:
        return self.name.partition(" ")[2]

    @property
    def engines(self) -> frozenset[str]:
        """The engines with at least one channel form that serves this endpoint."""
        passing = {engine for engine, host in PASS_THROUGH.items() if self.path in host.paths}
        return frozenset(passing | (set(TRANSLATED) if self.path == "/embeddings" else set()))

    def served_by(self, channel: Channel) -> bool:
        """Whether ``channel`` serves this endpoint (its engine, and its URL form for Azure)."""
        host = PASS_THROUGH.get(channel.engine)
        if host is not None:
            return self.path in host.paths and (host.channel_serves is None or host.channel_serves(channel, self.path))
        return self.path == "/embeddings" and channel.engine in TRANSLATED


EMBEDDINGS = Endpoint("POST /v1/embeddings", "/embeddings", "data")
IMAGES = Endpoint("POST /v1/images/generations", "/images/generations", "data")
IMAGE_EDITS = Endpoint("POST /v1/images/edits", "/images/edits", "data")
SPEECH = Endpoint("POST /v1/audio/speech", "/audio/speech", None, audio=True)
TRANSCRIPTIONS = Endpoint("POST /v1/audio/transcriptions", "/audio/transcriptions", "text")
TRANSLATIONS = Endpoint("POST /v1/audio/translations", "/audio/translations", "text")
MODERATIONS = Endpoint("POST /v1/moderations", "/moderations", "results")


@dataclass(slots=True)
class MediaCall:
    """One client request after authentication and light validation: a JSON ``body`` or a
    multipart ``form`` (exactly one is set)."""

    endpoint: Endpoint
    key: ClientKey
    model: str
    request_id: str
    body: dict[str, Any] | None = None
    form: Form | None = None
    served: Served = field(default_factory=Served)


@dataclass(slots=True)
class MediaAnswer:
    """A complete answer: ``body`` bytes with their ``content_type``."""

    body: bytes
    content_type: str
    served: Served


@dataclass(slots=True)
class MediaStream:
    """A committed byte stream (speech audio, SSE): ``chunks`` starts with the peeked chunk and
    closes the upstream response when exhausted or closed; it raises ``UpstreamError`` when the
    upstream fails after the commit."""

    content_type: str
    chunks: AsyncGenerator[bytes, None]
    served: Served


async def plan_media(relay: Relay, call: MediaCall) -> Plan:
    """The chat planner's attempts for ``call.model``, kept to channels that serve the endpoint.

    Raises NotFound / PermissionDenied as chat does, and ``BadRequest`` (``unsupported_endpoint``)
    when the key may use the model but no such channel serves this endpoint. When every capable
    channel is cooling (so the planner left only others), the one that recovers soonest is tried.
    The round-robin cursor is the shared one when routing state is shared (as ``plan_shared``).
    """
    endpoint = call.endpoint
    planner = relay.planner
    tick = None
    if relay.shared is not None and planner.needs_tick(call.key, call.model):
        tick = await relay.shared.tick(call.key.id, call.model)
    plan = planner.plan(call.key, call.model, tick)
    attempts = tuple(a for a in plan.attempts if endpoint.served_by(a.channel))
    if len(attempts) == len(plan.attempts):
        return plan
    if not attempts:
        runtime = planner.runtime
        capable = [c for c in candidates_for(runtime, call.key, call.model) if endpoint.served_by(c.channel)]
        if not capable:
            kinds = " or ".join(sorted(_ENGINE_NAMES.get(e, e) for e in endpoint.engines))
            raise BadRequest(
                f"The model '{call.model}' is not served on {call.endpoint.route} by any channel this key may use "
                f"(that endpoint needs an {kinds} channel).",
                code="unsupported_endpoint",
                param="model",
            )
        health = planner.health
        best = min(capable, key=lambda c: health.channel_until(c.channel.name, c.upstream_model))
        attempts = (Attempt(best, resolve_timeout(runtime, best.channel, best.alias, best.upstream_model)),)
    pairs = sum(max(1, len(a.channel.keys)) for a in attempts)
    return Plan(attempts, attempt_budget(call.key, pairs), None)


async def run_media(relay: Relay, call: MediaCall, plan: Plan) -> MediaAnswer | MediaStream:
    """Run ``plan`` through ``Relay.run`` until one attempt answers."""

    async def once(attempt: Attempt, api_key: str | None, deadline_at: float) -> MediaAnswer | MediaStream:
        return await _attempt(relay, call, attempt, api_key, deadline_at)

    return await relay.run(call.model, call.served, plan, once)


async def _attempt(
    relay: Relay, call: MediaCall, attempt: Attempt, api_key: str | None, deadline_at: float
) -> MediaAnswer | MediaStream:
    channel = attempt.channel
    upstream_model = attempt.candidate.upstream_model
    timeouts = Timeouts(first_byte=attempt.timeout, idle=relay.idle)
    translated = TRANSLATED.get(channel.engine)
    request: Any = None
    body: bytes | AsyncIterable[bytes]
    if translated is not None:
        request = translated.encode(call.body or {}, upstream_model)
        target, body = translated.call(channel, upstream_model, request, api_key), orjson.dumps(request.payload)
        headers = dict(target.headers)
    else:
        host = PASS_THROUGH[channel.engine]
        if call.form is not None:
            boundary = new_boundary()
            size, chunks = encode_form(call.form, boundary, upstream_model)
            content_type = f"multipart/form-data; boundary={boundary}"
            target = host.call(channel, upstream_model, call.endpoint.path, api_key, content_type)
            headers = {**target.headers, "content-length": str(size)}
            body = chunks  # streamed as it is read, with the exact content-length
        else:
            target = host.call(channel, upstream_model, call.endpoint.path, api_key, "application/json")
            headers, body = dict(target.headers), _json_body(call.body or {}, channel, attempt)
    provider = provider_for(channel, relay.providers)
    target = await provider.authorize(channel, UpstreamCall(target.url, headers, target.params), api_key)
    if isinstance(body, bytes):
        target = provider.sign_body(channel, target, body)
    resp = await relay.upstream.send(
        "POST",
        target.url,
        headers=dict(target.headers),
        params=target.params,
        body=body,
        timeouts=timeouts,
        proxy=channel.proxy,
    )
    try:
        if translated is not None:
            return await _translated_answer(resp, call, attempt, translated, request)
        return await _openai_answer(resp, call, attempt, relay.deadline, deadline_at)
    except UpstreamError as err:
        resp.close()
        err.message = redact(err.message, (api_key,) if api_key else ())
        raise
    except BaseException:
        resp.close()
        raise


def _json_body(body: Mapping[str, Any], channel: Channel, attempt: Attempt) -> bytes:
    out = dict(body)
    out["model"] = attempt.candidate.upstream_model
    per_model = channel.overrides_by_model.get(attempt.candidate.alias) or channel.overrides_by_model.get(
        attempt.candidate.upstream_model
    )
    if per_model:
        out.update(per_model)
    return orjson.dumps(out)


async def _translated_answer(
    resp: UpstreamResponse, call: MediaCall, attempt: Attempt, translated: Translated, request: Any
) -> MediaAnswer:
    if resp.status >= 400:
        raise translated.dialect.decode_error(resp.status, resp.headers, await resp.read(limit=MAX_ERROR_BODY))
    raw = await resp.read()
    resp.close()
    vectors, usage = translated.decode(raw, request)
    call.served.usage = usage
    encoding = openai_embed.encoding_of(call.body or {})
    answer = openai_embed.response(vectors, attempt.candidate.alias, encoding, usage)
    return MediaAnswer(orjson.dumps(answer), "application/json", call.served)


async def _openai_answer(
    resp: UpstreamResponse, call: MediaCall, attempt: Attempt, deadline: float, deadline_at: float
) -> MediaAnswer | MediaStream:
    if resp.status >= 400:
        raise openai_chat.DIALECT.decode_error(resp.status, resp.headers, await resp.read(limit=MAX_ERROR_BODY))
    content_type = resp.headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        raw = await resp.read()
        resp.close()
        return MediaAnswer(_checked_json(raw, resp, call, attempt), "application/json", call.served)
    if call.endpoint.audio or media.startswith(_STREAMED):
        return await _open_bytes(resp, content_type or "application/octet-stream", call.served, deadline, deadline_at)
    raw = await resp.read()
    resp.close()
    return MediaAnswer(raw, content_type or "text/plain; charset=utf-8", call.served)


def _checked_json(raw: bytes, resp: UpstreamResponse, call: MediaCall, attempt: Attempt) -> bytes:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("upstream returned a body that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError("upstream returned JSON that is not an object")
    key = call.endpoint.answer_key
    if "error" in data and (key is None or key not in data):
        raise openai_chat.DIALECT.decode_error(200, resp.headers, raw)
    if key is not None and key not in data:
        raise UpstreamProtocolError(f"upstream answer has no '{key}'")
    candidate = attempt.candidate
    alias = candidate.alias if candidate.alias != candidate.upstream_model else None
    if call.endpoint is EMBEDDINGS:
        call.served.usage = openai_embed.normalize_response(data, alias, openai_embed.encoding_of(call.body or {}))
        return orjson.dumps(data)
    if alias is not None and isinstance(data.get("model"), str):
        data["model"] = alias
    call.served.usage = media_usage(data.get("usage"))
    return orjson.dumps(data) if alias is not None else raw


def media_usage(value: object) -> Usage | None:
    """Usage of a media answer: ``prompt_tokens``/``completion_tokens`` (embeddings style) or
    ``input_tokens``/``output_tokens`` (gpt-image, gpt-4o-transcribe); None for anything else
    (whisper's ``{"type": "duration", "seconds"}`` has no tokens)."""
    if not isinstance(value, Mapping):
        return None
    for prompt_key, completion_key in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        prompt = value.get(prompt_key)
        if isinstance(prompt, int) and not isinstance(prompt, bool) and prompt >= 0:
            completion = value.get(completion_key)
            if not isinstance(completion, int) or isinstance(completion, bool) or completion < 0:
                completion = 0
            return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


async def _open_bytes(
    resp: UpstreamResponse, content_type: str, served: Served, deadline: float, deadline_at: float
) -> MediaStream:
    chunks = resp.iter_chunks()
    first = b""
    async for chunk in chunks:
        if chunk:
            first = chunk
            break
    if not first:
        raise UpstreamProtocolError("upstream answered 200 with an empty body")
    return MediaStream(content_type, _rest(resp, chunks, first, served, deadline, deadline_at), served)


async def _rest(
    resp: UpstreamResponse,
    chunks: AsyncIterator[bytes],
    first: bytes,
    served: Served,
    deadline: float,
    deadline_at: float,
) -> AsyncGenerator[bytes, None]:
    """The committed body: never retried; a failure is noted in ``served`` and raised."""
    loop = asyncio.get_running_loop()
    try:
        yield first
        try:
            async for chunk in chunks:
                yield chunk
                if loop.time() > deadline_at:
                    raise UpstreamTimeout(f"The response exceeded the gateway's deadline of {deadline:g} s.")
        except UpstreamError as err:
            served.stream_error = err
            raise
    finally:
        resp.close()
