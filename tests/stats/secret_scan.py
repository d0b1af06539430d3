"""Scan a statistics database for secrets: every row of every table, as text.

``assert_no_secret(store, secrets)`` fails when any given string — or any 8-character substring of
one — appears in any cell of any table of the store's database (its current schema), including
tables unigate did not create. Used by the statistics tests and by end-to-end tests that push real
keys through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from unigate.stats.store import StatsStore

__all__ = ["assert_no_secret", "dump_tables", "needles"]

WINDOW = 8


def needles(secrets: Iterable[str]) -> set[str]:
    """Each secret shorter than 8 characters itself, else all its 8-character substrings."""
    found: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        if len(secret) <= WINDOW:
            found.add(secret)
        else:
            found.update(secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1))
    return found


async def dump_tables(store: StatsStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the store's database (current schema), by table name."""

    def names(conn: Connection) -> list[str]:
        return list(inspect(conn).get_table_names())

    dump: dict[str, list[tuple[Any, ...]]] = {}
    async with store.engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for name in await conn.run_sync(names):
            result = await conn.execute(text(f"SELECT * FROM {quote(name)}"))
            dump[name] = [tuple(row) for row in result]
    return dump


async def assert_no_secret(store: StatsStore, secrets: Iterable[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Fail if a secret (or 8 characters of one) is stored anywhere; returns the dump scanned."""
    targets = needles(secrets)
    dump = await dump_tables(store)
    for table, rows in dump.items():
        for row in rows:
            for cell in row:
                if cell is None:
                    continue
                value = cell.decode("utf-8", "replace") if isinstance(cell, bytes) else str(cell)
                for needle in targets:
                    assert needle not in value, f"secret material {needle[:2]}… found in table {table}"
    return dump
