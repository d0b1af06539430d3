"""Bedrock ``Converse`` / ``ConverseStream``: the upstream dialect for every non-Claude Bedrock model.

Docs: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html ,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html (wire-formats.md
§6.2–6.4). Split by concern:

- ``bedrock_converse_request``: IR → body (the message and parameter decisions are listed there);
- ``bedrock_converse_stream``: the ConverseStream state machine;
- ``bedrock_converse_wire``: stop reasons, usage, JSON loading (shared by the two halves);
- ``bedrock_eventstream``: the binary ``application/vnd.amazon.eventstream`` framing;
- ``bedrock_errors``: HTTP and in-stream errors;
- this module: the non-streamed response and the dialect object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.dialects.base import DialectOptions, Framer, UpstreamDialect
from unigate.dialects.bedrock_converse_request import DIALECT_NAME, encode_request
from unigate.dialects.bedrock_converse_stream import ConverseStreamDecoder
from unigate.dialects.bedrock_converse_wire import finish_reason, load_object, usage_from
from unigate.dialects.bedrock_errors import decode_error as _decode_error
from unigate.dialects.bedrock_eventstream import EVENTSTREAM_MEDIA_TYPE, EventStreamFramer
from unigate.errors import UpstreamError, UpstreamProtocolError
from unigate.ir import ChatRequest, ChatResponse, Message, Opaque, Part, Reasoning, Text, ToolCall

__all__ = ["DIALECT", "BedrockConverseDialect", "ConverseStreamDecoder", "decode_response"]


def decode_response(body: bytes, options: DialectOptions) -> ChatResponse:
    """A ``ConverseResponse`` → ``ChatResponse``.

    Blocks keep their order: ``text`` → ``Text``; ``toolUse`` → ``ToolCall`` (``arguments`` = compact
    JSON of ``input``); ``reasoningContent.reasoningText`` → ``Reasoning(text, signature)``;
    ``reasoningContent.redactedContent`` → ``Reasoning("", data, redacted=True)``; any other block
    (citations, images …) → ``Opaque("bedrock-converse", block)``, which this dialect sends back
    verbatim. Converse has no response id, so ``id`` is empty (the relay stamps one); ``created`` is 0
    unless ``options.settings["created"]``.
    """
    data = load_object(body, "response")
    output = data.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise UpstreamProtocolError("Bedrock Converse response has no output.message.content")
    usage = data.get("usage")
    created = options.settings.get("created", 0)
    return ChatResponse(
        id="",
        model=options.client_model,
        created=created if isinstance(created, int) else 0,
        message=Message(role="assistant", parts=tuple(_part(block) for block in content)),
        finish_reason=finish_reason(data.get("stopReason")),
        usage=usage_from(usage) if isinstance(usage, dict) else None,
    )


def _part(block: object) -> Part:
    if not isinstance(block, dict):
        raise UpstreamProtocolError("Bedrock Converse content block is not an object")
    if "text" in block:
        if not isinstance(block["text"], str):
            raise UpstreamProtocolError("Bedrock Converse text block is not a string")
        return Text(block["text"])
    use = block.get("toolUse")
    if isinstance(use, dict):
        if not all(isinstance(use.get(k), str) for k in ("toolUseId", "name")) or not isinstance(
            use.get("input"), dict
        ):
            raise UpstreamProtocolError("Bedrock Converse toolUse block needs toolUseId, name and an input object")
        return ToolCall(id=use["toolUseId"], name=use["name"], arguments=orjson.dumps(use["input"]).decode())
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict):
        text_block = reasoning.get("reasoningText")
        if isinstance(text_block, dict) and isinstance(text_block.get("text"), str):
            signature = text_block.get("signature")
            return Reasoning(
                text_block["text"], signature=signature if isinstance(signature, str) and signature else None
            )
        if isinstance(reasoning.get("redactedContent"), str):
            return Reasoning("", signature=reasoning["redactedContent"], redacted=True)
        raise UpstreamProtocolError("Bedrock Converse reasoningContent block is malformed")
    return Opaque(dialect=DIALECT_NAME, data=block)


class BedrockConverseDialect:
    """``UpstreamDialect`` for Converse; stateless, one shared instance (``DIALECT``)."""

    name = DIALECT_NAME
    stream_media_type = EVENTSTREAM_MEDIA_TYPE

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        return encode_request(request, options)

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        return decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return _decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> ConverseStreamDecoder:
        return ConverseStreamDecoder(options)

    def framer(self) -> Framer:
        return EventStreamFramer()


DIALECT: UpstreamDialect = BedrockConverseDialect()
