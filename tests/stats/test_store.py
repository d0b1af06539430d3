"""StatsStore against a real SQLite file and the real PostgreSQL: writes, read-back, aggregations."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.stats.builders import CHAT, attempt, full_record, record
from tests.stats.conftest import NOW, PgSchema, StoreFactory, sqlite_url
from tests.stats.secret_scan import assert_no_secret, dump_tables
from unigate.stats.records import RequestRecord
from unigate.stats.store import StatsStore

pytestmark = pytest.mark.anyio


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["request_id"] for r in rows]


async def test_every_field_round_trips(store: StatsStore) -> None:
    original = full_record()
    await store.write([original])
    (row,) = await store.requests()
    assert RequestRecord.from_row(row) == original
    assert row == original.to_row()


async def test_minimal_record_round_trips(store: StatsStore) -> None:
    original = record("bare", model=None, client_key=None, success=False, status=401, error_class="Unauthorized")
    await store.write([original])
    assert await store.requests() == [original.to_row()]


async def test_a_retried_postgres_batch_is_not_stored_twice(pg_schema: PgSchema) -> None:
    """PostgreSQL: a COMMIT whose answer was lost is retried; the unique request_id skips it."""
    store = StatsStore(pg_schema.url(), engine_options=pg_schema.engine_options)
    try:
        batch = [full_record("a"), full_record("b")]
        await store.write(batch)
        await store.write(batch)  # a retried batch that had in fact been committed
        await store.write([])
        dump = await dump_tables(store)
        assert len(dump["request_stats"]) == 2
        assert [len(r["attempts"]) for r in await store.requests()] == [2, 2]
    finally:
        await store.close()


async def test_sqlite_keeps_no_index_on_the_rows_and_finds_windows_through_blocks(sqlite_path: Path) -> None:
    """SQLite: a commit is never in doubt (it returns or rolls back), so the index that makes
    PostgreSQL retries idempotent would only cost every insert (migration 0003); time windows are
    ranges of the table's own key, bounded from the blocks table (migration 0004)."""
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    store = StatsStore(sqlite_url(sqlite_path))
    try:
        await store.write([full_record("a")])
        async with store.engine.connect() as conn:
            found = await conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'request_stats'"
            )
            assert {row[0] for row in found} == set()
            plan = await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM request_stats WHERE timestamp >= '2026-01-01' AND id >="
                " (SELECT min(first_id) FROM request_stats_blocks WHERE max_timestamp >= '2026-01-01')"
            )
            details = " | ".join(str(row[-1]) for row in plan)
            assert "SEARCH request_stats USING INTEGER PRIMARY KEY (rowid>?)" in details, details
            assert "SEARCH request_stats_blocks USING INDEX ug_request_stats_blocks_max" in details, details
    finally:
        await store.close()


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_every_sqlite_write_records_its_block(sqlite_path: Path, where: str) -> None:
    """Through the appender (a file) and through SQLAlchemy (``:memory:``) alike: one block per
    write, with the ids it inserted and its oldest and newest timestamp."""
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    store = StatsStore(sqlite_url(sqlite_path) if where == "file" else "sqlite+aiosqlite:///:memory:")
    try:
        await store.write([record("a", 5), record("b", 9), record("c", 7)])
        await store.write([record("d", 1)])
        async with store.engine.connect() as conn:
            blocks = (
                await conn.exec_driver_sql(
                    "SELECT first_id, last_id, min_timestamp, max_timestamp FROM request_stats_blocks ORDER BY id"
                )
            ).all()
            stored = dict((await conn.exec_driver_sql("SELECT request_id, id FROM request_stats")).all())
        stamp = {
            name: (NOW - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S.%f")
            for name, m in (("a", 5), ("b", 9), ("c", 7), ("d", 1))
        }
        assert [tuple(b) for b in blocks] == [
            (stored["a"], stored["c"], stamp["b"], stamp["a"]),
            (stored["d"], stored["d"], stamp["d"], stamp["d"]),
        ]
    finally:
        await store.close()


async def test_a_large_write_is_one_transaction(store: StatsStore) -> None:
    batch = [record(f"r{i}", attempts=(attempt("openai"),)) for i in range(250)]  # several INSERT chunks
    broken = [*batch[:240], record("bad", status="x"), *batch[240:]]
    with pytest.raises(ValueError):
        await store.write(broken)
    assert await store.requests() == []
    await store.write(batch)
    dump = await dump_tables(store)
    assert len(dump["request_stats"]) == 250
    assert all(r["attempts"][0]["channel"] == "openai" for r in await store.requests(limit=1000))


async def test_nul_bytes_and_unencodable_text_are_stored(store: StatsStore) -> None:
    await store.write(
        [
            record(
                "nul",
                content="before\x00after",
                error_message="boom\x00",
                client_key="k\x00ey",
                attempts=(attempt("ch\x00an", outcome="Upstream\x00Error"),),
            ),
            record("surrogate", content="lone \ud800 surrogate"),
        ]
    )
    rows = {r["request_id"]: r for r in await store.requests()}
    assert rows["nul"]["content"] == "before\ufffdafter"
    assert rows["nul"]["error_message"] == "boom\ufffd"
    assert rows["nul"]["client_key"] == "k\ufffdey"
    assert rows["nul"]["attempts"][0]["channel"] == "ch\ufffdan"
    assert rows["surrogate"]["content"] == "lone ? surrogate"


async def test_out_of_range_numbers_are_clamped(store: StatsStore) -> None:
    await store.write(
        [
            record(
                "big",
                prompt_tokens=2**40,
                completion_tokens=2**70,
                cached_tokens=-5,
                latency_ms=math.nan,
                ttft_ms=math.inf,
                cost=math.inf,
                error_message="x" * 10_000,
            )
        ]
    )
    (row,) = await store.requests()
    assert row["prompt_tokens"] == 2**40 and row["completion_tokens"] == 2**63 - 1 and row["cached_tokens"] == 0
    assert row["latency_ms"] == 0.0 and row["ttft_ms"] is None and row["cost"] == 0.0
    assert len(row["error_message"]) == 4000


def _known_records() -> list[RequestRecord]:
    return [
        record(
            "r1",
            10,
            channel="openai",
            upstream_model="up-model",
            upstream_key="key-0123456789",
            attempts=(attempt("openai"),),  # the row's own attempt: stored compactly (attempts NULL)
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=10,
            reasoning_tokens=5,
            cost=0.01,
            latency_ms=100.0,
        ),
        record(
            "r2",
            20,
            channel="azure",
            attempts=(attempt("openai", "UpstreamRateLimited", 429), attempt("azure")),
            prompt_tokens=200,
            completion_tokens=100,
            cost=0.02,
            latency_ms=300.0,
        ),
        record(
            "r3",
            30,
            client_key="bob",
            model="claude",
            endpoint="POST /v1/messages",
            channel="anthropic",
            attempts=(attempt("anthropic", "UpstreamUnavailable", 503), attempt("anthropic", "UpstreamTimeout", 504)),
            status=503,
            success=False,
            error_class="UpstreamTimeout",
            latency_ms=500.0,
        ),
        record("r4", 180, client_key="bob", channel="openai", attempts=(attempt("openai"),), cost=0.5),
        record("r5", 30 * 60, client_key="carol", channel="openai", attempts=(attempt("openai"),), cost=9.0),
        record("r6", 5, model=None, endpoint="GET /v1/models", latency_ms=2.0),
    ]


async def test_the_known_records_store_one_attempt_compactly(store: StatsStore) -> None:
    """r1's one attempt is its own: stored as NULL (the rates below count it through the union)."""
    await store.write(_known_records())
    async with store.engine.connect() as conn:
        compact = (await conn.exec_driver_sql("SELECT request_id FROM request_stats WHERE attempts IS NULL")).all()
    assert [row[0] for row in compact] == ["r1"]
    (r1,) = [r for r in await store.requests(limit=10) if r["request_id"] == "r1"]
    assert r1["attempts"] == [attempt("openai").to_row()]


async def test_v1_stats_over_one_hour(store: StatsStore) -> None:
    await store.write(_known_records())
    stats = await store.stats(hours=1)
    assert stats["time_range"] == "Last 1 hours"
    assert stats["channel_model_success_rates"] == [
        {"provider": "azure", "model": "gpt-4o", "success_rate": 1.0, "total_requests": 1},
        {"provider": "openai", "model": "gpt-4o", "success_rate": 0.5, "total_requests": 2},
        {"provider": "anthropic", "model": "claude", "success_rate": 0.0, "total_requests": 2},
    ]
    assert stats["channel_success_rates"] == [
        {"provider": "azure", "success_rate": 1.0, "total_requests": 1},
        {"provider": "openai", "success_rate": 0.5, "total_requests": 2},
        {"provider": "anthropic", "success_rate": 0.0, "total_requests": 2},
    ]
    assert stats["model_request_counts"] == [
        {"model": "gpt-4o", "count": 2},
        {"model": None, "count": 1},
        {"model": "claude", "count": 1},
    ]
    assert stats["endpoint_request_counts"] == [
        {"endpoint": CHAT, "count": 2},
        {"endpoint": "GET /v1/models", "count": 1},
        {"endpoint": "POST /v1/messages", "count": 1},
    ]
    assert stats["ip_request_counts"] == []
    assert stats["usage"] == {
        "requests": 4,
        "successful_requests": 3,
        "failed_requests": 1,
        "prompt_tokens": 300,
        "completion_tokens": 150,
        "total_tokens": 450,
        "cached_tokens": 10,
        "reasoning_tokens": 5,
        "cost": pytest.approx(0.03),
    }
    assert stats["key_request_counts"] == [
        {"client_key": "alice", "count": 3, "total_tokens": 450, "cost": pytest.approx(0.03)},
        {"client_key": "bob", "count": 1, "total_tokens": 0, "cost": 0.0},
    ]


async def test_v1_stats_window_follows_hours(store: StatsStore) -> None:
    await store.write(_known_records())
    day = await store.stats(hours=24)
    assert day["time_range"] == "Last 24 hours"
    assert day["usage"]["requests"] == 5
    assert day["usage"]["cost"] == pytest.approx(0.53)
    assert {"provider": "openai", "success_rate": 2 / 3, "total_requests": 3} in day["channel_success_rates"]
    assert [k["client_key"] for k in day["key_request_counts"]] == ["alice", "bob"]
    assert (await store.stats(hours=48))["usage"]["requests"] == 6
    with pytest.raises(ValueError):
        await store.stats(hours=0)


async def test_v1_stats_of_an_empty_database(store: StatsStore) -> None:
    stats = await store.stats()
    assert stats["channel_model_success_rates"] == stats["model_request_counts"] == stats["key_request_counts"] == []
    assert stats["usage"]["requests"] == 0 and stats["usage"]["cost"] == 0.0


async def test_pagination_is_newest_first(store: StatsStore) -> None:
    await store.write(_known_records())
    assert ids(await store.requests(limit=2)) == ["r6", "r1"]
    assert ids(await store.requests(limit=2, offset=2)) == ["r2", "r3"]
    assert ids(await store.requests(limit=2, offset=4)) == ["r4", "r5"]
    assert await store.requests(limit=2, offset=6) == []
    with pytest.raises(ValueError):
        await store.requests(limit=0)
    with pytest.raises(ValueError):
        await store.requests(limit=1001)
    with pytest.raises(ValueError):
        await store.requests(offset=-1)


async def test_same_timestamp_keeps_insertion_order(store: StatsStore) -> None:
    await store.write([record("first", 1), record("second", 1)])
    await store.write([record("third", 1)])
    assert ids(await store.requests()) == ["third", "second", "first"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"model": "gpt-4o"}, ["r1", "r2", "r4", "r5"]),
        ({"channel": "openai"}, ["r1", "r4", "r5"]),
        ({"client_key": "bob"}, ["r3", "r4"]),
        ({"status": 503}, ["r3"]),
        ({"success": False}, ["r3"]),
        ({"success": True, "client_key": "bob"}, ["r4"]),
        ({"since": NOW - timedelta(hours=1)}, ["r6", "r1", "r2", "r3"]),
        ({"until": NOW - timedelta(hours=1)}, ["r4", "r5"]),
        ({"since": NOW - timedelta(minutes=20), "until": NOW - timedelta(minutes=5)}, ["r1", "r2"]),
        ({"model": "nope"}, []),
    ],
)
async def test_filters(store: StatsStore, filters: dict[str, Any], expected: list[str]) -> None:
    await store.write(_known_records())
    assert ids(await store.requests(**filters)) == expected


