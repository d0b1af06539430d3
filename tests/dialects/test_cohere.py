"""The Cohere v2 dialect beyond the golden fixtures: the request policies (what is refused, what
is mapped, what is dropped and why). Responses and errors are in ``test_cohere_response.py``, the
stream state machine's edges in ``test_cohere_stream.py``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dialects.test_cohere_fixtures import check_request
from unigate.dialects import openai_chat
from unigate.dialects.base import SSE_MEDIA_TYPE, DialectOptions
from unigate.dialects.cohere import DIALECT, MAX_STOP_SEQUENCES, THINKING_BUDGETS
from unigate.dialects.sse import SSEFramer
from unigate.errors import (
    BadRequest,
    UnsupportedFeature,
)
from unigate.ir import (
    Audio,
    ChatRequest,
    Image,
    Message,
    NamedToolChoice,
    Opaque,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)

OPTIONS = DialectOptions(upstream_model="command-a-03-2025", client_model="co")
WEATHER = Tool("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = Tool("get_time", None, None)
HELLO = (Message("user", (Text("Hello"),)),)


def req(messages: tuple[Message, ...] = HELLO, **fields: Any) -> ChatRequest:
    return ChatRequest(model="co", messages=messages, **fields)


def encode(request: ChatRequest, options: DialectOptions = OPTIONS) -> dict[str, Any]:
    body = DIALECT.encode_request(request, options)
    check_request(body)  # every body this dialect writes is one the cohere SDK's types accept
    return body


def from_openai(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "co")
    body.setdefault("messages", [{"role": "user", "content": "Hello"}])
    return encode(openai_chat.parse_request(body))


def refused(request: ChatRequest, param: str, cls: type[Exception] = UnsupportedFeature) -> str:
    with pytest.raises(cls) as info:
        DIALECT.encode_request(request, OPTIONS)
    assert isinstance(info.value, BadRequest) and info.value.param == param
    assert len(info.value.message) > 20
    return info.value.message


def user(*parts: Part) -> Message:
    return Message("user", parts)


def assistant(*parts: Part) -> Message:
    return Message("assistant", parts)


# --------------------------------------------------------------------------- the dialect object


def test_the_dialect_object() -> None:
    assert DIALECT.name == "cohere"
    assert DIALECT.stream_media_type == SSE_MEDIA_TYPE
    assert isinstance(DIALECT.framer(), SSEFramer) and DIALECT.framer() is not DIALECT.framer()
    assert DIALECT.stream_decoder(OPTIONS) is not DIALECT.stream_decoder(OPTIONS)


def test_a_plain_request() -> None:
    assert encode(req()) == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": False,
    }
    assert encode(req(stream=True))["stream"] is True


# --------------------------------------------------------------------------- messages


def test_system_and_developer_become_one_leading_system_message() -> None:
    messages = (
        user(Text("first")),
        Message("system", (Text("Be terse."),)),
        assistant(Text("ok")),
        Message("developer", (Text("Answer in French."), Text(""))),
        user(Text("second")),
    )
    assert encode(req(messages))["messages"] == [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}],
        },
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    single = encode(req((Message("system", (Text("Be terse."),)), *HELLO)))["messages"]
    assert single[0] == {"role": "system", "content": "Be terse."}


def test_system_messages_hold_text_only() -> None:
    messages = (Message("system", (Image("https://example.com/a.png"),)), *HELLO)
    assert "text only" in refused(req(messages), "messages")


def test_consecutive_user_messages_are_not_merged() -> None:
    messages = (user(Text("one")), user(Text("two")))
    assert encode(req(messages))["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ]


def test_images_keep_their_url_and_detail() -> None:
    data = "data:image/png;base64,iVBORw0KGgo="
    body = encode(req((user(Text("what"), Image(data, "low"), Image("https://example.com/cat.png")),)))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": data, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


@pytest.mark.parametrize("url", ["gs://bucket/cat.png", "data:image/png,rawbytes", "file:///etc/passwd"])
def test_images_cohere_cannot_take_are_refused(url: str) -> None:
    refused(req((user(Image(url)),)), "messages")


def test_audio_is_refused() -> None:
    assert "audio" in refused(req((user(Text("hi"), Audio("UklGRg==", "wav")),)), "messages")


def test_assistant_calls_plan_and_text() -> None:
    turn = assistant(
        Reasoning("Look it up."),
        Text("Checking."),
        ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
        ToolCall("call_2", "get_time", ""),
    )
    [message] = encode(req((*HELLO, turn)))["messages"][1:]
    assert message == {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ],
        "tool_plan": "Look it up.",
        "content": "Checking.",
    }


def test_reasoning_without_calls_is_dropped_and_empty_turns_skipped() -> None:
    messages = (
        *HELLO,
        assistant(Reasoning("hidden thoughts"), Text("Hi."), Text("Again.")),
        assistant(Reasoning("only thinking"), Text("")),
        user(Text("next")),
    )
    assert encode(req(messages))["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}, {"type": "text", "text": "Again."}]},
        {"role": "user", "content": "next"},
    ]


def test_redacted_reasoning_is_not_a_plan() -> None:
    turn = assistant(Reasoning("", signature="opaque", redacted=True), ToolCall("c", "get_time", "{}"))
    assert "tool_plan" not in encode(req((*HELLO, turn)))["messages"][1]


def test_openai_kept_parts_cohere_can_read() -> None:
    """``cache_control`` (an Anthropic caching hint) is left out; Gemini's ``extra_content`` too."""
    cached_text = Opaque("openai", {"part": {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}}})
    signature = Opaque(
        "openai", {"tool_call": "c", "fields": {"extra_content": {"google": {"thought_signature": "x"}}}}
    )
    messages = (
        Message("system", (cached_text,)),
        user(cached_text),
        assistant(ToolCall("c", "get_time", "{}"), signature),
    )
    body = encode(req(messages))
    assert body["messages"][0] == {"role": "system", "content": "cached"}
    assert body["messages"][1] == {"role": "user", "content": [{"type": "text", "text": "cached"}]}
    assert body["messages"][2]["tool_calls"][0]["id"] == "c"


