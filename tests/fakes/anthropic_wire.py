"""Pure builders of Anthropic Messages wire payloads for the fake upstream (wire-formats.md §2).

Owns the exact JSON shapes: a ``message`` object, the named SSE event sequence of a stream
(``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` with
``thinking_delta``/``signature_delta``/``text_delta``/``input_json_delta``,
``content_block_stop``, ``message_delta``, ``message_stop``), error bodies, the models list,
and request checks shared by the Anthropic and Vertex fakes. No I/O.

Token counts are word counts (``str.split``): input = words of ``system`` plus every text and
``tool_result`` text block; output = words of text + thinking + tool names and input JSON.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_wire import count_words, dumps, split_arguments, split_text

JsonObj = dict[str, Any]

API_VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
"""``anthropic-version`` header values the fake accepts (the SDK >= 2.0 sends ``2026-10-21``)."""
VERSION_WITHOUT_SAMPLING = "2026-10-21"
"""Under this version the API answers 400 to ``temperature``, ``top_p`` and ``top_k``."""
SAMPLING_FIELDS = ("temperature", "top_p", "top_k")


def new_message_id() -> str:
    return "msg_01" + uuid.uuid4().hex[:22]


def new_tool_use_id() -> str:
    return "toolu_01" + uuid.uuid4().hex[:22]


def new_request_id() -> str:
    return "req_011C" + uuid.uuid4().hex[:20]


def sse_event(name: str, obj: Any) -> bytes:
    """One named SSE event, as Anthropic frames them (``event:`` then ``data:``, ``\\n`` ends)."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


# ---- reading requests ---------------------------------------------------------------------------


def block_text(content: Any) -> str:
    """Text of a message ``content`` or ``system``: the string, or its ``text`` blocks (and the
    text inside ``tool_result`` blocks) joined with a space."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            texts.append(block_text(block.get("content")))
    return " ".join(t for t in texts if t)


def last_user_text(messages: Sequence[Any]) -> str:
    """Text of the last ``user`` message that has ``text`` blocks (tool-result-only turns are skipped)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [str(b.get("text", "")) for b in content or () if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def input_tokens(body: Mapping[str, Any]) -> int:
    total = count_words(block_text(body.get("system")))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += count_words(block_text(message.get("content")))
    return total


def check_body(body: Any, version: str) -> str | None:
    """The ``invalid_request_error`` message for a malformed Messages body, else None.
    (``model`` is checked by the caller: required on the API, forbidden on Vertex.)"""
    if not isinstance(body, dict):
        return "There was an issue with your request body: it must be a JSON object."
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if message.get("content") in ("", []):
            return (
                f"messages.{i}: all messages must have non-empty content"
                " except for the optional final assistant message"
            )
    if version == VERSION_WITHOUT_SAMPLING:
        for name in SAMPLING_FIELDS:
            if name in body:
                return f"{name}: not supported with anthropic-version {VERSION_WITHOUT_SAMPLING}"
    return None


# ---- answers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Answer:
    """Everything needed to render one assistant message, stream or not. ``thinking`` is
    ``(text, signature)``; blocks are rendered thinking, text, then tool_use blocks."""

    model: str
    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    thinking: tuple[str, str] | None = None
    stop_reason: str = "end_turn"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    id: str = field(default_factory=new_message_id)

    @property
    def has_text_block(self) -> bool:
        return bool(self.text) or (self.thinking is None and not self.tool_uses)


def usage_json(answer: Answer, output_tokens: int | None = None) -> JsonObj:
    return {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_creation,
        "cache_read_input_tokens": answer.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": answer.cache_creation, "ephemeral_1h_input_tokens": 0},
        "output_tokens": answer.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def content_json(answer: Answer) -> list[JsonObj]:
    blocks: list[JsonObj] = []
    if answer.thinking is not None:
        blocks.append({"type": "thinking", "thinking": answer.thinking[0], "signature": answer.thinking[1]})
    if answer.has_text_block:
        blocks.append({"type": "text", "text": answer.text})
    for use in answer.tool_uses:
        blocks.append({"type": "tool_use", "id": use.id, "name": use.name, "input": dict(use.input)})
    return blocks


def message_json(answer: Answer) -> JsonObj:
    """A non-streaming ``message`` object."""
    return {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content_json(answer),
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": usage_json(answer),
    }


Event = tuple[str, JsonObj]


def _delta(index: int, delta: JsonObj) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def stream_events(answer: Answer) -> list[Event]:
    """The full named-event sequence of a streamed message.

    ``message_start`` (input-side usage, ``output_tokens: 1``); per block ``content_block_start``,
    deltas, ``content_block_stop``; one ``ping`` right after the first block starts;
    ``message_delta`` (stop reason, cumulative usage incl. the input side); ``message_stop``.
    Text and thinking arrive one word per delta; tool input as ``""`` then up to 3 fragments.
    So for a text-only answer, event ``k`` (k >= 3) is the (k-2)-th text delta.
    """
    start = message_json(answer) | {"content": [], "stop_reason": None, "usage": usage_json(answer, 1)}
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    blocks: list[tuple[JsonObj, list[JsonObj]]] = []
    if answer.thinking is not None:
        thinking, signature = answer.thinking
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(thinking)]
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if answer.has_text_block:
        deltas = [{"type": "text_delta", "text": piece} for piece in split_text(answer.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for use in answer.tool_uses:
        fragments = ["", *split_arguments(json.dumps(dict(use.input)), 3)]
        deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
        blocks.append(({"type": "tool_use", "id": use.id, "name": use.name, "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events.extend(_delta(index, d) for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = usage_json(answer)
    final_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    final_usage["output_tokens"] = answer.output_tokens
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def filler_answer(model: str, chunks: int) -> Answer:
    """A text answer with exactly ``chunks`` text deltas, for the partial-stream behaviours."""
    text = "".join(f"part{i} " for i in range(max(chunks, 1)))
    return Answer(model, text, output_tokens=count_words(text))


def partial_events(model: str, chunks: int) -> list[Event]:
    """``message_start``, the text block start, ``ping`` and ``chunks`` text deltas (none if 0)."""
    if chunks <= 0:
        return []
    return stream_events(filler_answer(model, chunks))[: 3 + chunks]


# ---- errors and models ----------------------------------------------------------------------------

ERROR_TYPES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (fake upstream)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    409: ("conflict_error", "Conflict"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
STATUS_OF_TYPE: Mapping[str, int] = {t: s for s, (t, _) in ERROR_TYPES.items()}


def error_json(error_type: str, message: str, request_id: str | None = None) -> JsonObj:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id or new_request_id(),
    }


def default_error(status: int, error_type: str | None = None, message: str | None = None) -> tuple[str, str]:
    """``(type, message)`` for an HTTP status, with the given overrides."""
    default_type, default_message = ERROR_TYPES.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
    )
    if error_type is not None and message is None:
        message = dict(ERROR_TYPES.values()).get(error_type, default_message)
    return error_type or default_type, message or default_message


def model_json(model: str) -> JsonObj:
    return {
        "type": "model",
        "id": model,
        "display_name": model.replace("-", " ").title(),
        "created_at": "2025-09-29T00:00:00Z",
        "lifecycle": "active",
    }


def models_json(models: Sequence[str]) -> JsonObj:
    data = [model_json(m) for m in models]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
