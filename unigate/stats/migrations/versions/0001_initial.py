"""Initial statistics tables: request_stats and channel_stats.

A database that already holds uni-api's own ``request_stats`` / ``channel_stats`` (same default
``./data/stats.db``, same ``DB_*`` variables) keeps that history: those tables are renamed to
``uni_api_request_stats`` / ``uni_api_channel_stats`` (with a warning; they may hold plaintext
client keys, as uni-api stored them) and ours are created beside them.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_log = logging.getLogger("unigate.stats")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# a column only our tables have, per table: its absence marks a uni-api table
_OWN_COLUMN = {"request_stats": "attempt_count", "channel_stats": "attempt"}


def _set_aside_uni_api_tables() -> None:
    if context.is_offline_mode():  # generating SQL: there is no database to look at
        return
    inspector = sa.inspect(op.get_bind())
    for table, own_column in _OWN_COLUMN.items():
        if not inspector.has_table(table):
            continue
        columns = {c["name"] for c in inspector.get_columns(table)}
        if own_column in columns:
            raise RuntimeError(f"table {table} exists but is not recorded as migrated; refusing to guess")
        _log.warning("found uni-api's %s table: renaming it to uni_api_%s (its rows are kept there)", table, table)
        op.rename_table(table, f"uni_api_{table}")


def upgrade() -> None:
    _set_aside_uni_api_tables()
    op.create_table(
        "request_stats",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("client_key", sa.Text()),
        sa.Column("model", sa.Text()),
        sa.Column("channel", sa.Text()),
        sa.Column("upstream_model", sa.Text()),
        sa.Column("upstream_key", sa.Text()),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_class", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("moderation_ms", sa.Float()),
        sa.Column("content", sa.Text()),
    )
    op.create_index("ug_request_stats_request_id", "request_stats", ["request_id"], unique=True)
    op.create_index("ug_request_stats_timestamp", "request_stats", ["timestamp"])
    op.create_index("ug_request_stats_client_key", "request_stats", ["client_key", "timestamp"])
    op.create_index("ug_request_stats_model", "request_stats", ["model", "timestamp"])
    op.create_index("ug_request_stats_channel", "request_stats", ["channel", "timestamp"])

    op.create_table(
        "channel_stats",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("model", sa.Text()),
        sa.Column("upstream_model", sa.Text(), nullable=False),
        sa.Column("key_fingerprint", sa.Text()),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
    )
    op.create_index("ug_channel_stats_request_id", "channel_stats", ["request_id", "attempt"], unique=True)
    op.create_index("ug_channel_stats_timestamp", "channel_stats", ["timestamp"])
    op.create_index("ug_channel_stats_channel", "channel_stats", ["channel", "timestamp"])


def downgrade() -> None:
    op.drop_table("channel_stats")
    op.drop_table("request_stats")
