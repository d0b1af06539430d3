"""Golden fixtures of the Cohere v2 dialect, typed from wire-formats.md §7's documented examples.

Each fixture is inline (the documented request, response, both streams and the error body),
every Cohere payload is validated against the official ``cohere`` SDK types strictly (no key the
type does not declare, except the ``message-start`` lists §7 allows), and every stream is
re-split at every byte boundary: the same events or the same error.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from cohere.types import ChatMessageV2, ResponseFormatV2, Thinking, ToolV2
from cohere.v2.client import V2Client
from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse

from unigate.dialects import openai_chat
from unigate.dialects.base import DialectOptions
from unigate.dialects.cohere import DIALECT
from unigate.dialects.sse import SSEFramer
from unigate.errors import UpstreamError
from unigate.events import Event
from unigate.ir import ChatRequest

OPTIONS = DialectOptions(upstream_model="command-a-03-2025", client_model="cohere-alias")
REQUEST_KEYS = frozenset(inspect.signature(V2Client.chat_stream).parameters) - {"self", "request_options"}
STREAM_EVENT = pydantic.TypeAdapter(V2ChatStreamResponse)
START_EXTRAS = frozenset({"content", "tool_plan", "tool_calls", "citations"})  # §7: "allowed in the check"


# --------------------------------------------------------------------------- strict SDK checks


def assert_strict(obj: Any, where: str = "", allow: frozenset[str] = frozenset()) -> None:
    """No key anywhere in a parsed SDK object that its type does not declare."""
    if isinstance(obj, pydantic.BaseModel):
        extra = set(obj.model_extra or {}) - allow
        assert not extra, f"{where or type(obj).__name__}: unknown keys {extra}"
        for name in type(obj).model_fields:
            assert_strict(getattr(obj, name), f"{where}.{name}", allow)
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            assert_strict(item, f"{where}[{i}]", allow)


def check_request(body: Mapping[str, Any]) -> None:
    """A request body as ``cohere.ClientV2.chat(_stream)`` would send it: known keys only, and
    messages, tools, ``response_format`` and ``thinking`` valid for the SDK's types."""
    assert set(body) <= REQUEST_KEYS | {"stream"}, set(body) - REQUEST_KEYS
    for message in body["messages"]:
        assert_strict(pydantic.TypeAdapter(ChatMessageV2).validate_python(message), "message")
    for tool in body.get("tools", ()):
        assert_strict(ToolV2.model_validate(tool), "tool")
    if "response_format" in body:
        assert_strict(pydantic.TypeAdapter(ResponseFormatV2).validate_python(body["response_format"]))
    if "thinking" in body:
        assert_strict(Thinking.model_validate(body["thinking"]))
    assert body.get("tool_choice") in (None, "REQUIRED", "NONE")


def check_response(body: Mapping[str, Any]) -> None:
    assert_strict(V2ChatResponse.model_validate(body), "response")


def check_stream(raw: bytes) -> None:
    """Every ``data:`` of a Cohere stream parses as its SDK event type; ``event:`` = ``type``."""
    framer = SSEFramer()
    for frame in [*framer.feed(raw), *framer.close()]:
        if frame.data == "[DONE]":
            continue
        data = json.loads(frame.data)
        assert frame.event == data["type"]
        parsed = STREAM_EVENT.validate_python(data)
        assert_strict(parsed, data["type"], START_EXTRAS if data["type"] == "message-start" else frozenset())


# --------------------------------------------------------------------------- running the dialect


def jsonable(value: Any) -> Any:
    """IR dataclasses → plain JSON, each tagged with its class name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def error_json(error: UpstreamError) -> dict[str, Any]:
    return {
        "class": type(error).__name__,
        "status": error.http_status(),
        "message": error.message,
        "retry_after": error.retry_after,
    }


def run_stream(chunks: Iterable[bytes], options: DialectOptions = OPTIONS) -> list[Any]:
    """Frame and decode ``chunks`` as the relay does; a raised error ends the list as ``raises``."""
    framer = DIALECT.framer()
    decoder = DIALECT.stream_decoder(options)
    events: list[Event] = []
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                events.extend(decoder.feed(frame))
        for frame in framer.close():
            events.extend(decoder.feed(frame))
        events.extend(decoder.close())
    except UpstreamError as exc:
        return [*jsonable(events), {"type": "raises", **error_json(exc)}]
    return list(jsonable(events))


def every_split(raw: bytes) -> list[Any]:
    """Decode ``raw`` whole, cut in two at every byte, and one byte at a time: all must agree."""
    whole = run_stream([raw])
    for cut in range(len(raw) + 1):
        assert run_stream([raw[:cut], raw[cut:]]) == whole, f"split at byte {cut}"
    assert run_stream([raw[i : i + 1] for i in range(len(raw))]) == whole
    return whole


def sse(*events: Mapping[str, Any], done: bool = True) -> bytes:
    """Cohere's framing: ``event: <type>`` then ``data: <json>``, blank line; ``data: [DONE]`` last."""
    out = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
        for e in events
    )
    return out + (b"data: [DONE]\n\n" if done else b"")


