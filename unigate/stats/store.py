"""Where request records live: a SQLAlchemy 2 async database (SQLite by default, PostgreSQL).

:func:`database_url` reads uni-api's environment variables; :class:`StatsStore` opens (and
migrates) the database, writes batches of records in one transaction, and answers the queries
behind ``/v1/stats``, the raw-records API, credits and the dashboard.

Secrets: a database password appears only in the URL string handed to SQLAlchemy; everything this
module logs or raises uses :func:`mask_url` / :func:`describe_error`, which never contain it (nor
the SQL parameters, i.e. record contents).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from unigate.errors import redact
from unigate.stats import queries
from unigate.stats.engine import create_engine, immediate
from unigate.stats.records import RequestRecord
from unigate.stats.rows import POSTGRES_ROWS, REQUEST_COLUMNS, SQLITE_ROWS
from unigate.stats.schema import RequestStat
from unigate.stats.sqlite_append import Blocks, SqliteAppender
from unigate.stats.sqlite_process import ProcessAppender

__all__ = [
    "DEFAULT_DB_PATH",
    "StatsStore",
    "StatsStoreError",
    "database_url",
    "describe_error",
    "is_permanent_error",
    "mask_url",
]

DEFAULT_DB_PATH = "./data/stats.db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
INSERT_CHUNK = 500
"""Records per driver call within a write's transaction (bounds each event-loop stall)."""
_log = logging.getLogger("unigate.stats")
SQLITE_BLOCKS = Blocks(
    last_id="SELECT coalesce(max(id), 0) FROM request_stats",
    insert="INSERT INTO request_stats_blocks (first_id, last_id, min_timestamp, max_timestamp) VALUES (?, ?, ?, ?)",
    stamp=REQUEST_COLUMNS.index("timestamp"),
)
"""SQLite: each write records its block (:class:`~unigate.stats.schema.RequestBlock`)."""

SQLITE_SHARED = tuple(
    REQUEST_COLUMNS.index(name)
    for name in ("endpoint", "client_key", "model", "channel", "upstream_model", "upstream_key")
)
"""SQLite: the text columns that consecutive requests often share, bound once per chunk when all
of its rows do (:class:`~unigate.stats.sqlite_append.SqliteAppender`)."""


class StatsStoreError(Exception):
    """The statistics database cannot be used; the message names it by its masked URL."""


def database_url(env: Mapping[str, str]) -> str | None:
    """The statistics database URL the environment asks for, or ``None`` when disabled.

    - ``DISABLE_DATABASE=true`` (case-insensitive) → ``None``.
    - ``DATABASE_URL`` wins over everything below; ``postgres://`` and ``postgresql://`` become
      ``postgresql+asyncpg://`` (a libpq ``sslmode=`` becomes asyncpg's ``ssl=``), ``sqlite://``
      becomes ``sqlite+aiosqlite://``.
    - ``DB_TYPE=postgres`` → asyncpg URL from ``DB_USER`` (postgres), ``DB_PASSWORD``
      (mysecretpassword), ``DB_HOST`` (localhost), ``DB_PORT`` (5432), ``DB_NAME`` (postgres).
    - otherwise SQLite at ``DB_PATH`` (default ``./data/stats.db``; its directory is created when
      the store opens).

    The result contains the password: hand it to :class:`StatsStore` only, and log
    :func:`mask_url` of it. Raises ``ValueError`` (without the URL) for an unusable setting.
    """
    if env.get("DISABLE_DATABASE", "").strip().lower() == "true":
        return None
    explicit = env.get("DATABASE_URL", "").strip()
    if explicit:
        return _normalise(explicit)
    db_type = env.get("DB_TYPE", "").strip().lower() or "sqlite"
    if db_type in ("postgres", "postgresql"):
        port_text = env.get("DB_PORT", "").strip() or "5432"
        if not port_text.isdigit():
            raise ValueError(f"DB_PORT must be a port number, not {port_text!r}")
        url = URL.create(
            "postgresql+asyncpg",
            username=env.get("DB_USER", "").strip() or "postgres",
            password=env.get("DB_PASSWORD", "mysecretpassword") or None,
            host=env.get("DB_HOST", "").strip() or "localhost",
            port=int(port_text),
            database=env.get("DB_NAME", "").strip() or "postgres",
        )
        return url.render_as_string(hide_password=False)
    if db_type == "sqlite":
        return "sqlite+aiosqlite:///" + (env.get("DB_PATH", "").strip() or DEFAULT_DB_PATH)
    raise ValueError(f"DB_TYPE={db_type!r} is not supported: use sqlite (the default) or postgres")


