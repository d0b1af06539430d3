"""StatsWriter: batching, flushing, the bounded queue, and a real database outage.

No test sleeps for a fixed time: the background task is woken by the batch-size event, ``flush()``
writes on demand, and ``wait_drained()`` waits on the writer's own progress notifications. The
outage is a real one: the store talks to PostgreSQL through a TCP relay that the test cuts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.stats.builders import attempt, record
from tests.stats.conftest import PgSchema, StoreFactory
from tests.stats.tcp_relay import TcpRelay
from unigate.stats.records import RequestRecord
from unigate.stats.rows import REQUEST_COLUMNS
from unigate.stats.store import StatsStore, StatsStoreError
from unigate.stats.writer import StatsWriter

pytestmark = pytest.mark.anyio

DB_PASSWORD = "relay-Secret-Pw-42"


class RecordingSink:
    """The real store, plus a note of each batch size it was handed."""

    def __init__(self, store: StatsStore) -> None:
        self.store = store
        self.batches: list[int] = []

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.store.secrets

    def row(self, record: RequestRecord) -> tuple[Any, ...]:
        return self.store.row(record)

    async def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.batches.append(len(rows))
        await self.store.write_rows(rows)


def records(prefix: str, n: int) -> list[RequestRecord]:
    return [record(f"{prefix}{i}", attempts=(attempt("openai"),)) for i in range(n)]


async def stored_ids(store: StatsStore) -> set[str]:
    return {r["request_id"] for r in await store.requests(limit=1000)}


async def test_background_task_writes_full_batches_when_woken(store: StatsStore) -> None:
    sink = RecordingSink(store)
    writer = StatsWriter(sink, batch_size=10, row_batch=5, flush_interval=3600)
    writer.start()
    try:
        assert all(writer.submit(r) for r in records("r", 25))
        assert await writer.wait_drained(10)
        assert sink.batches == [10, 10, 5]
        assert len(await stored_ids(store)) == 25
        assert writer.snapshot() == {
            "queued": 0,
            "max_queue": 10_000,
            "submitted": 25,
            "written": 25,
            "dropped": 0,
            "rejected": 0,
            "failures": 0,
            "batches": 3,
            "healthy": True,
            "last_error": None,
        }
    finally:
        assert await writer.stop(5)


async def test_small_batches_wait_for_the_timer_or_a_flush(store: StatsStore) -> None:
    sink = RecordingSink(store)
    writer = StatsWriter(sink, batch_size=10, flush_interval=3600)
    writer.start()
    try:
        for r in records("r", 3):
            writer.submit(r)
        for _ in range(20):  # let the background task run if it wanted to
            await asyncio.sleep(0)
        assert (writer.queued, sink.batches) == (3, [])
        assert await writer.flush()
        assert (writer.queued, sink.batches) == (0, [3])
    finally:
        await writer.stop(5)


async def test_the_flush_interval_writes_a_partial_batch(store: StatsStore) -> None:
    writer = StatsWriter(store, batch_size=100, flush_interval=0.01)
    writer.start()
    try:
        writer.submit(record("one"))
        assert await writer.wait_drained(10)
        assert await stored_ids(store) == {"one"}
    finally:
        await writer.stop(5)


async def test_a_full_queue_drops_the_oldest_and_counts_them(store: StatsStore) -> None:
    writer = StatsWriter(store, max_queue=5, batch_size=2, flush_interval=3600)
    assert all(writer.submit(r) for r in records("r", 8))
    assert (writer.queued, writer.dropped) == (5, 3)
    assert await writer.flush()
    assert await stored_ids(store) == {"r3", "r4", "r5", "r6", "r7"}


async def test_records_that_cannot_be_stored_are_dropped_alone(store: StatsStore) -> None:
    writer = StatsWriter(store, batch_size=10, flush_interval=3600)
    for name in ("bad-0", "good-1", "bad-1", "bad-2", "good-2", "bad-3"):  # first, twice in a row, last
        assert writer.submit(record(name, status="not-a-number") if name.startswith("bad") else record(name))
    assert writer.submit(object()) is False  # type: ignore[arg-type]
    assert (writer.queued, writer.rejected) == (6, 1)
    assert await writer.flush()
    assert [r["request_id"] for r in await store.requests()] == ["good-2", "good-1"]  # newest first
    assert (writer.written, writer.rejected, writer.queued, writer.healthy) == (2, 5, 0, True)


class CorruptingSink(RecordingSink):
    """Hands the database a row it must reject (NULL in a NOT NULL column) for records ``bad*``."""

    def row(self, record: RequestRecord) -> tuple[Any, ...]:
        row = self.store.row(record)
        endpoint = REQUEST_COLUMNS.index("endpoint")
        return (*row[:endpoint], None, *row[endpoint + 1 :]) if record.request_id.startswith("bad") else row


async def test_rows_the_database_rejects_are_dropped_alone(store: StatsStore) -> None:
    sink = CorruptingSink(store)
    writer = StatsWriter(sink, batch_size=10, flush_interval=3600)
    for name in ("good-1", "bad-1", "good-2", "bad-2", "good-3"):
        assert writer.submit(record(name))
    assert await writer.flush()
    assert await stored_ids(store) == {"good-1", "good-2", "good-3"}
    assert sink.batches == [5, 1, 1, 1, 1, 1]  # the batch, then one row at a time
    assert (writer.written, writer.rejected, writer.queued, writer.healthy) == (3, 2, 0, True)


async def test_stop_flushes_and_then_refuses(store: StatsStore) -> None:
    writer = StatsWriter(store, batch_size=100, flush_interval=3600)
    writer.start()
    for r in records("r", 7):
        writer.submit(r)
    assert await writer.stop(5)
    assert len(await stored_ids(store)) == 7
    assert writer.submit(record("late")) is False
    assert writer.dropped == 1


async def test_stop_is_prompt_when_idle(store: StatsStore) -> None:
    writer = StatsWriter(store, flush_interval=3600)
    writer.start()
    await asyncio.sleep(0)
    assert await asyncio.wait_for(writer.stop(60), 5)  # must not wait for the flush interval


async def test_stop_without_start_still_flushes(store: StatsStore) -> None:
    writer = StatsWriter(store)
    writer.submit(record("x"))
    assert await writer.stop(5)
    assert await stored_ids(store) == {"x"}


# --- a real outage: PostgreSQL behind a TCP relay that the test cuts -------------------------


@pytest.fixture
async def relay(pg_schema: PgSchema) -> AsyncIterator[TcpRelay]:
    server = make_url(pg_schema.base_url)
    r = TcpRelay(server.host or "127.0.0.1", server.port or 5432)
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def relayed_store(pg_schema: PgSchema, relay: TcpRelay) -> StatsStore:
    return StatsStore(pg_schema.url(port=relay.port, password=DB_PASSWORD), engine_options=pg_schema.engine_options)


def direct_store(pg_schema: PgSchema) -> StatsStore:
    return StatsStore(pg_schema.url(), engine_options=pg_schema.engine_options)


async def test_outage_keeps_records_and_writes_them_after_recovery(pg_schema: PgSchema, relay: TcpRelay) -> None:
    store, check = relayed_store(pg_schema, relay), direct_store(pg_schema)
    await store.open()
    writer = StatsWriter(store, batch_size=10, flush_interval=3600, retry_initial=0.01, retry_max=0.05)
    writer.start()
    try:
        for r in records("before-", 5):
            writer.submit(r)
        assert await writer.flush()

        relay.cut()
        for r in records("during-", 25):  # reaches the batch size: the task tries, fails, backs off
            assert writer.submit(r)
        assert not await writer.flush()
        assert writer.queued == 25 and writer.dropped == 0
        assert not writer.healthy and writer.failures >= 1
        assert writer.last_error and DB_PASSWORD not in writer.last_error
        assert "during-" not in writer.last_error  # no record contents either

        relay.restore()
        assert await writer.wait_drained(20)
        assert writer.healthy and writer.written == 30
        expected = {f"before-{i}" for i in range(5)} | {f"during-{i}" for i in range(25)}
        assert await stored_ids(check) == expected
    finally:
        await writer.stop(5)
        await store.close()
        await check.close()


async def test_outage_longer_than_the_queue_drops_only_the_overflow(pg_schema: PgSchema, relay: TcpRelay) -> None:
    store, check = relayed_store(pg_schema, relay), direct_store(pg_schema)
    await store.open()
    writer = StatsWriter(store, max_queue=20, batch_size=5, flush_interval=3600, retry_initial=0.01, retry_max=0.05)
    try:
        relay.cut()
        for r in records("r", 30):
            writer.submit(r)
        assert not await writer.flush()
        assert (writer.queued, writer.dropped) == (20, 10)
        relay.restore()
        assert await writer.flush()
        assert await stored_ids(check) == {f"r{i}" for i in range(10, 30)}
    finally:
        await writer.stop(5)
        await store.close()
        await check.close()


async def test_a_gateway_started_during_an_outage_records_once_the_database_is_back(
    pg_schema: PgSchema, relay: TcpRelay
) -> None:
    store, check = relayed_store(pg_schema, relay), direct_store(pg_schema)
    relay.cut()
    with pytest.raises(StatsStoreError) as info:
        await store.open()
    assert DB_PASSWORD not in str(info.value)
    writer = StatsWriter(store, batch_size=10, flush_interval=3600, retry_initial=0.01, retry_max=0.05)
    writer.start()
    try:
        for r in records("r", 12):
            writer.submit(r)
        assert not await writer.flush()
        assert writer.last_error is not None and DB_PASSWORD not in writer.last_error
        relay.restore()
        assert await writer.wait_drained(20)
        assert len(await stored_ids(check)) == 12  # migrated and written through the relay
    finally:
        await writer.stop(5)
        await store.close()
        await check.close()


async def test_a_database_that_stops_answering_times_out_and_recovers(pg_schema: PgSchema, relay: TcpRelay) -> None:
    store, check = relayed_store(pg_schema, relay), direct_store(pg_schema)
    await store.open()
    writer = StatsWriter(store, batch_size=100, flush_interval=3600, write_timeout=0.3)
    try:
        for r in records("a", 3):
            writer.submit(r)
        assert await writer.flush()
        relay.pause()
        for r in records("b", 3):
            writer.submit(r)
        assert not await writer.flush()  # the write hangs: cancelled after write_timeout
        assert writer.queued == 3 and writer.last_error is not None and "Timeout" in writer.last_error
        relay.restore()
        assert await writer.flush()
        assert await stored_ids(check) == {"a0", "a1", "a2", "b0", "b1", "b2"}
        assert len(await check.requests(limit=1000)) == 6
    finally:
        await writer.stop(5)
        await store.close()
        await check.close()


async def test_stop_outlasts_a_short_outage(pg_schema: PgSchema, relay: TcpRelay) -> None:
    store, check = relayed_store(pg_schema, relay), direct_store(pg_schema)
    await store.open()
    writer = StatsWriter(store, batch_size=100, flush_interval=3600, retry_initial=0.01, retry_max=0.05)
    try:
        relay.cut()
        for r in records("r", 4):
            writer.submit(r)
        assert not await writer.flush()
        stopping = asyncio.create_task(writer.stop(30))
        async with writer._progress:  # white-box: wait for the next failed attempt inside stop()
            await writer._progress.wait()
        relay.restore()
        assert await stopping
        assert len(await stored_ids(check)) == 4
    finally:
        await store.close()
        await check.close()


async def test_stop_during_an_outage_reports_what_is_left(pg_schema: PgSchema, relay: TcpRelay) -> None:
    store = relayed_store(pg_schema, relay)
    await store.open()
    writer = StatsWriter(store, batch_size=100, flush_interval=3600, retry_initial=0.01, retry_max=0.05)
    writer.start()
    try:
        relay.cut()
        for r in records("r", 3):
            writer.submit(r)
        assert await writer.stop(0.3) is False  # retried until the deadline, then given up
        assert writer.queued == 3 and writer.failures > 1
    finally:
        await store.close()


async def test_concurrent_flushes_never_duplicate(make_store: StoreFactory) -> None:
    store = make_store()
    sink = RecordingSink(store)
    writer = StatsWriter(sink, batch_size=7, flush_interval=3600)
    writer.start()
    try:
        for r in records("r", 50):
            writer.submit(r)
        results = await asyncio.gather(writer.flush(), writer.flush(), writer.wait_drained(10))
        assert all(results)
        assert sum(sink.batches) == 50
        assert len(await stored_ids(store)) == 50
    finally:
        await writer.stop(5)
        await store.close()


async def test_waiting_for_the_queue_ends_when_its_only_records_are_rejected(store: StatsStore) -> None:
    writer = StatsWriter(store, batch_size=10, flush_interval=3600)
    writer.start()
    try:
        assert writer.submit(record("bad", status="not-a-number"))
        waiting = asyncio.ensure_future(writer.wait_drained(10))
        for _ in range(5):  # the waiter is parked on the writer's progress condition
            await asyncio.sleep(0)
        assert not waiting.done()
        assert await writer.flush()
        assert await asyncio.wait_for(waiting, 5)
        assert (writer.queued, writer.rejected, writer.written) == (0, 1, 0)
    finally:
        await writer.stop(5)
