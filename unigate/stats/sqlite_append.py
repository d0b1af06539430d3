"""Appending request rows to the SQLite statistics file on the event loop's own thread.

Why not through aiosqlite like every read: the sqlite3 module releases the GIL around each row's
step, so a batch executed in aiosqlite's worker thread traded the GIL with the busy event loop
once per row, and every batch paid the thread hand-offs and SQLAlchemy's connection events on the
request path's core (docs/performance.md). Here the rows go straight to one ``sqlite3``
connection, in one transaction, as multi-row INSERTs: one statement carries ``chunk`` rows
(``VALUES (?, …), (?, …), …``), because a statement's per-execution overhead — reset, halt,
the ``executemany`` loop — was a fifth of a row's insert cost (measured: 4.6 → 3.9 µs a row,
docs/performance.md). The rows of a last, shorter chunk go through the single-row statement.

Binding is most of what the ``sqlite3`` module costs (callgrind: ~26 000 of ~38 000 instructions
a row), and a ``None`` is the dearest value to bind (see ``_NULLS`` below). A column that is
``None`` in every row of a chunk — errors, content, moderation time in most chunks — is written
as a ``NULL`` literal in that chunk's statement instead of being bound 64 times; and a text
column (of those the caller names ``shared``) with one value in every row of a chunk is bound
once, as ``?1`` … (text is the dearest value to bind; see ``_chunk_statement``). Statements are
cached per such pair of column sets. The other parameters are numbered column by column, so a
chunk's values are its transposed rows as they come out of ``zip`` (:func:`multi_row`).

Contract (what keeps the event loop responsive):

- Rows are inserted in chunks of ``chunk`` rows with a yield to the loop between chunks (a
  fraction of a millisecond of work each); the transaction spans the chunks, so a batch is all
  or nothing.
- ``busy_timeout`` is 0 (unless ``busy_timeout_ms`` is given: the writer process of
  :mod:`unigate.stats.sqlite_process` blocks no event loop, so it waits): if another process
  holds the write lock (another worker), ``BEGIN IMMEDIATE`` fails at once with
  ``sqlite3.OperationalError`` instead of blocking the loop; the statistics writer retries the
  batch with backoff, as for any outage.
- Commits write to the WAL without fsync (``synchronous=NORMAL``); the connection never
  checkpoints itself (``wal_autocheckpoint=0``). Every ``checkpoint_every`` appended rows a
  PASSIVE checkpoint (the only step that fsyncs) runs in a worker thread on its own connection.
- One append at a time (an ``asyncio.Lock``); cancellation rolls the transaction back.
- With ``blocks``, each append also records the range of ids it inserted and its smallest and
  largest timestamp (:class:`Blocks`), in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

__all__ = ["Blocks", "SqliteAppender"]

_log = logging.getLogger("unigate.stats")

Row = tuple[Any, ...]

# NULLs without the slow path: the sqlite3 module sends every parameter that is not exactly int,
# float, str or bytearray — None included — through its adapter registry, and a registry miss
# ends in a failed ``PrepareProtocol.__adapt__`` lookup whose AttributeError message is formatted
# and thrown away: ~3 000 instructions per NULL, and a statistics row has four or five of them
# (callgrind, docs/performance.md; CPython Modules/_sqlite/microprotocols.c). A registered adapter
# is found first; ``{}.get`` maps None to None without entering the interpreter. Process-wide,
# and harmless for every other sqlite3 user: None is still bound as NULL.
_NULLS: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NULLS.get)


_MAX_CHUNK_STATEMENTS = 64
"""Chunk statements kept, one per (all-NULL columns, shared columns) pair: a handful for one kind
of traffic, more for a mix of clients, models and errors. Beyond this many all are forgotten and
built again as needed: ~0.2 ms for the text, plus SQLite's prepare unless the ``sqlite3`` module
still caches it (128 statements by default)."""

_ONE_ROW = re.compile(r"\bVALUES (\((?:\?, )*\?\))")


def _values_group(insert_sql: str) -> re.Match[str]:
    match = _ONE_ROW.search(insert_sql)
    if match is None:
        raise ValueError("not a single-row INSERT … VALUES (?, …)")
    return match


def multi_row(insert_sql: str, rows: int, nulls: frozenset[int] = frozenset(), shared: tuple[int, ...] = ()) -> str:
    """``insert_sql`` (a single-row ``INSERT … VALUES (?, …, ?) …``) made to take ``rows`` rows,
    with the columns at the 0-based positions ``nulls`` written as ``NULL`` instead of bound, the
    columns at the positions ``shared`` (ascending) bound once for every row, as ``?1`` … ``?k``
    in that order, and every other value numbered **column by column**: the j-th of the remaining
    columns takes ``?(k + 1 + j × rows + r)`` in row ``r``. So the parameters are the shared values
    followed by the remaining columns' values one whole column after another — what
    :meth:`SqliteAppender._chunk_statement` gets from one transposition of the rows, without
    interleaving them again. ``ValueError`` if it has no such VALUES group. SQLite binds at most
    32 766 parameters per statement (``SQLITE_MAX_VARIABLE_NUMBER`` since 3.32): callers keep
    ``rows × columns`` under it."""
    match = _values_group(insert_sql)
    columns = columns_of(insert_sql)
    once = {column: number for number, column in enumerate(shared, 1)}
    values = ("NULL" if i in nulls else f"?{once[i]}" if i in once else "?{}" for i in range(columns))
    template = "(" + ", ".join(values) + ")"
    per = template.count("{}")  # the columns each row binds itself
    first = len(shared) + 1
    groups = [template.format(*range(first + row, first + row + per * rows, rows)) for row in range(rows)]
    return f"{insert_sql[: match.start(1)]}{', '.join(groups)}{insert_sql[match.end(1) :]}"


def columns_of(insert_sql: str) -> int:
    """How many values one row of ``insert_sql`` takes (``ValueError`` as :func:`multi_row`)."""
    return _values_group(insert_sql).group(1).count("?")


@dataclass(frozen=True, slots=True)
class Blocks:
    """How an append records what it inserted, for a block-range time index: ``last_id`` selects
    the table's largest id (0 when empty); ``insert`` takes (first id, last id, smallest stamp,
    largest stamp); ``stamp`` is the position of the timestamp in a row. Every id an append
    inserts is above the largest before it (SQLite gives ``max(rowid) + 1``; only a table that
    reached rowid 2**63 - 1 would pick random ones), and no other writer inserts meanwhile
    (``BEGIN IMMEDIATE``)."""

    last_id: str
    insert: str
    stamp: int

    def of(self, rows: Sequence[Row], before: int, last: int) -> tuple[Any, ...]:
        """``insert``'s parameters for ``rows``, inserted after id ``before`` up to id ``last``."""
        stamps = list(map(itemgetter(self.stamp), rows))
        return (before + 1, last, min(stamps), max(stamps))


