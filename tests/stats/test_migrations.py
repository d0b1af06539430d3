"""Alembic migrations from an empty database, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.stats.builders import record
from tests.stats.conftest import DbTarget, PgSchema, StoreFactory, sqlite_url
from unigate.stats.engine import create_engine
from unigate.stats.migrations import alembic_config, migrate
from unigate.stats.schema import VERSION_TABLE, metadata
from unigate.stats.store import StatsStore

pytestmark = pytest.mark.anyio


def _tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    return type_ != "table" or name in metadata.tables


def _diff(conn: Connection) -> list[Any]:
    """What autogenerate would change to make the database match schema.py (our tables only;
    an index declared for another dialect with ``ddl_if``, which alembic ignores, is skipped, and
    so is a table whose ``info["dialects"]`` leaves this one out)."""

    def meant_here(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        model = obj if not reflected else compare_to
        ddl_if = getattr(model, "_ddl_if", None)
        if ddl_if is not None and ddl_if.dialect not in (None, conn.dialect.name):
            return False
        table = model if type_ == "table" else getattr(model, "table", None)
        dialects = table.info.get("dialects") if table is not None else None
        return dialects is None or conn.dialect.name in dialects

    opts = {"version_table": VERSION_TABLE, "compare_type": True, "include_name": _ours, "include_object": meant_here}
    context = MigrationContext.configure(conn, opts=opts)
    return list(compare_metadata(context, metadata))


def _move_to(conn: Connection, target: str, down: bool = False) -> None:
    """Upgrade (or downgrade) the database behind ``conn`` to revision ``target``."""
    config = alembic_config()
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, target)


def test_one_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == ["0004"]


async def _check_fresh_migration(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()
    await migrate(engine)
    await migrate(engine)  # idempotent
    async with engine.connect() as conn:
        blocks = {"request_stats_blocks"} if conn.dialect.name == "sqlite" else set()
        assert await conn.run_sync(_tables) == {"request_stats", VERSION_TABLE, *blocks}
        assert await conn.run_sync(_revision) == "0004"
        assert await conn.run_sync(_diff) == [], "the migrations and schema.py disagree"


async def test_migrate_empty_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()  # an existing, zero-byte file
    engine = create_engine(sqlite_url(path))
    try:
        await _check_fresh_migration(engine)
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        await engine.dispose()


async def test_migrate_empty_postgres_schema(pg_schema: PgSchema) -> None:
    engine = create_engine(pg_schema.url(), pg_schema.engine_options)
    try:
        await _check_fresh_migration(engine)
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT current_schema()")).scalar() == pg_schema.name
    finally:
        await engine.dispose()


async def test_store_open_creates_the_data_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "stats.db"
    store = StatsStore(sqlite_url(path))
    await store.open()
    await store.close()
    assert path.exists()


async def test_concurrent_migrations_from_several_processes(make_store: StoreFactory) -> None:
    """Gateway workers starting together must not race each other's CREATE TABLE."""
    stores = [make_store() for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        async with stores[0].engine.connect() as conn:
            assert await conn.run_sync(_revision) == "0004"
    finally:
        for s in stores:
            await s.close()


_LEGACY = """
CREATE TABLE request_stats (id INTEGER PRIMARY KEY, request_id TEXT, endpoint TEXT, client_ip TEXT,
  process_time FLOAT, first_response_time FLOAT, provider TEXT, model TEXT, api_key TEXT,
  is_flagged BOOLEAN, text TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
  total_tokens INTEGER, timestamp TIMESTAMP);
CREATE INDEX ix_request_stats_timestamp ON request_stats (timestamp);
CREATE INDEX ix_request_stats_model ON request_stats (model);
CREATE TABLE channel_stats (id INTEGER PRIMARY KEY, request_id TEXT, provider TEXT, model TEXT,
  api_key TEXT, success BOOLEAN, timestamp TIMESTAMP);
CREATE INDEX ix_channel_stats_timestamp ON channel_stats (timestamp);
INSERT INTO request_stats (request_id, endpoint, model, api_key) VALUES ('old-1', 'POST /v1/chat/completions',
  'gpt-4o', 'sk-legacy');
INSERT INTO channel_stats (request_id, provider, model, success) VALUES ('old-1', 'openai', 'gpt-4o', true);
"""


async def test_uni_api_tables_are_kept_aside(make_store: StoreFactory, db_target: DbTarget, backend: str) -> None:
    """A database uni-api wrote to (same default path and DB_* variables) keeps its history."""
    legacy = _LEGACY.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY") if backend == "postgres" else _LEGACY
    engine = create_engine(db_target.url, db_target.engine_options)
    try:
        async with engine.begin() as conn:
            for statement in filter(str.strip, legacy.split(";")):
                await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()
    store = make_store()
    await store.open()
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(_tables)
            assert {"uni_api_request_stats", "uni_api_channel_stats", "request_stats"} <= tables
            old = (await conn.exec_driver_sql("SELECT request_id, api_key FROM uni_api_request_stats")).all()
            assert [tuple(r) for r in old] == [("old-1", "sk-legacy")]
            assert (await conn.exec_driver_sql("SELECT count(*) FROM uni_api_channel_stats")).scalar() == 1
            assert await conn.run_sync(_diff) == []
        await store.write([record("new-1")])
        assert [r["request_id"] for r in await store.requests()] == ["new-1"]
    finally:
        await store.close()


def test_offline_sql_generation() -> None:
    """``alembic upgrade --sql`` equivalent, for operators who apply DDL by hand."""
    out = io.StringIO()
    config = alembic_config()
    config.output_buffer = out
    config.set_main_option("sqlalchemy.url", "postgresql://")
    command.upgrade(config, "head", sql=True)
    sql = out.getvalue()
    assert "CREATE TABLE request_stats" in sql
    assert "ALTER TABLE request_stats ADD COLUMN attempts" in sql and "DROP TABLE channel_stats" in sql
    assert "CREATE UNIQUE INDEX ug_request_stats_request_id" in sql
    assert "unigate_alembic_version" in sql


async def test_0002_moves_attempts_into_the_request_row_and_back(db_target: DbTarget) -> None:
    """A database written by revision 0001 (two tables) keeps every attempt through the upgrade,
    and a downgrade rebuilds ``channel_stats`` from the JSON."""
    engine = create_engine(db_target.url, db_target.engine_options)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(_move_to, "0001")
            stamp = "'2026-01-02 03:04:05.000000'"
            await conn.exec_driver_sql(
                "INSERT INTO request_stats (request_id, timestamp, endpoint, model, attempt_count, status, success,"
                " latency_ms, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, total_tokens,"
                f" tokens_estimated, cost, stream) VALUES ('r1', {stamp}, '/v1/chat/completions', 'm', 2, 200,"
                " true, 5, 1, 1, 0, 0, 2, false, 0, false), ('r2', {stamp}, '/v1/chat/completions', 'm', 0, 401,"
                " false, 1, 0, 0, 0, 0, 0, false, 0, false)".replace("{stamp}", stamp)
            )
            await conn.exec_driver_sql(
                "INSERT INTO channel_stats (request_id, attempt, timestamp, channel, model, upstream_model,"
                f" key_fingerprint, success, status, outcome, latency_ms) VALUES ('r1', 1, {stamp}, 'b', 'm', 'mb',"
                f" NULL, true, 200, 'ok', 2.5), ('r1', 0, {stamp}, 'a', 'm', 'ma', 'key-1', false, 500,"
                " 'UpstreamServerError', 1.5)"
            )
            await conn.run_sync(_move_to, "head")
            rows = dict((await conn.exec_driver_sql("SELECT request_id, attempts FROM request_stats")).all())
            assert {k: json.loads(v) for k, v in rows.items()} == {
                "r1": [
                    {
                        "channel": "a",
                        "upstream_model": "ma",
                        "key_fingerprint": "key-1",
                        "outcome": "UpstreamServerError",
                        "status": 500,
                        "latency_ms": 1.5,
                    },
                    {
                        "channel": "b",
                        "upstream_model": "mb",
                        "key_fingerprint": None,
                        "outcome": "ok",
                        "status": 200,
                        "latency_ms": 2.5,
                    },
                ],
                "r2": [],
            }
            assert "channel_stats" not in await conn.run_sync(_tables)
            await conn.run_sync(_move_to, "0001", True)
            back = await conn.exec_driver_sql(
                "SELECT request_id, attempt, channel, success, outcome FROM channel_stats ORDER BY attempt"
            )
            assert [tuple(r) for r in back] == [
                ("r1", 0, "a", False, "UpstreamServerError"),
                ("r1", 1, "b", True, "ok"),
            ]
    finally:
        await engine.dispose()


def _request_stats_indexes(conn: Connection) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(conn).get_indexes("request_stats")}


