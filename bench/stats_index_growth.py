"""Insert time per statistics row as the table grows, with random and with time-ordered request ids.

The gateway's own schema (its migrations) and row builder; rows go in 900-row transactions like
a busy writer's, after the table was prefilled with N rows of the same kind:

    .venv/bin/python bench/stats_index_growth.py            # N = 0, 300 000 and 1 000 000; ~2 min

Each insert also lands in the unique ``request_id`` index: a random id dirties a random page of
it, a time-ordered one the right-most page (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stats_write_cost import record  # bench/ is on the path when run as a script

from unigate.stats.rows import REQUEST_COLUMNS, SQLITE_ROWS, request_row, sqlite_stamp
from unigate.stats.store import StatsStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def template() -> tuple[object, ...]:
    """The row of one realistic request (``bench/stats_write_cost.py``'s), made by the gateway's own builder."""
    return request_row(record("x", START), SQLITE_ROWS)


def rows(first: int, n: int, ordered: bool, base: tuple[object, ...]) -> list[tuple[object, ...]]:
    out = []
    for i in range(first, first + n):
        rid = f"{i:012x}{os.urandom(6).hex()}" if ordered else os.urandom(12).hex()
        stamp = sqlite_stamp(START + timedelta(milliseconds=i))
        out.append((rid, stamp, base[2], f"team-{i % 20}", *base[4:]))
    return out


async def measure(prefill: int, ordered: bool) -> float:
    directory = tempfile.mkdtemp()
    store = StatsStore(f"sqlite+aiosqlite:///{directory}/stats.db")
    await store.open()
    await store.close()
    base = template()
    insert = f"INSERT INTO request_stats ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(base))})"
    conn = sqlite3.connect(f"{directory}/stats.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for start in range(0, prefill, 10_000):
        conn.execute("BEGIN")
        conn.executemany(insert, rows(start, 10_000, ordered, base))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = []
    for k in range(8):
        batch = rows(prefill + k * 900, 900, ordered, base)
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
        times.append((time.perf_counter() - began) / len(batch))
    conn.close()
    return statistics.mean(times) * 1e6


def main() -> None:
    print("| rows already in the table | random ids: µs per row | time-ordered ids: µs per row |")
    print("|---:|---:|---:|")
    for prefill in (0, 300_000, 1_000_000):
        random_ids = asyncio.run(measure(prefill, ordered=False))
        ordered_ids = asyncio.run(measure(prefill, ordered=True))
        print(f"| {prefill:,} | {random_ids:.1f} | {ordered_ids:.1f} |", flush=True)


if __name__ == "__main__":
    main()
