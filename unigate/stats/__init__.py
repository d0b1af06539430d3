"""Usage statistics: request records, their store (SQLite by default, PostgreSQL), and the
batched background writer that keeps the database off the request path.

Typical wiring (the application's lifespan)::

    url = database_url(os.environ)            # None: statistics disabled
    store = StatsStore(url)
    try:
        await store.open()                    # creates/migrates; may fail while the DB is down
    except StatsStoreError as exc:
        log.warning("%s", exc)                # the writer keeps retrying; requests never wait
    writer = StatsWriter(store)
    writer.start()
    ...  writer.submit(record)  ...           # request path: sync, never blocks, never raises
    await writer.stop(timeout=10)             # shutdown: flush what is queued
    await store.close()

This package imports no HTTP framework and nothing above ``unigate.config`` / ``unigate.errors``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from unigate.stats.records import AttemptRecord, RequestRecord

if TYPE_CHECKING:
    from unigate.stats.migrations import migrate
    from unigate.stats.store import (
        StatsStore,
        StatsStoreError,
        database_url,
        describe_error,
        is_permanent_error,
        mask_url,
    )
    from unigate.stats.writer import RecordSink, StatsWriter

__all__ = [
    "AttemptRecord",
    "RecordSink",
    "RequestRecord",
    "StatsStore",
    "StatsStoreError",
    "StatsWriter",
    "database_url",
    "describe_error",
    "is_permanent_error",
    "mask_url",
    "migrate",
]

# SQLAlchemy and alembic are imported on first use of these names, so the request path (which
# needs only the records) and a gateway with statistics disabled never pay for them.
_STORE_NAMES = ("StatsStore", "StatsStoreError", "database_url", "describe_error", "is_permanent_error", "mask_url")
_LAZY = {
    "migrate": "unigate.stats.migrations",
    "RecordSink": "unigate.stats.writer",
    "StatsWriter": "unigate.stats.writer",
    **dict.fromkeys(_STORE_NAMES, "unigate.stats.store"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