def test_other_openai_kept_parts_are_refused() -> None:
    file_part = Opaque("openai", {"part": {"type": "file", "file": {"file_id": "f1"}}})
    assert "'file' content part" in refused(req((user(file_part),)), "messages")
    audio_fields = Opaque("openai", {"fields": {"audio": {"id": "a1"}}})
    refused(req((*HELLO, assistant(Text("x"), audio_fields))), "messages")


def test_tool_results_keep_their_ids_and_order() -> None:
    messages = (
        *HELLO,
        assistant(ToolCall("call_1", "get_weather", "{}"), ToolCall("call_2", "get_time", "{}")),
        Message("tool", (ToolResult("call_2", (Text("12:00"),)),)),
        Message("tool", (ToolResult("call_1", (Text("sunny"), Text("warm"))),)),
    )
    assert encode(req(messages))["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "sunny"}, {"type": "text", "text": "warm"}],
        },
    ]


def test_tool_results_inside_a_user_message_come_first() -> None:
    messages = (
        *HELLO,
        assistant(ToolCall("call_1", "get_time", "{}")),
        user(ToolResult("call_1", (Text("12:00"),)), Text("and now?")),
    )
    assert encode(req(messages))["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        {"role": "user", "content": "and now?"},
    ]


def test_tool_results_cohere_cannot_hold() -> None:
    image = ToolResult("c", (Image("https://example.com/a.png"),))
    assert "text only" in refused(req((*HELLO, Message("tool", (image,)))), "messages")
    failed = ToolResult("c", (Text("boom"),), is_error=True)
    assert "error flag" in refused(req((*HELLO, Message("tool", (failed,)))), "messages")
    refused(req((*HELLO, Message("tool", (Text("loose text"),)))), "messages", BadRequest)


def test_no_messages_is_a_bad_request() -> None:
    refused(req(()), "messages", BadRequest)


# --------------------------------------------------------------------------- tools


def test_tools_in_cohere_shape() -> None:
    body = encode(req(tools=(WEATHER, TIME)))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": dict(WEATHER.parameters or {}),
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert "strict_tools" not in body and "tool_choice" not in body


def test_strict_is_one_switch_for_all_tools() -> None:
    strict = (Tool("a", None, {"type": "object"}, True), Tool("b", None, {"type": "object"}, True))
    assert encode(req(tools=strict))["strict_tools"] is True
    assert "strict_tools" not in encode(req(tools=(Tool("a", strict=False), TIME)))
    assert "strict" in refused(req(tools=(strict[0], TIME)), "tools")


@pytest.mark.parametrize(("choice", "native"), [("none", "NONE"), ("required", "REQUIRED"), ("auto", None)])
def test_tool_choice(choice: Any, native: str | None) -> None:
    body = encode(req(tools=(WEATHER, TIME), tool_choice=choice))
    assert body.get("tool_choice") == native
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]


