"""The Bedrock event-stream framers: frames (from the fake's independent encoder) → events, for any split
of the bytes; CRC, truncation and chunk failures; the documented ``chunk`` payloads of wire-formats.md §6.1."""

from __future__ import annotations

import base64
import json

import pytest

from tests.fakes.bedrock_eventstream import error_frame, event_frame, exception_frame
from unigate.dialects.bedrock_eventstream import BedrockEvent, EventStreamFramer, InvokeFramer, require_botocore
from unigate.dialects.sse import SSEEvent
from unigate.errors import UpstreamProtocolError

# wire-formats.md §6.1: three `chunk` payloads of a Claude stream and what their `bytes` decode to.
DOCUMENTED_CHUNKS = [
    (
        "eyJ0eXBlIjoibWVzc2FnZV9zdGFydCIsIm1lc3NhZ2UiOnsiaWQiOiJtc2dfYmRya18wMVR4IiwidHlwZSI6Im1lc3NhZ2UiLCJyb2xl"
        "IjoiYXNzaXN0YW50IiwibW9kZWwiOiJjbGF1ZGUtc29ubmV0LTQtNS0yMDI1MDkyOSIsImNvbnRlbnQiOltdLCJzdG9wX3JlYXNvbiI6"
        "bnVsbCwic3RvcF9zZXF1ZW5jZSI6bnVsbCwidXNhZ2UiOnsiaW5wdXRfdG9rZW5zIjoxOSwib3V0cHV0X3Rva2VucyI6MX19fQ==",
        "abcdefghijklmnopq",
        '{"type":"message_start","message":{"id":"msg_bdrk_01Tx","type":"message","role":"assistant",'
        '"model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,'
        '"usage":{"input_tokens":19,"output_tokens":1}}}',
    ),
    (
        "eyJ0eXBlIjoiY29udGVudF9ibG9ja19kZWx0YSIsImluZGV4IjowLCJkZWx0YSI6eyJ0eXBlIjoidGV4dF9kZWx0YSIsInRleHQiOiJIaSJ9fQ==",
        "abcdefghijklmnopqrstuvwxyzABCDEF",
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}',
    ),
    (
        "eyJ0eXBlIjoibWVzc2FnZV9zdG9wIiwiYW1hem9uLWJlZHJvY2staW52b2NhdGlvbk1ldHJpY3MiOnsiaW5wdXRUb2tlbkNvdW50Ijox"
        "OSwib3V0cHV0VG9rZW5Db3VudCI6NCwiaW52b2NhdGlvbkxhdGVuY3kiOjUxMiwiZmlyc3RCeXRlTGF0ZW5jeSI6MjMwfX0=",
        "abcd",
        '{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":19,"outputTokenCount":4,'
        '"invocationLatency":512,"firstByteLatency":230}}',
    ),
]
CONVERSE = [
    ("messageStart", '{"p":"abcdefghijk","role":"assistant"}'),
    ("contentBlockDelta", '{"contentBlockIndex":0,"delta":{"text":"Sunny"},"p":"abcdefghij"}'),
    ("contentBlockDelta", '{"contentBlockIndex":0,"delta":{"text":" and mild."},"p":"abcdefghijklmnopqrs"}'),
    ("contentBlockStop", '{"contentBlockIndex":0,"p":"abcdefgh"}'),
    ("messageStop", '{"p":"abcdefghijklm","stopReason":"end_turn"}'),
    (
        "metadata",
        '{"metrics":{"latencyMs":412},"p":"abc","usage":{"inputTokens":19,"outputTokens":4,"totalTokens":23}}',
    ),
]


def converse_bytes() -> bytes:
    return b"".join(event_frame(name, data.encode()) for name, data in CONVERSE)


def chunk_frame(b64: str, pad: str) -> bytes:
    return event_frame("chunk", json.dumps({"bytes": b64, "p": pad}).encode())