def parse(body: Mapping[str, Any]) -> ChatRequest:
    return openai_chat.parse_request(body)


# --------------------------------------------------------------------------- §7 request

WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_REQUEST: dict[str, Any] = {
    "model": "cohere-alias",
    "stream": True,
    "messages": [
        {"role": "system", "content": "You are a terse travel assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in the two cities on this postcard?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "reasoning_content": "I will look up both cities.",
            "tool_calls": [
                {
                    "id": "get_weather_ab12",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "get_weather_cd34",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "get_weather_ab12", "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": "get_weather_cd34", "content": "lookup failed"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER_PARAMS,
            },
        }
    ],
    "max_tokens": 512,
    "temperature": 0.3,
    "top_p": 0.9,
    "top_k": 40,
    "stop": ["END"],
}
EXPECTED_UPSTREAM_REQUEST: dict[str, Any] = {
    "model": "command-a-03-2025",
    "messages": [
        {"role": "system", "content": "You are a terse travel assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in the two cities on this postcard?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "tool_plan": "I will look up both cities.",
            "tool_calls": OPENAI_REQUEST["messages"][2]["tool_calls"],
        },
        {"role": "tool", "tool_call_id": "get_weather_ab12", "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": "get_weather_cd34", "content": "lookup failed"},
    ],
    "tools": OPENAI_REQUEST["tools"],
    "max_tokens": 512,
    "temperature": 0.3,
    "p": 0.9,
    "k": 40,
    "stop_sequences": ["END"],
    "stream": True,
}


def test_the_documented_request() -> None:
    body = DIALECT.encode_request(parse(OPENAI_REQUEST), OPTIONS)
    assert body == EXPECTED_UPSTREAM_REQUEST
    check_request(body)
    assert json.loads(json.dumps(body)) == body  # plain JSON, nothing else


# --------------------------------------------------------------------------- §7 responses

TOOL_RESPONSE: dict[str, Any] = {
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
    "finish_reason": "TOOL_CALL",
    "message": {
        "role": "assistant",
        "tool_plan": "I will look up both cities.",
        "tool_calls": EXPECTED_UPSTREAM_REQUEST["messages"][2]["tool_calls"],
    },
    "usage": {
        "billed_units": {"input_tokens": 37, "output_tokens": 21},
        "tokens": {"input_tokens": 1024, "output_tokens": 60},
        "cached_tokens": 0,
    },
}
TEXT_RESPONSE: dict[str, Any] = {
    "id": "5a0ef7e3-0000-4d6e-9b6a-2f1d5c3e4b21",
    "finish_reason": "COMPLETE",
    "message": {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Mild, so say so."}, {"type": "text", "text": "Sunny and mild."}],
        "citations": [{"start": 0, "end": 5, "text": "Sunny", "sources": [], "type": "TEXT_CONTENT"}],
    },
    "usage": {
        "billed_units": {"input_tokens": 9, "output_tokens": 4},
        "tokens": {"input_tokens": 205, "output_tokens": 11},
        "cached_tokens": 128,
    },
}


def test_the_documented_tool_call_response() -> None:
    check_response(TOOL_RESPONSE)
    response = DIALECT.decode_response(json.dumps(TOOL_RESPONSE).encode(), OPTIONS)
    assert jsonable(response) == {
        "type": "ChatResponse",
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
        "model": "cohere-alias",
        "created": 0,
        "message": {
            "type": "Message",
            "role": "assistant",
            "parts": [
                {"type": "Reasoning", "text": "I will look up both cities.", "signature": None, "redacted": False},
                {"type": "ToolCall", "id": "get_weather_ab12", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "ToolCall", "id": "get_weather_cd34", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            ],
            "name": None,
        },
        "finish_reason": "tool_calls",
        # tokens, not billed_units: what the model read and wrote
        "usage": {
            "type": "Usage",
            "prompt_tokens": 1024,
            "completion_tokens": 60,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "estimated": False,
        },
    }


def test_a_text_response_through_to_openai_json() -> None:
    """Thinking → ``reasoning_content``, citations dropped, cached tokens kept."""
    check_response(TEXT_RESPONSE)
    response = DIALECT.decode_response(json.dumps(TEXT_RESPONSE).encode(), OPTIONS)
    openai = openai_chat.encode_response(response)
    assert openai["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Sunny and mild.",
                "refusal": None,
                "reasoning_content": "Mild, so say so.",
            },
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert openai["usage"]["prompt_tokens"] == 205 and openai["usage"]["completion_tokens"] == 11
    assert openai["usage"]["prompt_tokens_details"]["cached_tokens"] == 128
    assert "citations" not in json.dumps(openai)


# --------------------------------------------------------------------------- §7 streams

START_1 = {
    "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000001",
    "type": "message-start",
    "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
}
TEXT_STREAM = sse(
    START_1,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Sunny"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " and mild."}}}},
    {"type": "content-end", "index": 0},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "COMPLETE",
            "usage": {
                "billed_units": {"input_tokens": 9, "output_tokens": 4},
                "tokens": {"input_tokens": 205, "output_tokens": 4},
                "cached_tokens": 0,
            },
        },
    },
)


