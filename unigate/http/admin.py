"""Admin endpoints: statistics (uni-api's ``/v1/stats`` shape and more), raw records, the
dashboard's series, channel health, key credits and Prometheus metrics.

Every endpoint here needs an admin key (``role`` containing ``admin``, or the first key) —
others get 403, missing keys 401 — except ``/metrics``, which is also open to the
``UNIGATE_METRICS_TOKEN`` bearer token when one is set (scrapers rarely hold API keys).
Query parameters are validated: a bad value is a 400 naming it, never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from unigate.auth.keys import require_admin
from unigate.errors import BadRequest, NoChannelAvailable, UnigateError
from unigate.http.responses import error_response, json_response
from unigate.http.state import Gateway

MAX_HOURS = 24 * 366
MAX_PAGE = 1000


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer.", param=name) from None
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be between {low} and {high}.", param=name)
    return value


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an ISO 8601 time.", param=name) from None


def _bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"'{name}' must be true or false.", param=name)


def _admin(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    require_admin(gateway.keys.authenticate(request.headers))
    return gateway


def _store(gateway: Gateway) -> Any:
    if gateway.store is None:
        raise NoChannelAvailable("Statistics are disabled (DISABLE_DATABASE=true).", code="stats_disabled")
    return gateway.store


async def _guarded(request: Request, work: Callable[[Request], Any]) -> Response:
    try:
        return json_response(await work(request))
    except UnigateError as err:
        return error_response(err)


async def stats(request: Request) -> Response:
    """``GET /v1/stats?hours=N`` — uni-api's body (success rates per channel and model, request
    counts per model and endpoint) plus usage and cost totals and counts per key. With
    statistics disabled it answers ``{"stats": {}}`` like uni-api."""

    async def work(request: Request) -> Any:
        gateway = _admin(request)
        hours = _int(request, "hours", 24, 1, MAX_HOURS)
        if gateway.store is None:
            return {"stats": {}}
        return await gateway.store.stats(hours)

    return await _guarded(request, work)


async def stats_requests(request: Request) -> Response:
    """``GET /v1/stats/requests`` — raw records, newest first; ``limit``/``offset`` paginate and
    ``model``, ``channel``, ``key``, ``status``, ``success``, ``since``, ``until`` filter."""

    async def work(request: Request) -> Any:
        gateway = _admin(request)
        store = _store(gateway)
        q = request.query_params
        limit = _int(request, "limit", 100, 1, MAX_PAGE)
        offset = _int(request, "offset", 0, 0, 10**9)
        status = q.get("status")
        rows = await store.requests(
            limit,
            offset,
            model=q.get("model"),
            channel=q.get("channel"),
            client_key=q.get("key"),
            status=_int(request, "status", 0, 100, 599) if status is not None else None,
            success=_bool(request, "success"),
            since=_time(request, "since"),
            until=_time(request, "until"),
        )
        return {"object": "list", "data": rows, "limit": limit, "offset": offset}

    return await _guarded(request, work)


async def stats_timeseries(request: Request) -> Response:
    """``GET /v1/stats/timeseries?hours=&bucket_minutes=`` — the dashboard's series."""

    async def work(request: Request) -> Any:
        gateway = _admin(request)
        store = _store(gateway)
        hours = _int(request, "hours", 24, 1, MAX_HOURS)
        bucket = _int(request, "bucket_minutes", 5, 1, 24 * 60)
        return {"object": "list", "data": await store.timeseries(hours, bucket)}

    return await _guarded(request, work)


async def health(request: Request) -> Response:
    """``GET /v1/stats/health`` — channels cooling down now, the statistics queue, and the SQLite
    writer process (``stats_writer_process``: pid, processes started, doubtful batches found
    already stored; null without one)."""

    async def work(request: Request) -> Any:
        gateway = _admin(request)
        body: dict[str, Any] = gateway.relay.planner.health.snapshot()
        body["stats_queue"] = gateway.writer.snapshot() if gateway.writer else None
        body["stats_writer_process"] = gateway.store.writer_process() if gateway.store else None
        return body

    return await _guarded(request, work)


async def credits(request: Request) -> Response:
    """``GET /v1/credits`` (also uni-api's ``/v1/api_keys_states``) — every key with ``credits``:
    its label (never the key), budget, ``created_at``, spend so far, balance and whether it is
    still enabled."""

    async def work(request: Request) -> Any:
        gateway = _admin(request)
        balances = await gateway.credits.balances() if gateway.credits is not None else []
        return {"object": "list", "data": [b.to_json() for b in balances]}

    return await _guarded(request, work)


async def metrics(request: Request) -> Response:
    """``GET /metrics`` — Prometheus exposition, rendered off the event loop. Admin keys, or
    ``Authorization: Bearer $UNIGATE_METRICS_TOKEN`` when that token is configured."""
    gateway: Gateway = request.app.state.gateway
    token = gateway.metrics_token
    presented = request.headers.get("authorization", "")
    if not (token and hmac.compare_digest(presented.encode(), f"Bearer {token}".encode())):
        try:
            _admin(request)
        except UnigateError as err:
            return error_response(err)
    if gateway.metrics is None:
        return error_response(NoChannelAvailable("Metrics are not available.", code="metrics_disabled"))
    body, content_type = await asyncio.to_thread(gateway.metrics.render)
    return Response(body, media_type=content_type)
