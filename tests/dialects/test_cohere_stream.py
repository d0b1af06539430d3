"""The Cohere stream state machine at its edges: ordering violations, unknown indices, gaps in
Cohere's numbering, failed endings, what is ignored (``[DONE]``, citations, debug, anything after
``message-end``). The documented streams are in ``test_cohere_fixtures.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from unigate.dialects.base import DialectOptions
from unigate.dialects.cohere import DIALECT, CohereStreamDecoder
from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from unigate.events import Event, Finish, ReasoningDelta, Start, TextDelta, ToolCallDelta, ToolCallStart, UsageEvent
from unigate.ir import Usage

OPTIONS = DialectOptions(upstream_model="command-a-03-2025", client_model="co")
START = {"type": "message-start", "id": "m-1", "delta": {"message": {"role": "assistant"}}}
END = {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}


def ev(data: dict[str, Any] | str, event: str | None = None) -> SSEEvent:
    if isinstance(data, str):
        return SSEEvent(data, event)
    return SSEEvent(json.dumps(data), event if event is not None else data.get("type"))


def feed(*events: dict[str, Any] | str, decoder: CohereStreamDecoder | None = None) -> list[Event]:
    decoder = decoder or DIALECT.stream_decoder(OPTIONS)
    out: list[Event] = []
    for data in events:
        out.extend(decoder.feed(ev(data)))
    return out


def text_start(index: int, kind: str = "text", initial: str = "") -> dict[str, Any]:
    return {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: initial}}}}


def text_delta(index: int, text: str, kind: str = "text") -> dict[str, Any]:
    return {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: text}}}}


def call_start(index: int, call_id: str = "c-1", name: str = "f", arguments: str = "") -> dict[str, Any]:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": call}}}


def call_delta(index: int, arguments: str) -> dict[str, Any]:
    return {
        "type": "tool-call-delta",
        "index": index,
        "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}},
    }


def test_a_minimal_stream() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    assert feed(
        START, text_start(0), text_delta(0, "hi"), {"type": "content-end", "index": 0}, END, decoder=decoder
    ) == [
        Start("m-1", "co"),
        TextDelta("hi"),
        Finish("stop"),
    ]
    assert decoder.close() == []


def test_a_start_without_an_id_and_text_in_the_start_event() -> None:
    start = {"type": "message-start", "delta": {"message": {"role": "assistant"}}}
    assert feed(start, text_start(0, initial="Hel"), text_delta(0, "lo")) == [
        Start("", "co"),
        TextDelta("Hel"),
        TextDelta("lo"),
    ]


def test_the_event_name_stands_in_for_a_missing_type() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    assert decoder.feed(SSEEvent(json.dumps({"id": "m-2"}), "message-start")) == [Start("m-2", "co")]


@pytest.mark.parametrize("first", [text_start(0), text_delta(0, "x"), call_start(0), END])
def test_content_before_message_start_is_a_protocol_error(first: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError, match="before message-start"):
        feed(first)


def test_unknown_events_before_message_start_are_ignored() -> None:
    assert feed({"type": "debug", "prompt": "..."}, START) == [Start("m-1", "co")]


def test_a_second_message_start_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="second message-start"):
        feed(START, START)


@pytest.mark.parametrize(
    "bad",
    [
        text_delta(3, "x"),
        {"type": "content-end", "index": 3},
        call_delta(0, "{}"),
        {"type": "tool-call-end", "index": 0},
        {"type": "content-delta", "delta": {"message": {"content": {"text": "x"}}}},
    ],
)
def test_events_for_unknown_indices_are_protocol_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError, match="unknown index"):
        feed(START, bad)


def test_repeated_starts_are_protocol_errors() -> None:
    with pytest.raises(UpstreamProtocolError, match="repeats an index"):
        feed(START, text_start(0), text_start(0))
    with pytest.raises(UpstreamProtocolError, match="repeats an index"):
        feed(START, call_start(0), call_start(0, "c-2"))


def test_a_delta_of_the_wrong_kind_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="without text on a text block"):
        feed(START, text_start(0), text_delta(0, "x", kind="thinking"))


def test_thinking_and_text_blocks_by_index() -> None:
    events = feed(
        START,
        text_start(0, "thinking"),
        text_delta(0, "think", "thinking"),
        text_start(1),
        text_delta(1, "say"),
        text_delta(0, "more", "thinking"),
    )
    assert events == [Start("m-1", "co"), ReasoningDelta("think"), TextDelta("say"), ReasoningDelta("more")]


def test_tool_calls_are_numbered_in_start_order_whatever_cohere_numbers() -> None:
    events = feed(
        START,
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "Plan."}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": ""}}},
        call_start(5, "c-a", "get_time", '{"tz":'),
        call_start(2, "c-b", "get_weather"),
        call_delta(5, '"UTC"}'),
        call_delta(2, ""),
        call_delta(2, '{"city":"Oslo"}'),
        {"type": "tool-call-end", "index": 5},
        {"type": "tool-call-end", "index": 2},
    )
    assert events == [
        Start("m-1", "co"),
        ReasoningDelta("Plan."),
        ToolCallStart(0, "c-a", "get_time"),
        ToolCallDelta(0, '{"tz":'),
        ToolCallStart(1, "c-b", "get_weather"),
        ToolCallDelta(0, '"UTC"}'),
        ToolCallDelta(1, '{"city":"Oslo"}'),
    ]


def test_a_tool_call_delta_after_its_end_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="after its tool-call-end"):
        feed(START, call_start(0), {"type": "tool-call-end", "index": 0}, call_delta(0, "{}"))


@pytest.mark.parametrize(
    "broken",
    [
        call_start(0, call_id=""),
        call_start(0, name=""),
        {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "c"}}}},
        {
            "type": "tool-call-start",
            "delta": {"message": {"tool_calls": call_start(0)["delta"]["message"]["tool_calls"]}},
        },
    ],
)
def test_malformed_tool_call_starts_are_protocol_errors(broken: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError):
        feed(START, broken)


def test_a_tool_call_delta_without_arguments_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match=r"function\.arguments"):
        feed(START, call_start(0), {"type": "tool-call-delta", "index": 0, "delta": {"message": {}}})


def test_citations_debug_and_unknown_events_are_ignored() -> None:
    citation = {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {"text": "x"}}}}
    events = feed(START, citation, {"type": "citation-end", "index": 0}, {"type": "debug"}, {"type": "new-thing"})
    assert events == [Start("m-1", "co")]


def test_usage_and_finish_come_from_message_end() -> None:
    end = {
        "type": "message-end",
        "delta": {
            "finish_reason": "STOP_SEQUENCE",
            "usage": {
                "billed_units": {"input_tokens": 1, "output_tokens": 2},
                "tokens": {"input_tokens": 10, "output_tokens": 2},
                "cached_tokens": 4,
            },
        },
    }
    assert feed(START, end)[1:] == [UsageEvent(Usage(10, 2, 4)), Finish("stop")]


def test_done_and_everything_after_message_end_is_ignored() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    feed(START, END, decoder=decoder)
    assert decoder.feed(ev("[DONE]")) == []
    assert decoder.feed(ev(text_delta(9, "late"))) == []
    assert decoder.feed(ev("not json at all")) == []
    assert decoder.close() == []


def test_done_before_the_end_does_not_end_the_stream() -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    feed(START, "[DONE]", decoder=decoder)
    with pytest.raises(UpstreamProtocolError, match="before message-end"):
        decoder.close()


@pytest.mark.parametrize(
    ("delta", "cls", "message"),
    [
        ({"finish_reason": "ERROR", "error": "model overloaded"}, UpstreamUnavailable, "model overloaded"),
        ({"finish_reason": "TIMEOUT"}, UpstreamTimeout, "Cohere ended the answer with TIMEOUT"),
        ({"error": "something broke"}, UpstreamUnavailable, "something broke"),
    ],
)
def test_a_failed_ending_raises(delta: dict[str, Any], cls: type[Exception], message: str) -> None:
    decoder = DIALECT.stream_decoder(OPTIONS)
    with pytest.raises(cls) as info:
        feed(START, text_start(0), text_delta(0, "par"), {"type": "message-end", "delta": delta}, decoder=decoder)
    assert str(info.value) == message
    with pytest.raises(UpstreamProtocolError):  # the stream did not finish
        decoder.close()


def test_bad_json_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError, match="not valid JSON"):
        feed(START, "{nope")
    with pytest.raises(UpstreamProtocolError, match="not a JSON object"):
        feed(START, "[1, 2]")


def test_an_empty_stream_is_truncated() -> None:
    with pytest.raises(UpstreamProtocolError, match="before message-end"):
        DIALECT.stream_decoder(OPTIONS).close()