def call_start(index: int, call_id: str) -> dict[str, Any]:
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    return {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": call}}}


def call_delta(index: int, arguments: str) -> dict[str, Any]:
    delta = {"message": {"tool_calls": {"function": {"arguments": arguments}}}}
    return {"type": "tool-call-delta", "index": index, "delta": delta}


TOOL_STREAM = sse(
    {**START_1, "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000002"},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look up both cities."}}},
    call_start(0, "get_weather_ab12"),
    call_delta(0, '{"city":'),
    call_delta(0, '"Paris"}'),
    {"type": "tool-call-end", "index": 0},
    call_start(1, "get_weather_cd34"),
    call_delta(1, '{"city":"Oslo"}'),
    {"type": "tool-call-end", "index": 1},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "TOOL_CALL",
            "usage": {
                "billed_units": {"input_tokens": 37, "output_tokens": 21},
                "tokens": {"input_tokens": 1024, "output_tokens": 60},
                "cached_tokens": 0,
            },
        },
    },
)


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    fields = {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached}
    return {"type": "UsageEvent", "usage": {"type": "Usage", **fields, "reasoning_tokens": 0, "estimated": False}}


def test_the_documented_text_stream() -> None:
    check_stream(TEXT_STREAM)
    assert every_split(TEXT_STREAM) == [
        {"type": "Start", "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000001", "model": "cohere-alias"},
        {"type": "TextDelta", "text": "Sunny"},
        {"type": "TextDelta", "text": " and mild."},
        usage(205, 4),
        {"type": "Finish", "reason": "stop"},
    ]


def test_the_documented_parallel_tool_stream() -> None:
    check_stream(TOOL_STREAM)
    assert every_split(TOOL_STREAM) == [
        {"type": "Start", "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000002", "model": "cohere-alias"},
        {"type": "ReasoningDelta", "text": "I will look up both cities.", "signature": None},
        {"type": "ToolCallStart", "index": 0, "id": "get_weather_ab12", "name": "get_weather"},
        {"type": "ToolCallDelta", "index": 0, "arguments": '{"city":'},
        {"type": "ToolCallDelta", "index": 0, "arguments": '"Paris"}'},
        {"type": "ToolCallStart", "index": 1, "id": "get_weather_cd34", "name": "get_weather"},
        {"type": "ToolCallDelta", "index": 1, "arguments": '{"city":"Oslo"}'},
        usage(1024, 60),
        {"type": "Finish", "reason": "tool_calls"},
    ]


THINKING_STREAM = sse(
    START_1,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Six times seven."}}}},
    {"type": "content-end", "index": 0},
    {"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "42"}}}},
    {"type": "content-end", "index": 1},
    {
        "type": "citation-start",
        "index": 0,
        "delta": {"message": {"citations": {"start": 0, "end": 2, "text": "42", "sources": []}}},
    },
    {"type": "citation-end", "index": 0},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "MAX_TOKENS",
            "usage": {"tokens": {"input_tokens": 7, "output_tokens": 9}, "cached_tokens": 3},
        },
    },
    done=False,
)


def test_a_thinking_stream_with_citations_and_no_done_line() -> None:
    check_stream(THINKING_STREAM)
    assert every_split(THINKING_STREAM) == [
        {"type": "Start", "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000001", "model": "cohere-alias"},
        {"type": "ReasoningDelta", "text": "Six times seven.", "signature": None},
        {"type": "TextDelta", "text": "42"},
        usage(7, 9, 3),
        {"type": "Finish", "reason": "length"},
    ]


ERROR_STREAM = sse(
    START_1,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Sun"}}}},
    {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}},
)


def test_a_stream_that_ends_in_error_raises_after_its_content() -> None:
    check_stream(ERROR_STREAM)
    assert every_split(ERROR_STREAM) == [
        {"type": "Start", "id": "0f1c2d3e-aaaa-bbbb-cccc-000000000001", "model": "cohere-alias"},
        {"type": "TextDelta", "text": "Sun"},
        {
            "type": "raises",
            "class": "UpstreamUnavailable",
            "status": 502,
            "message": "internal server error",
            "retry_after": None,
        },
    ]


def test_a_truncated_stream_is_a_protocol_error_at_every_cut() -> None:
    cut_at = TEXT_STREAM.index(b"event: message-end")
    truncated = TEXT_STREAM[:cut_at]
    result = every_split(truncated)
    assert result[-1]["class"] == "UpstreamProtocolError"
    assert result[-1]["message"] == "Cohere stream ended before message-end"


# --------------------------------------------------------------------------- §7 error body

ERROR_BODY = {
    "id": "7a1e0b6c-0000-4c3e-9f00-3d2a1b0c9e8f",
    "message": "You are using a Trial key, which is limited to 20 API calls / minute.",
}


def test_the_documented_rate_limit_error() -> None:
    error = DIALECT.decode_error(429, {"Retry-After": "7"}, json.dumps(ERROR_BODY).encode())
    assert error_json(error) == {
        "class": "UpstreamRateLimited",
        "status": 429,
        "message": ERROR_BODY["message"],
        "retry_after": 7.0,
    }
    assert error.headers() == {"retry-after": "7"}