def _normalise(text: str) -> str:
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError("DATABASE_URL is not a valid database URL") from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.drivername == "postgresql+asyncpg" and "sslmode" in url.query:
        mode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return url.render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def describe_error(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A one-line description of a database error for logs, ``/healthz`` and ``/metrics``: the
    driver's exception class and the first line of its message, without SQL or parameters,
    with ``secrets`` and anything key-shaped masked, at most 300 characters."""
    inner: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        inner = exc.orig
    lines = str(inner).strip().splitlines()
    text = f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__
    return redact(text, tuple(s for s in secrets if s))[:300]


def is_permanent_error(exc: BaseException) -> bool:
    """True when retrying the same write cannot succeed because the data is at fault, not the
    database: constraint and data errors, and errors raised while building the statement (a
    malformed record) before anything reached the database. From the ``sqlite3`` driver used
    directly (``SqliteAppender``): its integrity, data, programming and interface errors; its
    ``OperationalError`` (locked, disk full, I/O) is transient."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, sqlite3.Error):
        return not isinstance(exc, sqlite3.OperationalError)
    if isinstance(exc, DBAPIError):
        return False
    return isinstance(exc, StatementError | TypeError | ValueError | AttributeError | KeyError | IndexError)


class StatsStore:
    """One statistics database.

    Lifecycle: :meth:`open` creates the engine and migrates; every other method opens the store
    first if needed (so a gateway started while the database was down starts recording once it is
    back), raising :class:`StatsStoreError` when it cannot. :meth:`close` disposes the engine.
    Database errors from :meth:`write` and the queries propagate unchanged (SQLAlchemy exceptions);
    use :func:`describe_error` before showing them anywhere.

    ``now`` is the clock for time windows (injected in tests); ``engine_options`` are extra
    arguments for ``create_async_engine``. ``writer_process`` (SQLite files): append rows from a
    writer process of their own (:mod:`~unigate.stats.sqlite_process`, the default) rather than
    on the event loop's thread (:mod:`~unigate.stats.sqlite_append`).
    """

    def __init__(
        self,
        url: str,
        *,
        engine_options: Mapping[str, Any] | None = None,
        now: Callable[[], datetime] | None = None,
        writer_process: bool = True,
    ) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StatsStoreError("the statistics database URL is not valid") from None
        self._url = url
        self._parsed = parsed
        self._engine_options = dict(engine_options or {})
        self._now = now or (lambda: datetime.now(UTC))
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._opening = asyncio.Lock()
        self._insert_text: str | None = None
        self._appender: SqliteAppender | ProcessAppender | None = None
        self._writer_process = writer_process
        self.display_url = mask_url(url)
        self.backend = parsed.get_backend_name()
        self._format = POSTGRES_ROWS if self.backend == "postgresql" else SQLITE_ROWS
        self.row: Callable[[RequestRecord], tuple[Any, ...]] = self._format.row
        """``record`` as this backend's insert parameters (:func:`~unigate.stats.rows.request_row`);
        the format's own bound method, so the writer's call to it is one Python frame."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be shown: the database password, if any."""
        password = self._parsed.password
        return (str(password),) if password else ()

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (``RuntimeError`` before :meth:`open`)."""
        if self._engine is None:
            raise RuntimeError("StatsStore is not open")
        return self._engine

    def writer_process(self) -> dict[str, Any] | None:
        """The SQLite writer process's :meth:`~unigate.stats.sqlite_process.ProcessAppender.info`,
        or None when rows are not written through one (PostgreSQL, in-process, not open yet)."""
        appender = self._appender
        return appender.info() if isinstance(appender, ProcessAppender) else None

    async def open(self) -> None:
        """Create the engine and migrate the schema to head. Idempotent."""
        await self._ready()

    async def _ready(self) -> AsyncEngine:
        if self._engine is not None:
            return self._engine
        async with self._opening:
            if self._engine is not None:
                return self._engine
            if self.backend not in SUPPORTED_BACKENDS:
                raise StatsStoreError(f"{self.display_url}: unsupported database; use SQLite or PostgreSQL")
            database = self._parsed.database
            if self.backend == "sqlite" and database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            from unigate.stats.migrations import migrate  # alembic: only when a database is used

            engine = create_engine(self._url, self._engine_options)
            try:
                await migrate(engine)
            except BaseException as exc:  # cancelled too: never leak the pool
                await engine.dispose()
                if not isinstance(exc, Exception):
                    raise
                message = f"cannot open statistics database {self.display_url}: {describe_error(exc, self.secrets)}"
                raise StatsStoreError(message) from exc
            self._engine, self._writer = engine, immediate(engine)
            if self.backend == "sqlite" and database and database != ":memory:":
                appender = ProcessAppender if self._writer_process else SqliteAppender
                self._appender = appender(
                    database, self._insert_sql(engine.dialect), blocks=SQLITE_BLOCKS, shared=SQLITE_SHARED
                )
            _log.info("statistics database ready: %s", self.display_url)
            return engine

    async def close(self) -> None:
        """Dispose the engine; the store may be opened again later."""
        engine, self._engine, self._writer = self._engine, None, None
        appender, self._appender = self._appender, None
        if appender is not None:
            await appender.close()
        if engine is not None:
            await engine.dispose()

    def _insert_sql(self, dialect: Dialect) -> str:
        """The INSERT of one ``request_stats`` row, compiled once to the driver's own SQL and
        paramstyle, taking :func:`~unigate.stats.rows.request_row` tuples as they are.
        Measured (docs/performance.md): SQLAlchemy's per-row parameter processing cost more than
        the database's own insert — on the request path's CPU, since a gateway worker is one core."""
        if self._insert_text is None:
            insert = pg_insert(RequestStat) if self.backend == "postgresql" else sqlite_insert(RequestStat)
            stmt = insert.values({name: bindparam(name) for name in REQUEST_COLUMNS}).on_conflict_do_nothing()
            compiled = stmt.compile(dialect=dialect)
            if tuple(compiled.positiontup or ()) != REQUEST_COLUMNS:
                raise RuntimeError("the compiled statistics INSERT does not take REQUEST_COLUMNS in order")
            self._insert_text = str(compiled)
        return self._insert_text

    async def write(self, records: Sequence[RequestRecord]) -> None:
        """Insert ``records``: :meth:`write_rows` of their :meth:`row`."""
        await self.write_rows([self.row(r) for r in records])

    async def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows made by :meth:`row` in one transaction: all or nothing. So retrying a
        batch never duplicates rows: on PostgreSQL, where a lost answer to ``COMMIT`` leaves the
        outcome in doubt, rows whose ``request_id`` is already stored are skipped; on SQLite the
        writer process checks a batch whose answer it never got against the newest rows
        (:class:`~unigate.stats.sqlite_process.ProcessAppender`), and the in-process appender's
        commit either returns or rolls back (migration 0003). A
        big batch never holds the event loop for long: PostgreSQL rows go in chunks of
        :data:`INSERT_CHUNK` (asyncpg pipelines them on the loop), SQLite rows through the
        writer process (or :class:`SqliteAppender`). On SQLite the write's block is recorded with it
        (:data:`SQLITE_BLOCKS`)."""
        if not rows:
            return
        engine = await self._ready()
        if self._appender is not None:
            await self._appender.append(rows)
            return
        assert self._writer is not None
        sqlite = self.backend == "sqlite"
        async with self._writer.begin() as conn:
            before = (await conn.exec_driver_sql(SQLITE_BLOCKS.last_id)).scalar_one() if sqlite else 0
            sql = self._insert_sql(engine.dialect)
            for start in range(0, len(rows), INSERT_CHUNK):
                await conn.exec_driver_sql(sql, list(rows[start : start + INSERT_CHUNK]))
            if sqlite:
                last = (await conn.exec_driver_sql(SQLITE_BLOCKS.last_id)).scalar_one()
                await conn.exec_driver_sql(SQLITE_BLOCKS.insert, SQLITE_BLOCKS.of(rows, before, last))

    def _since(self, hours: float) -> datetime:
        if hours <= 0:
            raise ValueError("hours must be positive")
        return self._now() - timedelta(hours=hours)

    async def stats(self, hours: int = 24) -> dict[str, Any]:
        """uni-api's ``/v1/stats`` body over the last ``hours`` (see :func:`queries.stats_summary`)."""
        since = self._since(hours)
        async with (await self._ready()).connect() as conn:
            return await queries.stats_summary(conn, since, hours)

    async def requests(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        model: str | None = None,
        channel: str | None = None,
        client_key: str | None = None,
        status: int | None = None,
        success: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """One page of raw records, newest first (see :func:`queries.request_page`)."""
        async with (await self._ready()).connect() as conn:
            return await queries.request_page(
                conn,
                limit,
                offset,
                model=model,
                channel=channel,
                client_key=client_key,
                status=status,
                success=success,
                since=since,
                until=until,
            )

    async def spend_since(self, client_key: str, since: datetime) -> float:
        """Dollars spent by ``client_key`` at or after ``since``."""
        async with (await self._ready()).connect() as conn:
            return await queries.spend_since(conn, client_key, since)

    async def timeseries(self, hours: int = 24, bucket_minutes: int = 5) -> list[dict[str, Any]]:
        """Dashboard series over the last ``hours`` in ``bucket_minutes`` buckets
        (see :func:`queries.timeseries`)."""
        if bucket_minutes <= 0:
            raise ValueError("bucket_minutes must be positive")
        since = self._since(hours)
        async with (await self._ready()).connect() as conn:
            return await queries.timeseries(conn, since, bucket_minutes * 60)
