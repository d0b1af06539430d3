"""The seam every upstream wire format implements: one narrow, pure interface.

A dialect turns the IR into a provider's request body and the provider's bytes back into the IR.
It does no I/O, reads no clock and no config: whatever it needs (the upstream model name, a
default ``max_tokens``) arrives in ``DialectOptions``. It refuses what it cannot express by
raising ``UnsupportedFeature`` (a clear 400) instead of dropping or clamping silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from unigate.dialects.sse import SSEEvent, SSEFramer
from unigate.errors import BadRequest, UpstreamError
from unigate.events import Event
from unigate.ir import ChatRequest, ChatResponse, ToolCall


@dataclass(frozen=True, slots=True)
class DialectOptions:
    """Per-attempt facts a dialect may need. ``upstream_model`` goes on the wire;
    ``client_model`` is what the client asked for and sees back."""

    upstream_model: str
    client_model: str
    default_max_tokens: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


class StreamDecoder(Protocol):
    """An explicit state machine over one response stream.

    ``feed`` takes one framed event (SSE, or a provider's own framing turned into ``SSEEvent``)
    and returns the IR events it completes; it raises ``UpstreamError`` on an in-stream error
    event. ``close`` is called once when the byte stream ended and returns the final events, or
    raises ``UpstreamProtocolError`` if the stream ended before the provider's terminator.
    """

    def feed(self, event: SSEEvent) -> list[Event]: ...

    def close(self) -> list[Event]: ...


class Framer(Protocol):
    """Cuts a streamed response body into events. ``feed`` takes bytes exactly as they came off
    the socket (split anywhere) and returns the events completed so far; ``close`` is called
    once at the end of the body and returns what is left (or raises ``UpstreamProtocolError``
    for a truncated frame). SSE is the common framing (:class:`SSEFramer`); a provider with its
    own binary framing (Bedrock's ``application/vnd.amazon.eventstream``) turns each of its
    messages into an ``SSEEvent`` for its decoder."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def close(self) -> list[SSEEvent]: ...


SSE_MEDIA_TYPE = "text/event-stream"


def sse_framer() -> Framer:
    """A fresh SSE framer (the ``framer`` of every SSE-speaking dialect)."""
    return SSEFramer()


class UpstreamDialect(Protocol):
    """How to talk to one family of provider APIs.

    ``stream_media_type`` is the ``content-type`` a streamed answer arrives with (an answer
    without it to a streaming request is a protocol error); ``framer`` makes a fresh
    :class:`Framer` for one streamed answer."""

    name: str
    stream_media_type: str

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        """The JSON body to send upstream."""
        ...

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        """A complete non-streamed answer; raises ``UpstreamProtocolError`` for unusable bodies."""
        ...

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Classify a non-2xx answer into the error tree (by body first, then by status)."""
        ...

    def stream_decoder(self, options: DialectOptions) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        ...

    def framer(self) -> Framer:
        """A fresh framer for one streamed answer's body."""
        ...


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A tool call's ``arguments`` JSON text as the object providers with native tool inputs
    want (Anthropic ``input``, Bedrock ``toolUse.input``); "" (a call without arguments) is
    ``{}``; anything but a JSON object is the client's error (400)."""
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest(f"tool call {call.id!r} arguments are not a JSON object", param="messages")
    return value
