"""``request_row``: its fast path (taken by nearly every record) gives exactly the row the careful
path gives — same values, same types — and any record it cannot take goes the careful way."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stats.builders import CHAT, record
from unigate.stats.records import AttemptRecord, RequestRecord
from unigate.stats.rows import (
    MAX_ERROR_CHARS,
    POSTGRES_ROWS,
    REQUEST_COLUMNS,
    SQLITE_ROWS,
    RowFormat,
    _clean_row,
    _fast_row,
    record_from_row,
    request_row,
)

PLAIN_TEXT = st.sampled_from(["openai", "gpt-4o", "team-0", "key-0123456789", ""]) | st.text(
    st.characters(min_codepoint=1, max_codepoint=127), max_size=8
)
PLAIN_COUNT = st.integers(min_value=0, max_value=2**62 - 1)  # a sum of two still fits in 64 bits
PLAIN_NUMBER = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
STAMP = st.datetimes(timezones=st.just(UTC)) | st.datetimes()

ATTEMPT = st.builds(
    AttemptRecord,
    channel=PLAIN_TEXT,
    upstream_model=PLAIN_TEXT,
    key_fingerprint=st.none() | PLAIN_TEXT,
    outcome=PLAIN_TEXT,
    status=st.sampled_from([0, 200, 500]),
    latency_ms=st.floats(min_value=0, max_value=1e6),
)

PLAIN = st.builds(
    RequestRecord,
    request_id=PLAIN_TEXT,
    timestamp=STAMP,
    endpoint=PLAIN_TEXT,
    client_key=st.none() | PLAIN_TEXT,
    model=st.none() | PLAIN_TEXT,
    status=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    success=st.booleans(),
    latency_ms=PLAIN_NUMBER,
    channel=st.none() | PLAIN_TEXT,
    upstream_model=st.none() | PLAIN_TEXT,
    upstream_key=st.none() | PLAIN_TEXT,
    attempts=st.lists(ATTEMPT, max_size=2).map(tuple),
    error_class=st.none() | PLAIN_TEXT,
    error_message=st.none() | PLAIN_TEXT | st.just("e" * MAX_ERROR_CHARS),
    ttft_ms=st.none() | PLAIN_NUMBER,
    prompt_tokens=PLAIN_COUNT,
    completion_tokens=PLAIN_COUNT,
    cached_tokens=PLAIN_COUNT,
    reasoning_tokens=PLAIN_COUNT,
    tokens_estimated=st.booleans(),
    cost=PLAIN_NUMBER,
    stream=st.booleans(),
    moderation_ms=st.none() | PLAIN_NUMBER,
    content=st.none() | PLAIN_TEXT,
)
"""Records every value of which is storable as it is: the fast path must take them all."""


@st.composite
def own_attempt(draw: st.DrawFn) -> RequestRecord:
    """A plain record whose one attempt is its own (the compact form), or differs from it in one
    field (the JSON form)."""
    base = draw(PLAIN)
    channel, model = base.channel or "openai", base.upstream_model or "gpt-4o"
    own = {
        "channel": channel,
        "upstream_model": model,
        "key_fingerprint": base.upstream_key,
        "outcome": "ok",
        "status": base.status,
        "latency_ms": draw(st.floats(min_value=0, max_value=1e6)),
    }
    differ = draw(st.sampled_from([None, "channel", "upstream_model", "key_fingerprint", "outcome", "status"]))
    if differ == "status":
        own["status"] = base.status ^ 1
    elif differ == "key_fingerprint":
        own["key_fingerprint"] = None if base.upstream_key else "k"
    elif differ is not None:
        own[differ] += "x"
    return replace(base, channel=channel, upstream_model=model, attempts=(AttemptRecord(**own),))


TEXT_FIELDS = (
    "request_id",
    "endpoint",
    "client_key",
    "model",
    "channel",
    "upstream_model",
    "upstream_key",
    "error_class",
    "error_message",
    "content",
)
COUNT_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "status")
NUMBER_FIELDS = ("latency_ms", "cost", "ttft_ms", "moderation_ms")
FLAG_FIELDS = ("success", "tokens_estimated", "stream")
ODD_TEXT = st.sampled_from(["nul\x00", "lone \ud800", "é", "e" * (MAX_ERROR_CHARS + 1), 0, 7, 1.5, b"x", None])
ODD_COUNT = st.sampled_from([-1, 2**62 + 1, 2**63, 2**64, -(2**31) - 1, 2**31, True, 3.0, "5", None])
ODD_NUMBER = st.sampled_from([math.nan, math.inf, -math.inf, 0, 2, True, "1.5", 1e308, None])
ODD_FLAG = st.sampled_from([0, 1, 2, -1, -2, 1.0, 0.0, "", "yes", None])


@st.composite
def one_odd_value(draw: st.DrawFn) -> RequestRecord:
    """A plain record with one value that is not storable as it is."""
    record = draw(PLAIN)
    kind = draw(
        st.sampled_from(
            [(TEXT_FIELDS, ODD_TEXT), (COUNT_FIELDS, ODD_COUNT), (NUMBER_FIELDS, ODD_NUMBER), (FLAG_FIELDS, ODD_FLAG)]
        )
    )
    name = draw(st.sampled_from(kind[0]))
    return replace(record, **{name: draw(kind[1])})


def careful(record: RequestRecord, fmt: RowFormat) -> tuple[Any, ...] | type[BaseException]:
    try:
        return _clean_row(record, fmt.stamp, fmt.truth)
    except Exception as exc:
        return type(exc)


def same(row: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert row == expected
    assert [type(v) for v in row] == [type(v) for v in expected]


FORMATS = pytest.mark.parametrize("fmt", [SQLITE_ROWS, POSTGRES_ROWS], ids=["sqlite", "postgres"])


@FORMATS
@given(record=PLAIN)
def test_plain_records_take_the_fast_path_and_get_the_careful_row(fmt: RowFormat, record: RequestRecord) -> None:
    assert _fast_row(record, fmt.stamp, fmt.bits) is not None
    expected = careful(record, fmt)
    assert not isinstance(expected, type)
    same(request_row(record, fmt), expected)


@FORMATS
@given(record=own_attempt())
def test_a_record_with_its_own_attempt_gets_the_careful_row(fmt: RowFormat, record: RequestRecord) -> None:
    assert _fast_row(record, fmt.stamp, fmt.bits) is not None
    expected = careful(record, fmt)
    assert not isinstance(expected, type)
    same(request_row(record, fmt), expected)
    row = dict(zip(REQUEST_COLUMNS, expected, strict=True))
    (attempt,) = record.attempts
    compact = (attempt.channel, attempt.upstream_model, attempt.key_fingerprint, attempt.outcome, attempt.status) == (
        record.channel,
        record.upstream_model,
        record.upstream_key,
        "ok",
        record.status,
    )
    assert (row["attempts"] is None) is compact
    assert row["upstream_ms"] == attempt.latency_ms


@FORMATS
@given(record=one_odd_value())
def test_a_record_with_an_odd_value_gets_the_careful_row(fmt: RowFormat, record: RequestRecord) -> None:
    expected = careful(record, fmt)
    if isinstance(expected, type):
        with pytest.raises(expected):
            request_row(record, fmt)
    else:
        same(request_row(record, fmt), expected)


def test_a_plain_record_takes_the_fast_path_and_keeps_its_values() -> None:
    stamp = datetime(2026, 11, 28, 13, 5, 9, 1234, tzinfo=UTC)
    plain = record("r1", timestamp=stamp, prompt_tokens=12, completion_tokens=5, stream=True)
    row = dict(zip(REQUEST_COLUMNS, request_row(plain, SQLITE_ROWS), strict=True))
    assert (row["request_id"], row["timestamp"], row["endpoint"]) == ("r1", "2026-11-28 13:05:09.001234", CHAT)
    assert (row["success"], row["tokens_estimated"], row["stream"]) == (1, 0, 1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["attempts"], row["upstream_ms"]) == (12, 5, "[]", None)
    assert dict(zip(REQUEST_COLUMNS, request_row(plain, POSTGRES_ROWS), strict=True))["success"] is True


def test_the_rows_own_attempt_is_stored_as_null_and_read_back_whole() -> None:
    own = AttemptRecord(
        channel="openai", upstream_model="gpt-4o", key_fingerprint="key-0", outcome="ok", status=200, latency_ms=80.25
    )
    plain = record("r1", channel="openai", upstream_model="gpt-4o", upstream_key="key-0", attempts=(own,))
    row = dict(zip(REQUEST_COLUMNS, request_row(plain, SQLITE_ROWS), strict=True))
    assert (row["attempts"], row["upstream_ms"]) == (None, 80.25)
    assert record_from_row({**row, "timestamp": plain.timestamp, "success": True}).attempts == (own,)
    retried = replace(plain, attempts=(replace(own, outcome="UpstreamTimeout", status=0), own))
    row = dict(zip(REQUEST_COLUMNS, request_row(retried, SQLITE_ROWS), strict=True))
    assert [a["outcome"] for a in json.loads(row["attempts"])] == ["UpstreamTimeout", "ok"]
    assert row["upstream_ms"] == 80.25
    assert record_from_row({**row, "timestamp": plain.timestamp}).attempts == retried.attempts
