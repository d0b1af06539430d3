"""Time windows on SQLite over many writes whose timestamps overlap and arrive out of order: they
are found through the blocks table (no timestamp index, migration 0004), and every query must
answer exactly what a plain filter over all rows answers. (PostgreSQL keeps its timestamp index;
its windows are checked by the backend-parametrised filters in test_store.)"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stats.builders import attempt, record
from tests.stats.conftest import NOW, sqlite_url
from unigate.stats.records import RequestRecord
from unigate.stats.store import StatsStore

MINUTES = st.integers(min_value=0, max_value=120)
WRITES = st.lists(st.lists(MINUTES, min_size=1, max_size=6), min_size=1, max_size=6)
"""Each write: the ages (minutes before NOW) of its records, in the order they finished."""


def _records(writes: list[list[int]]) -> list[list[RequestRecord]]:
    n = 0
    batches = []
    for ages in writes:
        batch = []
        for age in ages:
            ok = n % 3 != 0
            batch.append(
                record(
                    f"r{n}",
                    age,
                    client_key=("alice", "bob")[n % 2],
                    cost=float(n + 1),  # whole dollars: sums are exact
                    channel="openai",
                    upstream_model="up-model",  # with the attempt's model and key: the successes
                    upstream_key="key-0123456789",  # are stored compactly, the failures as JSON
                    success=ok,
                    status=200 if ok else 502,
                    attempts=(attempt("openai", "ok" if ok else "UpstreamServerError", 200 if ok else 502),),
                )
            )
            n += 1
        batches.append(batch)
    return batches


async def _check(path: Path, writes: list[list[int]], since_age: int, until_age: int, limit: int) -> None:
    store = StatsStore(sqlite_url(path), now=lambda: NOW)
    try:
        batches = _records(writes)
        for batch in batches:
            await store.write(batch)
        everything = [r for batch in batches for r in batch]
        order = {r.request_id: i for i, r in enumerate(everything)}

        def newest_first(rs: list[RequestRecord]) -> list[str]:
            ranked = sorted(rs, key=lambda r: (r.timestamp, order[r.request_id]), reverse=True)
            return [r.request_id for r in ranked]

        since, until = NOW - timedelta(minutes=since_age), NOW - timedelta(minutes=until_age)
        inside = [r for r in everything if since <= r.timestamp < until]
        page = await store.requests(limit=1000, since=since, until=until)
        assert [r["request_id"] for r in page] == newest_first(inside)
        top = await store.requests(limit=limit)
        assert [r["request_id"] for r in top] == newest_first(everything)[:limit]
        skipped = await store.requests(limit=limit, offset=2, client_key="bob")
        assert [r["request_id"] for r in skipped] == newest_first([r for r in everything if r.client_key == "bob"])[
            2 : 2 + limit
        ]
        hours = 1 + since_age // 60
        window = [r for r in everything if r.timestamp >= NOW - timedelta(hours=hours)]
        stats = await store.stats(hours=hours)
        assert stats["usage"]["requests"] == len(window)
        assert stats["usage"]["cost"] == sum(r.cost for r in window)
        assert [(row["provider"], row["total_requests"]) for row in stats["channel_success_rates"]] == (
            [("openai", len(window))] if window else []
        )
        assert stats["channel_success_rates"] == [] or stats["channel_success_rates"][0]["success_rate"] == (
            sum(r.success for r in window) / len(window)
        )
        spent = sum(r.cost for r in everything if r.client_key == "alice" and r.timestamp >= since)
        assert await store.spend_since("alice", since) == spent
    finally:
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=WRITES, since_age=MINUTES, until_age=MINUTES, limit=st.integers(min_value=1, max_value=8))
def test_sqlite_windows_match_a_plain_filter(
    writes: list[list[int]], since_age: int, until_age: int, limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_check(Path(tmp) / "stats.db", writes, since_age, until_age, limit))


def test_a_window_with_no_block_after_it_is_empty() -> None:
    async def run(path: Path) -> None:
        store = StatsStore(sqlite_url(path), now=lambda: NOW)
        try:
            await store.write([record("old", 300)])
            assert await store.requests(since=NOW - timedelta(minutes=10)) == []
            assert await store.requests(until=NOW - timedelta(minutes=400)) == []
            assert (await store.stats(hours=1))["usage"]["requests"] == 0
            assert [r["request_id"] for r in await store.requests()] == ["old"]
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "stats.db"))


def test_a_filtered_page_looks_past_the_newest_blocks() -> None:
    """The newest blocks bound an unfiltered page; a filter that matches nothing there must
    still find older rows."""

    async def run(path: Path) -> None:
        store = StatsStore(sqlite_url(path), now=lambda: NOW)
        try:
            await store.write([record("bob-old", 60, client_key="bob")])
            for n in range(3):
                await store.write([record(f"alice-{n}-{i}", 10 - n, client_key="alice") for i in range(4)])
            assert [r["request_id"] for r in await store.requests(limit=1, client_key="bob")] == ["bob-old"]
            assert [r["request_id"] for r in await store.requests(limit=2)] == ["alice-2-3", "alice-2-2"]
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "stats.db"))
