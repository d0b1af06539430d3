"""Narrower statistics rows; on SQLite, a block-range table instead of two secondary indexes.

Every request pays for its statistics row on the request path's core, so the row carries only
what cannot be derived (docs/performance.md, sixth session):

- ``attempts`` becomes nullable. ``NULL`` means exactly one attempt, and that attempt is the row's
  own: the same channel, upstream model, key fingerprint and status, with outcome ``ok`` — nearly
  every request. Its latency goes into the new column ``upstream_ms`` (the latency of the last
  attempt on every row that has attempts). Building that attempt's JSON, and the float's ``repr``
  in it, cost ~5 000 instructions a row (callgrind, write path alone).
- ``attempt_count`` and ``total_tokens`` go: no query read the first, the second is
  ``prompt_tokens + completion_tokens``.
- SQLite only: the ``timestamp`` and ``(client_key, timestamp)`` indexes go, and
  ``request_stats_blocks`` takes their place for time windows. Each write adds one block row: the
  range of row ids it inserted and the smallest and largest timestamp among them. Rows with
  ``timestamp >= t`` all lie at or after the first id of the first block whose largest timestamp
  is ``>= t``, so a window is a range of the table's own key (like PostgreSQL's BRIN indexes).
  One block row per 512 requests costs nothing; the two index entries per row cost ~3 400
  instructions (callgrind, write path alone). PostgreSQL keeps its indexes: their upkeep runs on the database server.

Upgrade fills ``upstream_ms`` of the existing rows from their JSON (which stays as it is); on
SQLite it rebuilds the table (``batch_alter_table``: one copy of every row) and groups the
existing rows into blocks of 4 096 ids. Downgrade restores the previous schema: the compact
attempts are written out as JSON again and the two columns are recomputed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BLOCKS = "request_stats_blocks"
_INDEXES = {"ug_request_stats_timestamp": ["timestamp"], "ug_request_stats_client_key": ["client_key", "timestamp"]}
_BLOCK_IDS = 4096

# The one attempt of a compact row, written out as the JSON that AttemptRecord.to_row gives
_EXPAND = {
    "sqlite": "json_array(json_object('channel', channel, 'upstream_model', upstream_model, "
    "'key_fingerprint', upstream_key, 'outcome', 'ok', 'status', status, 'latency_ms', upstream_ms))",
    "postgresql": "json_build_array(json_build_object('channel', channel, 'upstream_model', upstream_model, "
    "'key_fingerprint', upstream_key, 'outcome', 'ok', 'status', status, 'latency_ms', upstream_ms))::text",
}
# upstream_ms of the rows written before: the last attempt's latency
_LAST_LATENCY = {
    "sqlite": "UPDATE request_stats SET upstream_ms = json_extract(attempts, '$[#-1].latency_ms') "
    "WHERE json_array_length(attempts) > 0",
    "postgresql": "UPDATE request_stats SET upstream_ms = (attempts::jsonb -> -1 ->> 'latency_ms')::double precision "
    "WHERE jsonb_array_length(attempts::jsonb) > 0",
}
_COUNT = {
    "sqlite": "json_array_length(attempts)",
    "postgresql": "jsonb_array_length(attempts::jsonb)",
}


def _dialect() -> str:
    return str(op.get_context().dialect.name)


def upgrade() -> None:
    if _dialect() == "sqlite":
        for name in _INDEXES:
            op.drop_index(name, table_name="request_stats")
        _narrow("always")
        op.create_table(
            _BLOCKS,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("first_id", sa.Integer(), nullable=False),
            sa.Column("last_id", sa.Integer(), nullable=False),
            sa.Column("min_timestamp", sa.DateTime(timezone=True), nullable=False),
            sa.Column("max_timestamp", sa.DateTime(timezone=True), nullable=False),
        )
        op.execute(_LAST_LATENCY["sqlite"])
        op.create_index("ug_request_stats_blocks_max", _BLOCKS, ["max_timestamp"])
        op.execute(
            f"INSERT INTO {_BLOCKS} (first_id, last_id, min_timestamp, max_timestamp) "
            "SELECT min(id), max(id), min(timestamp), max(timestamp) FROM request_stats "
            f"GROUP BY id / {_BLOCK_IDS} ORDER BY 1"
        )
    else:
        _narrow("auto")
        op.execute(_LAST_LATENCY["postgresql"])


def _narrow(recreate: Literal["auto", "always"]) -> None:
    """The column changes: plain ALTERs on PostgreSQL, a copy of the table on SQLite."""
    with op.batch_alter_table("request_stats", recreate=recreate) as batch:
        batch.add_column(sa.Column("upstream_ms", sa.Float()))
        batch.alter_column("attempts", existing_type=sa.Text(), nullable=True, existing_server_default="[]")
        batch.drop_column("attempt_count")
        batch.drop_column("total_tokens")


def downgrade() -> None:
    dialect = _dialect()
    op.add_column("request_stats", sa.Column("attempt_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("request_stats", sa.Column("total_tokens", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(f"UPDATE request_stats SET attempts = {_EXPAND[dialect]} WHERE attempts IS NULL")
    op.execute(
        f"UPDATE request_stats SET attempt_count = {_COUNT[dialect]}, total_tokens = prompt_tokens + completion_tokens"
    )
    if dialect == "sqlite":
        op.drop_index("ug_request_stats_blocks_max", table_name=_BLOCKS)
        op.drop_table(_BLOCKS)
        _widen("always")
        for name, columns in _INDEXES.items():
            op.create_index(name, "request_stats", columns)
    else:
        _widen("auto")


def _widen(recreate: Literal["auto", "always"]) -> None:
    with op.batch_alter_table("request_stats", recreate=recreate) as batch:
        batch.drop_column("upstream_ms")
        batch.alter_column("attempts", existing_type=sa.Text(), nullable=False, existing_server_default="[]")
        batch.alter_column("attempt_count", existing_type=sa.Integer(), server_default=None)
        batch.alter_column("total_tokens", existing_type=sa.BigInteger(), server_default=None)