class SqliteAppender:
    """See the module docstring. ``path`` is the database file; ``insert_sql`` the single-row
    INSERT in SQLite's ``?`` paramstyle (see :func:`multi_row`); ``shared`` the positions of the
    text columns worth binding once when a whole chunk shares their value. Chunk statements are
    cached without their row count: only full chunks of ``chunk`` rows use them."""

    def __init__(
        self,
        path: str,
        insert_sql: str,
        *,
        chunk: int = 64,
        checkpoint_every: int = 20_000,
        blocks: Blocks | None = None,
        shared: tuple[int, ...] = (),
        busy_timeout_ms: int = 0,
    ) -> None:
        self._path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._shared = tuple(sorted(shared))
        self._blocks = blocks
        self._sql = insert_sql
        self._columns = columns_of(insert_sql)
        self._chunks: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[str, tuple[int, ...]]] = {}
        self._chunk = chunk
        self._checkpoint_every = checkpoint_every
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self.checkpoints = 0
        """Checkpoints completed (for tests and diagnostics)."""
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn = conn
        return self._conn

    async def append(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` in one transaction: all of them, or none when it raises (the statement's
        ``ON CONFLICT DO NOTHING`` never fires here: SQLite keeps no unique ``request_id``,
        migration 0003)."""
        if not rows:
            return
        async with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                blocks = self._blocks
                before = conn.execute(blocks.last_id).fetchone()[0] if blocks is not None else 0
                chunk = self._chunk
                for start in range(0, len(rows), chunk):
                    if start:
                        await asyncio.sleep(0)
                    part = rows[start : start + chunk]
                    if len(part) == chunk:
                        conn.execute(*self._chunk_statement(part))
                    else:
                        conn.executemany(self._sql, part)
                if blocks is not None:
                    last = conn.execute(blocks.last_id).fetchone()[0]
                    conn.execute(blocks.insert, blocks.of(rows, before, last))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        self._since_checkpoint += len(rows)
        if self._since_checkpoint >= self._checkpoint_every and self._checkpointing is None:
            self._since_checkpoint = 0
            self._checkpointing = asyncio.ensure_future(asyncio.to_thread(self._checkpoint))
            self._checkpointing.add_done_callback(self._checkpointed)

    def stored_recently(self, request_id: str, window: int) -> bool:
        """Whether a row with ``request_id`` is among the newest ``window`` rows of the table the
        INSERT writes (a range of its rowid, no index needed; for a batch whose commit is in
        doubt, :mod:`unigate.stats.sqlite_process`)."""
        table = self._sql.split()[2]  # INSERT INTO <table> …
        conn = self._connection()
        found = conn.execute(
            f"SELECT 1 FROM {table} WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM {table}) - ? "
            "AND request_id = ? LIMIT 1",
            (window, request_id),
        ).fetchone()
        return found is not None

    def _chunk_statement(self, part: Sequence[Row]) -> tuple[str, list[Any]]:
        """The statement for a full chunk and its parameters. The rows are transposed once
        (``zip``, in C) and every test and copy works on whole columns: a column that is ``None``
        in every row is a ``NULL`` literal; each of the ``shared`` columns whose value is one
        ``str`` in every row (endpoint, client key, model, channel … while one client uses one
        model) is bound once as a numbered parameter, because binding text is the dearest part
        of a row's insert: the ``sqlite3`` module binds it ``SQLITE_TRANSIENT``, so SQLite copies
        it into a fresh allocation, under its mutex (callgrind, docs/performance.md); the other
        columns follow whole, as :func:`multi_row` numbers them. Measured against picking values
        row by row (an ``itemgetter`` per column and row, then a list of every row's values with
        the dropped columns deleted from it): see docs/performance.md. ``ValueError`` unless
        every row has one value per column: a shorter row would shift every later value into
        the wrong column."""
        size = len(part)
        columns = list(zip(*part, strict=True))  # ValueError when rows differ in length
        if len(columns) != self._columns:
            raise ValueError("statistics rows must have one value per column")
        nulls = tuple(i for i, column in enumerate(columns) if column[0] is None and column.count(None) == size)
        shared = tuple(
            i for i in self._shared if type(columns[i][0]) is str and columns[i].count(columns[i][0]) == size
        )
        key = (nulls, shared)
        found = self._chunks.get(key)
        if found is None:
            if len(self._chunks) >= _MAX_CHUNK_STATEMENTS:
                self._chunks.clear()
            kept = tuple(i for i in range(self._columns) if i not in nulls and i not in shared)
            found = self._chunks[key] = (multi_row(self._sql, size, frozenset(nulls), shared), kept)
        sql, kept = found
        values = [columns[i][0] for i in shared]
        values.extend(chain.from_iterable(map(columns.__getitem__, kept)))
        return sql, values

    def _checkpoint(self) -> None:
        conn = sqlite3.connect(self._path, timeout=5)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _checkpointed(self, task: asyncio.Task[None]) -> None:
        self._checkpointing = None
        if not task.cancelled() and task.exception() is not None:
            _log.warning("statistics WAL checkpoint failed: %s", task.exception())
        else:
            self.checkpoints += 1

    async def idle(self) -> None:
        """Wait for a running checkpoint (tests, shutdown)."""
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)

    async def close(self) -> None:
        """Wait for a running checkpoint and close the connection (SQLite checkpoints on the last
        close)."""
        await self.idle()
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
