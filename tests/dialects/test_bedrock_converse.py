"""Golden tests of the Bedrock Converse dialect, built from wire-formats.md §6.2 and §6.4.

Every encoded body is also validated against botocore's own ``ConverseRequest`` shape (unknown keys,
types, required members: ``check_converse_body``); every stream is re-split at every byte boundary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.bedrock_eventstream import event_frame, exception_frame
from tests.fakes.bedrock_wire import check_converse_body
from unigate.dialects import openai_chat
from unigate.dialects.base import DialectOptions
from unigate.dialects.bedrock_converse import DIALECT
from unigate.dialects.bedrock_converse_request import tool_use_id
from unigate.errors import (
    BadRequest,
    ContextLengthExceeded,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.events import Event, Finish, ReasoningDelta, Start, TextDelta, ToolCallDelta, ToolCallStart, UsageEvent
from unigate.ir import ChatRequest, Image, Message, Reasoning, Text, ToolCall, ToolResult, Usage

MODEL = "amazon.nova-pro-v1:0"
OPTIONS = DialectOptions(upstream_model=MODEL, client_model="nova")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
    }
}


def encode(body: dict[str, Any], options: DialectOptions = OPTIONS) -> dict[str, Any]:
    request = openai_chat.parse_request({"model": "nova", **body})
    encoded = DIALECT.encode_request(request, options)
    assert check_converse_body(json.loads(json.dumps(encoded)), MODEL) is None, encoded
    return encoded


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ---- requests ----------------------------------------------------------------------------------------------


def test_documented_request() -> None:
    """wire-formats.md §6.2's ConverseRequest, from the IR (signed reasoning cannot come from an OpenAI
    body). Difference by decision: tool results are sent as ``text`` (what the client gave), not ``json``."""
    messages = (
        Message("system", (Text("You are a terse travel assistant."),)),
        Message(
            "user",
            (Text("Weather in the two cities on this postcard?"), Image("data:image/png;base64,iVBORw0KGgo=")),
        ),
        Message(
            "assistant",
            (
                Reasoning("Two lookups.", signature="EqQBCkYFakeSig=="),
                ToolCall("tooluse_Pa1", "get_weather", '{"city": "Paris"}'),
                ToolCall("tooluse_Os2", "get_weather", '{"city": "Oslo"}'),
            ),
        ),
        Message("tool", (ToolResult("tooluse_Pa1", (Text('{"temp_c": 18}'),)),)),
        Message("tool", (ToolResult("tooluse_Os2", (Text("lookup failed"),), is_error=True),)),
    )
    tools = openai_chat.parse_request({"model": "m", "messages": user("x"), "tools": [WEATHER]}).tools
    request = ChatRequest(
        model="nova",
        messages=messages,
        max_tokens=1024,
        temperature=0.4,
        top_p=0.9,
        stop=("END",),
        tools=tools,
        tool_choice="auto",
        extra={"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}}},
    )
    body = DIALECT.encode_request(request, OPTIONS)
    assert body == {
        "system": [{"text": "You are a terse travel assistant."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Weather in the two cities on this postcard?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Two lookups.", "signature": "EqQBCkYFakeSig=="}}},
                    {"toolUse": {"toolUseId": "tooluse_Pa1", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_Os2", "name": "get_weather", "input": {"city": "Oslo"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "tooluse_Pa1", "content": [{"text": '{"temp_c": 18}'}]}},
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_Os2",
                            "content": [{"text": "lookup failed"}],
                            "status": "error",
                        }
                    },
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 1024, "temperature": 0.4, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}},
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    }
    assert check_converse_body(body, MODEL) is None


def test_system_turns_and_merging() -> None:
    body = encode(
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "one"},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
                {"role": "user", "content": "four"},
            ],
            "max_tokens": 50,
            "user": "someone",
        }
    )
    assert body == {
        "system": [{"text": "Be terse."}, {"text": "Answer in French."}],
        "messages": [
            {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
            {"role": "assistant", "content": [{"text": "three"}]},
            {"role": "user", "content": [{"text": "four"}]},
        ],
        "inferenceConfig": {"maxTokens": 50},
    }


@pytest.mark.parametrize(
    ("choice", "native"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, native: Any) -> None:
    body = encode({"messages": user("x"), "tools": [WEATHER], **({"tool_choice": choice} if choice else {})})
    expected: dict[str, Any] = {"tools": [WEATHER_SPEC]}
    if native is not None:
        expected["toolChoice"] = native
    assert body["toolConfig"] == expected


def test_tool_choice_none_leaves_the_tools_out_but_not_when_history_needs_them() -> None:
    assert "toolConfig" not in encode({"messages": user("x"), "tools": [WEATHER], "tool_choice": "none"})
    history = [
        *user("weather?"),
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    with pytest.raises(UnsupportedFeature) as info:
        encode({"messages": history, "tools": [WEATHER], "tool_choice": "none"})
    assert info.value.param == "tool_choice"


def test_tool_ids_outside_the_pattern_are_digested_consistently() -> None:
    odd = "call/with spaces and a very long tail that goes past sixty-four characters, surely"
    history = [
        *user("weather?"),
        {
            "role": "assistant",
            "tool_calls": [{"id": odd, "type": "function", "function": {"name": "get_weather", "arguments": ""}}],
        },
        {"role": "tool", "tool_call_id": odd, "content": ""},
    ]
    body = encode({"messages": history, "tools": [WEATHER]})
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] == tool_use_id(odd) != odd
    assert use["input"] == {} and result["content"] == []
    assert tool_use_id("tooluse_Pa1") == "tooluse_Pa1"


def test_structured_output_effort_tier_and_native_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = encode(
        {
            "messages": user("x"),
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
            "reasoning_effort": "high",
            "service_tier": "flex",
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
            "stream_options": {"include_usage": True},
            "store": False,
            "frequency_penalty": 0,
        }
    )
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": json.dumps(schema).replace(" ", ""), "name": "answer"}},
        },
        "effort": "high",
    }
    assert json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]) == schema
    assert body["serviceTier"] == {"type": "flex"}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}
    assert "service_tier" not in body and "store" not in body


def test_audio_s3_images_and_cache_points() -> None:
    content = [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.JPG"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    body = encode({"messages": [{"role": "user", "content": content}]})
    assert body["messages"][0]["content"] == [
        {"text": "long context"},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}},
        {"audio": {"format": "wav", "source": {"bytes": "UklGRg=="}}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"seed": 7}, "seed"),
        ({"top_k": 5}, "top_k"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"reasoning_effort": "minimal"}, "reasoning_effort"),
        ({"service_tier": "scale"}, "service_tier"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}],
                    }
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "xyz"}}],
                    }
                ]
            },
            "messages",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        encode({"messages": user("x"), **body})
    assert info.value.param == param
    assert len(info.value.message) > 20


def test_bad_requests() -> None:
    with pytest.raises(BadRequest):
        encode({"messages": [{"role": "system", "content": "only a system prompt"}]})
    with pytest.raises(BadRequest):
        encode({"messages": user("x"), "tool_choice": "required"})


# ---- responses ---------------------------------------------------------------------------------------------


DOCUMENTED_RESPONSE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"text": "Checking both."},
                {"toolUse": {"toolUseId": "tooluse_Pa1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_Os2", "name": "get_weather", "input": {"city": "Oslo"}}},
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {
        "inputTokens": 412,
        "outputTokens": 88,
        "totalTokens": 500,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 0,
    },
    "metrics": {"latencyMs": 1320},
}


def test_documented_response() -> None:
    answer = DIALECT.decode_response(json.dumps(DOCUMENTED_RESPONSE).encode(), OPTIONS)
    assert answer.message.parts == (
        Text("Checking both."),
        ToolCall("tooluse_Pa1", "get_weather", '{"city":"Paris"}'),
        ToolCall("tooluse_Os2", "get_weather", '{"city":"Oslo"}'),
    )
    assert answer.finish_reason == "tool_calls"
    assert answer.usage == Usage(prompt_tokens=412, completion_tokens=88)
    assert (answer.id, answer.model) == ("", "nova")


def test_reasoning_and_other_blocks_survive() -> None:
    content = [
        {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "sig"}}},
        {"reasoningContent": {"redactedContent": "c2VjcmV0"}},
        {"citationsContent": {"content": [{"text": "x"}], "citations": []}},
        {"text": "42"},
    ]
    data = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": "end_turn"}
    parts = DIALECT.decode_response(json.dumps(data).encode(), OPTIONS).message.parts
    assert parts[0] == Reasoning("Hmm.", signature="sig")
    assert parts[1] == Reasoning("", signature="c2VjcmV0", redacted=True)
    assert parts[3] == Text("42")
    # The opaque citations block goes back verbatim in a later assistant turn.
    request = ChatRequest(model="nova", messages=(Message("user", (Text("q"),)), Message("assistant", parts)))
    sent = DIALECT.encode_request(request, OPTIONS)["messages"][1]["content"]
    assert sent[0] == {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "sig"}}}
    assert sent[1] == {"reasoningContent": {"redactedContent": "c2VjcmV0"}}
    assert sent[2] == content[2] and sent[3] == {"text": "42"}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_tool_use", "stop"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop}
    assert DIALECT.decode_response(json.dumps(data).encode(), OPTIONS).finish_reason == finish


def test_usage_counts_cached_input_once() -> None:
    usage = {
        "inputTokens": 12,
        "outputTokens": 5,
        "totalTokens": 25,
        "cacheReadInputTokens": 8,
        "cacheWriteInputTokens": 0,
    }
    data = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": "end_turn", "usage": usage}
    assert DIALECT.decode_response(json.dumps(data).encode(), OPTIONS).usage == Usage(20, 5, cached_tokens=8)
    without_total = {k: v for k, v in usage.items() if k != "totalTokens"}
    data["usage"] = without_total
    assert DIALECT.decode_response(json.dumps(data).encode(), OPTIONS).usage == Usage(20, 5, cached_tokens=8)


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"output": {}}', b'{"output":{"message":{"content":[{"toolUse":{}}]}}}']
)
def test_unusable_responses(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        DIALECT.decode_response(body, OPTIONS)


# ---- streams -----------------------------------------------------------------------------------------------

TEXT_STREAM = [
    ("messageStart", {"p": "abcdefghijk", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Sunny"}, "p": "abcdefghij"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " and mild."}, "p": "abcdefghijklmnopqrs"}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefgh"}),
    ("messageStop", {"p": "abcdefghijklm", "stopReason": "end_turn"}),
    (
        "metadata",
        {"metrics": {"latencyMs": 412}, "p": "abc", "usage": {"inputTokens": 19, "outputTokens": 4, "totalTokens": 23}},
    ),
]
TOOL_STREAM = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Two lookups."}}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "EqQBCkYFakeSig=="}}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    (
        "contentBlockStart",
        {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_Pa1", "name": "get_weather"}}},
    ),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": "Par'}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'is"}'}}}),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    (
        "contentBlockStart",
        {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_Os2", "name": "get_weather"}}},
    ),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"city": "Oslo"}'}}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("messageStop", {"stopReason": "tool_use"}),
    (
        "metadata",
        {
            "metrics": {"latencyMs": 1290},
            "usage": {
                "cacheReadInputTokens": 0,
                "cacheWriteInputTokens": 0,
                "inputTokens": 412,
                "outputTokens": 88,
                "totalTokens": 500,
            },
        },
    ),
]


def stream_bytes(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(event_frame(name, json.dumps(obj).encode()) for name, obj in events)


def decode_stream(data: bytes, cut: int | None = None) -> list[Event]:
    framer, decoder = DIALECT.framer(), DIALECT.stream_decoder(OPTIONS)
    pieces = [data] if cut is None else [data[:cut], data[cut:]]
    out: list[Event] = []
    for piece in pieces:
        for event in framer.feed(piece):
            out.extend(decoder.feed(event))
    for event in framer.close():
        out.extend(decoder.feed(event))
    return [*out, *decoder.close()]


def test_documented_text_stream_at_every_split() -> None:
    data = stream_bytes(TEXT_STREAM)
    expected = [
        Start("", "nova"),
        TextDelta("Sunny"),
        TextDelta(" and mild."),
        UsageEvent(Usage(19, 4)),
        Finish("stop"),
    ]
    for cut in range(len(data) + 1):
        assert decode_stream(data, cut) == expected, cut


def test_documented_reasoning_and_tools_stream() -> None:
    data = stream_bytes(TOOL_STREAM)
    expected = [
        Start("", "nova"),
        ReasoningDelta("Two lookups."),
        ReasoningDelta("", signature="EqQBCkYFakeSig=="),
        ToolCallStart(0, "tooluse_Pa1", "get_weather"),
        ToolCallDelta(0, '{"city": "Par'),
        ToolCallDelta(0, 'is"}'),
        ToolCallStart(1, "tooluse_Os2", "get_weather"),
        ToolCallDelta(1, '{"city": "Oslo"}'),
        UsageEvent(Usage(412, 88)),
        Finish("tool_calls"),
    ]
    for cut in range(0, len(data) + 1, 3):
        assert decode_stream(data, cut) == expected, cut


@pytest.mark.parametrize("stop_at", [3, 5])  # after content, and after messageStop (no metadata)
def test_a_stream_cut_before_metadata_is_truncated(stop_at: int) -> None:
    with pytest.raises(UpstreamProtocolError, match="metadata"):
        decode_stream(stream_bytes(TEXT_STREAM[:stop_at]))


def test_broken_streams() -> None:
    with pytest.raises(UpstreamProtocolError, match="before messageStart"):
        decode_stream(stream_bytes(TEXT_STREAM[1:]))
    text_on_tool = [
        TOOL_STREAM[0],
        TOOL_STREAM[4],
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "x"}}),
    ]
    with pytest.raises(UpstreamProtocolError, match="text delta on a tool block"):
        decode_stream(stream_bytes(text_on_tool))
    orphan = [TOOL_STREAM[0], TOOL_STREAM[5]]
    with pytest.raises(UpstreamProtocolError, match="before its contentBlockStart"):
        decode_stream(stream_bytes(orphan))


@pytest.mark.parametrize(
    ("exception", "cls"),
    [
        ("throttlingException", UpstreamRateLimited),
        ("modelStreamErrorException", UpstreamUnavailable),
        ("internalServerException", UpstreamUnavailable),
        ("serviceUnavailableException", UpstreamUnavailable),
        ("validationException", UpstreamRequestError),
        ("modelTimeoutException", UpstreamTimeout),
    ],
)
def test_in_stream_exceptions_raise_where_they_occur(exception: str, cls: type[UpstreamError]) -> None:
    payload = {"message": "Too many tokens", "originalStatusCode": 500, "originalMessage": "boom"}
    data = stream_bytes(TEXT_STREAM[:2]) + exception_frame(exception, json.dumps(payload).encode())
    framer, decoder = DIALECT.framer(), DIALECT.stream_decoder(OPTIONS)
    first, second, third = framer.feed(data)
    assert decoder.feed(first) == [Start("", "nova")] and decoder.feed(second) == [TextDelta("Sunny")]
    with pytest.raises(cls) as info:
        decoder.feed(third)
    assert "Too many tokens" in info.value.message
    if exception == "modelStreamErrorException":
        assert "boom" in info.value.message


# ---- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "message", "cls"),
    [
        (400, "ValidationException", "Malformed input request", UpstreamRequestError),
        (400, "ValidationException", "Input is too long for requested model.", ContextLengthExceeded),
        (400, "ServiceQuotaExceededException", "quota", UpstreamAuthError),
        (403, "AccessDeniedException", "You don't have access to the model", UpstreamAuthError),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            UpstreamAuthError,
        ),
        (404, "ResourceNotFoundException", "model not found", UpstreamRequestError),
        (408, "ModelTimeoutException", "slow", UpstreamTimeout),
        (424, "ModelErrorException", "model failed", UpstreamUnavailable),
        (429, "ThrottlingException", "Too many requests, please wait before trying again.", UpstreamRateLimited),
        (429, "ModelNotReadyException", "loading", UpstreamUnavailable),
        (500, "InternalServerException", "oops", UpstreamUnavailable),
        (503, "ServiceUnavailableException", "busy", UpstreamUnavailable),
        (502, "SomethingNewException", "new", UpstreamUnavailable),
    ],
)
def test_errors_by_header(status: int, name: str, message: str, cls: type[UpstreamError]) -> None:
    headers = {"X-Amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    err = DIALECT.decode_error(status, headers, json.dumps({"message": message}).encode())
    assert type(err) is cls
    assert (err.message, err.upstream_status, err.code) == (message, status, name)


def test_errors_by_body_type_and_without_body() -> None:
    body = json.dumps({"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow down"}).encode()
    err = DIALECT.decode_error(429, {"retry-after": "3"}, body)
    assert isinstance(err, UpstreamRateLimited) and err.message == "slow down" and err.retry_after == 3.0
    html = DIALECT.decode_error(502, {}, b"<html>bad gateway</html>")
    assert isinstance(html, UpstreamUnavailable) and "bad gateway" in html.message
    assert isinstance(DIALECT.decode_error(429, {}, b""), UpstreamRateLimited)


def test_error_messages_are_redacted() -> None:
    leaked = "The security token AKIAIOSFODNN7EXAMPLE is invalid"
    err = DIALECT.decode_error(
        403, {"x-amzn-ErrorType": "UnrecognizedClientException"}, json.dumps({"message": leaked}).encode()
    )
    assert "AKIAIOSFODNN7EXAMPLE" not in err.message