async def test_0003_keeps_the_unique_request_id_index_on_postgresql_only(db_target: DbTarget) -> None:
    """SQLite drops it on upgrade and gets it back on downgrade; PostgreSQL keeps it throughout."""
    engine = create_engine(db_target.url, db_target.engine_options)
    postgres = engine.dialect.name == "postgresql"

    try:
        async with engine.begin() as conn:
            await conn.run_sync(_move_to, "0002")
            assert "ug_request_stats_request_id" in await conn.run_sync(_request_stats_indexes)
            await conn.run_sync(_move_to, "0003")
            after = await conn.run_sync(_request_stats_indexes)
            assert ("ug_request_stats_request_id" in after) is postgres
            assert {"ug_request_stats_timestamp", "ug_request_stats_client_key"} <= after
            await conn.run_sync(_move_to, "0002", True)
            assert "ug_request_stats_request_id" in await conn.run_sync(_request_stats_indexes)
    finally:
        await engine.dispose()


async def test_0004_narrows_the_rows_and_back(db_target: DbTarget) -> None:
    """Rows written by revision 0003 read back the same after the upgrade (their JSON kept, their
    last latency copied into ``upstream_ms``); on SQLite the two time indexes give way to blocks
    that cover every old row. A row written compactly afterwards (``attempts`` NULL) gets its
    JSON written out again by a downgrade, with ``attempt_count`` and ``total_tokens`` recomputed."""
    engine = create_engine(db_target.url, db_target.engine_options)
    sqlite = engine.dialect.name == "sqlite"
    one = '[{"channel":"c","upstream_model":"um","key_fingerprint":"k","outcome":"ok","status":200,"latency_ms":2.5}]'
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_move_to, "0003")
            for request_id, stamp, attempts, count in (
                ("old-1", "2026-01-02 03:04:05.000000", one, 1),
                ("old-2", "2026-01-02 03:05:05.000000", "[]", 0),
            ):
                await conn.exec_driver_sql(
                    "INSERT INTO request_stats (request_id, timestamp, endpoint, model, channel, upstream_model,"
                    " upstream_key, attempt_count, attempts, status, success, latency_ms, prompt_tokens,"
                    " completion_tokens, cached_tokens, reasoning_tokens, total_tokens, tokens_estimated, cost,"
                    f" stream) VALUES ('{request_id}', '{stamp}', 'POST /v1/chat/completions', 'm', 'c', 'um', 'k',"
                    f" {count}, '{attempts}', 200, true, 3, 4, 5, 0, 0, 9, false, 0.5, false)"
                )
            await conn.run_sync(_move_to, "0004")
            after = (
                await conn.exec_driver_sql("SELECT request_id, attempts, upstream_ms FROM request_stats ORDER BY id")
            ).all()
            assert [tuple(r) for r in after] == [("old-1", one, 2.5), ("old-2", "[]", None)]
            indexes = await conn.run_sync(_request_stats_indexes)
            assert ({"ug_request_stats_timestamp", "ug_request_stats_client_key"} <= indexes) is not sqlite
            if sqlite:
                blocks = (
                    await conn.exec_driver_sql(
                        "SELECT first_id, last_id, min_timestamp, max_timestamp FROM request_stats_blocks"
                    )
                ).all()
                ids = [r[0] for r in (await conn.exec_driver_sql("SELECT id FROM request_stats ORDER BY id")).all()]
                assert [tuple(b) for b in blocks] == [
                    (ids[0], ids[1], "2026-01-02 03:04:05.000000", "2026-01-02 03:05:05.000000")
                ]
            await conn.exec_driver_sql(
                "INSERT INTO request_stats (request_id, timestamp, endpoint, model, channel, upstream_model,"
                " upstream_key, attempts, status, success, latency_ms, upstream_ms, prompt_tokens,"
                " completion_tokens, cached_tokens, reasoning_tokens, tokens_estimated, cost, stream)"
                " VALUES ('new-1', '2026-01-02 03:06:05.000000', 'POST /v1/chat/completions', 'm', 'c', 'um', 'k',"
                " NULL, 200, true, 3, 2.5, 4, 5, 0, 0, false, 0.5, false)"
            )
            await conn.run_sync(_move_to, "0003", True)
            back = (
                await conn.exec_driver_sql(
                    "SELECT request_id, attempts, attempt_count, total_tokens FROM request_stats ORDER BY id"
                )
            ).all()
            assert [(r[0], json.loads(r[1]), r[2], r[3]) for r in back] == [
                ("old-1", json.loads(one), 1, 9),
                ("old-2", [], 0, 9),
                ("new-1", json.loads(one), 1, 9),
            ]
            assert {"ug_request_stats_timestamp", "ug_request_stats_client_key"} <= await conn.run_sync(
                _request_stats_indexes
            )
            assert "request_stats_blocks" not in await conn.run_sync(_tables)
    finally:
        await engine.dispose()
