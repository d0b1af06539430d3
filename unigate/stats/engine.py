"""Engine construction: the per-backend settings every statistics connection needs.

SQLite (aiosqlite): on connect, ``journal_mode=WAL`` (readers never block the writer),
``busy_timeout`` (wait for another process's write lock instead of failing), ``synchronous=NORMAL``
(durable at checkpoints; safe with WAL). The driver's own implicit transaction handling is turned
off and every transaction starts with an explicit ``BEGIN`` — or ``BEGIN IMMEDIATE`` on an engine
made with :func:`immediate` — so DDL is transactional and writers take the write lock up front
(no deadlock-prone lock upgrades between processes).

PostgreSQL (asyncpg): a connect timeout and a per-statement timeout, so a database that stops
answering turns into an error instead of a hung writer.

Both: ``pool_pre_ping``, so connections killed during an outage are replaced on their next use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["BUSY_TIMEOUT_MS", "create_engine", "immediate"]

BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 10.0
PG_COMMAND_TIMEOUT_S = 60.0
_BEGIN_OPTION = "unigate_sqlite_begin"


def create_engine(url: str, options: Mapping[str, Any] | None = None) -> AsyncEngine:
    """An async engine for ``url`` with the settings above. ``options`` are extra keyword
    arguments for :func:`sqlalchemy.ext.asyncio.create_async_engine`; their ``connect_args``
    are merged over ours (tests use it to set a PostgreSQL ``search_path``)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        connect_args = {"timeout": PG_CONNECT_TIMEOUT_S, "command_timeout": PG_COMMAND_TIMEOUT_S}
    elif backend == "sqlite":
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000}
    extra = dict(options or {})
    connect_args.update(extra.pop("connect_args", {}))
    kwargs.update(extra)
    engine = create_async_engine(parsed, connect_args=connect_args, **kwargs)
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def immediate(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose SQLite transactions start with ``BEGIN IMMEDIATE``.
    On other backends the option is ignored."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, retried for up to ``BUSY_TIMEOUT_MS``: switching a new file
    to WAL needs an exclusive lock, and SQLite answers "database is locked" at once, without its
    busy handler, while another connection is doing the same (several workers starting on one
    fresh file). The mode is stored in the file, so once one connection has switched it, the
    others' pragma is a no-op. Runs in the driver's thread (aiosqlite), never on the event loop."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")
