"""SQLite: drop the unique ``request_id`` index; PostgreSQL keeps it.

The index exists so that a retried batch never duplicates rows: a PostgreSQL commit can fail
after the server has applied it (the connection drops while the ``COMMIT`` is in flight), and
the writer cannot tell, so it retries and the index skips the rows already there. A SQLite
commit runs in the gateway's own process (``SqliteAppender``): it either returns or raises with
the transaction rolled back, so a batch is retried only when none of it was stored. There the
index only costs: ~1 µs and ~440 WAL bytes per row on the request path's core
(docs/performance.md), and no query reads it.

Downgrade recreates it (it fails if the table holds duplicate ids, which only a bug could make).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEX = "ug_request_stats_request_id"


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.drop_index(_INDEX, table_name="request_stats")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.create_index(_INDEX, "request_stats", ["request_id"], unique=True)