async def test_spend_since(store: StatsStore) -> None:
    await store.write(_known_records())
    assert await store.spend_since("alice", NOW - timedelta(hours=1)) == pytest.approx(0.03)
    assert await store.spend_since("bob", NOW - timedelta(hours=24)) == pytest.approx(0.5)
    assert await store.spend_since("bob", NOW - timedelta(minutes=1)) == 0.0
    assert await store.spend_since("nobody", NOW - timedelta(days=365)) == 0.0


async def test_timeseries(store: StatsStore) -> None:
    await store.write(_known_records())
    series = await store.timeseries(hours=1, bucket_minutes=15)
    blank = {
        "requests": 0,
        "errors": 0,
        "avg_latency_ms": 0.0,
        "cost": 0.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "attempts": 0,
        "attempt_errors": 0,
    }

    def cell(bucket: str, channel: str | None, **values: Any) -> dict[str, Any]:
        return {"bucket": f"2025-06-01T{bucket}:00+00:00", "channel": channel, **blank, **values}

    r1 = {"cost": pytest.approx(0.01), "prompt_tokens": 100, "completion_tokens": 50}
    r2 = {"cost": pytest.approx(0.02), "prompt_tokens": 200, "completion_tokens": 100}
    assert series == [
        cell("11:30", "anthropic", requests=1, errors=1, avg_latency_ms=500.0, attempts=2, attempt_errors=2),
        cell("11:30", "azure", requests=1, avg_latency_ms=300.0, attempts=1, **r2),
        cell("11:30", "openai", attempts=1, attempt_errors=1),
        cell("11:45", None, requests=1, avg_latency_ms=2.0),
        cell("11:45", "openai", requests=1, avg_latency_ms=100.0, attempts=1, **r1),
    ]
    assert len(await store.timeseries(hours=24, bucket_minutes=60)) > len(series) - 2
    with pytest.raises(ValueError):
        await store.timeseries(bucket_minutes=0)


