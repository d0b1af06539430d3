"""OpenAI Chat Completions streams (wire-formats.md §1, "Streaming"): ``OpenAIStreamDecoder``
turns an upstream's SSE events into IR events; ``StreamEncoder`` turns IR events into the SSE
frames an OpenAI client reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.dialects.base import DialectOptions
from unigate.dialects.openai_chat_errors import decode_error, error_from_payload
from unigate.dialects.openai_chat_response import arguments_text, decode_usage, encode_usage, finish_reason
from unigate.dialects.sse import SSEEvent
from unigate.errors import UnigateError, UpstreamProtocolError
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
from unigate.ir import FinishReason, Usage

DONE_FRAME = b"data: [DONE]\n\n"


class OpenAIStreamDecoder:
    """State machine over one OpenAI-compatible chat stream.

    State:

    * ``_started`` — ``Start`` was emitted (on the first JSON chunk, whatever it holds; its id is
      the chunk's, the model is ``options.client_model``).
    * ``_ids`` — the id of each tool call, by our index (0, 1, … in the order calls start);
      ``_slots`` maps the upstream's ``tool_calls[].index`` to ours. A delta opens a new call when
      its index is new, or when it carries an ``id`` different from the call at that index (some
      servers reuse index 0); a delta without ``index`` continues the last call unless its ``id``
      is new. A call must open with a function name; a missing ``id`` becomes
      ``call_<response id>_<n>``. Argument fragments pass through verbatim.
    * ``_finished`` — a ``finish_reason`` was seen and ``Finish`` emitted; later choice deltas are
      ignored (only usage is still read).
    * ``_usage`` — the last usage object seen on any chunk (OpenAI sends it on an extra chunk with
      ``choices: []``, DeepSeek on the finish chunk); held and emitted once, at the end.
    * ``_done`` — ``[DONE]`` was seen; anything after it is ignored.

    ``[DONE]`` emits a ``Finish`` if none came (``tool_calls`` when calls were made, else ``stop``)
    and the held usage. ``close()`` after a finish without ``[DONE]`` emits the held usage; before
    any finish it raises ``UpstreamProtocolError`` (a truncated stream). An ``{"error": …}`` event
    raises the classified ``UpstreamError``. Only choice ``index`` 0 is read.
    """

    __slots__ = ("_done", "_finished", "_ids", "_options", "_response_id", "_slots", "_started", "_usage")

    def __init__(self, options: DialectOptions) -> None:
        self._options = options
        self._started = False
        self._response_id = ""
        self._ids: list[str] = []
        self._slots: dict[int, int] = {}
        self._finished = False
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: SSEEvent) -> list[Event]:
        """Decode one SSE event; raises ``UpstreamError`` for an in-band error event."""
        if self._done:
            return []
        data = event.data.strip()
        if data == "[DONE]":
            return self._end(done=True)
        if not data:
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                raise decode_error(200, {}, data.encode()) from None
            raise UpstreamProtocolError("upstream sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("upstream sent a stream event that is not a JSON object")
        if chunk.get("error") is not None or event.event == "error":
            raise error_from_payload(chunk)
        out: list[Event] = []
        if not self._started:
            self._started = True
            self._response_id = str(chunk.get("id") or "")
            out.append(Start(id=self._response_id, model=self._options.client_model))
        usage = decode_usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise UpstreamProtocolError("upstream sent a chunk whose 'choices' is not an array")
        for choice in choices or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0 and not self._finished:
                self._choice(choice, out)
        return out

    def close(self) -> list[Event]:
        """End of the byte stream: the held usage, or ``UpstreamProtocolError`` if truncated."""
        if self._done:
            return []
        if not self._finished:
            raise UpstreamProtocolError("upstream stream ended before a finish_reason or [DONE] (truncated)")
        return self._end(done=False)

    def _end(self, *, done: bool) -> list[Event]:
        if done and not self._started:
            raise UpstreamProtocolError("upstream stream ended with [DONE] before any chunk")
        self._done = True
        out: list[Event] = []
        if not self._finished:
            self._finished = True
            out.append(Finish("tool_calls" if self._ids else "stop"))
        if self._usage is not None:
            out.append(UsageEvent(self._usage))
        return out

    def _choice(self, choice: Mapping[str, Any], out: list[Event]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in ("reasoning_content", "reasoning"):
                reasoning = delta.get(key)
                if isinstance(reasoning, str) and reasoning:
                    out.append(ReasoningDelta(reasoning))
                    break
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out.append(TextDelta(text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    self._tool_call(call, out)
        reason = finish_reason(choice.get("finish_reason"), bool(self._ids))
        if reason is not None:
            self._finished = True
            out.append(Finish(reason))

    def _tool_call(self, call: object, out: list[Event]) -> None:
        if not isinstance(call, dict):
            raise UpstreamProtocolError("upstream sent a tool call delta that is not an object")
        index = call.get("index")
        slot_key = index if isinstance(index, int) and not isinstance(index, bool) else None
        given_id, given_fn = call.get("id"), call.get("function")
        call_id = given_id if isinstance(given_id, str) and given_id else None
        fn: Mapping[str, Any] = given_fn if isinstance(given_fn, dict) else {}
        ours = self._slots.get(slot_key) if slot_key is not None else len(self._ids) - 1
        if ours is None or ours < 0 or (call_id is not None and call_id != self._ids[ours]):
            name = fn.get("name")
            if not isinstance(name, str) or not name:
                raise UpstreamProtocolError("upstream started a tool call without a function name")
            ours = len(self._ids)
            self._ids.append(call_id or f"call_{self._response_id}_{ours}")
            if slot_key is not None:
                self._slots[slot_key] = ours
            out.append(ToolCallStart(index=ours, id=self._ids[ours], name=name))
        arguments = arguments_text(fn.get("arguments"))
        if arguments:
            out.append(ToolCallDelta(index=ours, arguments=arguments))


class StreamEncoder:
    """IR events → OpenAI ``chat.completion.chunk`` SSE frames for a client.

    State: ``_sent_role`` — the first chunk written carries ``delta.role = "assistant"`` (nothing
    is written for ``Start``, so a stream that fails before content has produced no bytes);
    ``_finished`` — the one chunk with a ``finish_reason`` was written (a second ``Finish`` is
    ignored; ``finish()`` writes one if none came); ``_usage`` — usage is held whenever it
    arrives and written by ``finish()`` as the extra ``choices: []`` chunk, only when the client
    asked with ``stream_options.include_usage`` (and then every chunk carries ``"usage": null``,
    as OpenAI's do); ``_closed`` — ``finish()`` or ``error_frames()`` ended the stream, later
    calls return nothing.

    Tool calls: the first delta of a call has ``index``, ``id``, ``type``, ``function.name`` and
    ``arguments: ""``; later deltas only ``index`` and ``function.arguments``. Reasoning is written
    as ``delta.reasoning_content`` (DeepSeek's field, which OpenAI-compatible clients read).
    ``Finish("error")`` (a provider that ended in error, e.g. Cohere) is written as
    ``finish_reason: "error"`` as OpenRouter does; it is outside OpenAI's enum, which the SDK
    tolerates at run time (it does not validate responses).
    """

    __slots__ = ("_base", "_calls", "_closed", "_finished", "_include_usage", "_sent_role", "_usage")

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        self._sent_role = False
        self._finished = False
        self._closed = False
        self._calls = False
        self._usage: Usage | None = None

    def feed(self, event: Event) -> list[bytes]:
        """The frames ``event`` completes (often one, sometimes none)."""
        if self._closed:
            return []
        if isinstance(event, UsageEvent):
            self._usage = event.usage
            return []
        if self._finished or isinstance(event, Start):
            return []
        if isinstance(event, TextDelta):
            return self._delta({"content": event.text}) if event.text else []
        if isinstance(event, ReasoningDelta):
            return self._delta({"reasoning_content": event.text}) if event.text else []
        if isinstance(event, ToolCallStart):
            self._calls = True
            fn = {"name": event.name, "arguments": ""}
            call = {"index": event.index, "id": event.id, "type": "function", "function": fn}
            return self._delta({"tool_calls": [call]})
        if isinstance(event, ToolCallDelta):
            fragment = {"index": event.index, "function": {"arguments": event.arguments}}
            return self._delta({"tool_calls": [fragment]}) if event.arguments else []
        return self._finish_chunk(event.reason)

    def finish(self) -> list[bytes]:
        """End of a successful stream: the finish chunk if none was written, the usage chunk
        (only with ``include_usage`` and known usage), then ``data: [DONE]``."""
        if self._closed:
            return []
        frames = [] if self._finished else self._finish_chunk("tool_calls" if self._calls else "stop")
        self._closed = True
        if self._include_usage and self._usage is not None:
            frames.append(self._frame({**self._base, "choices": [], "usage": encode_usage(self._usage)}))
        frames.append(DONE_FRAME)
        return frames

    def error_frames(self, err: UnigateError) -> list[bytes]:
        """End of a failed stream: ``data: {"error": {...}}`` then ``data: [DONE]``.

        The official SDK (``openai/_streaming.py``) raises ``APIError`` with the error's message
        for any data event holding an ``error`` key, so it never reads the ``[DONE]``; the
        terminator is there for hand-written clients that wait for it. Usage is not written."""
        if self._closed:
            return []
        self._closed = True
        return [self._frame(err.to_openai()), DONE_FRAME]

    def _finish_chunk(self, reason: FinishReason) -> list[bytes]:
        self._finished = True
        return self._chunk({}, reason)

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        return self._chunk(delta, None)

    def _chunk(self, delta: dict[str, Any], reason: FinishReason | None) -> list[bytes]:
        if not self._sent_role:
            self._sent_role = True
            delta = {"role": "assistant", **delta}
        chunk: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return [self._frame(chunk)]

    @staticmethod
    def _frame(obj: Mapping[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"
