"""Read side of the statistics store: aggregations over ``request_stats``.

Every function takes an open :class:`AsyncConnection` and explicit time bounds (the store supplies
"now"), and returns plain JSON-ready values (``int``/``float``/``str``/``None``; times as ISO 8601
UTC strings). Only SQLite and PostgreSQL are supported (time bucketing and the expansion of the
``attempts`` JSON column into one row per attempt are compiled per dialect).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from unigate.stats.rows import record_from_row
from unigate.stats.schema import RequestBlock, RequestStat

__all__ = ["MAX_PAGE", "request_page", "spend_since", "stats_summary", "timeseries"]

MAX_PAGE = 1000
RS = RequestStat
RB = RequestBlock


def _window(conn: AsyncConnection, since: datetime | None, until: datetime | None = None) -> list[ColumnElement[bool]]:
    """Conditions for ``since <= timestamp < until`` (either may be None). PostgreSQL finds them
    through its ``timestamp`` index; SQLite keeps no such index (migration 0004) and bounds the
    table's own key instead, from ``request_stats_blocks``: every row at or after ``since`` has
    an id at or after the first id of a block whose newest timestamp is at or after ``since``
    (and symmetrically for ``until``). An empty window compares with NULL and selects nothing."""
    sqlite = conn.dialect.name == "sqlite"
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(RS.timestamp >= since)
        if sqlite:
            first = select(func.min(RB.first_id)).where(RB.max_timestamp >= since).scalar_subquery()
            conditions.append(RS.id >= first)
    if until is not None:
        conditions.append(RS.timestamp < until)
        if sqlite:
            last = select(func.max(RB.last_id)).where(RB.min_timestamp < until).scalar_subquery()
            conditions.append(RS.id <= last)
    return conditions


def _attempt_rows(conn: AsyncConnection, since: datetime) -> Subquery:
    """One row per upstream attempt of the requests at or after ``since``, as columns
    ``timestamp``, ``model`` (the request's), ``channel`` and ``ok`` (the attempt succeeded):
    the rows whose ``attempts`` is NULL stand for their own one successful attempt; the others'
    JSON arrays are expanded (compiled per backend)."""
    window = _window(conn, since)
    own = select(RS.timestamp, RS.model, RS.channel, literal(True).label("ok")).where(RS.attempts.is_(None), *window)
    if conn.dialect.name == "postgresql":
        each = func.jsonb_array_elements(cast(RS.attempts, JSONB)).table_valued("value").alias("a")
        joined = RS.__table__.join(each, literal_column("true"))
        channel: ColumnElement[Any] = each.c.value.op("->>")("channel")
        outcome: ColumnElement[Any] = each.c.value.op("->>")("outcome")
    else:
        each = func.json_each(RS.attempts).table_valued("value").alias("a")
        joined = RS.__table__.join(each, literal_column("1"))
        channel = func.json_extract(each.c.value, "$.channel", type_=String)
        outcome = func.json_extract(each.c.value, "$.outcome", type_=String)
    listed = (
        select(RS.timestamp, RS.model, channel.label("channel"), (outcome == "ok").label("ok"))
        .select_from(joined)
        .where(RS.attempts.is_not(None), *window)
    )
    return union_all(own, listed).subquery("attempt_rows")


def _rate(ok: int, total: int) -> float:
    return ok / total if total > 0 else 0.0


def _ok(column: ColumnElement[bool] | Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((column, 1), else_=0)), 0)


async def stats_summary(conn: AsyncConnection, since: datetime, hours: int) -> dict[str, Any]:
    """uni-api's ``/v1/stats`` body for requests at or after ``since``, plus ``usage`` and
    ``key_request_counts``. Success rates count attempts (``channel_stats``), as uni-api does;
    request counts count client requests. ``ip_request_counts`` is always empty: unigate does not
    store client addresses. Lists are sorted by rate or count, descending, then by name."""
    attempt = _attempt_rows(conn, since).c
    window = _window(conn, since)
    by_channel_model = (
        await conn.execute(
            select(attempt.channel, attempt.model, func.count().label("total"), _ok(attempt.ok).label("ok")).group_by(
                attempt.channel, attempt.model
            )
        )
    ).all()
    totals: dict[str, list[int]] = {}
    for c, _m, t, k in by_channel_model:
        counts = totals.setdefault(c, [0, 0])
        counts[0] += int(t)
        counts[1] += int(k)
    by_channel = [(c, t, k) for c, (t, k) in totals.items()]
    models = await _counts(conn, RS.model, window)
    endpoints = await _counts(conn, RS.endpoint, window)
    usage = (
        await conn.execute(
            select(
                func.count().label("requests"),
                _ok(RS.success).label("ok"),
                func.coalesce(func.sum(RS.prompt_tokens), 0),
                func.coalesce(func.sum(RS.completion_tokens), 0),
                func.coalesce(func.sum(RS.cached_tokens), 0),
                func.coalesce(func.sum(RS.reasoning_tokens), 0),
                func.coalesce(func.sum(RS.cost), 0.0),
            ).where(*window)
        )
    ).one()
    keys = (
        await conn.execute(
            select(
                RS.client_key,
                func.count().label("n"),
                func.coalesce(func.sum(RS.prompt_tokens), 0) + func.coalesce(func.sum(RS.completion_tokens), 0),
                func.coalesce(func.sum(RS.cost), 0.0),
            )
            .where(*window)
            .group_by(RS.client_key)
        )
    ).all()
    requests, ok = int(usage[0]), int(usage[1])
    prompt, completion = int(usage[2]), int(usage[3])
    return {
        "time_range": f"Last {hours} hours",
        "channel_model_success_rates": [
            {"provider": c, "model": m, "success_rate": _rate(int(k), int(t)), "total_requests": int(t)}
            for c, m, t, k in sorted(by_channel_model, key=lambda r: (-_rate(int(r[3]), int(r[2])), r[0], r[1] or ""))
        ],
        "channel_success_rates": [
            {"provider": c, "success_rate": _rate(int(k), int(t)), "total_requests": int(t)}
            for c, t, k in sorted(by_channel, key=lambda r: (-_rate(int(r[2]), int(r[1])), r[0]))
        ],
        "model_request_counts": [{"model": m, "count": n} for m, n in models],
        "endpoint_request_counts": [{"endpoint": e, "count": n} for e, n in endpoints],
        "ip_request_counts": [],
        "usage": {
            "requests": requests,
            "successful_requests": ok,
            "failed_requests": requests - ok,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cached_tokens": int(usage[4]),
            "reasoning_tokens": int(usage[5]),
            "cost": float(usage[6]),
        },
        "key_request_counts": [
            {"client_key": k, "count": int(n), "total_tokens": int(t), "cost": float(c)}
            for k, n, t, c in sorted(keys, key=lambda r: (-int(r[1]), r[0] or ""))
        ],
    }


async def _counts(conn: AsyncConnection, column: Any, window: list[ColumnElement[bool]]) -> list[tuple[Any, int]]:
    rows = (await conn.execute(select(column, func.count().label("n")).where(*window).group_by(column))).all()
    return sorted(((r[0], int(r[1])) for r in rows), key=lambda r: (-r[1], r[0] or ""))


async def request_page(
    conn: AsyncConnection,
    limit: int,
    offset: int,
    *,
    model: str | None = None,
    channel: str | None = None,
    client_key: str | None = None,
    status: int | None = None,
    success: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Records newest first (ties by insertion order, newest first), as
    :meth:`RequestRecord.to_row` dicts. ``since`` is inclusive, ``until`` exclusive; ``None``
    filters nothing. ``limit`` must be 1..:data:`MAX_PAGE`, ``offset`` ≥ 0 (else ``ValueError``)."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    conditions: list[ColumnElement[bool]] = []
    for column, value in ((RS.model, model), (RS.channel, channel), (RS.client_key, client_key)):
        if value is not None:
            conditions.append(column == value)
    if status is not None:
        conditions.append(RS.status == status)
    if success is not None:
        conditions.append(RS.success.is_(success))
    conditions += _window(conn, since, until)
    query: Select[Any] = select(RequestStat.__table__).order_by(RS.timestamp.desc(), RS.id.desc())
    query = query.limit(limit).offset(offset)
    if conn.dialect.name == "sqlite":  # no timestamp index: look among the newest blocks first
        floor = await _newest_floor(conn, offset + limit)
        if floor is not None:
            rows = (await conn.execute(query.where(*conditions, *_window(conn, floor)))).mappings().all()
            if len(rows) == limit:
                return [record_from_row(r).to_row() for r in rows]
    if conditions:
        query = query.where(and_(*conditions))
    rows = (await conn.execute(query)).mappings().all()
    return [record_from_row(r).to_row() for r in rows]


async def _newest_floor(conn: AsyncConnection, count: int) -> datetime | None:
    """A time at or before the ``count``-th newest timestamp, from the newest blocks (SQLite):
    the oldest timestamp of the fewest newest blocks that hold ``count`` rows. So a page whose
    matches at or after it fill the page is the page of the whole table; when they do not (a
    filter, deleted rows), :func:`request_page` asks again without it. None: fewer rows than
    ``count`` (no bound helps)."""
    blocks = await conn.execute(
        select(RB.min_timestamp, RB.last_id - RB.first_id + 1).order_by(RB.max_timestamp.desc()).limit(count)
    )
    floor: datetime | None = None
    held = 0
    for oldest, rows in blocks:
        floor = oldest if floor is None else min(floor, oldest)
        held += int(rows)
        if held >= count:
            return floor
    return None


async def spend_since(conn: AsyncConnection, client_key: str, since: datetime) -> float:
    """Total ``cost`` (USD) of ``client_key``'s requests at or after ``since``."""
    value = await conn.scalar(
        select(func.coalesce(func.sum(RS.cost), 0.0)).where(RS.client_key == client_key, *_window(conn, since))
    )
    return float(value or 0.0)


class _BucketStart(FunctionElement[int]):
    """Start of the fixed-width time bucket holding a timestamp, in Unix seconds; buckets are
    aligned to the epoch. Arguments: the column and the width (an inline integer literal, so the
    same SQL text appears in SELECT and GROUP BY)."""

    type = BigInteger()
    inherit_cache = True
    name = "ug_bucket_start"


@compiles(_BucketStart, "sqlite")
def _bucket_sqlite(element: _BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    column, width = (compiler.process(c, **kw) for c in element.clauses)
    return f"((CAST(strftime('%s', {column}) AS INTEGER) / {width}) * {width})"


@compiles(_BucketStart, "postgresql")
def _bucket_postgresql(element: _BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    column, width = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / {width}) AS BIGINT) * {width})"


