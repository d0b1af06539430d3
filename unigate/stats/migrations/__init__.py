"""The alembic environment of the statistics tables, run programmatically (no ``alembic.ini``).

- :func:`migrate` upgrades a database to the newest revision. It is idempotent and safe when
  several gateway processes start at once: on PostgreSQL it holds a transaction-scoped advisory
  lock, on SQLite the whole upgrade runs in one ``BEGIN IMMEDIATE`` transaction.
- Alembic's bookkeeping lives in ``unigate_alembic_version`` (not ``alembic_version``).
- A new revision is written with ``alembic.command.revision(alembic_config(), message=…,
  rev_id="0002")`` and edited by hand; keep :mod:`unigate.stats.schema` in step (a test compares
  the migrated database with the model).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from unigate.stats.engine import immediate

__all__ = ["SCRIPT_LOCATION", "alembic_config", "migrate"]

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
_PG_LOCK_KEY = 0x756E6967617465  # "unigate": one advisory lock for all unigate migrations


def alembic_config() -> Config:
    """An alembic :class:`Config` pointing at this package; no file is read."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the database behind ``engine`` to the newest revision (a no-op when it is there)."""
    async with immediate(engine).begin() as conn:
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
