"""RequestRecord / AttemptRecord: JSON-ready rows and their inverse."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.stats.builders import full_record, record
from unigate.stats.records import RequestRecord


def test_to_row_is_json_and_round_trips() -> None:
    original = full_record()
    row = original.to_row()
    assert json.loads(json.dumps(row)) == row
    assert row["timestamp"] == "2025-06-01T12:00:00+00:00"
    assert [a["outcome"] for a in row["attempts"]] == ["UpstreamRateLimited", "ok"]
    assert RequestRecord.from_row(json.loads(json.dumps(row))) == original
    assert set(row) == {f.name for f in dataclasses.fields(RequestRecord)}


def test_records_are_frozen() -> None:
    r = record("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = 500  # type: ignore[misc]


def test_timestamps_are_utc() -> None:
    naive = record("a", timestamp=datetime(2025, 1, 1, 8, 0))
    assert naive.timestamp == datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    other_zone = record("b", timestamp=datetime(2025, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))))
    assert other_zone.timestamp.tzinfo is UTC
    assert other_zone.timestamp == datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def test_defaults_and_derived_values() -> None:
    r = record("a", prompt_tokens=3, completion_tokens=4, attempts=[])
    assert r.attempts == ()
    assert r.total_tokens == 7
    assert r.content is None and r.cost == 0.0 and r.tokens_estimated is False
    assert full_record().attempts[1].success and not full_record().attempts[0].success
