"""Anthropic Messages: the upstream dialect for Claude on Anthropic's API and on Vertex AI.

Wire reference: wire-formats.md §2 (https://platform.claude.com/docs/en/api/messages) and §4
(Claude on Vertex: the same body without ``model``, with ``anthropic_version:
"vertex-2023-10-16"``, the model in the URL). Claude on Bedrock's InvokeModel (§6.1) uses this body
in its Bedrock form (``bedrock=True``, ``bedrock_claude_body``); its framing and errors are Bedrock's,
so that dialect object is ``bedrock_invoke.DIALECT``. The work is split by concern:

- ``anthropic_request``: IR request → body (system hoisting, turn merging, tools, thinking,
  the parameter and ``extra`` policies — documented there);
- ``anthropic_stream``: the stream state machine;
- ``anthropic_wire``: stop reasons, usage, error classification;
- this module: the non-streamed response and the two dialect objects.

Providers must send ``anthropic-version: ANTHROPIC_VERSION`` (``2023-06-01``) on Anthropic's API:
the newer ``2026-10-21`` refuses ``temperature``/``top_p``/``top_k``.

Known uni-api defects this module is tested not to repeat: ``tool_choice: none`` sent as ``any``;
only the first tool call of a turn converted; every tool result given the last call's id;
non-streamed answers left unconverted; streams without a finish reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.dialects.anthropic_request import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    THINKING_BUDGETS,
    VERTEX_VERSION,
    encode_request,
)
from unigate.dialects.anthropic_stream import AnthropicStreamDecoder
from unigate.dialects.anthropic_wire import (
    decode_error,
    error_from_payload,
    finish_reason,
    load_object,
    usage_from,
)
from unigate.dialects.base import SSE_MEDIA_TYPE, DialectOptions, Framer, UpstreamDialect, sse_framer
from unigate.dialects.bedrock_claude_body import BEDROCK_VERSION, bedrock_form
from unigate.errors import UpstreamError, UpstreamProtocolError
from unigate.ir import ChatRequest, ChatResponse, Message, Opaque, Part, Reasoning, Text, ToolCall

__all__ = [
    "ANTHROPIC_VERSION",
    "BEDROCK_VERSION",
    "DEFAULT_MAX_TOKENS",
    "DIALECT",
    "THINKING_BUDGETS",
    "VERTEX_DIALECT",
    "VERTEX_VERSION",
    "AnthropicDialect",
    "AnthropicStreamDecoder",
    "decode_response",
]


def decode_response(body: bytes, options: DialectOptions) -> ChatResponse:
    """A complete Anthropic ``Message`` → ``ChatResponse``.

    Blocks keep their order: ``text`` → ``Text``; ``thinking`` → ``Reasoning(text, signature)``;
    ``redacted_thinking`` → ``Reasoning("", data, redacted=True)``; every ``tool_use`` →
    ``ToolCall`` with ``arguments`` the compact JSON of ``input``; other blocks (server tools and
    their results) → ``Opaque("anthropic", block)``, which this dialect can send back. ``model`` is
    the client's; ``id`` is Anthropic's (``msg_…``); ``created`` is 0 unless
    ``options.settings["created"]`` is given — dialects read no clock, the caller stamps it.
    An error body (``type: error``) raises its classified error; anything else unusable raises
    ``UpstreamProtocolError``.
    """
    data = load_object(body, "response")
    if data.get("type") == "error":
        raise error_from_payload(data, None, None)
    content = data.get("content")
    if data.get("type") != "message" or not isinstance(content, list) or not isinstance(data.get("id"), str):
        raise UpstreamProtocolError("Anthropic response is not a message")
    parts = tuple(_part(block) for block in content)
    usage = data.get("usage")
    created = options.settings.get("created", 0)
    return ChatResponse(
        id=data["id"],
        model=options.client_model,
        created=created if isinstance(created, int) else 0,
        message=Message(role="assistant", parts=parts),
        finish_reason=finish_reason(data.get("stop_reason")),
        usage=usage_from(usage) if isinstance(usage, dict) else None,
    )


def _part(block: object) -> Part:
    if not isinstance(block, dict):
        raise UpstreamProtocolError("Anthropic content block is not an object")
    btype = block.get("type")
    if btype == "text" and isinstance(block.get("text"), str):
        return Text(block["text"])
    if btype == "tool_use":
        if not all(isinstance(block.get(k), str) for k in ("id", "name")) or not isinstance(block.get("input"), dict):
            raise UpstreamProtocolError("Anthropic tool_use block needs id, name and an input object")
        return ToolCall(id=block["id"], name=block["name"], arguments=orjson.dumps(block["input"]).decode())
    if btype == "thinking" and isinstance(block.get("thinking"), str):
        signature = block.get("signature")
        return Reasoning(block["thinking"], signature=signature if isinstance(signature, str) and signature else None)
    if btype == "redacted_thinking" and isinstance(block.get("data"), str):
        return Reasoning("", signature=block["data"], redacted=True)
    if btype in ("text", "thinking", "redacted_thinking") or not isinstance(btype, str):
        raise UpstreamProtocolError(f"Anthropic {btype!r} block is malformed")
    return Opaque(dialect="anthropic", data=block)


class AnthropicDialect:
    """``UpstreamDialect`` for the Messages API. ``vertex=True`` makes the Claude-on-Vertex body:
    no ``model`` (it is in the URL), ``anthropic_version: "vertex-2023-10-16"`` instead.
    ``bedrock=True`` makes the Claude-on-Bedrock InvokeModel body (``bedrock_claude_body``); such an
    instance is wrapped by ``bedrock_invoke``, which brings Bedrock's framing and errors."""

    __slots__ = ("bedrock", "name", "vertex")

    def __init__(self, name: str, *, vertex: bool = False, bedrock: bool = False) -> None:
        self.name = name
        self.vertex = vertex
        self.bedrock = bedrock

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        """The JSON body; raises ``UnsupportedFeature``/``BadRequest`` for what Anthropic cannot express."""
        body = encode_request(request, options, vertex=self.vertex)
        return bedrock_form(body, options) if self.bedrock else body

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        """See the module-level ``decode_response``."""
        return decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Anthropic error bodies by ``error.type``; Vertex's Google RPC errors; else by status."""
        return decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> AnthropicStreamDecoder:
        """A fresh state machine for one streamed answer."""
        return AnthropicStreamDecoder(options)

    stream_media_type = SSE_MEDIA_TYPE

    def framer(self) -> Framer:
        return sse_framer()


DIALECT: UpstreamDialect = AnthropicDialect("anthropic")
VERTEX_DIALECT: UpstreamDialect = AnthropicDialect("anthropic-vertex", vertex=True)
