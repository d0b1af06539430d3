"""``OpenAIStreamDecoder`` state-machine edges, ``StreamEncoder`` invariants, and the official
``openai`` SDK reading what the encoder writes (through a mock transport, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from unigate.dialects.openai_chat import DONE_FRAME, OpenAIStreamDecoder, StreamEncoder, encode_response
from unigate.dialects.sse import SSEEvent
from unigate.errors import (
    ContextLengthExceeded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
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
from unigate.ir import ChatResponse, Message, Reasoning, Text, ToolCall, Usage

from .test_openai_chat_fixtures import options, validate_chunks

OPTS = options()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> SSEEvent:
    body: dict[str, Any] = {"id": "r1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    body.update(top)
    return SSEEvent(json.dumps(body))


DONE = SSEEvent("[DONE]")


def run(*events: SSEEvent, close: bool = True) -> list[Event]:
    decoder = OpenAIStreamDecoder(OPTS)
    out: list[Event] = []
    for event in events:
        out.extend(decoder.feed(event))
    if close:
        out.extend(decoder.close())
    return out


# --------------------------------------------------------------------------- decoder


def test_start_comes_from_the_first_chunk_whatever_it_holds() -> None:
    events = run(SSEEvent(json.dumps({"id": "u1", "choices": [], "usage": {"prompt_tokens": 2}})), chunk(finish="stop"))
    assert events == [Start("u1", "client-model"), Finish("stop"), UsageEvent(Usage(prompt_tokens=2))]
    assert run(SSEEvent('{"choices": null}'), chunk(finish="stop"))[0] == Start("", "client-model")


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([DONE], "before any chunk"),
        ([SSEEvent("{not json")], "not JSON"),
        ([SSEEvent("[1, 2]")], "not a JSON object"),
        ([SSEEvent('{"choices": {"index": 0}}')], "not an array"),
        ([chunk({"tool_calls": ["x"]})], "not an object"),
        ([chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]})], "without a function"),
        ([chunk({"tool_calls": [{"function": {"arguments": "{}"}}]})], "without a function"),
        ([chunk({"content": "a"})], "truncated"),
        ([], "truncated"),
    ],
)
def test_protocol_errors(events: list[SSEEvent], match: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=match):
        run(*events)


def test_in_band_errors_are_classified() -> None:
    with pytest.raises(UpstreamRateLimited) as info:
        run(chunk({"content": "a"}), SSEEvent('{"error": {"message": "slow", "code": "rate_limit_exceeded"}}'))
    assert info.value.message == "slow"
    with pytest.raises(ContextLengthExceeded):
        run(SSEEvent('{"error": {"message": "too long", "code": "context_length_exceeded"}}'))
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        run(SSEEvent("overloaded, try later", event="error"))
    with pytest.raises(UpstreamUnavailable, match="gone"):
        run(SSEEvent('{"message": "gone"}', event="error"))


def test_blank_events_and_everything_after_done_are_ignored() -> None:
    decoder = OpenAIStreamDecoder(OPTS)
    assert decoder.feed(SSEEvent("  ")) == []
    decoder.feed(chunk({"content": "a"}, "stop"))
    assert decoder.feed(DONE) == []
    assert decoder.feed(chunk({"content": "late"})) == []
    assert decoder.feed(SSEEvent('{"error": {"message": "late"}}')) == []
    assert decoder.close() == []


def test_done_without_finish_reason_synthesises_one() -> None:
    assert run(chunk({"content": "a"}), DONE)[-1] == Finish("stop")
    calls = run(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}), DONE)
    assert calls[-1] == Finish("tool_calls")


def test_finish_without_done_is_complete_and_usage_is_emitted_at_close() -> None:
    decoder = OpenAIStreamDecoder(OPTS)
    events = decoder.feed(chunk({"content": "a"}, "length", usage={"prompt_tokens": 1, "completion_tokens": 2}))
    assert events[-1] == Finish("length")
    assert decoder.close() == [UsageEvent(Usage(1, 2))]
    assert decoder.close() == []


def test_after_finish_only_usage_is_read_and_the_last_usage_wins() -> None:
    events = run(
        chunk({"content": "a"}, usage={"prompt_tokens": 1}),
        chunk({}, "stop"),
        chunk({"content": "ignored"}, "length"),
        SSEEvent('{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}'),
        DONE,
    )
    assert events == [Start("r1", "client-model"), TextDelta("a"), Finish("stop"), UsageEvent(Usage(5, 6))]


def test_deltas() -> None:
    events = run(
        chunk({"role": "assistant", "content": "", "reasoning_content": "", "refusal": None}),
        chunk({"reasoning_content": "x", "reasoning": "x"}),
        chunk({"reasoning": "y"}),
        chunk({"content": "a", "refusal": "b"}),
        chunk(None),
        SSEEvent(json.dumps({"choices": [{"index": 1, "delta": {"content": "other choice"}}, "junk"]})),
        chunk({}, "content_filter"),
    )
    assert events[1:] == [
        ReasoningDelta("x"),
        ReasoningDelta("y"),
        TextDelta("a"),
        TextDelta("b"),
        Finish("content_filter"),
    ]


def test_tool_call_indexing() -> None:
    events = run(
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "}"}}]}),
        # a server that reuses index 0 for a second call, with a new id
        chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": {"k": 1}}}]}),
        # no index, no id: continues the last call
        chunk({"tool_calls": [{"function": {"arguments": " "}}]}),
        # no id at all: synthesised from the response id
        chunk({"tool_calls": [{"index": 5, "function": {"name": "h", "arguments": None}}]}),
        chunk({"tool_calls": [{"index": True, "id": "d", "function": {"name": "k"}}]}),
        chunk({}, "stop"),
    )
    assert events[1:] == [
        ToolCallStart(0, "a", "f"),
        ToolCallDelta(0, "{"),
        ToolCallDelta(0, "}"),
        ToolCallStart(1, "b", "g"),
        ToolCallDelta(1, '{"k":1}'),
        ToolCallDelta(1, " "),
        ToolCallStart(2, "call_r1_2", "h"),
        ToolCallStart(3, "d", "k"),
        Finish("tool_calls"),
    ]


# --------------------------------------------------------------------------- encoder


def frames_to_chunks(frames: Iterable[bytes]) -> list[Any]:
    out: list[Any] = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        payload = frame[6:-2]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def encode(events: Iterable[Event], *, include_usage: bool = False) -> tuple[StreamEncoder, list[bytes]]:
    encoder = StreamEncoder(id="c1", model="alias", created=7, include_usage=include_usage)
    frames: list[bytes] = []
    for event in events:
        frames.extend(encoder.feed(event))
    return encoder, frames


def test_start_writes_nothing_and_the_first_chunk_carries_the_role() -> None:
    encoder, frames = encode([Start("up", "m"), TextDelta(""), ReasoningDelta("", signature="sig")])
    assert frames == []
    frames = encoder.feed(ReasoningDelta("r"))
    assert frames_to_chunks(frames)[0]["choices"][0]["delta"] == {"role": "assistant", "reasoning_content": "r"}
    assert frames_to_chunks(encoder.feed(TextDelta("t")))[0]["choices"][0]["delta"] == {"content": "t"}


def test_exactly_one_finish_chunk_and_usage_is_held_to_the_end() -> None:
    encoder, frames = encode(
        [TextDelta("a"), UsageEvent(Usage(1, 2)), Finish("length"), Finish("stop"), TextDelta("late"),
         UsageEvent(Usage(3, 4, cached_tokens=1))],
        include_usage=True,
    )  # fmt: skip
    end = encoder.finish()
    chunks = frames_to_chunks([*frames, *end])
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-2]] == [None, "length"]
    assert all(c["usage"] is None for c in chunks[:-2])
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["prompt_tokens"] == 3
    assert chunks[-2]["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}
    assert chunks[-1] == "[DONE]" and end[-1] == DONE_FRAME
    assert encoder.finish() == [] and encoder.feed(TextDelta("x")) == []
    assert encoder.error_frames(UpstreamUnavailable("x")) == []
    validate_chunks(b"".join([*frames, *end]))


def test_finish_synthesises_the_finish_chunk_and_omits_unknown_usage() -> None:
    encoder, frames = encode([ToolCallStart(0, "c", "f"), ToolCallDelta(0, ""), ToolCallDelta(0, "{}")],
                             include_usage=True)  # fmt: skip
    chunks = frames_to_chunks([*frames, *encoder.finish()])
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
    }
    assert chunks[1]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[3] == "[DONE]", "no usage chunk when no usage is known"
    empty, _ = encode([])
    only = frames_to_chunks(empty.finish())
    assert only[0]["choices"][0] == {"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                                     "finish_reason": "stop"}  # fmt: skip
    assert "usage" not in only[0]


def test_usage_is_not_written_unless_asked() -> None:
    encoder, _ = encode([TextDelta("a"), Finish("stop"), UsageEvent(Usage(1, 1))])
    assert frames_to_chunks(encoder.finish()) == ["[DONE]"]


def test_error_frames() -> None:
    encoder, _ = encode([TextDelta("partial")])
    err = UpstreamUnavailable("upstream went away", code="server_error")
    tail = encoder.error_frames(err)
    assert frames_to_chunks(tail) == [
        {"error": {"message": "upstream went away", "type": "upstream_error", "param": None, "code": "server_error"}},
        "[DONE]",
    ]
    assert encoder.finish() == [] and encoder.error_frames(err) == []


# --------------------------------------------------------------------------- the official SDK as a client


def sdk_client(payload: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=payload)

    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(
        api_key="test-key", base_url="http://gateway.test/v1", http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )  # fmt: skip


def test_sdk_reads_an_encoded_stream() -> None:
    encoder, frames = encode(
        [Start("x", "m"), ReasoningDelta("think"), TextDelta("Hel"), TextDelta("lo"), ToolCallStart(0, "c1", "f"),
         ToolCallDelta(0, '{"a"'), ToolCallDelta(0, ": 1}"), ToolCallStart(1, "c2", "g"), Finish("tool_calls"),
         UsageEvent(Usage(10, 5, reasoning_tokens=2))],
        include_usage=True,
    )  # fmt: skip
    client = sdk_client(b"".join([*frames, *encoder.finish()]), "text/event-stream")
    chunks = list(client.chat.completions.create(model="alias", messages=[{"role": "user", "content": "x"}],
                                                 stream=True, stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    reasoning = "".join(extra.get("reasoning_content", "") for extra in extras)
    assert reasoning == "think"
    calls: dict[int, list[str]] = {}
    for c in chunks:
        for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            calls.setdefault(call.index, []).append(call.function.arguments if call.function else "")
    assert {i: "".join(parts) for i, parts in calls.items()} == {0: '{"a": 1}', 1: ""}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


def test_sdk_raises_on_the_in_band_error() -> None:
    encoder, frames = encode([TextDelta("partial")])
    client = sdk_client(b"".join([*frames, *encoder.error_frames(UpstreamError("upstream died"))]),
                        "text/event-stream")  # fmt: skip
    received: list[str] = []
    with pytest.raises(openai.APIError, match="upstream died"):
        for c in client.chat.completions.create(model="alias", messages=[{"role": "user", "content": "x"}],
                                                stream=True):  # fmt: skip
            received.append(c.choices[0].delta.content or "")
    assert received == ["partial"]


def test_sdk_reads_an_encoded_response() -> None:
    resp = ChatResponse(
        id="chatcmpl-9", model="alias", created=3,
        message=Message("assistant", (Reasoning("why"), Text("Answer"), ToolCall("c1", "f", "{}"))),
        finish_reason="tool_calls", usage=Usage(4, 6, cached_tokens=2),
    )  # fmt: skip
    client = sdk_client(json.dumps(encode_response(resp)).encode(), "application/json")
    got = client.chat.completions.create(model="alias", messages=[{"role": "user", "content": "x"}])
    assert isinstance(got, ChatCompletion)
    message = got.choices[0].message
    assert message.content == "Answer" and (message.model_extra or {})["reasoning_content"] == "why"
    assert message.tool_calls is not None and message.tool_calls[0].id == "c1"
    assert got.usage is not None and got.usage.prompt_tokens_details is not None
    assert got.usage.prompt_tokens_details.cached_tokens == 2


def test_sdk_tolerates_finish_reason_error() -> None:
    encoder, frames = encode([TextDelta("a"), Finish("error")])
    client = sdk_client(b"".join([*frames, *encoder.finish()]), "text/event-stream")
    stream = client.chat.completions.create(model="alias", messages=[{"role": "user", "content": "x"}], stream=True)
    assert [c.choices[0].finish_reason for c in stream] == [None, "error"]
