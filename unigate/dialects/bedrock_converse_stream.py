"""Bedrock ``ConverseStream`` → IR events: an explicit state machine (wire-formats.md §6.2).

The framer (``bedrock_eventstream.EventStreamFramer``) hands over one ``BedrockEvent`` per frame,
named by ``:event-type``. Order: ``messageStart`` → per block ``contentBlockStart`` (tool use only:
text and reasoning blocks begin directly with ``contentBlockDelta``) / ``contentBlockDelta``… /
``contentBlockStop`` → ``messageStop`` (``stopReason``) → ``metadata`` (``usage``, after the stop).
Payloads may carry padding ``p``: ignored. Exception and error frames raise their classified
``UpstreamError`` where they occur. Unknown event types and delta kinds are skipped.
"""

from __future__ import annotations

from typing import Any, Literal

from unigate.dialects.base import DialectOptions
from unigate.dialects.bedrock_converse_wire import finish_reason, load_object, usage_from
from unigate.dialects.bedrock_errors import stream_exception
from unigate.dialects.bedrock_eventstream import BedrockEvent
from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamProtocolError
from unigate.events import Event, Finish, ReasoningDelta, Start, TextDelta, ToolCallDelta, ToolCallStart, UsageEvent

BlockKind = Literal["text", "reasoning", "tool", "other"]
_MESSAGE_EVENTS = frozenset({"contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"})


class ConverseStreamDecoder:
    """One ConverseStream answer → ``Start``, content deltas, ``UsageEvent``, ``Finish``.

    State:

    - ``_phase``: ``"before"`` until ``messageStart``; ``"message"`` while content flows;
      ``"stopped"`` after ``messageStop``; ``"done"`` after ``metadata``. Content before
      ``messageStart`` is a protocol error; events after ``metadata`` are ignored; ``close`` before
      ``"done"`` is a truncated stream (usage always follows the stop, so a stream cut between the two
      is incomplete too).
    - ``_blocks``: ``contentBlockIndex`` → (kind, OpenAI tool-call index). A block is known from its
      ``contentBlockStart`` (tool use) or its first delta (text, reasoning); it leaves at
      ``contentBlockStop``. OpenAI numbers only tool calls, from 0 in start order (``_tool_count``).
      A delta of another kind than its block's is a broken stream.
    - ``_stop_reason``: ``messageStop.stopReason``.

    ``Finish`` is held until ``metadata`` and emitted with the ``UsageEvent`` (usage first), so the
    client's finish chunk is not sent for a stream that then turns out truncated. Converse has no
    message id: ``Start.id`` is empty and the relay's encoder stamps its own.
    """

    __slots__ = ("_blocks", "_model", "_phase", "_stop_reason", "_tool_count")

    def __init__(self, options: DialectOptions) -> None:
        self._model = options.client_model
        self._phase: Literal["before", "message", "stopped", "done"] = "before"
        self._blocks: dict[int, tuple[BlockKind, int]] = {}
        self._tool_count = 0
        self._stop_reason: object = None

    def feed(self, event: SSEEvent) -> list[Event]:
        """Consume one frame; raises the classified ``UpstreamError`` for an exception frame."""
        if isinstance(event, BedrockEvent) and event.kind != "event":
            raise stream_exception(event.event, event.data)
        kind = event.event or ""
        if self._phase == "done":
            return []
        if kind == "messageStart":
            if self._phase != "before":
                raise UpstreamProtocolError("Bedrock stream sent a second messageStart")
            self._phase = "message"
            return [Start(id="", model=self._model)]
        if kind not in _MESSAGE_EVENTS:
            return []
        if self._phase == "before":
            raise UpstreamProtocolError(f"Bedrock stream sent {kind!r} before messageStart")
        data = load_object(event.data, f"{kind} event")
        if kind == "metadata":
            if self._phase != "stopped":
                raise UpstreamProtocolError("Bedrock stream sent metadata before messageStop")
            self._phase = "done"
            usage = data.get("usage")
            out: list[Event] = [UsageEvent(usage_from(usage))] if isinstance(usage, dict) else []
            return [*out, Finish(finish_reason(self._stop_reason))]
        if self._phase == "stopped":
            raise UpstreamProtocolError(f"Bedrock stream sent {kind!r} after messageStop")
        if kind == "messageStop":
            self._phase = "stopped"
            self._stop_reason = data.get("stopReason")
            return []
        index = data.get("contentBlockIndex")
        if not isinstance(index, int) or isinstance(index, bool):
            raise UpstreamProtocolError(f"Bedrock {kind} without a contentBlockIndex")
        if kind == "contentBlockStart":
            return self._start(index, data.get("start"))
        if kind == "contentBlockDelta":
            return self._delta(index, data.get("delta"))
        self._blocks.pop(index, None)  # contentBlockStop
        return []

    def close(self) -> list[Event]:
        """End of the byte stream: fine after ``metadata``, truncation otherwise."""
        if self._phase != "done":
            raise UpstreamProtocolError("Bedrock stream ended before its metadata event")
        return []

    def _start(self, index: int, start: Any) -> list[Event]:
        if index in self._blocks or not isinstance(start, dict):
            raise UpstreamProtocolError("Bedrock contentBlockStart is malformed or repeats an index")
        use = start.get("toolUse")
        if not isinstance(use, dict):
            self._blocks[index] = ("other", -1)  # toolResult / image blocks: no OpenAI slot
            return []
        call_id, name = use.get("toolUseId"), use.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise UpstreamProtocolError("Bedrock toolUse start without toolUseId or name")
        tool_index = self._tool_count
        self._tool_count += 1
        self._blocks[index] = ("tool", tool_index)
        return [ToolCallStart(index=tool_index, id=call_id, name=name)]

    def _delta(self, index: int, delta: Any) -> list[Event]:
        if not isinstance(delta, dict):
            raise UpstreamProtocolError("Bedrock contentBlockDelta without a delta")
        if "text" in delta:
            kind: BlockKind = "text"
        elif "reasoningContent" in delta:
            kind = "reasoning"
        elif "toolUse" in delta:
            kind = "tool"
        else:
            kind = "other"  # citations, tool results, images: no OpenAI slot
        known = self._blocks.get(index)
        if known is None:
            if kind == "tool":
                raise UpstreamProtocolError("Bedrock toolUse delta before its contentBlockStart")
            known = self._blocks[index] = (kind, -1)
        block_kind, tool_index = known
        if block_kind == "other" or kind == "other":
            return []
        if block_kind != kind:
            raise UpstreamProtocolError(f"Bedrock {kind} delta on a {block_kind} block")
        if kind == "text":
            text = delta["text"]
            if not isinstance(text, str):
                raise UpstreamProtocolError("Bedrock text delta is not a string")
            return [TextDelta(text)] if text else []
        if kind == "tool":
            use = delta["toolUse"]
            fragment = use.get("input") if isinstance(use, dict) else None
            if not isinstance(fragment, str):
                raise UpstreamProtocolError("Bedrock toolUse delta without an input string")
            return [ToolCallDelta(index=tool_index, arguments=fragment)] if fragment else []
        reasoning = delta["reasoningContent"]
        if not isinstance(reasoning, dict):
            raise UpstreamProtocolError("Bedrock reasoningContent delta is not an object")
        out: list[Event] = []
        if isinstance(reasoning.get("text"), str) and reasoning["text"]:
            out.append(ReasoningDelta(reasoning["text"]))
        if isinstance(reasoning.get("signature"), str) and reasoning["signature"]:
            out.append(ReasoningDelta("", signature=reasoning["signature"]))
        return out  # redactedContent arrives opaque; the event set has no redacted marker
