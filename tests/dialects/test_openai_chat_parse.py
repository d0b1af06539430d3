"""``parse_request``: one test per validation rule (status 400 and the field path in ``param``),
and the decisions of ``openai_chat_parse``'s docstring."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from unigate.dialects.openai_chat import REFUSED_FIELDS, encode_request, parse_request
from unigate.errors import BadRequest, UnsupportedFeature
from unigate.ir import Audio, Image, NamedToolChoice, Opaque, Reasoning, ResponseFormat, Text, ToolCall, ToolResult

from .test_openai_chat_fixtures import options

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    out.update(fields)
    return out


def user(content: Any) -> dict[str, Any]:
    return body(messages=[{"role": "user", "content": content}])


def assistant(**fields: Any) -> dict[str, Any]:
    return body(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", **fields}])


NAN = math.nan

# (id, body, param, error class) — the class is matched exactly: BadRequest is "malformed",
# UnsupportedFeature is "valid OpenAI we refuse to carry".
BAD: list[tuple[str, Any, str | None, type[BadRequest]]] = [
    ("body-not-object", ["model"], None, BadRequest),
    ("model-missing", {"messages": [{"role": "user", "content": "hi"}]}, "model", BadRequest),
    ("model-not-string", body(model=5), "model", BadRequest),
    ("model-empty", body(model=""), "model", BadRequest),
    ("messages-missing", {"model": "m"}, "messages", BadRequest),
    ("messages-empty", body(messages=[]), "messages", BadRequest),
    ("messages-not-list", body(messages="hi"), "messages", BadRequest),
    ("message-not-object", body(messages=["hi"]), "messages[0]", BadRequest),
    ("role-missing", body(messages=[{"content": "hi"}]), "messages[0].role", BadRequest),
    ("role-unknown", body(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role", BadRequest),
    ("role-not-string", body(messages=[{"role": 1, "content": "hi"}]), "messages[0].role", BadRequest),
    ("role-function", body(messages=[{"role": "function", "name": "f", "content": "x"}]), "messages[0].role",
     UnsupportedFeature),
    ("name-not-string", body(messages=[{"role": "user", "content": "hi", "name": 3}]), "messages[0].name",
     BadRequest),
    ("content-int", user(5), "messages[0].content", BadRequest),
    ("content-object", user({"text": "hi"}), "messages[0].content", BadRequest),
    ("content-missing", body(messages=[{"role": "user"}]), "messages[0].content", BadRequest),
    ("content-null-system", body(messages=[{"role": "system", "content": None}]), "messages[0].content",
     BadRequest),
    ("content-empty-list", user([]), "messages[0].content", BadRequest),
    ("multi-turn-index", body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                        {"role": "user", "content": 7}]), "messages[2].content", BadRequest),
    ("part-not-object", user(["hi"]), "messages[0].content[0]", BadRequest),
    ("part-type-missing", user([{"text": "hi"}]), "messages[0].content[0].type", BadRequest),
    ("text-missing", user([{"type": "text"}]), "messages[0].content[0].text", BadRequest),
    ("text-not-string", user([{"type": "text", "text": ["a"]}]), "messages[0].content[0].text", BadRequest),
    ("image-url-not-object", user([{"type": "image_url", "image_url": 5}]), "messages[0].content[0].image_url",
     BadRequest),
    ("image-url-missing", user([{"type": "image_url", "image_url": {}}]),
     "messages[0].content[0].image_url.url", BadRequest),
    ("image-url-empty", user([{"type": "image_url", "image_url": {"url": ""}}]),
     "messages[0].content[0].image_url.url", BadRequest),
    ("image-detail-int", user([{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": 1}}]),
     "messages[0].content[0].image_url.detail", BadRequest),
    ("audio-data-missing", user([{"type": "input_audio", "input_audio": {"format": "wav"}}]),
     "messages[0].content[0].input_audio.data", BadRequest),
    ("audio-format-int", user([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": 3}}]),
     "messages[0].content[0].input_audio.format", BadRequest),
    ("refusal-part-int", assistant(content=[{"type": "refusal", "refusal": 1}]),
     "messages[1].content[0].refusal", BadRequest),
    ("tool-call-id-missing", body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id",
     BadRequest),
    ("tool-call-id-empty", body(messages=[{"role": "tool", "tool_call_id": "", "content": "x"}]),
     "messages[0].tool_call_id", BadRequest),
    ("tool-content-missing", body(messages=[{"role": "tool", "tool_call_id": "c"}]), "messages[0].content",
     BadRequest),
    ("tool-calls-not-list", assistant(tool_calls={"id": "x"}), "messages[1].tool_calls", BadRequest),
    ("tool-call-not-object", assistant(tool_calls=["x"]), "messages[1].tool_calls[0]", BadRequest),
    ("tool-call-type-missing", assistant(tool_calls=[{**CALL, "type": None}]), "messages[1].tool_calls[0].type",
     BadRequest),
    ("tool-call-type-custom", assistant(tool_calls=[{"id": "c", "type": "custom", "custom": {}}]),
     "messages[1].tool_calls[0].type", UnsupportedFeature),
    ("tool-call-id-missing-in-call", assistant(tool_calls=[{**CALL, "id": None}]),
     "messages[1].tool_calls[0].id", BadRequest),
    ("tool-call-function-missing", assistant(tool_calls=[{"id": "c", "type": "function"}]),
     "messages[1].tool_calls[0].function", BadRequest),
    ("tool-call-name-missing", assistant(tool_calls=[{**CALL, "function": {"arguments": "{}"}}]),
     "messages[1].tool_calls[0].function.name", BadRequest),
    ("tool-call-arguments-object", assistant(tool_calls=[{**CALL, "function": {"name": "f", "arguments": {}}}]),
     "messages[1].tool_calls[0].function.arguments", BadRequest),
    ("tool-call-function-extra-key",
     assistant(tool_calls=[{**CALL, "function": {"name": "f", "arguments": "{}", "x": 1}}]),
     "messages[1].tool_calls[0].function.x", UnsupportedFeature),
    ("reasoning-content-int", assistant(content="a", reasoning_content=1), "messages[1].reasoning_content",
     BadRequest),
    ("reasoning-int", assistant(content="a", reasoning=1), "messages[1].reasoning", BadRequest),
    ("refusal-int", assistant(content=None, refusal=1), "messages[1].refusal", BadRequest),
    ("message-function-call", assistant(content=None, function_call={"name": "f", "arguments": "{}"}),
     "messages[1].function_call", UnsupportedFeature),
    ("stream-string", body(stream="yes"), "stream", BadRequest),
    ("stream-int", body(stream=1), "stream", BadRequest),
    ("stream-options-string", body(stream=True, stream_options="usage"), "stream_options", BadRequest),
    ("include-usage-string", body(stream=True, stream_options={"include_usage": "yes"}),
     "stream_options.include_usage", BadRequest),
    ("max-tokens-negative", body(max_tokens=-1), "max_tokens", BadRequest),
    ("max-tokens-zero", body(max_tokens=0), "max_tokens", BadRequest),
    ("max-tokens-string", body(max_tokens="10"), "max_tokens", BadRequest),
    ("max-tokens-float", body(max_tokens=1.5), "max_tokens", BadRequest),
    ("max-tokens-bool", body(max_tokens=True), "max_tokens", BadRequest),
    ("max-tokens-huge", body(max_tokens=2**40), "max_tokens", BadRequest),
    ("max-completion-tokens-negative", body(max_completion_tokens=-5), "max_completion_tokens", BadRequest),
    ("max-tokens-disagree", body(max_tokens=10, max_completion_tokens=20), "max_completion_tokens", BadRequest),
    ("temperature-string", body(temperature="hot"), "temperature", BadRequest),
    ("temperature-nan", body(temperature=NAN), "temperature", BadRequest),
    ("temperature-infinity", body(temperature=math.inf), "temperature", BadRequest),
    ("temperature-above-2", body(temperature=2.5), "temperature", BadRequest),
    ("temperature-negative", body(temperature=-0.1), "temperature", BadRequest),
    ("temperature-bool", body(temperature=True), "temperature", BadRequest),
    ("temperature-huge-int", body(temperature=10**400), "temperature", BadRequest),
    ("top-p-above-1", body(top_p=1.5), "top_p", BadRequest),
    ("top-p-string", body(top_p="1"), "top_p", BadRequest),
    ("top-k-negative", body(top_k=-1), "top_k", BadRequest),
    ("top-k-float", body(top_k=1.5), "top_k", BadRequest),
    ("seed-string", body(seed="1"), "seed", BadRequest),
    ("seed-beyond-int64", body(seed=2**64), "seed", BadRequest),
    ("n-zero", body(n=0), "n", BadRequest),
    ("n-above-128", body(n=129), "n", BadRequest),
    ("n-1e9", body(n=1e9), "n", BadRequest),
    ("n-huge-int", body(n=10**9), "n", BadRequest),
    ("stop-int", body(stop=5), "stop", BadRequest),
    ("stop-item-int", body(stop=["a", 1]), "stop[1]", BadRequest),
    ("response-format-string", body(response_format="json"), "response_format", BadRequest),
    ("response-format-type-int", body(response_format={"type": 1}), "response_format.type", BadRequest),
    ("response-format-type-missing", body(response_format={}), "response_format.type", BadRequest),
    ("response-format-grammar", body(response_format={"type": "grammar", "grammar": "x"}),
     "response_format.type", UnsupportedFeature),
    ("response-format-extra-key", body(response_format={"type": "json_object", "schema": {}}),
     "response_format.schema", UnsupportedFeature),
    ("json-schema-missing", body(response_format={"type": "json_schema"}), "response_format.json_schema",
     BadRequest),
    ("json-schema-name-missing", body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
     "response_format.json_schema.name", BadRequest),
    ("json-schema-schema-string",
     body(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": "{}"}}),
     "response_format.json_schema.schema", BadRequest),
    ("json-schema-strict-string",
     body(response_format={"type": "json_schema", "json_schema": {"name": "n", "strict": "yes"}}),
     "response_format.json_schema.strict", BadRequest),
    ("json-schema-description",
     body(response_format={"type": "json_schema", "json_schema": {"name": "n", "description": "d"}}),
     "response_format.json_schema.description", UnsupportedFeature),
    ("json-schema-extra-top-key",
     body(response_format={"type": "json_schema", "json_schema": {"name": "n"}, "x": 1}),
     "response_format.x", UnsupportedFeature),
    ("tools-not-list", body(tools={"type": "function"}), "tools", BadRequest),
    ("tool-not-object", body(tools=["get_weather"]), "tools[0]", BadRequest),
    ("tool-type-missing", body(tools=[{"function": {"name": "f"}}]), "tools[0].type", BadRequest),
    ("tool-type-custom", body(tools=[{"type": "custom", "custom": {"name": "f"}}]), "tools[0].type",
     UnsupportedFeature),
    ("tool-function-missing", body(tools=[{"type": "function"}]), "tools[0].function", BadRequest),
    ("tool-name-missing", body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name",
     BadRequest),
    ("tool-name-empty", body(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name",
     BadRequest),
    ("tool-description-int", body(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
     "tools[0].function.description", BadRequest),
    ("tool-parameters-string",
     body(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
     "tools[0].function.parameters", BadRequest),
    ("tool-strict-string", body(tools=[{"type": "function", "function": {"name": "f", "strict": "true"}}]),
     "tools[0].function.strict", BadRequest),
    ("tool-extra-key", body(tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}]), "tools[0].cache_control",
     UnsupportedFeature),
    ("tool-function-extra-key", body(tools=[{"type": "function", "function": {"name": "f", "examples": []}}]),
     "tools[0].function.examples", UnsupportedFeature),
    ("second-tool-bad", body(tools=[TOOL, {"type": "function", "function": {"name": 5}}]),
     "tools[1].function.name", BadRequest),
    ("tool-choice-unknown", body(tools=[TOOL], tool_choice="sometimes"), "tool_choice", BadRequest),
    ("tool-choice-int", body(tools=[TOOL], tool_choice=1), "tool_choice", BadRequest),
    ("tool-choice-type-missing", body(tools=[TOOL], tool_choice={"function": {"name": "get_weather"}}),
     "tool_choice.type", BadRequest),
    ("tool-choice-allowed-tools", body(tools=[TOOL], tool_choice={"type": "allowed_tools", "allowed_tools": {}}),
     "tool_choice.type", UnsupportedFeature),
    ("tool-choice-function-missing", body(tools=[TOOL], tool_choice={"type": "function"}),
     "tool_choice.function", BadRequest),
    ("tool-choice-name-missing", body(tools=[TOOL], tool_choice={"type": "function", "function": {}}),
     "tool_choice.function.name", BadRequest),
    ("tool-choice-name-undeclared", body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "x"}}),
     "tool_choice.function.name", BadRequest),
    ("tool-choice-extra-key",
     body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}, "x": 1}),
     "tool_choice.x", UnsupportedFeature),
    ("tool-choice-function-extra-key",
     body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather", "x": 1}}),
     "tool_choice.function.x", UnsupportedFeature),
    ("parallel-tool-calls-string", body(parallel_tool_calls="true"), "parallel_tool_calls", BadRequest),
    ("reasoning-effort-int", body(reasoning_effort=3), "reasoning_effort", BadRequest),
    ("user-int", body(user=42), "user", BadRequest),
    ("legacy-functions", body(functions=[{"name": "f"}]), "functions", UnsupportedFeature),
    ("legacy-function-call", body(function_call="auto"), "function_call", UnsupportedFeature),
    *[(f"refused-{key}", body(**{key: "https://evil.example"}), key, BadRequest) for key in sorted(REFUSED_FIELDS)],
]  # fmt: skip


@pytest.mark.parametrize(("given", "param", "cls"), [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_invalid_request_is_a_400_naming_the_field(given: Any, param: str | None, cls: type[BadRequest]) -> None:
    with pytest.raises(BadRequest) as info:
        parse_request(given)
    assert type(info.value) is cls
    assert info.value.param == param
    assert info.value.http_status() == 400
    assert info.value.to_openai()["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    if param is not None:
        assert param in info.value.message


def test_python_callers_get_a_readable_type_name() -> None:
    with pytest.raises(BadRequest, match="got bytes"):
        parse_request(body(model=b"gpt"))


def test_nulls_mean_absent() -> None:
    nulls = {key: None for key in ("stream", "stream_options", "max_tokens", "max_completion_tokens",
                                   "temperature", "top_p", "top_k", "stop", "seed", "n", "response_format",
                                   "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "user",
                                   "functions", "function_call")}  # fmt: skip
    request = parse_request(body(**nulls))
    assert request.stream is False and request.include_usage is False
    assert request.stop == () and request.tools == () and request.tool_choice is None
    assert (request.max_tokens, request.temperature, request.n) == (None, None, None)
    assert request.extra == {"functions": None, "function_call": None}


def test_numbers_are_kept_as_sent() -> None:
    request = parse_request(body(temperature=1, top_p=0.5, max_tokens=7, max_completion_tokens=7, seed=-3))
    assert request.temperature == 1 and isinstance(request.temperature, int)
    assert (request.top_p, request.max_tokens, request.seed) == (0.5, 7, -3)
    assert parse_request(body(max_completion_tokens=9)).max_tokens == 9


def test_stream_options_keep_their_other_keys_in_extra() -> None:
    request = parse_request(body(stream=True, stream_options={"include_usage": True, "include_obfuscation": False}))
    assert request.include_usage is True
    assert request.extra == {"stream_options": {"include_obfuscation": False}}


def test_extra_is_a_copy() -> None:
    given = body(logit_bias={"1": 2}, metadata={"a": "b"})
    request = parse_request(given)
    given["store"] = True
    assert request.extra == {"logit_bias": {"1": 2}, "metadata": {"a": "b"}}


def test_parse_does_not_mutate_its_input() -> None:
    given = body(
        messages=[{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {"type": "x"}}]},
                  {"role": "assistant", "content": None, "tool_calls": [CALL], "refusal": None}],
        stream=True, stream_options={"include_usage": True, "x": 1},
    )  # fmt: skip
    snapshot = copy.deepcopy(given)
    parse_request(given)
    assert given == snapshot


def test_content_parts() -> None:
    request = parse_request(
        user(
            [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://x/b.png", "uuid": "u1"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}, "x": 1},
                {"type": "file", "file": {"file_id": "file-1"}},
            ]
        )
    )
    parts = request.messages[0].parts
    assert parts[:2] == (Text("look"), Image("https://x/a.png", "high"))
    assert parts[2] == Opaque(
        "openai", {"part": {"type": "image_url", "image_url": {"url": "https://x/b.png", "uuid": "u1"}}}
    )
    assert parts[3] == Audio("AAAA", "mp3")
    assert isinstance(parts[4], Opaque) and isinstance(parts[5], Opaque)


def test_assistant_message_order_and_refusal() -> None:
    request = parse_request(
        assistant(
            content=[{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
            reasoning_content="think",
            reasoning="ignored when reasoning_content is sent",
            refusal="also no",
            tool_calls=[{**CALL, "index": 0}],
            annotations=[{"type": "url_citation"}],
        )
    )
    assert request.messages[1].parts == (
        Reasoning("think"),
        Text("a"),
        Text("no"),
        Text("also no"),
        ToolCall("call_1", "get_weather", "{}"),
    )


def test_assistant_without_content_and_empty_list() -> None:
    assert parse_request(assistant(tool_calls=[CALL])).messages[1].parts == (ToolCall("call_1", "get_weather", "{}"),)
    assert parse_request(assistant(content=[])).messages[1].parts == ()
    assert parse_request(assistant(content=None)).messages[1].parts == ()


def test_tool_result_name_comes_from_the_call_unless_given() -> None:
    request = parse_request(
        body(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_1", "content": "again", "name": "explicit"},
                {"role": "tool", "tool_call_id": "unknown", "content": "?"},
            ]
        )
    )
    results = [m.parts[0] for m in request.messages[2:]]
    assert results == [
        ToolResult("call_1", (Text("sunny"),), name="get_weather"),
        ToolResult("call_1", (Text("again"),), name="explicit"),
        ToolResult("unknown", (Text("?"),), name=None),
    ]
    assert request.messages[3].name == "explicit"


def test_untyped_message_keys_ride_in_opaque_fields() -> None:
    request = parse_request(body(messages=[{"role": "user", "content": "hi", "cache_control": {"type": "e"},
                                            "refusal": None}]))  # fmt: skip
    assert request.messages[0].parts == (Text("hi"), Opaque("openai", {"fields": {"cache_control": {"type": "e"}}}))
    tool = parse_request(body(messages=[{"role": "tool", "tool_call_id": "c", "content": "x", "extra": 1}]))
    assert tool.messages[0].parts[1] == Opaque("openai", {"fields": {"extra": 1}})


def test_typed_parameters() -> None:
    request = parse_request(
        body(
            tools=[TOOL, {"type": "function", "function": {"name": "noop", "description": None, "strict": None}}],
            tool_choice={"type": "function", "function": {"name": "noop"}},
            response_format={"type": "json_schema", "json_schema": {"name": "n", "strict": None}},
            stop="END",
            reasoning_effort="minimal",
            user="u",
            parallel_tool_calls=False,
        )
    )
    assert [t.name for t in request.tools] == ["get_weather", "noop"]
    assert request.tools[1].description is None and request.tools[1].parameters is None
    assert request.tool_choice == NamedToolChoice("noop")
    assert request.response_format == ResponseFormat(type="json_schema", name="n")
    assert request.stop == ("END",)
    assert (request.reasoning_effort, request.user, request.parallel_tool_calls) == ("minimal", "u", False)
    for choice in ("none", "auto", "required"):
        assert parse_request(body(tool_choice=choice)).tool_choice == choice
    assert parse_request(body(response_format={"type": "text"})).response_format == ResponseFormat("text")


def test_sequences_other_than_lists_are_accepted() -> None:
    request = parse_request({"model": "m", "messages": ({"role": "user", "content": ({"type": "text", "text": "a"},)},),
                             "stop": ("x",)})  # fmt: skip
    assert request.messages[0].parts == (Text("a"),) and request.stop == ("x",)


def test_round_trip_keeps_stream_options_only_when_streaming() -> None:
    opts = options()
    streaming = parse_request(body(stream=True, stream_options={"include_usage": False, "include_obfuscation": True}))
    assert encode_request(streaming, opts)["stream_options"] == {"include_obfuscation": True}
    plain = parse_request(body(stream=False, stream_options={"include_usage": True}))
    assert "stream_options" not in encode_request(plain, opts)
    assert "stream_options" not in encode_request(parse_request(body(stream=True)), opts)
