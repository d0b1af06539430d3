"""SqliteAppender on a real SQLite file: one transaction per append, no blocking on a lock held
by another process's connection (the statistics writer retries), cancellation rolls back, and
checkpoints run off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.stats.builders import record
from unigate.stats.rows import SQLITE_ROWS, request_values
from unigate.stats.store import StatsStore, is_permanent_error
from unigate.stats.writer import StatsWriter

pytestmark = pytest.mark.anyio


async def open_store(path: Path) -> StatsStore:
    store = StatsStore(f"sqlite+aiosqlite:///{path}")
    await store.open()
    assert store._appender is not None, "SQLite files are written through the appender"
    return store


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM request_stats").fetchone()[0])


async def test_a_lock_held_elsewhere_fails_at_once_and_the_writer_retries(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    store = await open_store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker in the middle of its own write
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            await asyncio.wait_for(store.write([record("r1")]), 1.0)  # at once, not after busy_timeout
        assert not is_permanent_error(info.value)
        writer = StatsWriter(store, retry_initial=0.01, retry_max=0.02)
        writer.start()
        writer.submit(record("r2"))
        assert not await writer.flush()  # still locked: kept queued
        assert writer.queued == 1
        other.execute("COMMIT")
        assert await writer.wait_drained(5.0)
        assert await writer.stop(1.0)
    finally:
        other.close()
        await store.close()
    assert count(path) == 1


async def test_cancelling_an_append_rolls_the_batch_back(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    store = await open_store(path)
    appender = store._appender
    assert appender is not None
    rows = request_values([record(f"c{i}") for i in range(300)], SQLITE_ROWS)  # several chunks
    task = asyncio.ensure_future(appender.append(rows))
    await asyncio.sleep(0)  # the first chunk is in, the task waits at its yield
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert count(path) == 0
    await appender.append(rows)  # the connection is usable again
    assert count(path) == 300
    await store.close()


async def test_checkpoints_run_after_enough_rows_and_move_pages_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    store = await open_store(path)
    appender = store._appender
    assert appender is not None
    appender._checkpoint_every = 500
    before = path.stat().st_size
    await store.write([record(f"a{i}") for i in range(400)])
    await appender.idle()
    assert appender.checkpoints == 0 and path.stat().st_size == before  # rows only in the WAL so far
    await store.write([record(f"b{i}") for i in range(200)])
    await appender.idle()
    assert appender.checkpoints == 1
    assert path.stat().st_size > before
    await store.close()
    assert count(path) == 600
