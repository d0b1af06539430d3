"""``decode_response`` / ``encode_response`` / ``decode_usage`` edge cases and ``decode_error``'s
classification, ``Retry-After`` parsing and redaction."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from unigate.dialects.openai_chat import (
    DIALECT,
    decode_error,
    decode_response,
    decode_usage,
    encode_error,
    encode_response,
)
from unigate.dialects.openai_chat_errors import MAX_TEXT, error_from_payload
from unigate.errors import (
    BadRequest,
    ContentFiltered,
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
from unigate.ir import Audio, ChatResponse, Image, Message, Opaque, Reasoning, Text, ToolCall, Usage

from .test_openai_chat_fixtures import options

OPTS = options()


def completion(message: dict[str, Any], finish: Any = "stop", **top: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    body.update(top)
    return json.dumps(body).encode()


# --------------------------------------------------------------------------- decode_response


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'"text"', "not an object"),
        (b"[1, 2]", "not an object"),
        (b"{}", "no choices"),
        (b'{"choices": []}', "no choices"),
        (b'{"choices": {"0": {}}}', "no choices"),
        (b'{"choices": [{"index": 0}]}', "without a message"),
        (b'{"choices": ["x"]}', "without a message"),
        (b'{"choices": [{"index": 1, "message": {}}]}', "without a message"),
        (b'{"choices": [{"message": "hi"}]}', "without a message"),
    ],
)
def test_unusable_bodies_are_protocol_errors(raw: bytes, why: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=why) as info:
        decode_response(raw, OPTS)
    assert info.value.http_status() == 502


def test_error_object_in_a_200_body_is_classified() -> None:
    body = {"error": {"message": "Maximum context length is 8192 tokens", "code": "context_length_exceeded"}}
    with pytest.raises(ContextLengthExceeded) as info:
        decode_response(orjson.dumps(body), OPTS)
    assert info.value.upstream_status == 200 and info.value.http_status() == 400
    with pytest.raises(UpstreamRateLimited):
        decode_response(b'[{"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}]',
                        OPTS)  # fmt: skip
    with pytest.raises(UpstreamUnavailable) as unknown:
        DIALECT.decode_response(b'{"error": {"message": "something broke"}}', OPTS)
    assert unknown.value.http_status() == 502


def test_choice_zero_is_picked_among_several() -> None:
    raw = json.dumps({"choices": [
        {"index": 1, "message": {"content": "second"}, "finish_reason": "stop"},
        {"index": 0, "message": {"content": "first"}, "finish_reason": "length"},
    ]})  # fmt: skip
    resp = decode_response(raw.encode(), OPTS)
    assert resp.message.parts == (Text("first"),) and resp.finish_reason == "length"
    assert (resp.id, resp.created, resp.usage, resp.model) == ("", 0, None, "client-model")


def test_message_parts_in_ir_order() -> None:
    raw = completion(
        {
            "content": [{"type": "text", "text": "a"}, {"type": "image", "image": "x"}, "junk"],
            "reasoning": "r",
            "refusal": "sorry",
            "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
                {"id": "c2", "function": {"name": "g", "arguments": None}, "index": 1,
                 "extra_content": {"google": {"thought_signature": "c2ln"}}},
            ],
        },
        finish="stop",
    )  # fmt: skip
    resp = decode_response(raw, OPTS)
    assert resp.message.parts == (
        Reasoning("r"),
        Text("a"),
        Opaque("openai", {"part": {"type": "image", "image": "x"}}),
        Text("sorry"),
        ToolCall("call_0", "f", '{"x":1}'),
        ToolCall("c2", "g", ""),
        Opaque("openai", {"tool_call": "c2", "fields": {"extra_content": {"google": {"thought_signature": "c2ln"}}}}),
    )
    assert resp.finish_reason == "tool_calls", "stop with tool calls means tool_calls"
    client = encode_response(resp)
    message = client["choices"][0]["message"]
    assert message["content"] == "asorry"
    assert message["tool_calls"][1]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert message["reasoning_content"] == "r"
    ChatCompletion.model_validate(client)


@pytest.mark.parametrize(
    "call", [{"function": {"arguments": "{}"}}, {"function": "f"}, "call", {"id": "c", "function": {"name": ""}}]
)
def test_tool_call_without_a_name_is_a_protocol_error(call: Any) -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_response(completion({"tool_calls": [call]}), OPTS)


@pytest.mark.parametrize(
    ("given", "calls", "expected"),
    [
        ("stop", False, "stop"),
        ("length", True, "length"),
        ("content_filter", False, "content_filter"),
        ("function_call", False, "tool_calls"),
        ("end_turn", False, "stop"),
        ("max_tokens", False, "length"),
        ("tool_use", False, "tool_calls"),
        ("error", False, "error"),
        ("something_new", False, "stop"),
        ("something_new", True, "tool_calls"),
        (None, False, None),
        ("", False, None),
        (3, False, None),
    ],
)
def test_finish_reasons(given: Any, calls: bool, expected: Any) -> None:
    message: dict[str, Any] = {"content": "x"}
    if calls:
        message["tool_calls"] = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert decode_response(completion(message, finish=given), OPTS).finish_reason == expected


def test_usage_decoding() -> None:
    assert decode_usage(None) is None and decode_usage([1]) is None
    assert decode_usage({}) == Usage()
    assert decode_usage(
        {"prompt_tokens": 10.0, "completion_tokens": True, "prompt_tokens_details": None,
         "completion_tokens_details": {"reasoning_tokens": -4}, "prompt_cache_hit_tokens": 6}
    ) == Usage(prompt_tokens=10, completion_tokens=0, cached_tokens=6, reasoning_tokens=0)  # fmt: skip
    assert decode_usage({"prompt_tokens": float("nan"), "completion_tokens": float("inf")}) == Usage(0, 2**53)
    assert decode_usage({"prompt_tokens": "12", "prompt_tokens_details": {"cached_tokens": 3}}) == Usage(
        cached_tokens=3
    )


# --------------------------------------------------------------------------- encode_response


def response(*parts: Any, finish: Any = None, usage: Usage | None = None) -> ChatResponse:
    return ChatResponse(id="r1", model="alias", created=5, message=Message("assistant", parts), finish_reason=finish,
                        usage=usage)  # fmt: skip


def test_encode_response_shapes() -> None:
    empty = encode_response(response())
    assert empty["choices"][0]["message"] == {"role": "assistant", "content": "", "refusal": None}
    assert empty["choices"][0]["finish_reason"] == "stop" and "usage" not in empty
    calls = encode_response(response(ToolCall("c", "f", "{}"), Opaque("gemini", {"executableCode": {}})))
    assert calls["choices"][0]["message"]["content"] is None
    assert calls["choices"][0]["finish_reason"] == "tool_calls"
    redacted = encode_response(response(Reasoning("", signature="opaque", redacted=True), Text("t"), finish="length"))
    assert "reasoning_content" not in redacted["choices"][0]["message"]
    assert redacted["choices"][0]["finish_reason"] == "length"
    usage = encode_response(response(Text("t"), usage=Usage(3, 4, cached_tokens=1, reasoning_tokens=2)))["usage"]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                     "prompt_tokens_details": {"cached_tokens": 1},
                     "completion_tokens_details": {"reasoning_tokens": 2}}  # fmt: skip
    for shape in (empty, calls, redacted):
        ChatCompletion.model_validate(shape)


@pytest.mark.parametrize("part", [Image("https://x/i.png"), Audio("AA", "wav")])
def test_media_output_cannot_be_expressed(part: Any) -> None:
    with pytest.raises(UnsupportedFeature):
        encode_response(response(Text("a"), part))


def test_encode_error_is_openais_shape() -> None:
    body = encode_error(BadRequest("nope", param="messages[0]"))
    assert body == {"error": {"message": "nope", "type": "invalid_request_error", "param": "messages[0]", "code": None}}


# --------------------------------------------------------------------------- decode_error


def error_body(**error: Any) -> bytes:
    return json.dumps({"error": {"message": "m", "type": "t", "param": None, "code": None, **error}}).encode()


@pytest.mark.parametrize(
    ("status", "raw", "cls", "http_status"),
    [
        (400, error_body(), UpstreamRequestError, 400),
        (401, error_body(), UpstreamAuthError, 502),
        (403, error_body(), UpstreamAuthError, 502),
        (404, error_body(code="model_not_found"), UpstreamRequestError, 404),
        (408, b"", UpstreamTimeout, 504),
        (413, error_body(message="Request too large: reduce the length of the messages"), ContextLengthExceeded, 413),
        (422, b'{"detail": "context window exceeded"}', ContextLengthExceeded, 422),
        (429, error_body(message="maximum context length reached for tokens per min"), UpstreamRateLimited, 429),
        (429, error_body(type="insufficient_quota"), UpstreamAuthError, 502),
        (402, error_body(code="billing_hard_limit_reached"), UpstreamAuthError, 502),
        (400, error_body(code="invalid_api_key"), UpstreamAuthError, 502),
        (400, error_body(code="invalid_prompt"), ContentFiltered, 400),
        (400, error_body(code="content_policy_violation"), ContentFiltered, 400),
        (500, error_body(code="rate_limit_exceeded"), UpstreamRateLimited, 500),
        (500, error_body(type="server_error"), UpstreamUnavailable, 500),
        (503, error_body(message="The engine is currently overloaded"), UpstreamUnavailable, 503),
        (200, error_body(code="503"), UpstreamUnavailable, 503),
        (200, error_body(status=429), UpstreamRateLimited, 429),
        (200, error_body(code=99, status="x"), UpstreamUnavailable, 502),
        (201, b'{"error": "boom"}', UpstreamUnavailable, 502),
    ],
)
def test_classification(status: int, raw: bytes, cls: type[UpstreamError], http_status: int) -> None:
    err = decode_error(status, {}, raw)
    assert type(err) is cls
    assert err.http_status() == http_status


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"Retry-After": "3"}, "m", 3.0),
        ({"retry-after": " 0.5 "}, "m", 0.5),
        ({"RETRY-AFTER-MS": "1500", "retry-after": "9"}, "m", 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, "m", 9.0),
        ({"retry-after": "-1"}, "m", None),
        ({"retry-after": "nan"}, "m", None),
        ({"retry-after": "inf"}, "m", None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, "m", None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, "m", 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "date": "Wed, 21 Oct 2015 07:29:00 GMT"}, "m", 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 -0000", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, "m", None),
        ({"retry-after": "garbage", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, "m", None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": "yesterday"}, "m", None),
        ({}, "Please try again in 1.824s.", 1.824),
        ({}, "Please try again in 20ms.", 0.02),
        ({"retry-after": "bogus"}, "Please try again in 6s", 6.0),
        ({}, "Please try again later.", None),
    ],
)
def test_retry_after(headers: dict[str, str], message: str, expected: float | None) -> None:
    err = decode_error(429, headers, error_body(message=message))
    assert err.retry_after == pytest.approx(expected) if expected is not None else err.retry_after is None


def test_message_sources() -> None:
    assert decode_error(400, {}, b'{"error": "plain string"}').message == "plain string"
    assert decode_error(404, {}, b'{"detail": "Not Found"}').message == "Not Found"
    flat = decode_error(429, {}, b'{"message": "slow down", "code": "rate_limit_exceeded", "type": "requests"}')
    assert (flat.message, flat.code, type(flat)) == ("slow down", "rate_limit_exceeded", UpstreamRateLimited)
    assert decode_error(500, {}, b'{"error": {"message": 5}}').message == '{"error": {"message": 5}}'
    assert decode_error(500, {}, b'{"unrelated": true}').message == '{"unrelated": true}'
    assert decode_error(500, {}, b'"a JSON string"').message == '"a JSON string"'
    assert decode_error(500, {}, b"[1, 2]").message == "[1, 2]"
    assert decode_error(500, {}, b"  \n").message == "upstream answered HTTP 500 with an empty body"
    long = decode_error(502, {}, b"x" * 2000).message
    assert long == "x" * MAX_TEXT + "…"
    assert len(decode_error(400, {}, error_body(message="y" * 9000)).message) == 4000


def test_html_is_summarised_never_echoed() -> None:
    page = b"<html><head><title>\n  Bad   Gateway </title></head><body><script>secret()</script></body></html>"
    assert decode_error(502, {}, page).message == "upstream answered HTTP 502 with an HTML page: Bad Gateway"
    untitled = decode_error(502, {"Content-Type": "text/html; charset=utf-8"}, b"oops <b>down</b>")
    assert untitled.message == "upstream answered HTTP 502 with an HTML page"


def test_secrets_are_redacted() -> None:
    key = "sk-" + "Ab3" * 10
    err = decode_error(401, {}, error_body(message=f"Incorrect API key provided: {key}."))
    assert key not in err.message and "***" in err.message
    text = decode_error(400, {"content-type": "text/plain"}, f"bad header Authorization: Bearer {key}".encode())
    assert key not in text.message
    titled = decode_error(403, {}, f"<html><title>key {key}</title></html>".encode())
    assert key not in titled.message


def test_code_and_param_are_sanitised() -> None:
    assert decode_error(400, {}, error_body(code=True)).code is None
    assert decode_error(400, {}, error_body(code={"x": 1})).code is None
    assert decode_error(400, {}, error_body(code=400)).code == "400"
    assert decode_error(400, {}, error_body(code="")).code is None
    assert decode_error(400, {}, error_body(param=["messages"])).param is None
    assert decode_error(400, {}, error_body(param="p" * 500)).param == "p" * 200


def test_error_from_payload() -> None:
    err = error_from_payload({"error": {"message": "flagged", "type": "content_filter"}})
    assert isinstance(err, ContentFiltered) and err.upstream_status == 200 and err.http_status() == 400
    assert isinstance(DIALECT.decode_error(429, {}, b""), UpstreamRateLimited)