def test_a_named_tool_choice_declares_only_that_tool() -> None:
    named = Tool("get_time", None, {"type": "object"}, True)
    body = encode(req(tools=(WEATHER, named), tool_choice=NamedToolChoice("get_time")))
    assert body["tool_choice"] == "REQUIRED"
    assert body["tools"] == [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    assert body["strict_tools"] is True  # the declared tool's own flag; WEATHER's does not mix in
    refused(req(tools=(WEATHER,), tool_choice=NamedToolChoice("nope")), "tool_choice", BadRequest)


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in encode(req(tool_choice="none"))
    assert "tool_choice" not in encode(req(tool_choice="auto"))
    refused(req(tool_choice="required"), "tool_choice", BadRequest)


def test_parallel_tool_calls_off_is_refused_only_with_tools() -> None:
    assert "parallel" in refused(req(tools=(WEATHER,), parallel_tool_calls=False), "parallel_tool_calls")
    assert "tools" not in encode(req(parallel_tool_calls=False))
    assert encode(req(tools=(WEATHER,), parallel_tool_calls=True))["tools"]


# --------------------------------------------------------------------------- parameters


def test_sampling_parameters_are_renamed() -> None:
    body = encode(req(max_tokens=64, temperature=1.5, top_p=0.9, top_k=40, stop=("END", "STOP"), seed=7))
    assert {k: body[k] for k in ("max_tokens", "temperature", "p", "k", "stop_sequences", "seed")} == {
        "max_tokens": 64,
        "temperature": 1.5,
        "p": 0.9,
        "k": 40,
        "stop_sequences": ["END", "STOP"],
        "seed": 7,
    }
    assert not {"top_p", "top_k", "stop"} & body.keys()


def test_max_tokens_from_either_openai_field_or_the_channel_default() -> None:
    assert from_openai(max_completion_tokens=5)["max_tokens"] == 5
    assert from_openai(max_tokens=6)["max_tokens"] == 6
    assert encode(req(), DialectOptions("m", "co", default_max_tokens=300))["max_tokens"] == 300
    assert "max_tokens" not in encode(req())


def test_stop_sequences_beyond_five_are_refused() -> None:
    assert MAX_STOP_SEQUENCES == 5
    assert len(encode(req(stop=tuple("abcde")))["stop_sequences"]) == 5
    assert "at most 5" in refused(req(stop=tuple("abcdef")), "stop")


def test_one_choice_per_request() -> None:
    assert "n" not in encode(req(n=1))
    refused(req(n=2), "n")
    refused(req(n=0), "n", BadRequest)


def test_response_formats() -> None:
    assert "response_format" not in encode(req(response_format=ResponseFormat("text")))
    assert encode(req(response_format=ResponseFormat("json_object")))["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = ResponseFormat("json_schema", schema=schema, name="answer", strict=True)
    assert encode(req(response_format=fmt))["response_format"] == {"type": "json_object", "json_schema": schema}
    refused(req(response_format=ResponseFormat("json_schema")), "response_format", BadRequest)


@pytest.mark.parametrize("effort", list(THINKING_BUDGETS))
def test_reasoning_effort_becomes_a_thinking_budget(effort: str) -> None:
    thinking = encode(req(reasoning_effort=effort))["thinking"]
    assert thinking == {"type": "enabled", "token_budget": THINKING_BUDGETS[effort]}


def test_reasoning_effort_none_and_unknown_and_native_thinking() -> None:
    assert encode(req(reasoning_effort="none"))["thinking"] == {"type": "disabled"}
    assert "use one of" in refused(req(reasoning_effort="extreme"), "reasoning_effort", BadRequest)
    native = {"type": "enabled", "token_budget": 500}
    assert encode(req(extra={"thinking": native}))["thinking"] == native
    refused(req(reasoning_effort="low", extra={"thinking": native}), "thinking", BadRequest)
    refused(req(extra={"thinking": "on"}), "thinking", BadRequest)
    assert THINKING_BUDGETS["medium"] == 8192


def test_penalties_and_native_keys_pass() -> None:
    extra = {
        "frequency_penalty": 0.4,
        "presence_penalty": 0.1,
        "safety_mode": "STRICT",
        "priority": 1,
        "documents": ["Emperor penguins are the tallest."],
    }
    body = encode(req(extra=extra))
    assert {k: body[k] for k in extra} == extra


def test_keys_that_do_not_change_the_answer_are_dropped() -> None:
    extra = {"metadata": {"tag": "x"}, "store": True, "stream_options": {"x": 1}, "logprobs": False, "top_logprobs": 0}
    body = encode(req(user="u-1", extra={**extra, "service_tier": "auto", "logit_bias": {}, "safety_identifier": "s"}))
    assert body == {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Hello"}], "stream": False}


@pytest.mark.parametrize(
    ("key", "value"),
    [("logprobs", True), ("top_logprobs", 2), ("logit_bias", {"50256": -100}), ("modalities", ["audio"])],
)
def test_values_cohere_cannot_honour_are_refused(key: str, value: object) -> None:
    message = refused(req(extra={key: value}), key)
    if "logprob" in key:
        assert "not translated" in message


def test_unknown_keys_are_refused_and_nulls_ignored() -> None:
    assert "frobnicate" in refused(req(extra={"frobnicate": 1}), "frobnicate")
    assert "frobnicate" not in encode(req(extra={"frobnicate": None}))


def test_strict_tools_given_natively_must_agree() -> None:
    strict = Tool("a", None, {"type": "object"}, True)
    assert encode(req(tools=(strict,), extra={"strict_tools": True}))["strict_tools"] is True
    refused(req(tools=(strict,), extra={"strict_tools": False}), "strict_tools", BadRequest)
