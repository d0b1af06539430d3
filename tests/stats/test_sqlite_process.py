"""The SQLite writer process (unigate/stats/sqlite_process.py) on a real file and real child
processes: rows stored exactly as the in-process appender stores them, failures classified as
before, a dead or killed child replaced, a batch whose commit was in doubt stored exactly once,
the child deaf to SIGTERM and gone when its input closes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.stats.builders import full_record, record
from unigate.app import open_stats, stats_process
from unigate.stats.rows import REQUEST_COLUMNS, SQLITE_ROWS, request_values
from unigate.stats.sqlite_append import SqliteAppender
from unigate.stats.sqlite_process import ProcessAppender
from unigate.stats.store import SQLITE_BLOCKS, SQLITE_SHARED, StatsStore, is_permanent_error
from unigate.stats.writer import StatsWriter

pytestmark = pytest.mark.anyio

# A child that stops answering while a marker file exists: "after" commits the batch and then
# hangs (its answer is lost), "before" hangs before touching the database; either way it creates
# the file "reached" first. The tests cancel the parent's wait once that file exists.
HANGING_CHILD = """
import os, sys, threading
from unigate.stats import sqlite_append, sqlite_process
after, before, reached = sys.argv[1:4]
answer, append = sqlite_process._answer, sqlite_append.SqliteAppender.append
def hang():
    open(reached, "w").close()
    threading.Event().wait()
def answer_or_hang(out, payload):
    if os.path.exists(after) and sqlite_process.APPENDED:
        hang()
    answer(out, payload)
async def append_or_hang(self, rows):
    if os.path.exists(before):
        hang()
    await append(self, rows)
    sqlite_process.APPENDED = True
sqlite_process.APPENDED = False
sqlite_process._answer = answer_or_hang
sqlite_append.SqliteAppender.append = append_or_hang
sqlite_process.main()
"""


def request_ids(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # ``with conn`` alone never closes it
        return [row[0] for row in conn.execute("SELECT request_id FROM request_stats ORDER BY id")]


def count(path: Path) -> int:
    return len(request_ids(path))


async def open_store(path: Path) -> StatsStore:
    store = StatsStore(f"sqlite+aiosqlite:///{path}")
    await store.open()
    return store


def rows_of(prefix: str, n: int) -> list[tuple[Any, ...]]:
    return request_values([record(f"{prefix}{i:04d}", minutes_ago=i / 100) for i in range(n)], SQLITE_ROWS)


async def appender_for(path: Path, command: Sequence[str] | None = None, **kw: Any) -> ProcessAppender:
    store = await open_store(path)  # creates the schema
    insert = store._insert_sql(store.engine.dialect)
    await store.close()
    return ProcessAppender(str(path), insert, blocks=SQLITE_BLOCKS, shared=SQLITE_SHARED, command=command, **kw)


async def until(condition: Any, what: str) -> None:
    """Wait (polling the condition, not for a fixed time) until ``condition()`` is true."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def test_sqlite_files_are_written_by_a_child_process_unless_asked_otherwise(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "a.db")
    assert isinstance(store._appender, ProcessAppender)
    await store.write([record("r1")])
    assert store._appender.pid not in (None, os.getpid())
    await store.close()
    in_process = StatsStore(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", writer_process=False)
    await in_process.open()
    assert isinstance(in_process._appender, SqliteAppender)
    await in_process.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", ProcessAppender), ("false", SqliteAppender), ("0", SqliteAppender), ("flase", ProcessAppender)],
)
async def test_the_environment_chooses_the_writer(tmp_path: Path, value: str, expected: type) -> None:
    store, writer = await open_stats({"DB_PATH": str(tmp_path / "s.db"), "UNIGATE_STATS_PROCESS": value})
    assert store is not None and writer is not None
    try:
        assert type(store._appender) is expected
    finally:
        await writer.stop(5)
        await store.close()


async def test_rows_read_back_exactly_as_from_the_in_process_appender(tmp_path: Path) -> None:
    """Full chunks, a short remainder, NULL-only and shared columns, every field set: the child
    stores what the event loop's own appender stores, value for value."""
    originals = [full_record(f"f{i:03d}") for i in range(70)] + [
        record(f"r{i:03d}", minutes_ago=i, ttft_ms=None if i % 2 else 5.0) for i in range(100)
    ]
    pages = []
    for name, in_child in (("child.db", True), ("loop.db", False)):
        store = StatsStore(f"sqlite+aiosqlite:///{tmp_path / name}", writer_process=in_child)
        await store.open()
        await store.write(originals)
        pages.append(sorted(await store.requests(limit=1000), key=lambda row: row["request_id"]))
        await store.close()
    assert pages[0] == pages[1] == sorted((r.to_row() for r in originals), key=lambda row: row["request_id"])


