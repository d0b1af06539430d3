"""Cohere v2 Chat stream → IR events: an explicit state machine (wire-formats.md §7 "Streaming";
https://docs.cohere.com/v2/docs/streaming).

Cohere sends named SSE events whose ``event:`` equals the payload's ``type``: ``message-start``,
then content blocks (``content-start`` / ``content-delta``… / ``content-end``, by ``index``; a
block is ``text`` or ``thinking``), or a tool plan (``tool-plan-delta``…) and tool calls
(``tool-call-start`` / ``tool-call-delta``… / ``tool-call-end``, by ``index``), optional
``citation-start``/``citation-end``, and the terminal ``message-end`` (finish reason, usage, and
``error`` when the answer failed). ``delta.message.content`` and ``delta.message.tool_calls`` are
single objects, not arrays. A trailing ``data: [DONE]`` may follow (the SDK skips it); unknown
event types (``debug``, future ones) are ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from unigate.dialects.base import DialectOptions
from unigate.dialects.cohere_wire import failed_finish, finish_reason, load_object, usage_from
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

BlockKind = Literal["text", "thinking"]

_MESSAGE_EVENTS = frozenset(
    {
        "content-start",
        "content-delta",
        "content-end",
        "tool-plan-delta",
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        "citation-start",
        "citation-end",
        "message-end",
    }
)


def _message(data: dict[str, Any]) -> dict[str, Any]:
    """``delta.message`` of an event ({} when absent)."""
    delta = data.get("delta")
    message = delta.get("message") if isinstance(delta, dict) else None
    return message if isinstance(message, dict) else {}


class CohereStreamDecoder:
    """One streamed Cohere answer → ``Start``, content deltas, ``UsageEvent``, ``Finish``.

    State:

    - ``_phase``: ``"before"`` until ``message-start``, ``"message"`` while content flows,
      ``"done"`` after ``message-end``. A content event before ``message-start`` is a protocol
      error; anything after ``message-end`` is ignored; ``close`` before ``"done"`` means the
      stream was truncated.
    - ``_blocks``: open content blocks, Cohere ``index`` → kind (``text`` → ``TextDelta``,
      ``thinking`` → ``ReasoningDelta``), from ``content-start`` to ``content-end``.
    - ``_calls``: tool calls by Cohere ``index`` → (our index, still open?). OpenAI numbers tool
      calls from 0 in the order they start; Cohere numbers them by ``index`` too, but the two are
      kept apart so a gap or an offset in Cohere's numbering cannot leak to the client. A delta
      for a call that never started, or after its ``tool-call-end``, is a protocol error.

    ``tool-plan-delta`` (the model's plan before its calls) is not answer text: it becomes
    ``ReasoningDelta``, as the non-streamed ``tool_plan`` becomes ``Reasoning``. Citations are
    dropped (OpenAI's chat format has no slot for them). ``message-end`` emits ``UsageEvent`` (when
    it has usage) and ``Finish``, or raises for an ``ERROR``/``TIMEOUT`` ending (cohere_wire).
    """

    __slots__ = ("_blocks", "_calls", "_model", "_phase")

    def __init__(self, options: DialectOptions) -> None:
        self._model = options.client_model
        self._phase: Literal["before", "message", "done"] = "before"
        self._blocks: dict[int, BlockKind] = {}
        self._calls: dict[int, tuple[int, bool]] = {}

    def feed(self, event: SSEEvent) -> list[Event]:
        """Consume one SSE event; raises the classified ``UpstreamError`` for a failed ending."""
        if event.data.strip() == "[DONE]" or self._phase == "done":
            return []
        data = load_object(event.data, "stream event")
        kind = data.get("type", event.event)
        if kind == "message-start":
            if self._phase != "before":
                raise UpstreamProtocolError("Cohere stream sent a second message-start")
            self._phase = "message"
            message_id = data.get("id")
            return [Start(id=message_id if isinstance(message_id, str) else "", model=self._model)]
        if self._phase == "before":
            if kind in _MESSAGE_EVENTS:
                raise UpstreamProtocolError(f"Cohere stream sent {kind!r} before message-start")
            return []
        if kind == "content-start":
            return self._content_start(data)
        if kind == "content-delta":
            return self._content_delta(data)
        if kind == "content-end":
            self._blocks.pop(self._index(data, self._blocks), None)
            return []
        if kind == "tool-plan-delta":
            plan = _message(data).get("tool_plan")
            return [ReasoningDelta(plan)] if isinstance(plan, str) and plan else []
        if kind == "tool-call-start":
            return self._call_start(data)
        if kind == "tool-call-delta":
            return self._call_delta(data)
        if kind == "tool-call-end":
            index = self._index(data, self._calls)
            ours, _ = self._calls[index]
            self._calls[index] = (ours, False)
            return []
        if kind == "message-end":
            return self._message_end(data)
        return []  # citation-start/-end, debug, future event types

    def close(self) -> list[Event]:
        """End of the byte stream: fine after ``message-end``, truncation otherwise."""
        if self._phase != "done":
            raise UpstreamProtocolError("Cohere stream ended before message-end")
        return []

    @staticmethod
    def _index(data: dict[str, Any], known: dict[int, Any]) -> int:
        index = data.get("index")
        if not isinstance(index, int) or index not in known:
            raise UpstreamProtocolError(f"Cohere stream event {data.get('type')!r} for unknown index {index!r}")
        return index

    def _content_start(self, data: dict[str, Any]) -> list[Event]:
        index = data.get("index")
        content = _message(data).get("content")
        if not isinstance(index, int) or index in self._blocks or not isinstance(content, dict):
            raise UpstreamProtocolError("Cohere content-start is malformed or repeats an index")
        kind: BlockKind = "thinking" if content.get("type") == "thinking" else "text"
        self._blocks[index] = kind
        return self._content(kind, content)

    def _content_delta(self, data: dict[str, Any]) -> list[Event]:
        kind = self._blocks[self._index(data, self._blocks)]
        content = _message(data).get("content")
        if not isinstance(content, dict) or not isinstance(content.get(kind), str):
            raise UpstreamProtocolError(f"Cohere content-delta without {kind} on a {kind} block")
        return self._content(kind, content)

    @staticmethod
    def _content(kind: BlockKind, content: dict[str, Any]) -> list[Event]:
        value = content.get(kind)
        if not isinstance(value, str) or not value:
            return []
        return [TextDelta(value)] if kind == "text" else [ReasoningDelta(value)]

    def _call_start(self, data: dict[str, Any]) -> list[Event]:
        index = data.get("index")
        call = _message(data).get("tool_calls")
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(index, int) or index in self._calls or not isinstance(function, dict):
            raise UpstreamProtocolError("Cohere tool-call-start is malformed or repeats an index")
        call_id, name = call.get("id") if isinstance(call, dict) else None, function.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise UpstreamProtocolError("Cohere tool-call-start without an id or a function name")
        ours = len(self._calls)
        self._calls[index] = (ours, True)
        out: list[Event] = [ToolCallStart(index=ours, id=call_id, name=name)]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(ToolCallDelta(index=ours, arguments=arguments))
        return out

    def _call_delta(self, data: dict[str, Any]) -> list[Event]:
        ours, open_ = self._calls[self._index(data, self._calls)]
        if not open_:
            raise UpstreamProtocolError("Cohere tool-call-delta after its tool-call-end")
        call = _message(data).get("tool_calls")
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if not isinstance(arguments, str):
            raise UpstreamProtocolError("Cohere tool-call-delta without function.arguments")
        return [ToolCallDelta(index=ours, arguments=arguments)] if arguments else []

    def _message_end(self, data: dict[str, Any]) -> list[Event]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        reason = delta.get("finish_reason")
        failure = failed_finish(reason, delta.get("error"))
        if failure is not None:
            raise failure
        self._phase = "done"
        usage = delta.get("usage")
        out: list[Event] = [UsageEvent(usage_from(usage))] if isinstance(usage, dict) else []
        out.append(Finish(finish_reason(reason)))
        return out