def frame_all(framer: EventStreamFramer, data: bytes, cut: int | None = None) -> list[SSEEvent]:
    if cut is None:
        return [*framer.feed(data), *framer.close()]
    return [*framer.feed(data[:cut]), *framer.feed(data[cut:]), *framer.close()]


def test_botocore_is_present_for_these_tests() -> None:
    require_botocore()


def test_each_frame_is_one_event_named_by_its_event_type() -> None:
    events = frame_all(EventStreamFramer(), converse_bytes())
    assert [(e.event, e.data) for e in events] == CONVERSE
    assert all(isinstance(e, BedrockEvent) and e.kind == "event" for e in events)


def test_every_split_gives_the_same_events() -> None:
    data = converse_bytes()
    whole = frame_all(EventStreamFramer(), data)
    for cut in range(len(data) + 1):
        assert frame_all(EventStreamFramer(), data, cut) == whole, cut


def test_byte_by_byte() -> None:
    data = converse_bytes()
    framer = EventStreamFramer()
    events = [e for i in range(len(data)) for e in framer.feed(data[i : i + 1])]
    assert [(e.event, e.data) for e in events] == CONVERSE
    assert framer.close() == []


def test_exception_and_error_frames_keep_their_place_and_kind() -> None:
    data = (
        event_frame("messageStart", b'{"role":"assistant"}')
        + exception_frame("throttlingException", b'{"message":"Too many tokens"}')
        + error_frame("InternalFailure", "it broke")
    )
    first, second, third = frame_all(EventStreamFramer(), data)
    assert isinstance(first, BedrockEvent) and first.kind == "event"
    assert second == BedrockEvent(data='{"message":"Too many tokens"}', event="throttlingException", kind="exception")
    assert third == BedrockEvent(data='{"message":"it broke"}', event="InternalFailure", kind="error")


def test_a_partial_frame_at_the_end_is_truncation() -> None:
    data = converse_bytes()
    framer = EventStreamFramer()
    assert len(framer.feed(data[:-5])) == len(CONVERSE) - 1
    with pytest.raises(UpstreamProtocolError, match="inside a frame"):
        framer.close()


@pytest.mark.parametrize("where", [5, 20, -2])  # prelude CRC, a header byte, the message CRC
def test_a_corrupted_frame_is_a_protocol_error(where: int) -> None:
    data = bytearray(event_frame("messageStart", b'{"role":"assistant"}'))
    data[where] ^= 0xFF
    with pytest.raises(UpstreamProtocolError, match="malformed"):
        EventStreamFramer().feed(bytes(data))


def test_documented_chunks_open_into_anthropic_events() -> None:
    data = b"".join(chunk_frame(b64, pad) for b64, pad, _ in DOCUMENTED_CHUNKS)
    for cut in range(0, len(data) + 1, 7):
        events = frame_all(InvokeFramer(), data, cut)
        assert [e.data for e in events] == [text for _, _, text in DOCUMENTED_CHUNKS]
        assert [e.event for e in events] == ["message_start", "content_block_delta", "message_stop"]


def test_invoke_framer_passes_exceptions_and_other_events_through() -> None:
    data = event_frame("trace", b'{"x":1}') + exception_frame("modelTimeoutException", b'{"message":"slow"}')
    first, second = frame_all(InvokeFramer(), data)
    assert (first.event, first.data) == ("trace", '{"x":1}')
    assert isinstance(second, BedrockEvent) and (second.kind, second.event) == ("exception", "modelTimeoutException")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"bytes":"not base64!!","p":"a"}',
        b'{"p":"a"}',
        b"[1]",
        json.dumps({"bytes": base64.b64encode(b"\xff\xfe").decode()}).encode(),
        json.dumps({"bytes": base64.b64encode(b"{nope").decode()}).encode(),
    ],
)
def test_a_broken_chunk_is_a_protocol_error(payload: bytes) -> None:
    with pytest.raises(UpstreamProtocolError, match="chunk"):
        InvokeFramer().feed(event_frame("chunk", payload))
