"""Cohere v2 Chat: the upstream dialect for ``POST https://api.cohere.com/v2/chat``.

Wire reference: wire-formats.md §7 (https://docs.cohere.com/v2/reference/chat ,
https://docs.cohere.com/v2/docs/streaming). uni-api spoke Cohere's v1 API and lost tools,
images, sampling parameters and usage on the way (uni-api-compat.md §4.2); this dialect speaks v2.
The work is split by concern:

- ``cohere_request``: IR request → body (system hoisting, tools and ``tool_choice``, thinking,
  the parameter and ``extra`` policies — documented there);
- ``cohere_stream``: the stream state machine;
- ``cohere_wire``: finish reasons, usage, error classification;
- this module: the non-streamed response and the dialect object.

Dropped from answers, on purpose: ``citations`` (grounding spans for ``documents``; OpenAI's chat
format has no slot for them, and the answer text is complete without them) and ``logprobs``
(never requested: ``logprobs: true`` is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.base import SSE_MEDIA_TYPE, DialectOptions, Framer, UpstreamDialect, sse_framer
from unigate.dialects.cohere_request import MAX_STOP_SEQUENCES, THINKING_BUDGETS, encode_request
from unigate.dialects.cohere_stream import CohereStreamDecoder
from unigate.dialects.cohere_wire import decode_error, failed_finish, finish_reason, load_object, usage_from
from unigate.errors import UpstreamError, UpstreamProtocolError
from unigate.ir import ChatRequest, ChatResponse, Message, Part, Reasoning, Text, ToolCall

__all__ = [
    "DIALECT",
    "MAX_STOP_SEQUENCES",
    "THINKING_BUDGETS",
    "CohereDialect",
    "CohereStreamDecoder",
    "decode_response",
]


def decode_response(body: bytes, options: DialectOptions) -> ChatResponse:
    """A complete Cohere ``V2ChatResponse`` → ``ChatResponse``.

    Parts, in order: ``thinking`` content items → ``Reasoning``; ``tool_plan`` → ``Reasoning``
    (the model's plan before its calls: reasoning, not answer text); ``text`` items → ``Text``;
    every ``tool_calls`` entry → ``ToolCall`` (``arguments`` verbatim, ``""`` when absent). Other
    content item types are skipped. ``model`` is the client's; ``id`` is Cohere's; ``created``
    is 0 unless ``options.settings["created"]`` is given (dialects read no clock). An
    ``ERROR``/``TIMEOUT`` ending raises (cohere_wire); anything else unusable raises
    ``UpstreamProtocolError``.
    """
    data = load_object(body, "response")
    message = data.get("message")
    if not isinstance(message, dict) or not isinstance(data.get("id"), str):
        if isinstance(data.get("message"), str):  # an error body under 200: {"id", "message": "..."}
            raise decode_error(502, {}, body)
        raise UpstreamProtocolError("Cohere response has no message")
    failure = failed_finish(data.get("finish_reason"), None)
    if failure is not None:
        raise failure
    thinking: list[Part] = []
    texts: list[Part] = []
    content = message.get("content")
    for item in content if isinstance(content, list) else ():
        if not isinstance(item, dict):
            raise UpstreamProtocolError("Cohere content item is not an object")
        if item.get("type") == "text" and isinstance(item.get("text"), str):
            texts.append(Text(item["text"]))
        elif item.get("type") == "thinking" and isinstance(item.get("thinking"), str):
            thinking.append(Reasoning(item["thinking"]))
        elif item.get("type") in ("text", "thinking"):
            raise UpstreamProtocolError(f"Cohere {item.get('type')} content item is malformed")
    plan = message.get("tool_plan")
    if isinstance(plan, str) and plan:
        thinking.append(Reasoning(plan))
    calls = message.get("tool_calls")
    parts = (*thinking, *texts, *(_call(c) for c in (calls if isinstance(calls, list) else ())))
    usage = data.get("usage")
    created = options.settings.get("created", 0)
    return ChatResponse(
        id=data["id"],
        model=options.client_model,
        created=created if isinstance(created, int) else 0,
        message=Message(role="assistant", parts=parts),
        finish_reason=finish_reason(data.get("finish_reason")),
        usage=usage_from(usage) if isinstance(usage, dict) else None,
    )


def _call(call: object) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict):
        raise UpstreamProtocolError("Cohere tool call needs an id and a function")
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not name:
        raise UpstreamProtocolError("Cohere tool call without a function name")
    return ToolCall(id=call["id"], name=name, arguments=arguments if isinstance(arguments, str) else "")


class CohereDialect:
    """``UpstreamDialect`` for Cohere v2 Chat; stateless, one shared instance (``DIALECT``)."""

    name = "cohere"
    stream_media_type = SSE_MEDIA_TYPE

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        """The JSON body; raises ``UnsupportedFeature``/``BadRequest`` for what Cohere cannot express."""
        return encode_request(request, options)

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        """See the module-level ``decode_response``."""
        return decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Cohere's ``{"message"}`` bodies, classified by status (cohere_wire)."""
        return decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> CohereStreamDecoder:
        """A fresh state machine for one streamed answer."""
        return CohereStreamDecoder(options)

    def framer(self) -> Framer:
        return sse_framer()


DIALECT: UpstreamDialect = CohereDialect()
