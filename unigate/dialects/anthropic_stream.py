"""Anthropic Messages stream → IR events: an explicit state machine (wire-formats.md §2 "Streaming").

Anthropic sends named SSE events: ``message_start``, then per content block
``content_block_start`` / ``content_block_delta``… / ``content_block_stop``, then ``message_delta``
(stop reason, **cumulative** usage) and the terminal ``message_stop``; ``ping`` may come anywhere,
``error`` may come after HTTP 200. Unknown event and delta types are ignored, as Anthropic asks.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from unigate.dialects.anthropic_wire import error_from_payload, finish_reason, load_object, usage_from
from unigate.dialects.base import DialectOptions
from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamProtocolError
from unigate.events import (
    Event,
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageEvent,
)

BlockKind = Literal["text", "tool_use", "thinking", "other"]

# delta type → (the block kind it belongs to, the field holding its text). A delta on a block of
# another kind is a broken stream.
_DELTAS: dict[str, tuple[BlockKind, str]] = {
    "text_delta": ("text", "text"),
    "input_json_delta": ("tool_use", "partial_json"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("thinking", "signature"),
}

_MESSAGE_EVENTS = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
)


class AnthropicStreamDecoder:
    """One streamed Anthropic answer → ``Start``, content deltas, ``UsageEvent``, ``Finish``.

    State:

    - ``_phase``: ``"before"`` until ``message_start``, ``"message"`` while content flows,
      ``"done"`` after ``message_stop``. Content before ``message_start`` is a protocol error;
      anything after ``message_stop`` is ignored; ``close`` before ``"done"`` means truncation.
    - ``_blocks``: open content blocks, Anthropic ``index`` → (kind, OpenAI tool-call index).
      Anthropic numbers every block (text and thinking too); OpenAI numbers only tool calls, from
      0 in the order they start, so a ``tool_use`` start takes ``_tool_count`` and increments it.
      Kind ``other`` (server tools, their results, redacted thinking) has no OpenAI slot: its
      deltas are skipped. A block leaves the map at ``content_block_stop``.
    - ``_usage``: the raw usage counters, first from ``message_start`` (input side, a tiny
      ``output_tokens``), then overwritten field by field by each ``message_delta`` — its usage is
      cumulative, so the last value wins and nothing is summed.
    - ``_stop_reason``: the last ``message_delta.delta.stop_reason``.

    ``UsageEvent`` and ``Finish`` are both emitted at ``message_stop``, so a stream cut after
    ``message_delta`` still fails as truncated instead of looking complete. ``redacted_thinking``
    arrives whole and opaque; the event set has no redacted marker, so it is not emitted (the
    non-streamed path keeps it as ``Reasoning(redacted=True)``).
    """

    __slots__ = ("_blocks", "_model", "_phase", "_stop_reason", "_tool_count", "_usage")

    def __init__(self, options: DialectOptions) -> None:
        self._model = options.client_model
        self._phase: Literal["before", "message", "done"] = "before"
        self._blocks: dict[int, tuple[BlockKind, int]] = {}
        self._tool_count = 0
        self._usage: dict[str, Any] = {}
        self._stop_reason: object = None

    def feed(self, event: SSEEvent) -> list[Event]:
        """Consume one SSE event; raises the classified ``UpstreamError`` for an ``error`` event."""
        data = load_object(event.data, "stream event")
        kind = data.get("type", event.event)
        if kind == "error":
            raise error_from_payload(data, None, None)
        if kind == "ping" or self._phase == "done":
            return []
        if kind == "message_start":
            return self._message_start(data)
        if self._phase == "before":
            if kind in _MESSAGE_EVENTS:
                raise UpstreamProtocolError(f"Anthropic stream sent {kind!r} before message_start")
            return []
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "content_block_stop":
            self._block(data)
            del self._blocks[data["index"]]
            return []
        if kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self._stop_reason = delta["stop_reason"]
            self._take_usage(data.get("usage"))
            return []
        if kind == "message_stop":
            self._phase = "done"
            return [UsageEvent(usage_from(self._usage)), Finish(finish_reason(self._stop_reason))]
        return []

    def close(self) -> list[Event]:
        """End of the byte stream: fine after ``message_stop``, truncation otherwise."""
        if self._phase != "done":
            raise UpstreamProtocolError("Anthropic stream ended before message_stop")
        return []

    def _message_start(self, data: dict[str, Any]) -> list[Event]:
        if self._phase != "before":
            raise UpstreamProtocolError("Anthropic stream sent a second message_start")
        message = data.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            raise UpstreamProtocolError("Anthropic message_start without a message id")
        self._phase = "message"
        self._take_usage(message.get("usage"))
        return [Start(id=message["id"], model=self._model)]

    def _take_usage(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if v is not None)

    def _block(self, data: dict[str, Any]) -> tuple[BlockKind, int]:
        index = data.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None:
            raise UpstreamProtocolError(f"Anthropic stream event for unknown content block {index!r}")
        return block

    def _block_start(self, data: dict[str, Any]) -> list[Event]:
        index = data.get("index")
        block = data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict) or index in self._blocks:
            raise UpstreamProtocolError("Anthropic content_block_start is malformed or repeats an index")
        btype = block.get("type")
        if btype == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise UpstreamProtocolError("Anthropic tool_use block without id or name")
            tool_index = self._tool_count
            self._tool_count += 1
            self._blocks[index] = ("tool_use", tool_index)
            out: list[Event] = [ToolCallStart(index=tool_index, id=block["id"], name=block["name"])]
            if block.get("input"):  # normally {} with the input streamed as input_json_delta
                out.append(ToolCallDelta(index=tool_index, arguments=orjson.dumps(block["input"]).decode()))
            return out
        if btype == "text":
            self._blocks[index] = ("text", -1)
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if btype == "thinking":
            self._blocks[index] = ("thinking", -1)
            thinking, signature = block.get("thinking"), block.get("signature")
            out = [ReasoningDelta(thinking)] if isinstance(thinking, str) and thinking else []
            if isinstance(signature, str) and signature:
                out.append(ReasoningDelta("", signature=signature))
            return out
        self._blocks[index] = ("other", -1)
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[Event]:
        kind, tool_index = self._block(data)
        delta = data.get("delta")
        dtype = delta.get("type") if isinstance(delta, dict) else None
        known = _DELTAS.get(dtype) if isinstance(dtype, str) else None
        if kind == "other" or known is None or not isinstance(delta, dict):
            return []  # citations_delta, deltas of server-tool blocks, future delta types
        expected, field = known
        if expected != kind:
            raise UpstreamProtocolError(f"Anthropic {dtype} on a {kind} block")
        value = delta.get(field)
        if not isinstance(value, str):
            raise UpstreamProtocolError(f"Anthropic {dtype} without {field}")
        if not value:
            return []
        if dtype == "text_delta":
            return [TextDelta(value)]
        if dtype == "input_json_delta":
            return [ToolCallDelta(index=tool_index, arguments=value)]
        if dtype == "thinking_delta":
            return [ReasoningDelta(value)]
        return [ReasoningDelta("", signature=value)]