async def test_errors_come_back_as_the_same_classes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    appender = await appender_for(path, busy_timeout_ms=20)
    rows = rows_of("e", 64)
    with pytest.raises(ValueError) as short:  # a full chunk whose rows differ in length
        await appender.append([*rows[:5], rows[5][:-1], *rows[6:]])
    assert is_permanent_error(short.value)
    with pytest.raises(sqlite3.ProgrammingError) as wrong:  # a single-row statement with a value missing
        await appender.append([rows[0][:-1]])
    assert is_permanent_error(wrong.value)
    with pytest.raises(ValueError) as unmarshallable:  # refused before it is sent
        await appender.append([(*rows[0][:-1], Decimal("1.5"))])
    assert is_permanent_error(unmarshallable.value)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another worker holds the file longer than the child waits
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            await appender.append(rows[:3])
        assert not is_permanent_error(locked.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    await appender.append(rows[:3])  # the same child, still usable
    assert appender.started == 1 and count(path) == 3
    await appender.close()


async def test_a_killed_child_is_replaced_and_the_writer_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await open_store(path)
    writer = StatsWriter(store, retry_initial=0.01, retry_max=0.02)
    writer.start()
    for i in range(10):
        writer.submit(record(f"a{i}"))
    assert await writer.flush()
    appender = store._appender
    assert isinstance(appender, ProcessAppender) and appender.pid is not None
    os.kill(appender.pid, signal.SIGKILL)
    for i in range(10):
        writer.submit(record(f"b{i}"))
    await writer.flush()  # may fail once (the dead child), then the background task retries
    assert await writer.wait_drained(30)
    assert appender.started == 2
    assert sorted(request_ids(path)) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)])
    assert await writer.stop(5)
    await store.close()


async def test_the_child_ignores_sigterm_and_exits_when_its_input_closes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    appender = await appender_for(path)
    await appender.append(rows_of("a", 3))
    pid = appender.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # a service manager signalling the whole group
    os.kill(pid, signal.SIGINT)  # Ctrl-C in a terminal
    await appender.append(rows_of("b", 3))
    assert appender.pid == pid and appender.started == 1
    proc = appender._proc
    assert proc is not None
    await appender.close()
    assert proc.returncode == 0 and appender.pid is None
    assert count(path) == 6


async def test_checkpoints_run_in_the_child(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    appender = await appender_for(path, checkpoint_every=500)
    before = path.stat().st_size
    await appender.append(rows_of("a", 400))
    await appender.idle()
    assert appender.checkpoints == 0 and path.stat().st_size == before
    await appender.append(rows_of("b", 200))
    await appender.idle()
    assert appender.checkpoints == 1 and path.stat().st_size > before
    await appender.close()


async def test_a_child_that_cannot_start_is_a_transient_failure(tmp_path: Path) -> None:
    appender = await appender_for(tmp_path / "s.db", command=[str(tmp_path / "no-such-python")])
    with pytest.raises(sqlite3.OperationalError) as info:
        await appender.append(rows_of("a", 1))
    assert not is_permanent_error(info.value)


@pytest.mark.parametrize("committed", [True, False])
async def test_a_batch_whose_commit_was_in_doubt_is_stored_exactly_once(tmp_path: Path, committed: bool) -> None:
    """The append is cancelled while the child is silent — after committing the batch, or before
    touching the database. The child is killed; the retry (the same rows first, as the writer
    queues them, then newer ones) leaves every row stored once."""
    assert REQUEST_COLUMNS[0] == "request_id", "a doubtful batch is looked up by its rows' first value"
    path = tmp_path / "s.db"
    after, before, reached = tmp_path / "hang-after", tmp_path / "hang-before", tmp_path / "reached"
    command = [sys.executable, "-c", HANGING_CHILD, str(after), str(before), str(reached)]
    appender = await appender_for(path, command=command)
    await appender.append(rows_of("warm", 2))  # the child is up
    (after if committed else before).touch()
    batch = rows_of("d", 100)
    task = asyncio.ensure_future(appender.append(batch))
    await until(reached.exists, "the child went silent")
    assert count(path) == (102 if committed else 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert appender.pid is None, "a child whose answer was abandoned is killed"
    after.unlink(missing_ok=True)
    before.unlink(missing_ok=True)
    await appender.append([*batch, *rows_of("n", 5)])
    ids = request_ids(path)
    assert len(ids) == len(set(ids)) == 107
    assert appender.started == 2
    assert appender.info()["doubtful_already_stored"] == (1 if committed else 0)
    await appender.close()
    assert appender.info()["pid"] is None


def test_an_unknown_setting_is_logged_and_the_default_kept(caplog: pytest.LogCaptureFixture) -> None:
    assert stats_process({"UNIGATE_STATS_PROCESS": " OFF "}) is False
    assert not caplog.records
    assert stats_process({"UNIGATE_STATS_PROCESS": "flase"}) is True
    assert "UNIGATE_STATS_PROCESS='flase' is not true or false" in caplog.text
