"""Unit tests for the Gemini dialect: request policy, decoding edge cases, errors, the stream state
machine, and one test per uni-api Gemini defect (uni-api-compat.md §4.2). The golden fixtures are
in ``test_gemini_fixtures.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import types as gt

from unigate.dialects.base import DialectOptions
from unigate.dialects.gemini import DIALECT, SIGNATURE_FALLBACK_SETTING, GeminiStreamDecoder
from unigate.dialects.sse import SSEEvent, SSEFramer
from unigate.errors import (
    BadRequest,
    ContentFiltered,
    ContextLengthExceeded,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamUnavailable,
)
from unigate.events import (
    Event,
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageEvent,
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
    Usage,
)

OPTIONS = DialectOptions(upstream_model="gemini-2.5-flash", client_model="my-gemini")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
WEATHER = Tool("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def user(*parts: Part | str) -> Message:
    return Message("user", tuple(Text(p) if isinstance(p, str) else p for p in parts))


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="my-gemini", messages=messages or (user("hi"),), **kw)


def encode(request: ChatRequest, options: DialectOptions = OPTIONS) -> dict[str, Any]:
    """Encode, and check every content against the official SDK type (it forbids unknown keys)."""
    body = DIALECT.encode_request(request, options)
    for content in body["contents"]:
        gt.Content.model_validate(content)
    return body


def decode(obj: Any) -> Any:
    return DIALECT.decode_response(orjson.dumps(obj), OPTIONS)


def answer(*parts: dict[str, Any], finish: str | None = "STOP", **top: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **top}


def stream(*chunks: Any, options: DialectOptions = OPTIONS) -> list[Event]:
    decoder = DIALECT.stream_decoder(options)
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(SSEEvent(chunk if isinstance(chunk, str) else json.dumps(chunk)))
    return events + decoder.close()


# ----------------------------------------------------------------------------- the dialect


def test_dialect_shape() -> None:
    assert DIALECT.name == "gemini"
    assert isinstance(DIALECT.stream_decoder(OPTIONS), GeminiStreamDecoder)


# ------------------------------------------------------------- uni-api defects (§4.2, gemini rows)


def test_defect_sampling_parameters_are_not_dropped() -> None:
    gen = encode(req(temperature=0.2, top_p=0.5, max_tokens=77, top_k=3))["generationConfig"]
    assert gen == {"temperature": 0.2, "topP": 0.5, "maxOutputTokens": 77, "topK": 3}


def test_defect_response_format_is_not_dropped() -> None:
    gen = encode(req(response_format=ResponseFormat("json_object")))["generationConfig"]
    assert gen == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    gen = encode(req(response_format=ResponseFormat("json_schema", schema, "x", True)))["generationConfig"]
    assert gen == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_defect_tool_choice_is_not_ignored() -> None:
    body = encode(req(tools=(WEATHER,), tool_choice="none"))
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    body = encode(req(tools=(WEATHER,), tool_choice=NamedToolChoice("get_weather")))
    assert body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == ["get_weather"]


def test_defect_stream_has_usage_and_finish_reason() -> None:
    events = stream(
        answer({"text": "a"}, finish=None, usageMetadata={"promptTokenCount": 3}),
        answer({"text": "b"}, usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 2}),
    )
    assert events[-2:] == [UsageEvent(Usage(3, 2)), Finish("stop")]
    assert sum(isinstance(e, UsageEvent) for e in events) == 1


def test_defect_function_calls_are_not_dropped_nor_merged() -> None:
    calls = [{"functionCall": {"name": f"f{i}", "args": {"i": i}}} for i in range(3)]
    events = stream(answer(calls[0], finish=None, responseId="r1"), answer(*calls[1:], responseId="r1"))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "f0"), (1, "f1"), (2, "f2")]
    assert len({s.id for s in starts}) == 3, "ids are unique (uni-api used one fixed id)"
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == ['{"i":0}', '{"i":1}', '{"i":2}']
    assert events[-1] == Finish("tool_calls")
    response = decode(answer(*calls, responseId="r1"))
    assert [p.name for p in response.message.parts if isinstance(p, ToolCall)] == ["f0", "f1", "f2"]


def test_defect_system_text_is_not_rewritten() -> None:
    body = encode(req(Message("system", (Text("keep ___ these __ runs"),)), user("x")))
    assert body["systemInstruction"] == {"parts": [{"text": "keep ___ these __ runs"}]}


def test_defect_tool_result_names_come_from_their_own_call() -> None:
    body = encode(
        req(
            user("q"),
            Message("assistant", (ToolCall("a", "first", "{}"), ToolCall("b", "second", "{}"))),
            Message("tool", (ToolResult("a", (Text("1"),)),)),
        )
    )
    assert body["contents"][-1]["parts"][0]["functionResponse"]["name"] == "first"


# ----------------------------------------------------------------------- request: parameters


def test_default_max_tokens_only_when_unset() -> None:
    options = DialectOptions("g", "c", default_max_tokens=1000)
    assert encode(req(), options)["generationConfig"] == {"maxOutputTokens": 1000}
    assert encode(req(max_tokens=5), options)["generationConfig"] == {"maxOutputTokens": 5}
    assert "generationConfig" not in encode(req())


def test_n_and_stop_limits() -> None:
    assert "generationConfig" not in encode(req(n=1, response_format=ResponseFormat("text")))
    with pytest.raises(UnsupportedFeature):
        encode(req(n=2))
    with pytest.raises(BadRequest):
        encode(req(n=0))
    assert encode(req(stop=("a",) * 5))["generationConfig"]["stopSequences"] == ["a"] * 5
    with pytest.raises(UnsupportedFeature):
        encode(req(stop=("a",) * 6))


def test_json_schema_requires_a_schema_and_drops_only_top_level_dollar_schema() -> None:
    with pytest.raises(BadRequest):
        encode(req(response_format=ResponseFormat("json_schema")))
    schema = {"$schema": "x", "type": "object", "properties": {"p": {"$schema": "kept"}}}
    gen = encode(req(response_format=ResponseFormat("json_schema", schema)))["generationConfig"]
    assert gen["responseJsonSchema"] == {"type": "object", "properties": {"p": {"$schema": "kept"}}}


@pytest.mark.parametrize(
    ("effort", "config"),
    [
        ("none", {"thinkingBudget": 0, "includeThoughts": False}),
        ("minimal", {"thinkingBudget": 512, "includeThoughts": True}),
        ("low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ],
)
def test_reasoning_effort_table(effort: str, config: dict[str, Any]) -> None:
    assert encode(req(reasoning_effort=effort))["generationConfig"]["thinkingConfig"] == config


def test_unknown_reasoning_effort_is_refused() -> None:
    with pytest.raises(UnsupportedFeature, match="xhigh"):
        encode(req(reasoning_effort="xhigh"))


def test_extra_fields_policy() -> None:
    extra = {
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "max_completion_tokens": 99,
        "stream_options": {"include_usage": True},
        "metadata": {"a": "b"},
        "store": True,
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "prediction": {"type": "content", "content": "x"},
        "modalities": ["text"],
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {},
        "anything": None,
    }
    gen = encode(req(extra=extra))["generationConfig"]
    assert gen == {"presencePenalty": 0.1, "frequencyPenalty": 0.2, "maxOutputTokens": 99}
    assert encode(req(max_tokens=5, extra={"max_completion_tokens": 99}))["generationConfig"] == {"maxOutputTokens": 5}


@pytest.mark.parametrize(
    "extra",
    [
        {"logprobs": True},
        {"top_logprobs": 3},
        {"logit_bias": {"50256": -100}},
        {"modalities": ["text", "audio"]},
        {"audio": {"voice": "alloy"}},
        {"verbosity": "low"},
        {"web_search_options": {}},
    ],
)
def test_extra_fields_that_change_output_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        encode(req(extra=extra))
    assert info.value.param == next(iter(extra))


def test_user_is_dropped_and_parallel_false_refused() -> None:
    assert (
        encode(req(user="u-1", parallel_tool_calls=True))
        == encode(req(parallel_tool_calls=False))
        == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    )
    with pytest.raises(UnsupportedFeature):
        encode(req(tools=(WEATHER,), parallel_tool_calls=False))


def test_tools_and_tool_choice() -> None:
    bare = Tool("ping")
    body = encode(req(tools=(bare, WEATHER), tool_choice="required"))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "ping"},
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parametersJsonSchema": WEATHER.parameters,
                },
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert encode(req(tools=(WEATHER,), tool_choice="auto"))["toolConfig"]["functionCallingConfig"] == {"mode": "AUTO"}
    assert "toolConfig" not in encode(req(tool_choice="auto"))
    assert "toolConfig" not in encode(req(tool_choice="none"))
    with pytest.raises(BadRequest):
        encode(req(tool_choice="required"))
    with pytest.raises(BadRequest, match="undeclared"):
        encode(req(tools=(WEATHER,), tool_choice=NamedToolChoice("nope")))


# ------------------------------------------------------------------------- request: messages


def test_system_holds_text_only_and_skips_empty() -> None:
    body = encode(req(Message("developer", (Text(""), Text("d"))), user("x")))
    assert body["systemInstruction"] == {"parts": [{"text": "d"}]}
    assert "systemInstruction" not in encode(req(Message("system", (Text(""),)), user("x")))
    with pytest.raises(UnsupportedFeature):
        encode(req(Message("system", (Image("data:image/png;base64,AA=="),)), user("x")))


def test_tool_call_arguments() -> None:
    body = encode(req(user("q"), Message("assistant", (Text(""), ToolCall("c", "f", " ")))))
    assert body["contents"][1] == {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
    with pytest.raises(BadRequest, match="not valid JSON"):
        encode(req(user("q"), Message("assistant", (ToolCall("c", "f", "{oops"),))))
    with pytest.raises(BadRequest, match="JSON object"):
        encode(req(user("q"), Message("assistant", (ToolCall("c", "f", "[1]"),))))


def test_tool_results_are_grouped_in_call_order() -> None:
    body = encode(
        req(
            user("q"),
            Message("assistant", (ToolCall("a", "fa", "{}"), ToolCall("b", "fb", "{}"))),
            Message("tool", (ToolResult("b", (Text('{"x": 1}'),)),)),
            Message("tool", (ToolResult("a", (Text("plain "), Text("text")), is_error=True),)),
        )
    )
    assert body["contents"][-1] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "fa", "response": {"error": "plain text"}}},
            {"functionResponse": {"name": "fb", "response": {"result": {"x": 1}}}},
        ],
    }


def test_tool_results_inside_a_user_turn() -> None:
    """Anthropic-style histories carry results in the user message, before its text."""
    body = encode(
        req(
            user("q"),
            Message("assistant", (ToolCall("a", "fa", "{}"),)),
            Message("user", (ToolResult("a", (Text("42"),)), Text("and?"))),
        )
    )
    assert body["contents"][-1]["parts"] == [
        {"functionResponse": {"name": "fa", "response": {"result": 42}}},
        {"text": "and?"},
    ]


def test_tool_result_errors() -> None:
    call = Message("assistant", (ToolCall("a", "fa", "{}"),))
    with pytest.raises(BadRequest, match="unknown tool_call_id 'zz'"):
        encode(req(user("q"), call, Message("tool", (ToolResult("zz", (Text("1"),)),))))
    with pytest.raises(UnsupportedFeature):
        encode(req(user("q"), call, Message("tool", (ToolResult("a", (Image("data:image/png;base64,AA=="),)),))))
    with pytest.raises(BadRequest):
        encode(req(user("q"), call, Message("tool", (Text("loose"),))))


def test_media() -> None:
    parts = encode(
        req(
            user(
                Image("https://generativelanguage.googleapis.com/v1beta/files/abc123"),
                Image("gs://b/scan.PDF"),
                Image("gs://b/noext"),
                Audio("AAAA", "MP3"),
                Opaque("gemini", {"executableCode": {"language": "PYTHON", "code": "1"}}),
            )
        )
    )["contents"][0]["parts"]
    assert parts == [
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/scan.PDF"}},
        {"fileData": {"fileUri": "gs://b/noext"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "AAAA"}},
        {"executableCode": {"language": "PYTHON", "code": "1"}},
    ]


@pytest.mark.parametrize(
    ("part", "error"),
    [
        (Image("https://example.com/cat.png"), UnsupportedFeature),
        (Image("data:image/png,rawbytes"), BadRequest),
        (Image("data:;base64,AA=="), BadRequest),
        (Image("data:image/png;base64,"), BadRequest),
        (Audio("AAAA", "pcm16"), UnsupportedFeature),
        (Opaque("anthropic", {"type": "x"}), UnsupportedFeature),
        (ToolCall("c", "f", "{}"), UnsupportedFeature),
    ],
)
def test_media_refusals(part: Part, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(req(user(part)))


def test_empty_user_message_is_skipped() -> None:
    only_unsigned = Message("assistant", (Reasoning("a summary without signature"),))
    assert encode(req(user("a"), user(""), only_unsigned, Message("assistant", (Text("b"),))))["contents"] == [
        {"role": "user", "parts": [{"text": "a"}]},
        {"role": "model", "parts": [{"text": "b"}]},
    ]


# ---------------------------------------------------------------------- thought signatures


def test_assistant_reasoning_replay() -> None:
    message = Message(
        "assistant",
        (
            Reasoning("unsigned summary"),
            Reasoning("", "REDACTED", redacted=True),
            Reasoning("signed thought", "U0lHMA=="),
            Reasoning("", "U0lHMQ=="),
            Text("answer"),
            Reasoning("", "U0lHMg=="),
            ToolCall("c1", "f", "{}"),
            ToolCall("c2", "f", "{}"),
            Reasoning("", "dHJhaWxpbmc="),
        ),
    )
    parts = encode(req(user("q"), message))["contents"][1]["parts"]
    assert parts == [
        {"text": "signed thought", "thought": True, "thoughtSignature": "U0lHMA=="},
        {"text": "answer", "thoughtSignature": "U0lHMQ=="},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "U0lHMg=="},
        {"functionCall": {"name": "f", "args": {}}},
    ]


def test_signature_fallback_setting() -> None:
    options = DialectOptions("g", "c", settings={SIGNATURE_FALLBACK_SETTING: "skip_thought_signature_validator"})
    unsigned = Message("assistant", (Text("t"), ToolCall("c1", "f", "{}"), ToolCall("c2", "f", "{}")))
    signed = Message("assistant", (Reasoning("", "UkVBTA=="), ToolCall("c3", "f", "{}")))
    contents = encode(req(user("q"), unsigned, user("again"), signed), options)["contents"]
    assert contents[1]["parts"] == [
        {"text": "t"},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"},
        {"functionCall": {"name": "f", "args": {}}},
    ]
    assert contents[3]["parts"] == [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "UkVBTA=="}]
    assert "thoughtSignature" not in encode(req(user("q"), unsigned))["contents"][1]["parts"][1]


def test_thought_signatures_round_trip() -> None:
    """decode → IR history → encode puts each signature back on the part it came with."""
    raw = (FIXTURES / "thinking" / "upstream_response.json").read_bytes()
    original = orjson.loads(raw)["candidates"][0]["content"]["parts"]
    decoded = DIALECT.decode_response(raw, OPTIONS)
    calls = [p for p in decoded.message.parts if isinstance(p, ToolCall)]
    results = tuple(Message("tool", (ToolResult(c.id, (Text('{"rain": true}'),)),)) for c in reversed(calls))
    body = encode(req(user("Umbrella?"), decoded.message, *results, tools=(WEATHER,)))
    model_turn = body["contents"][1]
    assert model_turn["role"] == "model"
    # the unsigned thought summary is not replayed; every signed part is, exactly as received
    assert model_turn["parts"] == [p for p in original if not p.get("thought")]
    assert (
        body["contents"][2]["parts"]
        == [{"functionResponse": {"name": "get_weather", "response": {"result": {"rain": True}}}}] * 2
    )

    raw = (FIXTURES / "thinking_text" / "upstream_response.json").read_bytes()
    original = orjson.loads(raw)["candidates"][0]["content"]["parts"]
    decoded = DIALECT.decode_response(raw, OPTIONS)
    assert encode(req(user("q"), decoded.message))["contents"][1]["parts"] == original


# ------------------------------------------------------------------------- decode_response


def test_decode_rejects_unusable_bodies() -> None:
    for body in (b"not json", b"[1]", orjson.dumps({"candidates": []}), orjson.dumps({"candidates": "x"})):
        with pytest.raises(UpstreamProtocolError):
            DIALECT.decode_response(body, OPTIONS)
    with pytest.raises(UpstreamProtocolError, match="not an object"):
        decode({"candidates": [{"content": {"parts": ["text"]}}]})
    with pytest.raises(UpstreamProtocolError, match="without a name"):
        decode(answer({"functionCall": {"args": {}}}))


def test_decode_error_object_in_a_200_body() -> None:
    with pytest.raises(UpstreamRateLimited):
        decode({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})


def test_decode_prompt_block_with_message() -> None:
    with pytest.raises(ContentFiltered, match=r"\(SAFETY\): unsafe"):
        decode({"promptFeedback": {"blockReason": "SAFETY", "blockReasonMessage": "unsafe"}})


def test_decode_odd_parts_and_defaults() -> None:
    response = decode(
        {
            "candidates": [
                {"content": {"parts": [{"text": "other candidate"}]}, "index": 1},
                answer(
                    {"functionCall": {"name": "noargs"}},
                    {
                        "executableCode": {"language": "PYTHON", "code": "print(1)"},
                        "thoughtSignature": "U0k=",
                    },
                    {"thoughtSignature": ""},
                    {"text": "", "thought": True},
                    finish=None,
                )["candidates"][0],
            ],
            "createTime": "2026-01-01T00:00:00.000000Z",
        }
    )
    assert response.id.startswith("gemini-")
    assert response.created == 1767225600
    assert response.usage is None
    assert response.finish_reason == "tool_calls"
    assert response.message.parts == (
        ToolCall("call_0_noargs", "noargs", "{}"),
        Reasoning("", "U0k="),
        Opaque("gemini", {"executableCode": {"language": "PYTHON", "code": "print(1)"}}),
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
        ("SOMETHING_NEW", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(raw: str | None, reason: str) -> None:
    assert decode(answer({"text": "x"}, finish=raw)).finish_reason == reason


def test_decode_candidate_without_content_and_bad_create_time() -> None:
    response = decode({"candidates": [{"finishReason": "STOP"}], "createTime": "yesterday"})
    assert response.message.parts == ()
    assert response.created == 0
    response = decode({"candidates": [{"content": {"role": "model"}}], "createTime": 5})
    assert (response.message.parts, response.created) == ((), 0)


def test_usage_ignores_non_integers() -> None:
    usage = decode(answer({"text": "x"}, usageMetadata={"promptTokenCount": "7", "candidatesTokenCount": 2}))
    assert usage.usage == Usage(0, 2)


# ------------------------------------------------------------------------------ the stream


def test_stream_start_comes_first_even_without_candidates() -> None:
    events = stream({"usageMetadata": {"promptTokenCount": 4}}, answer({"text": "hi"}))
    assert isinstance(events[0], Start) and events[0].id.startswith("gemini-")
    assert events[1:] == [TextDelta("hi"), UsageEvent(Usage(4)), Finish("stop")]


def test_stream_ids_without_response_id_and_skipped_parts() -> None:
    events = stream(
        answer(
            {"functionCall": {"name": "f", "args": {"a": [1, 2]}}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
            {"text": "", "thought": True, "thoughtSignature": "U0k="},
        ),
        options=DialectOptions("g", "alias"),
    )
    assert events[1:] == [
        ToolCallStart(0, "call_0_f", "f"),
        ToolCallDelta(0, '{"a":[1,2]}'),
        ReasoningDelta("", "U0k="),
        Finish("tool_calls"),
    ]
    assert events[0].model == "alias"  # type: ignore[union-attr]


def test_stream_protocol_errors() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(SSEEvent("[DONE]"))
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(SSEEvent("{not json"))
    with pytest.raises(UpstreamProtocolError, match="truncated"):
        DIALECT.stream_decoder(OPTIONS).close()


def test_stream_error_before_any_content_raises_at_once() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    error = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(UpstreamRateLimited) as info:
        decoder.feed(SSEEvent(json.dumps(error)))
    assert info.value.upstream_status == 429


def test_stream_ignores_other_candidates_and_keeps_last_usage() -> None:
    events = stream(
        {
            "candidates": [{"content": {"parts": [{"text": "B"}]}, "index": 1}],
            "usageMetadata": {"promptTokenCount": 1},
        },
        answer({"text": "A"}, usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 1}),
    )
    assert events[1:] == [TextDelta("A"), UsageEvent(Usage(2, 1)), Finish("stop")]


def test_stream_framed_with_bare_newlines() -> None:
    """The framer handles LF-only framing too; the decoder does not care which."""
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (answer({"text": "x"}),))
    framer = SSEFramer()
    decoder = DIALECT.stream_decoder(OPTIONS)
    events = [e for frame in framer.feed(raw) + framer.close() for e in decoder.feed(frame)] + decoder.close()
    assert events[1:] == [TextDelta("x"), Finish("stop")]


# ------------------------------------------------------------------------------- errors


def err(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return DIALECT.decode_error(status, headers or {}, raw)


def test_error_bodies_without_a_google_error() -> None:
    e = err(502, b"")
    assert isinstance(e, UpstreamUnavailable) and e.message == "upstream answered HTTP 502"
    e = err(400, {"detail": "x"}, {"Retry-After": "oops"})
    assert isinstance(e, UpstreamRequestError) and e.retry_after is None
    e = err(429, b"slow down", {"retry-after": "3"})
    assert isinstance(e, UpstreamRateLimited) and e.retry_after == 3.0
    assert isinstance(err(400, []), UpstreamRequestError)


def test_error_classification_details() -> None:
    e = err(
        400,
        {
            "error": {
                "code": 400,
                "message": "The input token count (5) exceeds the maximum number of tokens allowed (4).",
            }
        },
    )
    assert isinstance(e, ContextLengthExceeded) and e.code == "context_length_exceeded"
    e = err(
        400,
        {
            "error": {
                "code": 400,
                "message": "API key expired. Please renew the API key.",
                "status": "INVALID_ARGUMENT",
            }
        },
    )
    assert isinstance(e, UpstreamAuthError)
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"}
    e = err(429, {"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED", "details": [info]}})
    assert isinstance(e, UpstreamRateLimited)
    e = err(501, {"error": {"code": 501, "message": "not implemented", "status": "UNIMPLEMENTED"}})
    assert isinstance(e, UpstreamUnavailable) and e.code == "UNIMPLEMENTED"
    e = err(
        429,
        {
            "error": {
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"},
                    "junk",
                ],
            }
        },
    )
    assert isinstance(e, UpstreamRateLimited) and e.retry_after is None and e.message == "RESOURCE_EXHAUSTED"
    e = err(404, {"error": {"message": "gone", "status": 7}})
    assert isinstance(e, UpstreamRequestError) and e.code is None


def test_error_messages_are_redacted() -> None:
    leaked = "AIza" + "Sy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7"
    e = err(
        400,
        {"error": {"code": 400, "message": f"bad request to ?key={leaked}", "status": "INVALID_ARGUMENT"}},
    )
    assert leaked not in e.message and "***" in e.message
    e = err(502, f"<html>{leaked}</html>".encode())
    assert leaked not in e.message


def test_in_stream_error_takes_status_from_code() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    decoder.feed(SSEEvent(json.dumps(answer({"text": "x"}, finish=None))))
    with pytest.raises(UpstreamUnavailable) as info:
        decoder.feed(SSEEvent('{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}'))
    assert info.value.upstream_status == 503 and info.value.http_status() == 503
    with pytest.raises(UpstreamUnavailable) as info:
        DIALECT.stream_decoder(OPTIONS).feed(SSEEvent('{"error": {"message": "boom"}}'))
    assert info.value.upstream_status == 0 and info.value.http_status() == 502


def compat(call_id: str, fields: Any) -> Opaque:
    return Opaque("openai", {"tool_call": call_id, "fields": fields})


def test_signatures_in_googles_openai_compatible_form() -> None:
    """``tool_calls[].extra_content.google.thought_signature`` (Gemini's OpenAI endpoint) is honoured."""
    message = Message(
        "assistant",
        (
            ToolCall("c1", "f", "{}"),
            compat("c1", {"extra_content": {"google": {"thought_signature": "U0lH"}}}),
            ToolCall("c2", "f", "{}"),
            compat("c2", {"extra_content": {"google": {}}}),
            ToolCall("c3", "f", "{}"),
            compat("c3", {"extra_content": "odd"}),
        ),
    )
    parts = encode(req(user("q"), message))["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == ["U0lH", None, None]
    odd_fields: tuple[Any, ...] = ({"extra_content": {}, "audio": {}}, "not a mapping")
    for fields in odd_fields:
        bad = Message("assistant", (ToolCall("c1", "f", "{}"), compat("c1", fields)))
        with pytest.raises(UnsupportedFeature, match="cannot be sent to Gemini"):
            encode(req(user("q"), bad))
    with pytest.raises(UnsupportedFeature):
        encode(req(user("q"), Message("assistant", (Opaque("openai", {"fields": {"audio": {}}}),))))
