"""Golden tests of Claude on Bedrock's InvokeModel (wire-formats.md §6.1): the Bedrock form of the
Anthropic body, the ``chunk``-framed stream (re-split at every byte boundary) and Bedrock's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.anthropic_wire import Answer, ToolUse, stream_events
from tests.fakes.bedrock_eventstream import exception_frame
from tests.fakes.bedrock_wire import check_claude_body, invoke_frames
from unigate.dialects import anthropic, openai_chat
from unigate.dialects.base import DialectOptions
from unigate.dialects.bedrock_invoke import DIALECT
from unigate.dialects.sse import SSEFramer
from unigate.errors import UnsupportedFeature, UpstreamRateLimited, UpstreamRequestError, UpstreamUnavailable
from unigate.events import Event

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPTIONS = DialectOptions(upstream_model=MODEL, client_model="claude")


def encode(body: dict[str, Any], options: DialectOptions = OPTIONS) -> dict[str, Any]:
    encoded = DIALECT.encode_request(openai_chat.parse_request({"model": "claude", **body}), options)
    assert check_claude_body(encoded) is None
    return encoded


def test_documented_body() -> None:
    """wire-formats.md §6.1's InvokeModel body, from the OpenAI request that means it."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    body = encode(
        {
            "messages": [
                {"role": "system", "content": "You are a terse travel assistant."},
                {"role": "user", "content": "Weather in Paris and Oslo?"},
            ],
            "max_tokens": 1024,
            "tools": [tool],
            "tool_choice": "auto",
            "stream": True,
        }
    )
    assert body == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are a terse travel assistant."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]}],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": tool["function"]["parameters"],  # type: ignore[index]
            }
        ],
        "tool_choice": {"type": "auto"},
    }
    assert next(iter(body)) == "anthropic_version"


def test_betas_user_and_the_anthropic_forms_are_unchanged() -> None:
    options = DialectOptions(MODEL, "claude", settings={"anthropic_beta": ("context-1m-2025-08-07",)})
    body = encode({"messages": [{"role": "user", "content": "hi"}], "user": "u-1"}, options)
    assert body["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert "metadata" not in body  # Bedrock's schema has none; user does not change the answer
    request = openai_chat.parse_request({"model": "c", "messages": [{"role": "user", "content": "hi"}], "user": "u"})
    assert anthropic.DIALECT.encode_request(request, OPTIONS)["metadata"] == {"user_id": "u"}
    assert anthropic.VERTEX_DIALECT.encode_request(request, OPTIONS)["stream"] is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/c.png"}}]}
                ]
            },
            "messages",
        ),
        ({"service_tier": "auto"}, "service_tier"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
def test_refusals(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        encode({"messages": [{"role": "user", "content": "hi"}], **body})
    assert info.value.param == param


def test_image_urls_inside_tool_results_are_refused_too() -> None:
    history = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {
            "role": "tool",
            "tool_call_id": "t1",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
        },
    ]
    request = openai_chat.parse_request({"model": "c", "messages": history})
    with pytest.raises(UnsupportedFeature):
        DIALECT.encode_request(request, OPTIONS)


def test_non_streamed_answer_is_an_anthropic_message() -> None:
    message = {
        "id": "msg_bdrk_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 19, "output_tokens": 4},
    }
    answer = DIALECT.decode_response(json.dumps(message).encode(), OPTIONS)
    assert (answer.id, answer.finish_reason, answer.usage and answer.usage.prompt_tokens) == ("msg_bdrk_01", "stop", 19)


def bedrock_events(data: bytes, cut: int | None = None) -> list[Event]:
    framer, decoder = DIALECT.framer(), DIALECT.stream_decoder(OPTIONS)
    out: list[Event] = []
    for piece in [data] if cut is None else [data[:cut], data[cut:]]:
        for event in framer.feed(piece):
            out.extend(decoder.feed(event))
    for event in framer.close():
        out.extend(decoder.feed(event))
    return [*out, *decoder.close()]


def sse_events(answer: Answer) -> list[Event]:
    """The same answer through Anthropic's own SSE framing and decoder."""
    raw = b"".join(
        b"event: " + name.encode() + b"\ndata: " + json.dumps(obj).encode() + b"\n\n"
        for name, obj in stream_events(answer)
    )
    framer, decoder = SSEFramer(), anthropic.DIALECT.stream_decoder(OPTIONS)
    out = [e for ev in framer.feed(raw) for e in decoder.feed(ev)]
    return [*out, *decoder.close()]


def test_chunk_stream_decodes_like_anthropic_sse_at_every_split() -> None:
    answer = Answer(
        "claude-sonnet-4-5",
        "Checking.",
        (ToolUse("toolu_01", "get_weather", {"city": "Paris"}),),
        thinking=("Two lookups.", "EqQBsig=="),
        stop_reason="tool_use",
        input_tokens=12,
        output_tokens=30,
        cache_read=8,
    )
    data = b"".join(invoke_frames(stream_events(answer), answer))
    expected = sse_events(answer)
    assert bedrock_events(data) == expected
    for cut in range(len(data) + 1):
        assert bedrock_events(data, cut) == expected, cut


@pytest.mark.parametrize(
    ("exception", "cls"),
    [
        ("throttlingException", UpstreamRateLimited),
        ("modelStreamErrorException", UpstreamUnavailable),
        ("validationException", UpstreamRequestError),
    ],
)
def test_in_stream_exceptions(exception: str, cls: type[Exception]) -> None:
    answer = Answer("claude", "part0 part1 ")
    data = b"".join(invoke_frames(stream_events(answer)[:4])) + exception_frame(
        exception, b'{"message":"Too many tokens, please wait before trying again."}'
    )
    with pytest.raises(cls, match="Too many tokens"):
        bedrock_events(data)


def test_errors_are_bedrocks_not_anthropics() -> None:
    headers = {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    err = DIALECT.decode_error(429, headers, b'{"message":"Too many requests, please wait before trying again."}')
    assert isinstance(err, UpstreamRateLimited) and err.code == "ThrottlingException"
    assert DIALECT.stream_media_type == "application/vnd.amazon.eventstream"
