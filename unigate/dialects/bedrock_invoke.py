"""Claude on Bedrock's InvokeModel: Anthropic's Messages body and answers, Bedrock's framing and errors.

Docs: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html ,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html
(wire-formats.md §6.1, §6.3, §6.4).

* Request: the Anthropic dialect's Bedrock form (``anthropic_request``, ``bedrock=True``): no
  ``model``/``stream``, ``anthropic_version: "bedrock-2023-05-31"``.
* Non-streamed answer: an Anthropic ``Message`` (the Anthropic decoder).
* Stream: ``application/vnd.amazon.eventstream``; ``InvokeFramer`` opens each ``chunk`` into the
  Anthropic stream event it carries, which :class:`BedrockClaudeStreamDecoder` hands to the Anthropic
  state machine (``message_stop`` also carries ``amazon-bedrock-invocationMetrics``, which is not
  needed: usage comes from ``message_start``/``message_delta`` as on Anthropic's API).
* Errors: Bedrock's (``x-amzn-ErrorType`` + ``{"message"}``), and in-stream exception frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.anthropic import AnthropicDialect, AnthropicStreamDecoder
from unigate.dialects.base import DialectOptions, Framer, UpstreamDialect
from unigate.dialects.bedrock_errors import decode_error as _decode_error
from unigate.dialects.bedrock_errors import stream_exception
from unigate.dialects.bedrock_eventstream import EVENTSTREAM_MEDIA_TYPE, BedrockEvent, InvokeFramer
from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamError
from unigate.events import Event
from unigate.ir import ChatRequest, ChatResponse

__all__ = ["DIALECT", "BedrockClaudeDialect", "BedrockClaudeStreamDecoder"]


class BedrockClaudeStreamDecoder:
    """The Anthropic stream state machine (``AnthropicStreamDecoder``, whose docstring holds the
    state), behind a check for Bedrock's exception and error frames, which raise in stream order."""

    __slots__ = ("_inner",)

    def __init__(self, options: DialectOptions) -> None:
        self._inner = AnthropicStreamDecoder(options)

    def feed(self, event: SSEEvent) -> list[Event]:
        if isinstance(event, BedrockEvent) and event.kind != "event":
            raise stream_exception(event.event, event.data)
        return self._inner.feed(event)

    def close(self) -> list[Event]:
        return self._inner.close()


class BedrockClaudeDialect:
    """``UpstreamDialect`` for Claude models behind ``/model/{id}/invoke[-with-response-stream]``."""

    name = "anthropic-bedrock"
    stream_media_type = EVENTSTREAM_MEDIA_TYPE

    def __init__(self) -> None:
        self._messages = AnthropicDialect("anthropic-bedrock", bedrock=True)

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        return self._messages.encode_request(request, options)

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        return self._messages.decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return _decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> BedrockClaudeStreamDecoder:
        return BedrockClaudeStreamDecoder(options)

    def framer(self) -> Framer:
        return InvokeFramer()


DIALECT: UpstreamDialect = BedrockClaudeDialect()
