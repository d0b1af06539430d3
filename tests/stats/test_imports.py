"""Layering of unigate.stats (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("starlette", "aiohttp", "uvicorn", "unigate.http", "unigate.relay", "unigate.app", "unigate.upstream")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


def test_the_whole_package_stays_below_http() -> None:
    modules = loaded_after(
        "import unigate.stats.store, unigate.stats.writer, unigate.stats.migrations, unigate.stats.queries"
    )
    bad = [m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)]
    assert bad == []


def test_records_cost_no_database_imports() -> None:
    """The request path imports the records; with statistics off it must not load SQLAlchemy."""
    modules = loaded_after("from unigate.stats import AttemptRecord, RequestRecord")
    assert not [m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic", "asyncpg", "aiosqlite")]
