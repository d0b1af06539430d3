"""The Cohere v2 dialect's non-streamed responses (part order, finish reasons, usage, unusable
bodies) and its error table (status → class, context length, ``Retry-After``, redaction)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dialects.test_cohere_fixtures import check_response
from unigate.dialects.base import DialectOptions
from unigate.dialects.cohere import DIALECT
from unigate.errors import (
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.ir import Reasoning, Text, ToolCall

OPTIONS = DialectOptions(upstream_model="command-a-03-2025", client_model="co")


# --------------------------------------------------------------------------- responses


def decode(body: dict[str, Any], options: DialectOptions = OPTIONS) -> Any:
    return DIALECT.decode_response(json.dumps(body).encode(), options)


def response(message: dict[str, Any], finish: str = "COMPLETE", **more: Any) -> dict[str, Any]:
    return {"id": "r-1", "finish_reason": finish, "message": {"role": "assistant", **message}, **more}


def test_response_parts_in_order() -> None:
    body = response(
        {
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Checking."}],
            "tool_plan": "Call it.",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_time"}}],
        },
        "TOOL_CALL",
    )
    check_response(body)
    answer = decode(body, DialectOptions("m", "co", settings={"created": 1700000000}))
    assert answer.message.parts == (
        Reasoning("hmm"),
        Reasoning("Call it."),
        Text("Checking."),
        ToolCall("t1", "get_time", ""),
    )
    assert (answer.id, answer.model, answer.created, answer.finish_reason) == ("r-1", "co", 1700000000, "tool_calls")
    assert answer.usage is None


def test_unknown_content_items_are_skipped_and_malformed_ones_fail() -> None:
    answer = decode(response({"content": [{"type": "image", "url": "x"}, {"type": "text", "text": "ok"}]}))
    assert answer.message.parts == (Text("ok"),)
    with pytest.raises(UpstreamProtocolError):
        decode(response({"content": [{"type": "text"}]}))
    with pytest.raises(UpstreamProtocolError):
        decode(response({"content": ["text"]}))


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("NEW", "stop"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    assert decode(response({"content": [{"type": "text", "text": "x"}]}, finish)).finish_reason == expected


@pytest.mark.parametrize(
    ("finish", "cls", "status"), [("ERROR", UpstreamUnavailable, 502), ("TIMEOUT", UpstreamTimeout, 504)]
)
def test_a_failed_ending_is_a_failed_attempt(finish: str, cls: type[UpstreamError], status: int) -> None:
    with pytest.raises(cls) as info:
        decode(response({"content": [{"type": "text", "text": "partial"}]}, finish))
    assert info.value.http_status() == status and info.value.code == finish


def test_usage_prefers_tokens_then_billed_units() -> None:
    text = {"content": [{"type": "text", "text": "x"}]}
    both = {
        "billed_units": {"input_tokens": 5, "output_tokens": 2},
        "tokens": {"input_tokens": 50.0, "output_tokens": 2.0},
        "cached_tokens": 32.0,
    }
    usage = decode(response(text, usage=both)).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (50, 2, 32)
    billed = decode(response(text, usage={"billed_units": {"input_tokens": 5, "output_tokens": 2}})).usage
    assert (billed.prompt_tokens, billed.completion_tokens, billed.cached_tokens) == (5, 2, 0)
    odd = decode(response(text, usage={"tokens": {"input_tokens": -1, "output_tokens": True}})).usage
    assert (odd.prompt_tokens, odd.completion_tokens) == (0, 0)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1]", b'{"id": "x"}', b'{"message": {"role": "assistant"}}', b'{"id":"x","message":{}}'],
)
def test_unusable_bodies_are_protocol_errors(raw: bytes) -> None:
    if raw == b'{"id":"x","message":{}}':  # an empty message is a valid (empty) answer
        assert DIALECT.decode_response(raw, OPTIONS).message.parts == ()
        return
    with pytest.raises(UpstreamProtocolError):
        DIALECT.decode_response(raw, OPTIONS)


def test_an_error_body_under_200_is_an_error() -> None:
    with pytest.raises(UpstreamUnavailable, match="internal server error"):
        DIALECT.decode_response(b'{"id": "e-1", "message": "internal server error"}', OPTIONS)


def test_tool_calls_without_a_name_are_protocol_errors() -> None:
    with pytest.raises(UpstreamProtocolError):
        decode(response({"tool_calls": [{"id": "t1", "type": "function", "function": {"arguments": "{}"}}]}))
    with pytest.raises(UpstreamProtocolError):
        decode(response({"tool_calls": [{"type": "function", "function": {"name": "f"}}]}))


# --------------------------------------------------------------------------- errors

BODY = json.dumps({"id": "e-1", "message": "the upstream says no"}).encode()


@pytest.mark.parametrize(
    ("status", "cls", "client_status"),
    [
        (400, UpstreamRequestError, 400),
        (401, UpstreamAuthError, 502),
        (402, UpstreamAuthError, 502),
        (403, UpstreamAuthError, 502),
        (404, UpstreamRequestError, 404),
        (422, UpstreamRequestError, 422),
        (429, UpstreamRateLimited, 429),
        (498, UpstreamAuthError, 502),
        (499, UpstreamUnavailable, 499),
        (500, UpstreamUnavailable, 500),
        (501, UpstreamUnavailable, 501),
        (502, UpstreamUnavailable, 502),
        (503, UpstreamUnavailable, 503),
        (504, UpstreamTimeout, 504),
    ],
)
def test_errors_by_status(status: int, cls: type[UpstreamError], client_status: int) -> None:
    error = DIALECT.decode_error(status, {}, BODY)
    assert type(error) is cls
    assert error.message == "the upstream says no" and error.upstream_status == status
    assert error.http_status() == client_status


def test_too_many_tokens_is_a_context_length_error() -> None:
    body = b'{"message": "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292."}'
    assert type(DIALECT.decode_error(400, {}, body)) is ContextLengthExceeded


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-3"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert DIALECT.decode_error(429, headers, BODY).retry_after == expected


def test_bodies_that_are_not_cohere_errors() -> None:
    html = DIALECT.decode_error(502, {}, b"<html><body>Bad gateway</body></html>")
    assert "Bad gateway" in html.message
    assert DIALECT.decode_error(503, {}, b"").message == "Cohere answered HTTP 503"
    other = DIALECT.decode_error(400, {}, b'{"error": {"code": 1}}')
    assert '"code"' in other.message


def test_error_messages_are_redacted() -> None:
    body = b'{"message": "invalid api token: Bearer co-9f8e7d6c5b4a3f2e1d0c"}'
    error = DIALECT.decode_error(401, {}, body)
    assert "co-9f8e7d6c5b4a3f2e1d0c" not in error.message and "***" in error.message