async def test_queries_open_the_store_on_demand(make_store: StoreFactory) -> None:
    store = make_store(now=lambda: NOW)
    try:
        await store.write([record("lazy")])  # never opened explicitly
        assert ids(await store.requests()) == ["lazy"]
    finally:
        await store.close()


UPSTREAM_KEY = "sk-proj-Zx9QmT4vLr8WnB2cYh6KdP0s"
CLIENT_KEY = "sk-client-Aq7Rt5Yu3Io1Pl9Kj"
DB_PASSWORD = "pg-Pass-Word-0987"


async def test_no_secret_in_any_row(store: StatsStore) -> None:
    from unigate.config.compile import fingerprint
    from unigate.errors import redact

    leaked_body = f"Incorrect API key provided: {UPSTREAM_KEY}"
    await store.write(
        [
            full_record("s1"),
            record(
                "s2",
                client_key=fingerprint(CLIENT_KEY),
                upstream_key=fingerprint(UPSTREAM_KEY),
                error_class="UpstreamAuthError",
                error_message=redact(leaked_body, (UPSTREAM_KEY,)),
                attempts=(attempt("openai", "UpstreamAuthError", 401, key_fingerprint=fingerprint(UPSTREAM_KEY)),),
            ),
        ]
    )
    dump = await assert_no_secret(store, [UPSTREAM_KEY, CLIENT_KEY, DB_PASSWORD])
    assert {"request_stats", "unigate_alembic_version"} <= set(dump)


async def test_secret_scan_catches_a_leak(store: StatsStore) -> None:
    await store.write([record("leak", content=f"... {UPSTREAM_KEY[5:13]} ...")])  # 8 characters of it
    with pytest.raises(AssertionError, match="request_stats"):
        await assert_no_secret(store, [UPSTREAM_KEY])
