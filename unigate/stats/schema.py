"""The statistics tables (SQLAlchemy 2 declarative), portable between SQLite and PostgreSQL.

- ``request_stats``: one row per client request: every :class:`~unigate.stats.records.RequestRecord`
  field, plus ``upstream_ms`` (the last attempt's latency). ``attempts`` is a JSON array with one
  object per upstream attempt (:meth:`~unigate.stats.records.AttemptRecord.to_row`), or ``NULL``
  for the common case of exactly one attempt that is the row's own (same channel, upstream
  model, key and status, outcome ``ok``; its latency is ``upstream_ms``); uni-api's ``/v1/stats``
  success rates are computed from it.
- ``request_stats_blocks`` (SQLite only): see :class:`RequestBlock`.

Why one row, not a second ``channel_stats`` table with a row per attempt (revision 0001): every
request pays for its statistics row on the request path's CPU, and the second row and its three
indexes were half of that cost (docs/performance.md). The indexes are the ones the queries need:
the unique ``request_id`` on PostgreSQL only (idempotent batch retries: a commit whose answer
was lost is retried; revision 0003), ``timestamp`` (every window) and ``(client_key, timestamp)``
(credits), both also on PostgreSQL only: on SQLite, whose inserts run on the gateway's own core,
the block table finds time windows instead (revision 0004).

Portability rules: strings are ``TEXT`` (no length limits); times are stored in UTC
(:class:`UTCDateTime`: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite) and always read
back timezone-aware; integer keys are ``BIGINT`` on PostgreSQL and ``INTEGER`` (the rowid) on
SQLite. Index names start with ``ug_`` so they never collide with the indexes of uni-api's own
tables of the same names (see the initial migration).

This module is the model the queries use; the DDL itself lives in the alembic migrations, and a
test checks that both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Dialect, Float, Index, Integer, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["VERSION_TABLE", "Base", "RequestBlock", "RequestStat", "UTCDateTime", "metadata"]

VERSION_TABLE = "unigate_alembic_version"
"""Alembic's bookkeeping table; not ``alembic_version`` so a database shared with another
alembic-managed application is never confused."""

BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time stored as UTC. Binds aware or naive (naive = UTC) datetimes; results are
    always aware UTC datetimes, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData()


metadata = Base.metadata


class RequestStat(Base):
    """One client request. See :class:`~unigate.stats.records.RequestRecord` for field meanings."""

    __tablename__ = "request_stats"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(Text, nullable=False)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    client_key: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(Text)
    upstream_model: Mapped[str | None] = mapped_column(Text)
    upstream_key: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[str | None] = mapped_column(Text, server_default="[]")
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    success: Mapped[bool] = mapped_column(Boolean, nullable=False)
    error_class: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    upstream_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, nullable=False)
    cost: Mapped[float] = mapped_column(Float, nullable=False)
    stream: Mapped[bool] = mapped_column(Boolean, nullable=False)
    moderation_ms: Mapped[float | None] = mapped_column(Float)
    content: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # PostgreSQL only: idempotent batch retries there; a SQLite commit is never in doubt
        # (migration 0003 says why)
        Index("ug_request_stats_request_id", "request_id", unique=True).ddl_if(dialect="postgresql"),
        # PostgreSQL only: SQLite finds time windows through request_stats_blocks (migration 0004)
        Index("ug_request_stats_timestamp", "timestamp").ddl_if(dialect="postgresql"),
        Index("ug_request_stats_client_key", "client_key", "timestamp").ddl_if(dialect="postgresql"),
    )


class RequestBlock(Base):
    """SQLite only: one row per write of ``request_stats`` rows — the range of ids it inserted and
    the smallest and largest ``timestamp`` among them. Every row with ``timestamp >= t`` has an
    id at or after ``first_id`` of the first block whose ``max_timestamp >= t``; so a time window
    is a range of the table's own key, without an index entry per row (migration 0004)."""

    __tablename__ = "request_stats_blocks"
    __table_args__ = (Index("ug_request_stats_blocks_max", "max_timestamp"), {"info": {"dialects": ("sqlite",)}})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    first_id: Mapped[int] = mapped_column(Integer, nullable=False)
    last_id: Mapped[int] = mapped_column(Integer, nullable=False)
    min_timestamp: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    max_timestamp: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
