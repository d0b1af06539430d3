"""One row per request: attempts move into ``request_stats.attempts`` (JSON); ``channel_stats`` goes.

Every request pays for its statistics on the request path's CPU; the second row per request and
its three indexes were half of that cost (docs/performance.md), and the ``(model, timestamp)``
and ``(channel, timestamp)`` indexes served no query that the ``timestamp`` index does not.

Upgrade: add ``attempts`` (default ``[]``), copy every request's ``channel_stats`` rows into it
(in ``attempt`` order, as :meth:`~unigate.stats.records.AttemptRecord.to_row` objects), drop
``channel_stats`` and the two indexes. Downgrade rebuilds ``channel_stats`` from the JSON.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COPY_BATCH = 1000


def upgrade() -> None:
    op.add_column("request_stats", sa.Column("attempts", sa.Text(), nullable=False, server_default="[]"))
    if not context.is_offline_mode():
        _copy_attempts_in()
    op.drop_index("ug_channel_stats_request_id", table_name="channel_stats")
    op.drop_index("ug_channel_stats_timestamp", table_name="channel_stats")
    op.drop_index("ug_channel_stats_channel", table_name="channel_stats")
    op.drop_table("channel_stats")
    op.drop_index("ug_request_stats_model", table_name="request_stats")
    op.drop_index("ug_request_stats_channel", table_name="request_stats")


def _copy_attempts_in() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT request_id, channel, upstream_model, key_fingerprint, outcome, status, latency_ms "
            "FROM channel_stats ORDER BY request_id, attempt"
        )
    )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for request_id, channel, upstream_model, fingerprint, outcome, status, latency in rows:
        grouped.setdefault(request_id, []).append(
            {
                "channel": channel,
                "upstream_model": upstream_model,
                "key_fingerprint": fingerprint,
                "outcome": outcome,
                "status": int(status),
                "latency_ms": float(latency),
            }
        )
    update = sa.text("UPDATE request_stats SET attempts = :attempts WHERE request_id = :request_id")
    items = [{"request_id": k, "attempts": json.dumps(v)} for k, v in grouped.items()]
    for start in range(0, len(items), _COPY_BATCH):
        bind.execute(update, items[start : start + _COPY_BATCH])


def downgrade() -> None:
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
    if not context.is_offline_mode():
        _copy_attempts_out()
    with op.batch_alter_table("request_stats") as batch:
        batch.drop_column("attempts")


def _copy_attempts_out() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT request_id, timestamp, model, attempts FROM request_stats"))
    insert = sa.text(
        "INSERT INTO channel_stats (request_id, attempt, timestamp, channel, model, upstream_model, "
        "key_fingerprint, success, status, outcome, latency_ms) VALUES (:request_id, :attempt, :timestamp, "
        ":channel, :model, :upstream_model, :key_fingerprint, :success, :status, :outcome, :latency_ms)"
    )
    out: list[dict[str, Any]] = []
    for request_id, timestamp, model, attempts in rows:
        for index, a in enumerate(json.loads(attempts or "[]")):
            out.append(
                {
                    "request_id": request_id,
                    "attempt": index,
                    "timestamp": timestamp,
                    "model": model,
                    "success": a["outcome"] == "ok",
                    **{k: a[k] for k in ("channel", "upstream_model", "key_fingerprint", "outcome", "status")},
                    "latency_ms": a["latency_ms"],
                }
            )
    for start in range(0, len(out), _COPY_BATCH):
        bind.execute(insert, out[start : start + _COPY_BATCH])
