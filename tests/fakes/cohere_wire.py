"""Pure builders of Cohere v2 Chat wire payloads for the fake upstream (wire-formats.md §7).

Owns the exact JSON shapes: a ``V2ChatResponse``, the named SSE event sequence of a stream
(``message-start``, ``content-start``/``-delta``/``-end`` for thinking and text blocks,
``tool-plan-delta``, ``tool-call-start``/``-delta``/``-end``, ``message-end``, then
``data: [DONE]``), ``{"id", "message"}`` error bodies, and the request checks. No I/O.

Token counts are word counts (``str.split``): input = words of every message's text (tool results
and tool-call arguments included); output = words of text, thinking, plan and call arguments.
Billed units are the same counts minus ``BILLED_DISCOUNT`` input tokens (Cohere does not bill its
own prompt template), floored at 0, so a test can tell ``tokens`` and ``billed_units`` apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_wire import count_words, dumps, split_arguments, split_text

JsonObj = dict[str, Any]

ROLES = ("system", "user", "assistant", "tool")
TOOL_CHOICES = ("REQUIRED", "NONE")
MAX_STOP_SEQUENCES = 5
BILLED_DISCOUNT = 3
DONE = b"data: [DONE]\n\n"


def new_chat_id() -> str:
    return str(uuid.uuid4())


def new_tool_call_id(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:12]}"


def sse_event(name: str, obj: Any) -> bytes:
    """One named SSE event (``event:`` = the payload's ``type``)."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


# ---- reading requests -------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """Text of a ``content``: the string, or its ``text`` items (and tool ``document`` data as
    JSON) joined with a space."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for item in content if isinstance(content, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text":
            texts.append(str(item.get("text", "")))
        elif item.get("type") == "document" and isinstance(item.get("document"), dict):
            texts.append(json.dumps(item["document"].get("data")))
    return " ".join(t for t in texts if t)


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def input_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += count_words(content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                total += count_words(str(call["function"].get("arguments", "")))
    return total


def _check_message(i: int, message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        return f"invalid request: messages[{i}].role must be one of {', '.join(ROLES)}"
    role = message["role"]
    if role in ("system", "user", "tool") and "content" not in message:
        return f"invalid request: messages[{i}].content is required"
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return f"invalid request: messages[{i}].tool_call_id is required"
    if role == "assistant" and not message.get("content") and not message.get("tool_calls"):
        return f"invalid request: messages[{i}]: an assistant message needs content or tool_calls"
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return f"invalid request: messages[{i}].tool_calls: function.arguments must be a JSON string"
    return None


def check_body(body: Any) -> str | None:
    """The 400 ``message`` for a malformed v2 Chat body, else None (``model`` is checked by the
    caller). Checks what the API documents: roles, ``tool_choice`` values and that it needs
    ``tools``, at most 5 ``stop_sequences``, ``response_format`` not combined with ``tools``."""
    if not isinstance(body, dict):
        return "invalid request: the body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "invalid request: model is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "invalid request: messages must be a non-empty list"
    for i, message in enumerate(messages):
        problem = _check_message(i, message)
        if problem is not None:
            return problem
    choice = body.get("tool_choice")
    if choice is not None and choice not in TOOL_CHOICES:
        return f"invalid request: tool_choice must be one of {', '.join(TOOL_CHOICES)}"
    if choice == "REQUIRED" and not body.get("tools"):
        return "invalid request: tool_choice REQUIRED needs tools"
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and len(stops) > MAX_STOP_SEQUENCES:
        return f"invalid request: stop_sequences can have at most {MAX_STOP_SEQUENCES} items"
    if body.get("response_format") is not None and body.get("tools"):
        return "invalid request: response_format is not supported with tools"
    return None


# ---- answers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    """Everything needed to render one assistant message, stream or not. Rendered in this order:
    thinking, the tool plan, text, tool calls."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str | None = None
    tool_plan: str | None = None
    finish_reason: str = "COMPLETE"
    input_tokens: int = 0
    output_tokens: int = 0
    cached: int = 0
    id: str = field(default_factory=new_chat_id)

    @property
    def has_text(self) -> bool:
        return bool(self.text) or (self.thinking is None and not self.tool_calls)


def usage_json(answer: Answer) -> JsonObj:
    return {
        "billed_units": {
            "input_tokens": max(0, answer.input_tokens - BILLED_DISCOUNT),
            "output_tokens": answer.output_tokens,
        },
        "tokens": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        "cached_tokens": answer.cached,
    }


def _call_json(call: ToolCall) -> JsonObj:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def response_json(answer: Answer) -> JsonObj:
    """A non-streaming ``V2ChatResponse``."""
    message: JsonObj = {"role": "assistant"}
    content: list[JsonObj] = []
    if answer.thinking is not None:
        content.append({"type": "thinking", "thinking": answer.thinking})
    if answer.has_text:
        content.append({"type": "text", "text": answer.text})
    if answer.tool_plan is not None:
        message["tool_plan"] = answer.tool_plan
    if answer.tool_calls:
        message["tool_calls"] = [_call_json(c) for c in answer.tool_calls]
    if content:
        message["content"] = content
    return {"id": answer.id, "finish_reason": answer.finish_reason, "message": message, "usage": usage_json(answer)}


Event = tuple[str, JsonObj]


def _event(kind: str, **fields: Any) -> Event:
    return kind, {"type": kind, **fields}


def _content_block(index: int, kind: str, text: str) -> list[Event]:
    events = [_event("content-start", index=index, delta={"message": {"content": {"type": kind, kind: ""}}})]
    for piece in split_text(text):
        events.append(_event("content-delta", index=index, delta={"message": {"content": {kind: piece}}}))
    events.append(_event("content-end", index=index))
    return events


def message_start(answer: Answer) -> Event:
    empty = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    return _event("message-start", id=answer.id, delta={"message": empty})


def stream_events(answer: Answer) -> list[Event]:
    """The full named-event sequence of a streamed answer.

    ``message-start``; a thinking block (index 0) when there is thinking; the tool plan as
    ``tool-plan-delta`` events; the text block; per tool call ``tool-call-start`` (name, id,
    ``arguments: ""``), up to 3 ``tool-call-delta`` fragments, ``tool-call-end``; ``message-end``
    with the finish reason and usage. Text, thinking and plan arrive one word per delta. So for a
    text-only answer, event ``k`` (k >= 2) is the (k-1)-th text delta."""
    events: list[Event] = [message_start(answer)]
    index = 0
    if answer.thinking is not None:
        events += _content_block(index, "thinking", answer.thinking)
        index += 1
    for piece in split_text(answer.tool_plan or ""):
        events.append(_event("tool-plan-delta", delta={"message": {"tool_plan": piece}}))
    if answer.has_text:
        events += _content_block(index, "text", answer.text)
    for i, call in enumerate(answer.tool_calls):
        start = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        events.append(_event("tool-call-start", index=i, delta={"message": {"tool_calls": start}}))
        for fragment in split_arguments(call.arguments, 3):
            delta = {"message": {"tool_calls": {"function": {"arguments": fragment}}}}
            events.append(_event("tool-call-delta", index=i, delta=delta))
        events.append(_event("tool-call-end", index=i))
    end = {"finish_reason": answer.finish_reason, "usage": usage_json(answer)}
    events.append(_event("message-end", id=answer.id, delta=end))
    return events


def filler_answer(chunks: int) -> Answer:
    """A text answer with exactly ``chunks`` text deltas (``part0 part1 …``)."""
    text = "".join(f"part{i} " for i in range(max(chunks, 1)))
    return Answer(text, output_tokens=count_words(text))


def partial_events(chunks: int) -> list[Event]:
    """``message-start``, the text block's start and ``chunks`` text deltas (none if 0)."""
    if chunks <= 0:
        return []
    return stream_events(filler_answer(chunks))[: 2 + chunks]


def error_end(message: str, finish_reason: str = "ERROR") -> Event:
    """A ``message-end`` that reports a failed answer (``delta.error``)."""
    return _event("message-end", delta={"error": message, "finish_reason": finish_reason})


# ---- errors ------------------------------------------------------------------------------------------

ERROR_MESSAGES: Mapping[int, str] = {
    400: "invalid request: bad request (fake upstream)",
    401: "invalid api token",
    402: "Please add or update your payment method at https://dashboard.cohere.com/billing",
    403: "forbidden",
    404: "model not found, make sure the correct model ID was used and that you have access to the model.",
    422: "unprocessable entity",
    429: "You are using a Trial key, which is limited to 20 API calls / minute.",
    498: "invalid token",
    499: "request cancelled",
    500: "internal server error, this has been reported to our developers",
    501: "not implemented",
    503: "service unavailable",
    504: "gateway timeout",
}


def error_json(message: str) -> JsonObj:
    return {"id": new_chat_id(), "message": message}


def default_message(status: int) -> str:
    return ERROR_MESSAGES.get(status, f"HTTP {status}")
