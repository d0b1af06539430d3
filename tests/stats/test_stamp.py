"""``sqlite_stamp`` caches the second's text: it must still equal SQLAlchemy's own format for any
time, in any order, across second boundaries and before 1970."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from unigate.stats.rows import sqlite_stamp

TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(st.lists(TIMES, min_size=1, max_size=30))
def test_matches_isoformat_whatever_the_order(times: list[datetime]) -> None:
    for value in times:
        assert sqlite_stamp(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")


def test_other_time_zones_are_converted_to_utc() -> None:
    local = datetime(2026, 5, 1, 12, 0, 0, 123, tzinfo=timezone(timedelta(hours=2)))
    assert sqlite_stamp(local) == "2026-05-01 10:00:00.000123"


def test_neighbouring_seconds_around_the_epoch() -> None:
    before = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    after = before + timedelta(microseconds=2)
    assert [sqlite_stamp(before), sqlite_stamp(after), sqlite_stamp(before)] == [
        "1969-12-31 23:59:59.999999",
        "1970-01-01 00:00:00.000001",
        "1969-12-31 23:59:59.999999",
    ]


def test_the_last_seconds_of_the_calendar() -> None:
    last = datetime.max.replace(tzinfo=UTC)
    before = last - timedelta(seconds=1)
    assert [sqlite_stamp(before), sqlite_stamp(last), sqlite_stamp(before)] == [
        "9999-12-31 23:59:58.999999",
        "9999-12-31 23:59:59.999999",
        "9999-12-31 23:59:58.999999",
    ]


@given(st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=40))
def test_times_near_each_other_in_any_order(offsets: list[int]) -> None:
    """Records of one batch: a few seconds apart, a little out of order."""
    base = datetime(2026, 11, 28, 23, 59, 58, tzinfo=UTC)
    for offset in offsets:
        value = base + timedelta(microseconds=offset)
        assert sqlite_stamp(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")
