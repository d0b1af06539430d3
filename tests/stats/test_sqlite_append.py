"""SqliteAppender on a real SQLite file: one transaction per append, no blocking on a lock held
by another process's connection (the statistics writer retries), cancellation rolls back, and
checkpoints run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stats.builders import attempt, record
from unigate.stats.rows import REQUEST_COLUMNS, SQLITE_ROWS, request_values
from unigate.stats.sqlite_append import SqliteAppender, multi_row
from unigate.stats.store import StatsStore, is_permanent_error
from unigate.stats.writer import StatsWriter

pytestmark = pytest.mark.anyio


async def open_store(path: Path) -> StatsStore:
    store = StatsStore(f"sqlite+aiosqlite:///{path}", writer_process=False)  # the event loop's own appender
    await store.open()
    assert isinstance(store._appender, SqliteAppender), "SQLite files are written through the appender"
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


def test_multi_row_statements_repeat_the_values_group_with_chosen_nulls() -> None:
    one = "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    # numbered column by column: a's values, then b's, then c's
    assert multi_row(one, 2) == "INSERT INTO t (a, b, c) VALUES (?1, ?3, ?5), (?2, ?4, ?6) ON CONFLICT DO NOTHING"
    assert multi_row(one, 2, frozenset({1})) == (
        "INSERT INTO t (a, b, c) VALUES (?1, NULL, ?3), (?2, NULL, ?4) ON CONFLICT DO NOTHING"
    )
    with pytest.raises(ValueError):
        multi_row("DELETE FROM t", 2)


async def test_rows_in_full_chunks_are_stored_exactly_whatever_their_nulls(tmp_path: Path) -> None:
    """Full chunks go through multi-row statements with all-None columns as NULL literals; a column
    that is None in all rows but one must still be bound in that chunk."""
    store = await open_store(tmp_path / "stats.db")
    originals = [
        record(
            f"r{i:03d}",
            minutes_ago=i,
            error_class="UpstreamTimeout" if i == 70 else None,  # one row in the second chunk
            ttft_ms=float(i) if i % 2 else None,
            channel=None if i < 64 else "openai",  # NULL in the whole first chunk only
            attempts=(attempt("openai"),) if i % 3 else (),
        )
        for i in range(64 * 2 + 5)  # two full chunks and a remainder
    ]
    await store.write(originals)
    stored = sorted(await store.requests(limit=1000), key=lambda row: row["request_id"])
    assert stored == [r.to_row() for r in originals]
    assert store._appender is not None
    nulls = [key[0] for key in store._appender._chunks]
    first, second = sorted(nulls, key=len, reverse=True)  # a statement per chunk
    checked = (REQUEST_COLUMNS.index("channel"), REQUEST_COLUMNS.index("error_class"))
    assert [c in first for c in checked] == [True, True]  # NULL literals in the first chunk
    assert [c in second for c in checked] == [False, False]  # bound in the second
    await store.close()


def test_multi_row_statements_bind_shared_columns_once() -> None:
    one = "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)"
    assert multi_row(one, 2, frozenset({3}), (0, 2)) == (
        "INSERT INTO t (a, b, c, d) VALUES (?1, ?3, ?2, NULL), (?1, ?4, ?2, NULL)"
    )


async def test_text_shared_by_a_whole_chunk_is_bound_once_and_stored_in_every_row(tmp_path: Path) -> None:
    """A shared text column is one parameter for the chunk; a chunk where it varies binds it per
    row; either way every row reads back as written."""
    store = await open_store(tmp_path / "stats.db")
    originals = [
        record(
            f"s{i:03d}",
            minutes_ago=i,
            client_key="team-a" if i < 64 or i % 2 else "team-b",  # shared in the first chunk only
            model="gpt-4o",  # shared in both
        )
        for i in range(64 * 2)
    ]
    await store.write(originals)
    stored = sorted(await store.requests(limit=1000), key=lambda row: row["request_id"])
    assert stored == [r.to_row() for r in originals]
    assert store._appender is not None
    shared = sorted((key[1] for key in store._appender._chunks), key=len, reverse=True)
    client_key, model = REQUEST_COLUMNS.index("client_key"), REQUEST_COLUMNS.index("model")
    assert len(shared) == 2
    assert client_key in shared[0] and model in shared[0]
    assert client_key not in shared[1] and model in shared[1]
    await store.close()


async def test_rows_of_different_lengths_are_refused_not_shifted(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "stats.db")
    appender = store._appender
    assert appender is not None
    rows = request_values([record(f"c{i}") for i in range(64)], SQLITE_ROWS)
    for bad in ([*rows[:5], rows[5][:-1], *rows[6:]], [row[:-1] for row in rows]):  # one short, all short
        with pytest.raises(ValueError) as info:
            await appender.append(bad)
        assert is_permanent_error(info.value)
        assert count(tmp_path / "stats.db") == 0
    await store.close()


async def test_the_chunk_statement_cache_is_bounded(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "stats.db")
    appender = store._appender
    assert appender is not None
    for i in range(64):  # as if 64 different sets of all-NULL columns had been seen
        appender._chunks[((100 + i,), ())] = ("unused", ())
    await store.write([record(f"c{i}") for i in range(64)])
    assert len(appender._chunks) == 1 and count(tmp_path / "stats.db") == 64
    await store.close()


@given(
    st.lists(
        st.tuples(*[st.sampled_from([None, 0, 7, 2.5, "", "x", "y"])] * 4),
        min_size=1,
        max_size=6,
    )
)
def test_a_chunk_statement_stores_exactly_its_rows(rows: list[tuple[object, ...]]) -> None:
    """Whatever mix of NULL-only, shared and varying columns a chunk has, the statement and the
    column-by-column parameters :meth:`SqliteAppender._chunk_statement` makes insert exactly the
    rows given, in order (values drawn from few, so that columns are often all-None or shared)."""
    appender = SqliteAppender(":memory:", "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)", shared=(0, 2, 3))
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:  # ``with conn`` alone never closes it
        conn.execute("CREATE TABLE t (a, b, c, d)")
        conn.execute(*appender._chunk_statement(rows))
        assert conn.execute("SELECT a, b, c, d FROM t ORDER BY rowid").fetchall() == rows
