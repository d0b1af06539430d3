"""The SSE framer against the WHATWG event-stream rules and arbitrary chunk splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unigate.dialects.sse import SSEEvent, SSEFramer
from unigate.errors import UpstreamProtocolError

STREAM = (
    b"\xef\xbb\xbf: comment\r\n"
    b"event: message_start\r\n"
    b'data: {"a": "\xc3\xa9t\xc3\xa9"}\r\n\r\n'
    b"data:no-space\n\n"
    b"data: line1\ndata: line2\n\n"
    b"id: 7\rdata: cr-only\r\r"
    b"retry: 10\nunknown: x\ndata: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": "\u00e9t\u00e9"}', "message_start"),
    SSEEvent("no-space"),
    SSEEvent("line1\nline2"),
    SSEEvent("cr-only", None, "7"),
    SSEEvent("[DONE]", None, "7"),  # the last event id persists (WHATWG)
]


def frame(chunks: list[bytes]) -> list[SSEEvent]:
    framer = SSEFramer()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    out.extend(framer.close())
    return out


def test_whole_stream() -> None:
    assert frame([STREAM]) == EXPECTED


def test_every_two_way_split() -> None:
    for i in range(len(STREAM) + 1):
        assert frame([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_one_byte_at_a_time() -> None:
    assert frame([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_random_splits(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert frame(pieces) == EXPECTED


def test_final_event_without_blank_line_is_dispatched_on_close() -> None:
    assert frame([b"data: tail"]) == [SSEEvent("tail")]


def test_comment_only_and_empty_input() -> None:
    assert frame([b": keepalive\n\n", b""]) == []


def test_overlong_line_is_refused() -> None:
    framer = SSEFramer(max_line=16)
    with pytest.raises(UpstreamProtocolError):
        framer.feed(b"data: " + b"x" * 32)
