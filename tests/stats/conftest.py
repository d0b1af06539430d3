"""Fixtures for the statistics tests: a real SQLite file and the real PostgreSQL server.

PostgreSQL is found at ``UNIGATE_TEST_POSTGRES_URL`` (default: user ``postgres``, then ``root``,
at 127.0.0.1:5432, database ``test``, trust auth). When it is unreachable its tests are skipped
with the reason, except under ``CI=true``, where they fail. Every PostgreSQL test works in a schema
of its own (``unigate_test_<random>``, selected through ``search_path``) that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from unigate.stats.store import StatsStore

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_CANDIDATES = (
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "postgresql+asyncpg://root@127.0.0.1:5432/test",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _execute(url: str, sql: str) -> None:
    engine = create_async_engine(url, connect_args={"timeout": 3}, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """A working asyncpg URL for the test server, or skip (fail under CI=true)."""
    configured = os.environ.get("UNIGATE_TEST_POSTGRES_URL")
    problems = []
    for url in (configured,) if configured else _CANDIDATES:
        try:
            asyncio.run(_execute(url, "SELECT 1"))
        except Exception as exc:
            problems.append(f"{make_url(url).render_as_string(hide_password=True)}: {type(exc).__name__}: {exc}")
            continue
        return url
    reason = "PostgreSQL is not reachable: " + "; ".join(problems)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@dataclass
class PgSchema:
    """A fresh, empty schema on the test server, selected through ``search_path``."""

    base_url: str
    name: str
    engine_options: dict[str, Any] = field(default_factory=dict)

    def url(self, *, host: str = "127.0.0.1", port: int = 5432, password: str | None = None) -> str:
        u = make_url(self.base_url).set(host=host, port=port)
        if password is not None:
            u = u.set(password=password)
        return u.render_as_string(hide_password=False)


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[PgSchema]:
    name = f"unigate_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(pg_base_url, f'CREATE SCHEMA "{name}"'))
    options = {"connect_args": {"server_settings": {"search_path": name}}}
    try:
        yield PgSchema(pg_base_url, name, options)
    finally:
        asyncio.run(_execute(pg_base_url, f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "stats.db"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


StoreFactory = Callable[..., StatsStore]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass(frozen=True)
class DbTarget:
    """The database a test's stores use: URL and engine options."""

    url: str
    engine_options: dict[str, Any]


@pytest.fixture
def db_target(request: pytest.FixtureRequest, backend: str, sqlite_path: Path) -> DbTarget:
    if backend == "postgres":
        schema: PgSchema = request.getfixturevalue("pg_schema")
        return DbTarget(schema.url(), schema.engine_options)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return DbTarget(sqlite_url(sqlite_path), {})


@pytest.fixture
def make_store(db_target: DbTarget) -> StoreFactory:
    """Builds stores on the parametrised backend (the same database for every call in a test)."""

    def factory(**kwargs: Any) -> StatsStore:
        kwargs.setdefault("engine_options", db_target.engine_options)
        return StatsStore(db_target.url, **kwargs)

    return factory


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[StatsStore]:
    """An open store on the parametrised backend whose clock says :data:`NOW`."""
    s = make_store(now=lambda: NOW)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
