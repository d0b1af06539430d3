"""Alembic environment: online, on the connection :func:`unigate.stats.migrations.migrate` passes in
``config.attributes["connection"]``; offline (``--sql``), on ``sqlalchemy.url`` with literal binds."""

from __future__ import annotations

from alembic import context

from unigate.stats.schema import VERSION_TABLE, metadata

_config = context.config
_connection = _config.attributes.get("connection")

if context.is_offline_mode():
    context.configure(
        url=_config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif _connection is None:
    raise RuntimeError("run unigate's migrations through unigate.stats.migrations.migrate(engine)")
else:
    context.configure(connection=_connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
