"""Pure builders of OpenAI wire payloads for the fake upstream (wire-formats.md §1 and §9).

Owns the exact JSON shapes: ``chat.completion``, the ``chat.completion.chunk`` sequence of a
stream (role chunk, reasoning/content/tool-call deltas, finish chunk, optional usage chunk),
error bodies, the models list and embeddings. No I/O: the server module writes these bytes.

Token counts are deterministic word counts (``str.split``), never a tokenizer:
prompt tokens = words in every message's text (string content or text parts) plus the words of
assistant tool-call arguments; completion tokens = words in content + reasoning + tool-call
names and arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SYSTEM_FINGERPRINT = "fp_fake0001"
DONE = b"data: [DONE]\n\n"

JsonObj = dict[str, Any]


def dumps(obj: Any) -> bytes:
    """Compact JSON, raw UTF-8 (non-ASCII is not escaped, as OpenAI sends it)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(obj: Any) -> bytes:
    """One unnamed SSE event carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def count_words(text: str) -> int:
    return len(text.split())


def message_text(content: Any) -> str:
    """Text of a message ``content``: the string itself, or its text parts joined with a space."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def prompt_tokens(messages: Sequence[Any]) -> int:
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += count_words(message_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                total += count_words(str(call.get("function", {}).get("arguments", "")))
    return total


def split_text(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` (each word keeps its trailing whitespace)."""
    return re.findall(r"\S+\s*|\s+", text)


def split_arguments(arguments: str, parts: int = 3) -> list[str]:
    """Cut JSON text at arbitrary points into up to ``parts`` non-empty fragments."""
    if not arguments:
        return []
    size = max(1, -(-len(arguments) // parts))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    """Everything needed to render one assistant reply, stream or not."""

    model: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))


def usage_json(answer: Answer) -> JsonObj:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": count_words(answer.reasoning or ""),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_json(answer: Answer) -> JsonObj:
    """A non-streaming ``chat.completion`` object."""
    message: JsonObj = {
        "role": "assistant",
        "content": answer.content if (answer.content or not answer.tool_calls) else None,
        "refusal": None,
        "annotations": [],
    }
    if answer.reasoning is not None:
        message[answer.reasoning_field] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
        "usage": usage_json(answer),
    }


def _chunk(answer: Answer, choices: list[JsonObj], include_usage: bool) -> JsonObj:
    obj: JsonObj = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if include_usage:
        obj["usage"] = None
    return obj


def _delta(answer: Answer, delta: JsonObj, include_usage: bool, finish: str | None = None) -> JsonObj:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _chunk(answer, [choice], include_usage)


def _open_call(index: int, call: ToolCall) -> JsonObj:
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }


def stream_chunks(answer: Answer, include_usage: bool) -> list[JsonObj]:
    """The full chunk sequence of a streamed reply, without ``[DONE]``.

    Order: role chunk; reasoning deltas; content deltas (one per word); for each tool call an
    opening delta (index, id, type, name, ``arguments: ""``) then argument fragments; a chunk
    with an empty delta and ``finish_reason``; with ``include_usage`` a ``choices: []`` chunk
    carrying ``usage``. A tool-only reply opens its first call inside the role chunk with
    ``content: null``, as OpenAI does. So for a text-only reply, element ``k`` (k >= 1) is the
    k-th content chunk.
    """
    chunks: list[JsonObj] = []
    calls = list(enumerate(answer.tool_calls))
    role: JsonObj = {"role": "assistant", "content": "", "refusal": None}
    if calls and not answer.content and answer.reasoning is None:
        role = {"role": "assistant", "content": None, "tool_calls": [_open_call(*calls[0])], "refusal": None}
    chunks.append(_delta(answer, role, include_usage))
    for piece in split_text(answer.reasoning or ""):
        chunks.append(_delta(answer, {answer.reasoning_field: piece}, include_usage))
    for piece in split_text(answer.content):
        chunks.append(_delta(answer, {"content": piece}, include_usage))
    for index, call in calls:
        if not (index == 0 and "tool_calls" in role):
            chunks.append(_delta(answer, {"tool_calls": [_open_call(index, call)]}, include_usage))
        for fragment in split_arguments(call.arguments):
            frag = {"index": index, "function": {"arguments": fragment}}
            chunks.append(_delta(answer, {"tool_calls": [frag]}, include_usage))
    chunks.append(_delta(answer, {}, include_usage, finish=answer.finish_reason))
    if include_usage:
        usage_chunk = _chunk(answer, [], include_usage)
        usage_chunk["usage"] = usage_json(answer)
        chunks.append(usage_chunk)
    return chunks


def error_json(message: str, type_: str, code: str | None = None, param: str | None = None) -> JsonObj:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# status → (type, code, message) used when a Fail() gives no body; see wire-formats.md §1 Errors.
ERROR_DEFAULTS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake upstream)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("invalid_request_error", "permission_denied", "You are not allowed to use this model."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    413: ("invalid_request_error", "request_too_large", "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def default_error(status: int, message: str | None = None, code: str | None = None) -> JsonObj:
    type_, default_code, default_message = ERROR_DEFAULTS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}")
    )
    return error_json(message or default_message, type_, code or default_code)


def models_json(models: Sequence[str]) -> JsonObj:
    return {"object": "list", "data": [model_json(m) for m in models]}


def model_json(model: str) -> JsonObj:
    return {"id": model, "object": "model", "created": 1686935002, "owned_by": "system"}


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic vector in [-1, 1): the same text always maps to the same vector."""
    out: list[float] = []
    for i in range(dimensions):
        digest = hashlib.sha256(f"{i}:{text}".encode()).digest()
        out.append(round(int.from_bytes(digest[:4], "big") / 2**31 - 1.0, 6))
    return out


def embedding_inputs(raw: Any) -> list[str]:
    """Normalise ``input`` (string, strings, token array, token arrays) to one text per item."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        return [" ".join(map(str, raw))]
    if isinstance(raw, list):
        return [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
    raise ValueError("'input' must be a string, an array of strings or token arrays")


def embeddings_json(model: str, inputs: Sequence[str], dimensions: int, encoding: str) -> JsonObj:
    data: list[JsonObj] = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_words(t) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
