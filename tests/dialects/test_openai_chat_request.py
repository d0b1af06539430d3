"""``encode_request`` for IR that did not come from an OpenAI client (another inbound dialect),
the options it reads, and what it refuses; plus the ``DIALECT`` object itself."""

from __future__ import annotations

from typing import Any

import pytest

from unigate.dialects.base import DialectOptions
from unigate.dialects.openai_chat import DIALECT, OpenAIStreamDecoder, encode_request, stream_decoder
from unigate.errors import UnsupportedFeature
from unigate.ir import (
    Audio,
    ChatRequest,
    Image,
    Message,
    NamedToolChoice,
    Opaque,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)

from .test_openai_chat_fixtures import options, validate_request

OPTS = options()


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="alias", messages=messages or (Message("user", (Text("hi"),)),), **fields)


def test_minimal_body() -> None:
    expected = {"model": "upstream-model", "messages": [{"role": "user", "content": "hi"}]}
    assert encode_request(request(), OPTS) == expected


def test_every_typed_field() -> None:
    body = encode_request(
        request(
            stream=True,
            include_usage=True,
            max_tokens=64,
            temperature=0.5,
            top_p=0.9,
            top_k=20,
            stop=("a", "b"),
            seed=1,
            n=1,
            response_format=ResponseFormat(type="json_schema", schema={"type": "object"}, strict=True),
            tools=(Tool("f"), Tool("g", "does g", {"type": "object"}, False)),
            tool_choice=NamedToolChoice("g"),
            parallel_tool_calls=False,
            reasoning_effort="high",
            user="u1",
            extra={"temperature": 2, "model": "x", "messages": [], "logit_bias": {"1": 1}},
        ),
        OPTS,
    )
    assert body == {
        "model": "upstream-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "stop": ["a", "b"],
        "seed": 1,
        "n": 1,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True},
        },
        "tools": [
            {"type": "function", "function": {"name": "f"}},
            {"type": "function", "function": {"name": "g", "description": "does g", "parameters": {"type": "object"},
                                              "strict": False}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "g"}},
        "parallel_tool_calls": False,
        "reasoning_effort": "high",
        "user": "u1",
        "logit_bias": {"1": 1},
    }  # fmt: skip
    validate_request(body)


@pytest.mark.parametrize("kind", ["text", "json_object"])
def test_simple_response_formats(kind: Any) -> None:
    assert encode_request(request(response_format=ResponseFormat(kind)), OPTS)["response_format"] == {"type": kind}


def test_max_tokens_name_and_default_come_from_options() -> None:
    settings = {"max_tokens_param": "max_completion_tokens"}
    modern = DialectOptions("up", "alias", default_max_tokens=256, settings=settings)
    assert encode_request(request(), modern)["max_completion_tokens"] == 256
    assert encode_request(request(max_tokens=9), modern)["max_completion_tokens"] == 9
    legacy = DialectOptions("up", "alias", default_max_tokens=256, settings={"max_tokens_param": "anything else"})
    body = encode_request(request(), legacy)
    assert body["max_tokens"] == 256 and "max_completion_tokens" not in body


def test_n_above_one_is_refused() -> None:
    with pytest.raises(UnsupportedFeature) as info:
        encode_request(request(n=2), OPTS)
    assert info.value.param == "n"


def test_tool_results_in_a_user_turn_become_tool_messages_first() -> None:
    # How an Anthropic client sends results: several tool_result blocks and text in one user turn.
    body = encode_request(
        request(
            Message("user", (Text("go"),)),
            Message("assistant", (Reasoning("plan", signature="sig=="), Text("Calling."), ToolCall("c1", "f", "{}"),
                                  Text(" And more."), ToolCall("c2", "f", '{"a":1}'))),
            Message("user", (ToolResult("c1", (Text("one"),), name="f"),
                             ToolResult("c2", (Text("bad"), Image("https://x/i.png")), is_error=True),
                             Text("Thanks"))),
            Message("user", (ToolResult("c3", ()),)),
        ),
        OPTS,
    )  # fmt: skip
    assert body["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant",
         "content": [{"type": "text", "text": "Calling."}, {"type": "text", "text": " And more."}],
         "reasoning_content": "plan",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2",
         "content": [{"type": "text", "text": "bad"}, {"type": "image_url", "image_url": {"url": "https://x/i.png"}}]},
        {"role": "user", "content": "Thanks"},
        {"role": "tool", "tool_call_id": "c3", "content": ""},
    ]  # fmt: skip


def test_assistant_with_only_reasoning_and_empty_messages() -> None:
    body = encode_request(
        request(Message("system", ()), Message("assistant", (Reasoning("a"), Reasoning("b", redacted=True),
                                                             Reasoning("c")))),
        OPTS,
    )  # fmt: skip
    assert body["messages"] == [
        {"role": "system", "content": ""},
        {"role": "assistant", "content": None, "reasoning_content": "ac"},
    ]


def test_user_content_parts() -> None:
    body = encode_request(
        request(Message("user", (Text("a"), Image("data:image/png;base64,AA==", "low"), Audio("AAAA", "wav"),
                                 Opaque("openai", {"part": {"type": "file", "file": {"file_id": "f1"}}})),
                        name="bob")),
        OPTS,
    )  # fmt: skip
    assert body["messages"] == [
        {"role": "user", "name": "bob", "content": [
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            {"type": "file", "file": {"file_id": "f1"}},
        ]}
    ]  # fmt: skip


def test_tool_message_fields_and_name() -> None:
    body = encode_request(
        request(Message("tool", (ToolResult("c", (Text("x"),)), Opaque("openai", {"fields": {"k": 1}})), name="f")),
        OPTS,
    )
    assert body["messages"] == [{"role": "tool", "tool_call_id": "c", "content": "x", "name": "f", "k": 1}]


REFUSED: list[tuple[str, Message]] = [
    ("tool-without-result", Message("tool", (Text("x"),))),
    ("tool-with-text", Message("tool", (ToolResult("c", ()), Text("x")))),
    ("call-in-user", Message("user", (ToolCall("c", "f", "{}"),))),
    ("reasoning-in-system", Message("system", (Reasoning("x"),))),
    ("image-in-assistant", Message("assistant", (Image("https://x/i.png"),))),
    ("audio-in-assistant", Message("assistant", (Text("a"), Audio("AA", "wav")))),
    ("foreign-opaque", Message("user", (Opaque("anthropic", {"type": "document"}),))),
    ("tool-result-in-result", Message("user", (ToolResult("c", (ToolResult("d", ()),)),))),
]


@pytest.mark.parametrize("message", [pytest.param(m, id=name) for name, m in REFUSED])
def test_what_openai_cannot_carry_is_refused(message: Message) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        encode_request(request(Message("user", (Text("hi"),)), message), OPTS)
    assert info.value.param == "messages[1]"


def test_dialect_object() -> None:
    assert DIALECT.name == "openai"
    assert DIALECT.encode_request(request(), OPTS) == encode_request(request(), OPTS)
    assert isinstance(DIALECT.stream_decoder(OPTS), OpenAIStreamDecoder)
    assert isinstance(stream_decoder(OPTS), OpenAIStreamDecoder)
    assert stream_decoder(OPTS) is not stream_decoder(OPTS)
