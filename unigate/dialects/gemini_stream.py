"""The stream decoder for ``streamGenerateContent?alt=sse`` (Gemini API and Vertex AI).

Each SSE ``data:`` event is a whole ``GenerateContentResponse`` holding only the *new* parts; there
is no terminator: the body just ends after the chunk with ``finishReason``. See wire-formats.md §3.
"""

from __future__ import annotations

from unigate.dialects.base import DialectOptions
from unigate.dialects.gemini_response import (
    FunctionCall,
    call_id,
    finish_reason,
    first_candidate,
    load_object,
    new_id,
    read_parts,
    response_id,
    usage,
)
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
from unigate.ir import Reasoning, Text, Usage


class GeminiStreamDecoder:
    """State machine over the chunks of one Gemini stream.

    State:

    * ``_started`` — whether ``Start`` went out (it does on the first chunk, with ``responseId`` as
      the id and tool-call ids derived from it);
    * ``_next_index`` — the index the next ``functionCall`` gets. Gemini sends each call whole
      (several in one chunk or across chunks), so each becomes ``ToolCallStart`` plus ONE
      ``ToolCallDelta`` with the complete arguments, indexes increasing from 0;
    * ``_finish`` — the last ``finishReason`` seen (``None``: none yet);
    * ``_usage`` — the last ``usageMetadata`` seen. Gemini repeats it on every chunk, cumulatively,
      so it is held and emitted once, at ``close``, followed by ``Finish``.

    Events: ``text`` → ``TextDelta``; ``thought`` parts → ``ReasoningDelta`` (a signature follows as a
    signature-only ``ReasoningDelta``); a signature on a non-thought part → a signature-only
    ``ReasoningDelta`` before that part's events (see ``gemini_response``). An ``error`` object in the
    stream raises the classified ``UpstreamError``; a blocked prompt raises ``ContentFiltered``;
    ``close`` without any ``finishReason`` raises ``UpstreamProtocolError`` (truncated stream).
    """

    __slots__ = ("_finish", "_id", "_model", "_next_index", "_response_id", "_started", "_usage")

    def __init__(self, options: DialectOptions) -> None:
        self._model = options.client_model
        self._started = False
        self._id = ""
        self._response_id: str | None = None
        self._next_index = 0
        self._finish: object = None
        self._usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Event]:
        obj = load_object(event.data, "stream chunk")
        candidate = first_candidate(obj)
        out: list[Event] = []
        if not self._started:
            self._started = True
            self._response_id = response_id(obj)
            self._id = self._response_id or new_id()
            out.append(Start(self._id, self._model))
        meta = usage(obj.get("usageMetadata"))
        if meta is not None:
            self._usage = meta
        if candidate is None:
            return out
        for item in read_parts(candidate):
            if isinstance(item, Text):
                out.append(TextDelta(item.text))
            elif isinstance(item, Reasoning):
                if item.text:
                    out.append(ReasoningDelta(item.text))
                if item.signature is not None:
                    out.append(ReasoningDelta("", item.signature))
            elif isinstance(item, FunctionCall):
                index = self._next_index
                self._next_index += 1
                out.append(ToolCallStart(index, call_id(item, self._response_id, index), item.name))
                out.append(ToolCallDelta(index, item.arguments))
        # Opaque parts (code execution, generated media) have no stream event: they are skipped here.
        reason = candidate.get("finishReason")
        if reason is not None:
            self._finish = reason
        return out

    def close(self) -> list[Event]:
        if self._finish is None:
            raise UpstreamProtocolError("Gemini stream ended without a finishReason (truncated)")
        out: list[Event] = []
        if self._usage is not None:
            out.append(UsageEvent(self._usage))
        out.append(Finish(finish_reason(self._finish, self._next_index > 0)))
        return out