async def timeseries(conn: AsyncConnection, since: datetime, bucket_seconds: int) -> list[dict[str, Any]]:
    """Per time bucket and per channel (``None``: requests that reached no channel): client
    ``requests``, ``errors`` (unsuccessful requests), ``avg_latency_ms``, ``cost``, tokens, and the
    upstream ``attempts`` / ``attempt_errors`` made on that channel. Sorted by bucket then channel;
    empty buckets are absent. ``bucket`` is the bucket's start (ISO 8601 UTC)."""
    width: ColumnElement[Any] = literal_column(str(int(bucket_seconds)))
    rb = _BucketStart(RS.timestamp, width)
    window = _window(conn, since)
    requests = await conn.execute(
        select(
            rb,
            RS.channel,
            func.count(),
            func.coalesce(func.sum(case((RS.success, 0), else_=1)), 0),
            func.avg(RS.latency_ms),
            func.coalesce(func.sum(RS.cost), 0.0),
            func.coalesce(func.sum(RS.prompt_tokens), 0),
            func.coalesce(func.sum(RS.completion_tokens), 0),
        )
        .where(*window)
        .group_by(rb, RS.channel)
    )
    cells: dict[tuple[int, str | None], dict[str, Any]] = {}
    for bucket, channel, n, errors, latency, cost, prompt, completion in requests:
        cells[(int(bucket), channel)] = {
            "requests": int(n),
            "errors": int(errors),
            "avg_latency_ms": float(latency or 0.0),
            "cost": float(cost),
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
        }
    attempt = _attempt_rows(conn, since).c
    ab = _BucketStart(attempt.timestamp, width)
    attempts = await conn.execute(
        select(ab, attempt.channel, func.count(), func.coalesce(func.sum(case((attempt.ok, 0), else_=1)), 0)).group_by(
            ab, attempt.channel
        )
    )
    for bucket, channel, n, errors in attempts:
        cell = cells.setdefault((int(bucket), channel), _empty_cell())
        cell["attempts"], cell["attempt_errors"] = int(n), int(errors)
    return [
        {"bucket": datetime.fromtimestamp(b, UTC).isoformat(), "channel": c, **_empty_cell(), **cell}
        for (b, c), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]


def _empty_cell() -> dict[str, Any]:
    return {
        "requests": 0,
        "errors": 0,
        "avg_latency_ms": 0.0,
        "cost": 0.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "attempts": 0,
        "attempt_errors": 0,
    }
