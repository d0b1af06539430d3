"""OpenAI Chat Completions answers (wire-formats.md §1): ``decode_response`` reads an upstream's
``chat.completion`` into the IR, ``encode_response`` writes the IR as the ``chat.completion``
JSON the official SDK expects; ``decode_usage`` / ``encode_usage`` and ``finish_reason`` are shared
with the stream module.

Decoding (lenient where OpenAI-compatible servers differ, strict where the answer is unusable):
only choice ``index`` 0 is read (``encode_request`` refuses ``n > 1``); ``reasoning_content`` or
vLLM's ``reasoning`` becomes a ``Reasoning`` part first, then ``content`` (a string, or a list
whose text parts are read and whose other parts are kept as ``Opaque("openai", {"part": …})``),
then ``refusal`` as text, then the tool calls (``arguments`` given as an object by some servers is
serialised; a call without an ``id`` gets ``call_<n>``; untyped keys such as Gemini's
``extra_content`` ride in ``Opaque("openai", {"tool_call": id, "fields": …})``). The model
reported is ``options.client_model``. Not JSON, no choices or no message →
``UpstreamProtocolError``; an ``{"error": …}`` body → the classified ``UpstreamError``.

Finish reasons: OpenAI's values map to themselves, legacy ``function_call`` and Anthropic-style
names used by some compatible servers are translated, anything unknown is ``stop``; ``stop``
with tool calls present becomes ``tool_calls`` (Gemini's compatibility layer says ``stop``).
Usage: ``prompt_tokens_details.cached_tokens`` (or DeepSeek's ``prompt_cache_hit_tokens``) and
``completion_tokens_details.reasoning_tokens``; malformed counts read as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.dialects.base import DialectOptions
from unigate.dialects.openai_chat_errors import decode_error
from unigate.dialects.openai_chat_parse import DIALECT_NAME
from unigate.errors import UnsupportedFeature, UpstreamProtocolError
from unigate.ir import (
    ChatResponse,
    FinishReason,
    Message,
    Opaque,
    Part,
    Reasoning,
    Text,
    ToolCall,
    Usage,
)

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
    "function_call": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def finish_reason(value: object, has_tool_calls: bool) -> FinishReason | None:
    """An upstream ``finish_reason`` in the IR's vocabulary; ``None`` for null/absent."""
    if not isinstance(value, str) or not value:
        return None
    reason = FINISH_REASONS.get(value, "stop")
    return "tool_calls" if reason == "stop" and has_tool_calls else reason


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        return 0
    return int(min(value, 2**53))


def decode_usage(value: object) -> Usage | None:
    """OpenAI ``usage`` → ``Usage``; ``None`` when there is no usage object."""
    if not isinstance(value, Mapping):
        return None
    prompt_details = value.get("prompt_tokens_details")
    completion_details = value.get("completion_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else 0
    reasoning = _count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, Mapping) else 0
    return Usage(
        prompt_tokens=_count(value.get("prompt_tokens")),
        completion_tokens=_count(value.get("completion_tokens")),
        cached_tokens=cached or _count(value.get("prompt_cache_hit_tokens")),
        reasoning_tokens=reasoning,
    )


def encode_usage(usage: Usage) -> dict[str, Any]:
    """``Usage`` → OpenAI ``usage`` with both detail objects."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def decode_response(body: bytes, options: DialectOptions) -> ChatResponse:
    """A non-streamed ``chat.completion`` → ``ChatResponse`` (module docstring)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("upstream returned a body that is not JSON") from None
    first = data[0] if isinstance(data, list) and data else data
    if isinstance(first, dict) and first.get("error") is not None:
        raise decode_error(200, {}, body)
    if not isinstance(data, dict):
        raise UpstreamProtocolError("upstream returned JSON that is not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise UpstreamProtocolError("upstream returned no choices")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
    message = choice.get("message") if choice is not None else None
    if choice is None or not isinstance(message, dict):
        raise UpstreamProtocolError("upstream returned a choice without a message")
    parts = message_parts(message)
    has_calls = any(isinstance(part, ToolCall) for part in parts)
    created = data.get("created")
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=options.client_model,
        created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
        message=Message(role="assistant", parts=tuple(parts)),
        finish_reason=finish_reason(choice.get("finish_reason"), has_calls),
        usage=decode_usage(data.get("usage")),
    )


def message_parts(message: Mapping[str, Any]) -> list[Part]:
    """An assistant ``message`` (or a complete ``delta``) → IR parts, in IR order."""
    parts: list[Part] = []
    reasoning = _first_text(message, "reasoning_content", "reasoning")
    if reasoning:
        parts.append(Reasoning(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(Text(content))
    elif isinstance(content, list):
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
                parts.append(Text(item["text"]))
            elif isinstance(item, dict):
                parts.append(Opaque(DIALECT_NAME, {"part": item}))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for n, call in enumerate(calls):
            parts.extend(_tool_call(call, n))
    return parts


def _first_text(obj: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _tool_call(call: object, n: int) -> list[Part]:
    fn = call.get("function") if isinstance(call, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(call, dict) or not isinstance(fn, dict) or not isinstance(name, str) or not name:
        raise UpstreamProtocolError("upstream returned a tool call without a function name")
    given = call.get("id")
    call_id = given if isinstance(given, str) and given else f"call_{n}"
    parsed = ToolCall(id=call_id, name=name, arguments=arguments_text(fn.get("arguments")))
    fields = {k: v for k, v in call.items() if k not in ("id", "type", "function", "index") and v is not None}
    if fields:
        return [parsed, Opaque(DIALECT_NAME, {"tool_call": call_id, "fields": fields})]
    return [parsed]


def arguments_text(value: object) -> str:
    """Tool-call ``arguments`` as JSON text: a string verbatim, ``null`` as "", an object serialised."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def encode_response(resp: ChatResponse) -> dict[str, Any]:
    """``ChatResponse`` → OpenAI ``chat.completion`` JSON, as ``openai.types.chat.ChatCompletion``
    parses it. ``content`` is null when the answer is only tool calls; ``Reasoning`` goes to
    ``reasoning_content`` (DeepSeek's field); another provider's ``Opaque`` blocks (server-tool
    traces, citations) are not shown; ``Image``/``Audio`` output cannot be expressed (400). A
    missing finish reason is written as ``tool_calls`` or ``stop``."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    call_fields: dict[str, Mapping[str, Any]] = {}
    for part in resp.message.parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Reasoning):
            if not part.redacted:
                reasoning.append(part.text)
        elif isinstance(part, ToolCall):
            fn = {"name": part.name, "arguments": part.arguments}
            calls.append({"id": part.id, "type": "function", "function": fn})
        elif isinstance(part, Opaque):
            if part.dialect == DIALECT_NAME and "tool_call" in part.data:
                fields = part.data.get("fields")
                call_fields[str(part.data["tool_call"])] = fields if isinstance(fields, Mapping) else {}
        else:
            raise UnsupportedFeature(f"OpenAI chat answers cannot carry {type(part).__name__} output.")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [{**call, **call_fields.get(call["id"], {})} for call in calls]
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    out: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": resp.finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
    }
    if resp.usage is not None:
        out["usage"] = encode_usage(resp.usage)
    return out
