"""The Anthropic dialect beyond the golden fixtures: the request policies (what is refused, what
passes, what is dropped and why), edge cases of the decoders, the reasoning-signature round trip,
and one test per uni-api defect (uni-api-compat.md §4.2, §4.4) proving it cannot happen here."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest

from tests.dialects.test_anthropic_fixtures import FIXTURES, openai_to_ir, run_stream, scenarios_with
from unigate.dialects.anthropic import (
    ANTHROPIC_VERSION,
    DIALECT,
    THINKING_BUDGETS,
    VERTEX_DIALECT,
    AnthropicStreamDecoder,
)
from unigate.dialects.base import DialectOptions
from unigate.dialects.sse import SSEEvent
from unigate.errors import (
    BadRequest,
    ContentFiltered,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamUnavailable,
)
from unigate.events import Event, Finish, ReasoningDelta, Start, TextDelta, ToolCallDelta, ToolCallStart
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

OPTIONS = DialectOptions(upstream_model="claude-sonnet-4-5", client_model="claude")
WEATHER = Tool("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
HELLO = (Message("user", (Text("Hello"),)),)


def req(messages: tuple[Message, ...] = HELLO, **fields: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=messages, **fields)


def encode(request: ChatRequest, options: DialectOptions = OPTIONS) -> dict[str, Any]:
    return DIALECT.encode_request(request, options)


def user(*parts: Part) -> Message:
    return Message("user", parts)


def assistant(*parts: Part) -> Message:
    return Message("assistant", parts)


# --------------------------------------------------------------------------- the dialect objects


def test_dialect_objects() -> None:
    assert DIALECT.name == "anthropic"
    assert VERTEX_DIALECT.name == "anthropic-vertex"
    assert ANTHROPIC_VERSION == "2023-06-01"
    vertex = VERTEX_DIALECT.encode_request(req(), OPTIONS)
    assert "model" not in vertex and vertex["anthropic_version"] == "vertex-2023-10-16"
    assert isinstance(DIALECT.stream_decoder(OPTIONS), AnthropicStreamDecoder)


# --------------------------------------------------------------------------- request: refused


def _named(name: str) -> NamedToolChoice:
    return NamedToolChoice(name)


REFUSED: list[tuple[str, ChatRequest, type[Exception], str]] = [
    ("seed", req(seed=7), UnsupportedFeature, "seed"),
    ("n", req(n=2), UnsupportedFeature, "n"),
    ("audio", req((user(Audio("UklGRg==", "wav")),)), UnsupportedFeature, "audio"),
    ("json_object", req(response_format=ResponseFormat("json_object")), UnsupportedFeature, "JSON mode"),
    ("json_schema_no_schema", req(response_format=ResponseFormat("json_schema")), BadRequest, "schema"),
    ("temperature_above_1", req(temperature=1.5), UnsupportedFeature, "0 to 1"),
    ("temperature_negative", req(temperature=-0.1), UnsupportedFeature, "0 to 1"),
    ("logprobs", req(extra={"logprobs": True}), UnsupportedFeature, "logprobs"),
    ("logit_bias", req(extra={"logit_bias": {"50256": -100}}), UnsupportedFeature, "logit_bias"),
    ("presence_penalty", req(extra={"presence_penalty": 0.5}), UnsupportedFeature, "presence_penalty"),
    ("modalities_audio", req(extra={"modalities": ["text", "audio"]}), UnsupportedFeature, "modalities"),
    ("unknown_extra", req(extra={"prediction": {"type": "content"}}), UnsupportedFeature, "prediction"),
    ("service_tier_flex", req(extra={"service_tier": "flex"}), UnsupportedFeature, "flex"),
    ("image_ftp", req((user(Image("ftp://example.com/a.png")),)), UnsupportedFeature, "data: URI"),
    ("image_not_base64", req((user(Image("data:image/png,abc")),)), UnsupportedFeature, "base64"),
    ("image_bmp", req((user(Image("data:image/bmp;base64,Qk0=")),)), UnsupportedFeature, "image/bmp"),
    ("image_untyped", req((user(Image("data:;base64,Qk0=")),)), UnsupportedFeature, "untyped"),
    (
        "arguments_not_json",
        req((user(Text("x")), assistant(ToolCall("toolu_1", "get_weather", "{city: Paris")))),
        BadRequest,
        "toolu_1",
    ),
    (
        "arguments_not_object",
        req((user(Text("x")), assistant(ToolCall("toolu_1", "get_weather", "[1, 2]")))),
        BadRequest,
        "JSON object",
    ),
    ("effort_unknown", req(reasoning_effort="extreme"), BadRequest, "extreme"),
    (
        "effort_with_required_tool",
        req(reasoning_effort="low", tools=(WEATHER,), tool_choice="required"),
        UnsupportedFeature,
        "auto or none",
    ),
    (
        "adaptive_thinking_with_named_tool",
        req(tools=(WEATHER,), tool_choice=_named("get_weather"), extra={"thinking": {"type": "adaptive"}}),
        UnsupportedFeature,
        "auto or none",
    ),
    ("effort_max_tokens_too_small", req(reasoning_effort="low", max_tokens=1024), UnsupportedFeature, "exceed"),
    ("required_without_tools", req(tool_choice="required"), BadRequest, "requires tools"),
    ("named_unknown_tool", req(tools=(WEATHER,), tool_choice=_named("get_time")), BadRequest, "get_time"),
    (
        "effort_and_thinking",
        req(reasoning_effort="low", extra={"thinking": {"type": "disabled"}}),
        BadRequest,
        "not both",
    ),
    ("thinking_not_object", req(extra={"thinking": "on"}), BadRequest, "thinking"),
    ("metadata_not_object", req(extra={"metadata": "x"}), BadRequest, "metadata"),
    ("user_conflict", req(user="a", extra={"metadata": {"user_id": "b"}}), BadRequest, "disagree"),
    ("user_not_string", req(extra={"metadata": {"user_id": 42}}), BadRequest, "string"),
    ("max_tokens_conflict", req(max_tokens=10, extra={"max_completion_tokens": 20}), BadRequest, "disagree"),
    ("max_tokens_zero", req(max_tokens=0), BadRequest, "positive"),
    ("output_config_not_object", req(extra={"output_config": []}), BadRequest, "output_config"),
    (
        "two_formats",
        req(
            response_format=ResponseFormat("json_schema", schema={"type": "object"}),
            extra={"output_config": {"format": {"type": "json_schema", "schema": {}}}},
        ),
        BadRequest,
        "either",
    ),
    ("tool_message_with_text", req((user(Text("x")), Message("tool", (Text("18C"),)))), BadRequest, "tool results"),
    (
        "system_image",
        req((Message("system", (Image("https://example.com/a.png"),)), *HELLO)),
        UnsupportedFeature,
        "text",
    ),
    ("only_system", req((Message("system", (Text("Be terse."),)),)), BadRequest, "at least one"),
    ("foreign_opaque", req((user(Opaque("gemini", {"x": 1})),)), UnsupportedFeature, "gemini x"),
    (
        "openai_file_part",
        req((user(Opaque("openai", {"part": {"type": "file", "file": {"file_id": "file-1"}}})),)),
        UnsupportedFeature,
        "'file' content part",
    ),
    (
        "openai_text_part_unknown_key",
        req((user(Opaque("openai", {"part": {"type": "text", "text": "x", "annotations": []}})),)),
        UnsupportedFeature,
        "'text' content part",
    ),
    (
        "openai_image_part_unknown_key",
        req((user(Opaque("openai", {"part": {"type": "image_url", "image_url": {"url": "https://e.x/a", "z": 1}}})),)),
        UnsupportedFeature,
        "'image_url' content part",
    ),
    (
        "openai_message_fields",
        req((*HELLO, assistant(Text("a"), Opaque("openai", {"fields": {"audio": {"id": "audio_1"}}})))),
        UnsupportedFeature,
        "openai fields",
    ),
    (
        "openai_tool_call_fields",
        req((*HELLO, assistant(ToolCall("t", "f", "{}"), Opaque("openai", {"tool_call": "t", "fields": {"x": 1}})))),
        UnsupportedFeature,
        "openai fields/tool_call",
    ),
    (
        "opaque_document_in_system",
        req((Message("system", (Opaque("anthropic", {"type": "document"}),)), *HELLO)),
        UnsupportedFeature,
        "text only",
    ),
    (
        "opaque_document_in_tool_result",
        req((Message("tool", (ToolResult("t", (Opaque("anthropic", {"type": "document"}),)),)),)),
        UnsupportedFeature,
        "text and images",
    ),
    (
        "tool_result_audio",
        req((Message("tool", (ToolResult("toolu_1", (Audio("UklGRg==", "wav"),)),)),)),
        UnsupportedFeature,
        "text and images",
    ),
    ("signed_reasoning_from_user", req((user(Reasoning("hm", signature="sig")),)), UnsupportedFeature, "Reasoning"),
    ("tool_call_from_user", req((user(ToolCall("t", "f", "{}")),)), UnsupportedFeature, "ToolCall"),
    ("image_from_assistant", req((*HELLO, assistant(Image("https://example.com/a.png")))), UnsupportedFeature, "Image"),
    ("tool_result_from_assistant", req((*HELLO, assistant(ToolResult("t", ())))), UnsupportedFeature, "ToolResult"),
]


@pytest.mark.parametrize(("request_", "error", "needle"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused(request_: ChatRequest, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        encode(request_)
    assert needle in str(info.value)
    assert getattr(info.value, "status", 400) == 400


# --------------------------------------------------------------------------- request: accepted


def test_no_op_values_of_openai_only_fields_pass() -> None:
    extra = {
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {},
        "frequency_penalty": 0.0,
        "presence_penalty": 0,
        "modalities": ["text"],
        "store": True,
        "stream_options": {"include_usage": True},
        "prompt_cache_key": "k1",
        "audio": None,  # null means unset
    }
    body = encode(req(n=1, extra=extra))
    assert set(body) == {"model", "max_tokens", "messages", "stream"}


def test_metadata_policy() -> None:
    assert encode(req(extra={"metadata": {"user_id": "u1"}}))["metadata"] == {"user_id": "u1"}
    # OpenAI's stored-completion tags do not reach Anthropic (which refuses keys but user_id).
    assert "metadata" not in encode(req(extra={"metadata": {"project": "x"}}))
    assert encode(req(user="u1", extra={"metadata": {"user_id": "u1"}}))["metadata"] == {"user_id": "u1"}
    assert encode(req(extra={"safety_identifier": "s1"}))["metadata"] == {"user_id": "s1"}
    assert encode(req(user="u1", extra={"safety_identifier": "s1"}))["metadata"] == {"user_id": "u1"}


def test_native_extras_pass() -> None:
    body = encode(
        req(
            extra={
                "service_tier": "standard_only",
                "cache_control": {"type": "ephemeral"},
                "output_config": {"effort": "low"},
            }
        )
    )
    assert body["service_tier"] == "standard_only"
    assert body["cache_control"] == {"type": "ephemeral"}
    assert body["output_config"] == {"effort": "low"}
    assert encode(req(extra={"service_tier": "default"}))["service_tier"] == "standard_only"


def test_max_tokens_sources() -> None:
    assert encode(req())["max_tokens"] == 4096
    assert encode(req(), dataclasses.replace(OPTIONS, default_max_tokens=1000))["max_tokens"] == 1000
    assert encode(req(max_tokens=77))["max_tokens"] == 77
    assert encode(req(extra={"max_completion_tokens": 88}))["max_tokens"] == 88
    assert encode(req(max_tokens=88, extra={"max_completion_tokens": 88}))["max_tokens"] == 88


def test_reasoning_budget_table_and_max_tokens() -> None:
    for effort, budget in THINKING_BUDGETS.items():
        body = encode(req(reasoning_effort=effort))
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert body["max_tokens"] == 4096 + budget  # defaulted: default room after thinking
    # The client's cap stays the cap; the budget shrinks under it.
    body = encode(req(reasoning_effort="high", max_tokens=2000))
    assert body["max_tokens"] == 2000 and body["thinking"]["budget_tokens"] == 1999
    body = encode(req(reasoning_effort="low", max_tokens=50000))
    assert body["max_tokens"] == 50000 and body["thinking"]["budget_tokens"] == 2048
    assert encode(req(reasoning_effort="none"))["thinking"] == {"type": "disabled"}
    assert encode(req(reasoning_effort="none"))["max_tokens"] == 4096


def test_thinking_given_natively() -> None:
    thinking = {"type": "enabled", "budget_tokens": 3000}
    body = encode(req(extra={"thinking": thinking}))
    assert body["thinking"] == thinking and body["max_tokens"] == 4096 + 3000
    body = encode(req(max_tokens=5000, extra={"thinking": thinking}))  # native: sent as given
    assert body["thinking"] == thinking and body["max_tokens"] == 5000
    body = encode(req(tools=(WEATHER,), tool_choice="none", extra={"thinking": thinking}))
    assert body["tool_choice"] == {"type": "none"}


def test_tool_choice_table() -> None:
    tools = (WEATHER,)
    assert "tool_choice" not in encode(req(tools=tools))
    assert encode(req(tools=tools, parallel_tool_calls=False))["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert encode(req(tools=tools, parallel_tool_calls=True, tool_choice="auto"))["tool_choice"] == {"type": "auto"}
    assert encode(req(tools=tools, tool_choice="none", parallel_tool_calls=False))["tool_choice"] == {"type": "none"}
    assert encode(req(tools=tools, tool_choice=_named("get_weather"), parallel_tool_calls=False))["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    # Without tools, auto and none are what happens anyway; Anthropic refuses tool_choice alone.
    assert "tool_choice" not in encode(req(tool_choice="none"))
    assert "tool_choice" not in encode(req(tool_choice="auto", parallel_tool_calls=False))


def test_tools_shape() -> None:
    body = encode(req(tools=(Tool("ping"), Tool("strict_one", None, {"type": "object"}, strict=True))))
    assert body["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        {"name": "strict_one", "input_schema": {"type": "object"}, "strict": True},
    ]


def test_content_details() -> None:
    messages = (
        Message(
            "developer",
            (Text(""), Opaque("anthropic", {"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}})),
        ),
        user(Text("look"), Image("data:image/JPG;base64,/9j/4A==", "high"), Opaque("anthropic", {"type": "document"})),
        assistant(Reasoning("unsigned, from elsewhere"), Text(""), Opaque("anthropic", {"type": "server_tool_use"})),
        Message(
            "tool",
            (
                ToolResult("toolu_1", (Text("see"), Image("https://example.com/chart.png")), is_error=True),
                ToolResult("toolu_2", (Text(""),)),
            ),
        ),
        assistant(Text("prefill")),
    )
    body = encode(req(messages))
    assert body["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A=="}},
                {"type": "document"},
            ],
        },
        {"role": "assistant", "content": [{"type": "server_tool_use"}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "text", "text": "see"},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/chart.png"}},
                    ],
                    "is_error": True,
                },
                {"type": "tool_result", "tool_use_id": "toolu_2"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "prefill"}]},
    ]


def test_block_order_inside_merged_turns() -> None:
    body = encode(
        req(
            (
                user(Text("q")),
                assistant(Text("a"), ToolCall("toolu_1", "f", "{}")),
                assistant(Reasoning("r", signature="sig"), Reasoning("", signature="opaque", redacted=True)),
                user(Text("also this")),
                Message("tool", (ToolResult("toolu_1", (Text("ok"),)),)),
            )
        )
    )
    assert [b["type"] for b in body["messages"][1]["content"]] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]


# --------------------------------------------------------------------------- reasoning signature round trip

RT = "reasoning_round_trip"


def _turn2(decoded: Message) -> tuple[ChatRequest, dict[str, Any]]:
    raw = json.loads((FIXTURES / RT / "turn2_request.json").read_text())
    placeholder = next(i for i, m in enumerate(raw["messages"]) if "$replace" in m)
    raw["messages"][placeholder] = {"role": "assistant", "content": "placeholder"}
    request = openai_to_ir(raw)
    messages = list(request.messages)
    messages[placeholder] = decoded
    expected = json.loads((FIXTURES / RT / "expected_turn2_upstream_request.json").read_text())
    return dataclasses.replace(request, messages=tuple(messages)), expected


def test_signature_round_trip_non_streamed() -> None:
    response = DIALECT.decode_response((FIXTURES / RT / "upstream_response.json").read_bytes(), OPTIONS)
    request, expected = _turn2(response.message)
    assert encode(request) == expected


def accumulate(events: list[Event]) -> Message:
    """What the relay keeps of a streamed answer to send back later: reasoning text + signature,
    text, and tool calls with their concatenated arguments."""
    parts: list[Part] = []
    reasoning, signature, text = "", None, ""
    calls: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, ReasoningDelta):
            reasoning += event.text
            signature = event.signature or signature
        elif isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ToolCallStart):
            calls[event.index] = [event.id, event.name, ""]
        elif isinstance(event, ToolCallDelta):
            calls[event.index][2] += event.arguments
    parts.append(Reasoning(reasoning, signature=signature))
    parts.append(Text(text))
    parts.extend(ToolCall(*calls[i]) for i in sorted(calls))
    return Message("assistant", tuple(parts))


def test_signature_round_trip_streamed() -> None:
    events, error = run_stream(DIALECT, OPTIONS, [(FIXTURES / RT / "upstream_stream.txt").read_bytes()])
    assert error is None
    request, expected = _turn2(accumulate(events))
    # The stream carries no redacted_thinking in this recording (see AnthropicStreamDecoder).
    content = expected["messages"][1]["content"]
    expected["messages"][1]["content"] = [b for b in content if b["type"] != "redacted_thinking"]
    assert encode(request) == expected


# --------------------------------------------------------------------------- uni-api defects (§4.2, §4.4)


def test_defect_tool_choice_none_is_not_any() -> None:
    body = encode(req(tools=(WEATHER,), tool_choice="none"))
    assert body["tool_choice"] == {"type": "none"}
    assert body["tool_choice"]["type"] != "any"


def test_defect_every_parallel_call_is_converted_both_ways() -> None:
    calls = tuple(ToolCall(f"toolu_{i}", "get_weather", json.dumps({"city": c})) for i, c in enumerate("ABC"))
    results = tuple(Message("tool", (ToolResult(f"toolu_{i}", (Text(f"r{i}"),)),)) for i in (2, 0, 1))
    body = encode(req((user(Text("q")), assistant(*calls), *results), tools=(WEATHER,)))
    uses = body["messages"][1]["content"]
    assert [(b["id"], b["input"]) for b in uses] == [(f"toolu_{i}", {"city": c}) for i, c in enumerate("ABC")]
    # One user message; each result answers its own call, not the last one.
    assert len(body["messages"]) == 3
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["toolu_2", "toolu_0", "toolu_1"]

    response = DIALECT.decode_response((FIXTURES / "tool_parallel" / "upstream_response.json").read_bytes(), OPTIONS)
    assert [p.id for p in response.message.parts if isinstance(p, ToolCall)] == ["toolu_01Pa", "toolu_01Os"]
    events, _ = run_stream(DIALECT, OPTIONS, [(FIXTURES / "tool_parallel_stream" / "upstream_stream.txt").read_bytes()])
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.id) for s in starts] == [(0, "toolu_01Pa"), (1, "toolu_01Os")]


def test_defect_non_streamed_answer_is_converted() -> None:
    body = encode(req())
    assert body["stream"] is False  # said explicitly, never left to a default
    response = DIALECT.decode_response((FIXTURES / "text" / "upstream_response.json").read_bytes(), OPTIONS)
    assert response.message.parts == (Text("Hei!"),)
    assert response.finish_reason == "stop" and response.model == "claude"


@pytest.mark.parametrize("scenario", scenarios_with("upstream_stream.txt"))
def test_defect_every_complete_stream_has_a_finish_reason(scenario: str) -> None:
    events, error = run_stream(DIALECT, OPTIONS, [(FIXTURES / scenario / "upstream_stream.txt").read_bytes()])
    finishes = [e for e in events if isinstance(e, Finish)]
    if error is None:
        assert len(finishes) == 1 and events[-1] == finishes[0]
        assert isinstance(events[0], Start)
    else:
        assert finishes == []  # a failed stream never looks finished


# --------------------------------------------------------------------------- decode_response edge cases


def decode(payload: object, options: DialectOptions = OPTIONS) -> Any:
    return DIALECT.decode_response(orjson.dumps(payload), options)


MESSAGE: dict[str, Any] = {"id": "msg_1", "type": "message", "content": [], "stop_reason": "end_turn"}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        orjson.dumps({"type": "completion", "id": "x", "content": []}),
        orjson.dumps({**MESSAGE, "id": None}),
        orjson.dumps({**MESSAGE, "content": ["text"]}),
        orjson.dumps({**MESSAGE, "content": [{"type": "text"}]}),
        orjson.dumps({**MESSAGE, "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}),
        orjson.dumps({**MESSAGE, "content": [{"type": "thinking", "signature": "s"}]}),
        orjson.dumps({**MESSAGE, "content": [{"type": "redacted_thinking"}]}),
        orjson.dumps({**MESSAGE, "content": [{"text": "no type"}]}),
    ],
)
def test_unusable_responses(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        DIALECT.decode_response(body, OPTIONS)


def test_response_details() -> None:
    block = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
    response = decode(
        {
            **MESSAGE,
            "content": [block, {"type": "thinking", "thinking": "t", "signature": ""}],
            "stop_reason": "pause_turn",
        },
        dataclasses.replace(OPTIONS, settings={"created": 1767225600}),
    )
    assert response.message.parts == (Opaque("anthropic", block), Reasoning("t"))
    assert response.finish_reason == "stop" and response.usage is None and response.created == 1767225600
    assert decode({**MESSAGE, "stop_reason": "refusal"}).finish_reason == "content_filter"
    assert decode({**MESSAGE, "stop_reason": "model_context_window_exceeded"}).finish_reason == "length"
    assert decode({**MESSAGE, "stop_reason": "something_new"}).finish_reason == "stop"
    assert decode(MESSAGE, dataclasses.replace(OPTIONS, settings={"created": "soon"})).created == 0
    usage = decode(
        {**MESSAGE, "usage": {"input_tokens": 5, "output_tokens": 9, "output_tokens_details": {"thinking_tokens": 4}}}
    ).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (5, 9, 4)
    # An Opaque block round-trips into the next request unchanged.
    assert encode(req((user(Text("q")), response_as_message(block))))["messages"][1]["content"] == [block]


def response_as_message(block: dict[str, Any]) -> Message:
    return assistant(Opaque("anthropic", block))


# --------------------------------------------------------------------------- decode_error edge cases


def error(status: int, body: object, headers: dict[str, str] | None = None) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return DIALECT.decode_error(status, headers or {}, raw)


def anthropic_error(etype: str, message: str = "m", **extra: Any) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message, **extra}}


def test_error_edge_cases() -> None:
    empty = error(503, b"")
    assert isinstance(empty, UpstreamUnavailable) and empty.message == "HTTP 503"
    unknown = error(418, anthropic_error("teapot_error", "short and stout"))
    assert isinstance(unknown, UpstreamRequestError) and unknown.code == "teapot_error"
    assert error(400, {"type": "error", "error": {"type": "rate_limit_error"}}).message == "Anthropic rate_limit_error"
    assert error(429, anthropic_error("rate_limit_error"), {"retry-after": "soon"}).retry_after is None
    assert error(429, anthropic_error("rate_limit_error"), {"RETRY-AFTER": "-3"}).retry_after is None
    assert error(429, anthropic_error("rate_limit_error"), {"retry-after": "1.5"}).retry_after == 1.5
    filtered = error(400, anthropic_error("invalid_request_error", "Output blocked by content filtering policy"))
    assert isinstance(filtered, ContentFiltered)
    other = error(429, anthropic_error("rate_limit_error", details={"error_code": "something_else"}))
    assert isinstance(other, UpstreamRateLimited)
    # Vertex's own errors: the header wins over RetryInfo; a missing delay stays None.
    google = {
        "error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED", "details": [{"retryDelay": "9s"}]}
    }
    assert error(429, google, {"Retry-After": "3"}).retry_after == 3.0
    assert (
        error(429, {"error": {"code": 429, "message": "Quota", "details": ["x", {"retryDelay": "soon"}]}}).retry_after
        is None
    )
    assert isinstance(
        error(403, {"error": {"code": 403, "message": "Permission denied", "status": 7}}), UpstreamAuthError
    )
    assert error(500, {"error": "text only"}).message == '{"error":"text only"}'


def test_error_messages_are_redacted() -> None:
    key = "sk-ant-api03-" + "Q" * 40  # built at run time: no fixture holds anything key-shaped
    err = error(401, anthropic_error("authentication_error", f"invalid x-api-key {key}"))
    assert key not in err.message and "***" in err.message
    err = error(502, f"<html>bad gateway for {key}</html>".encode())
    assert key not in err.message
    with pytest.raises(UpstreamError) as info:
        feed_all([("error", anthropic_error("api_error", f"oops {key}"))])
    assert key not in info.value.message


def test_in_stream_error_of_unknown_type() -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        feed_all([START, ("error", anthropic_error("mystery_error", "new"))])
    assert info.value.upstream_status == 502 and info.value.code == "mystery_error"


# --------------------------------------------------------------------------- stream decoder edge cases


def ev(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (payload["type"], payload)


START = ev({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}})
STOP = ev({"type": "message_stop"})


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ev({"type": "content_block_delta", "index": index, "delta": payload})


def feed_all(frames: list[tuple[str | None, Any]], *, close: bool = True) -> list[Event]:
    decoder = DIALECT.stream_decoder(OPTIONS)
    out: list[Event] = []
    for name, payload in frames:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.extend(decoder.feed(SSEEvent(data, name)))
    if close:
        out.extend(decoder.close())
    return out


@pytest.mark.parametrize(
    "frames",
    [
        [ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})],
        [START, START],
        [ev({"type": "message_start", "message": {"usage": {}}})],
        [START, delta(0, {"type": "text_delta", "text": "x"})],
        [START, block_start(0, {"type": "text", "text": ""}), block_start(0, {"type": "text", "text": ""})],
        [START, block_start(0, {"type": "tool_use", "name": "f", "input": {}})],
        [
            START,
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "input_json_delta", "partial_json": "{"}),
        ],
        [START, block_start(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta"})],
        [START, ev({"type": "content_block_stop", "index": 3})],
        [START, ev({"type": "content_block_start", "index": "0", "content_block": {}})],
        [(None, "not json")],
        [(None, "[1, 2]")],
    ],
)
def test_broken_streams(frames: list[tuple[str | None, Any]]) -> None:
    with pytest.raises(UpstreamProtocolError):
        feed_all(frames)


def test_stream_details() -> None:
    events = feed_all(
        [
            ("ping", "{}"),  # no type in data: the SSE event name decides
            START,
            block_start(0, {"type": "text", "text": "Hi"}),
            delta(0, {"type": "text_delta", "text": ""}),
            delta(0, {"type": "future_delta", "x": 1}),
            ev({"type": "content_block_stop", "index": 0}),
            block_start(1, {"type": "thinking", "thinking": "pre", "signature": "sig0"}),
            ev({"type": "content_block_stop", "index": 1}),
            block_start(2, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}),
            ev({"type": "content_block_stop", "index": 2}),
            block_start(3, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
            delta(3, {"type": "input_json_delta", "partial_json": '{"q": 1}'}),
            ev({"type": "content_block_stop", "index": 3}),
            ev({"type": "future_event"}),
            ev({"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 5}}),
            ev({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 6, "input_tokens": None}}),
            STOP,
            START,  # after message_stop: ignored
        ]
    )
    assert events[0] == Start("msg_1", "claude")
    assert events[1:5] == [
        TextDelta("Hi"),
        ReasoningDelta("pre"),
        ReasoningDelta("", signature="sig0"),
        ToolCallStart(0, "toolu_1", "f"),
    ]
    assert events[5] == ToolCallDelta(0, '{"a":1}')
    usage = events[6].usage  # type: ignore[union-attr]
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 6)
    assert events[7] == Finish("content_filter")
    assert len(events) == 8


def test_stream_without_stop_reason_finishes_as_stop() -> None:
    assert feed_all([ev({"type": "future_event"}), START, STOP])[-1] == Finish("stop")


def test_close_before_message_stop_is_truncation() -> None:
    with pytest.raises(UpstreamProtocolError, match="before message_stop"):
        feed_all([START, block_start(0, {"type": "text", "text": ""})])
    with pytest.raises(UpstreamProtocolError, match="before message_stop"):
        feed_all([])
