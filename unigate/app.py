"""Build the ASGI application from a loaded config: routes, error handlers, lifespan.

No business logic lives here. The lifespan opens the upstream pool, discovers the models of
providers that list none (``GET …/models``, cached in memory — the user's file is never
rewritten), compiles the ``Runtime`` and publishes the ``Gateway`` on ``app.state``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from unigate import shared_state, tokens
from unigate.auth.keys import KeyStore
from unigate.config.compile import compile_channel, compile_runtime, engine_for
from unigate.config.load import LoadedConfig, load_source
from unigate.credits import Credits
from unigate.errors import MethodNotAllowed, NotFound, UnigateError
from unigate.http import admin, dashboard
from unigate.http.admission import correct_tokens
from unigate.http.chat import chat_completions
from unigate.http.endpoints import media_routes
from unigate.http.models import list_models
from unigate.http.recording import Pending, Recorder
from unigate.http.responses import error_response, internal_error_response, json_response
from unigate.http.state import Gateway
from unigate.limits import from_env as limiter_from_env
from unigate.metrics import Metrics
from unigate.pricing import PriceTable
from unigate.providers import openai as openai_host
from unigate.providers.registry import build_providers
from unigate.relay import Relay
from unigate.routing.plan import Planner
from unigate.stats.records import RequestRecord
from unigate.stats.store import StatsStore, database_url, describe_error
from unigate.stats.writer import StatsWriter
from unigate.upstream import Timeouts, Upstream

log = logging.getLogger("unigate")

CONFIG_ENV = "UNIGATE_CONFIG_SOURCE"
DISCOVERY_TIMEOUT = 10.0
STATS_FLUSH_TIMEOUT = 10.0
GC_GEN0_ENV = "UNIGATE_GC_GEN0"
GC_GEN0_DEFAULT = 10_000
"""The collector's generation-0 threshold in a server process (CPython's default is 700). Why
(measured, docs/performance.md): a generation-0 collection walks every young object still alive,
and under load that is every object of every request in flight; worse, each collection resets
the young count, so an object that outlives it is never subtracted again when it is freed, and
in-flight requests drive the count up by ~70 objects a request instead of the ~5 they leave
behind. At 700 that was a collection every ~8 requests and ~50 µs of a ~650 µs request; at
10 000, ~13 µs. Cyclic garbage waits longer (at most ~10 000 objects: a few MB)."""
STATS_OPEN_TIMEOUT = 5.0
"""Seconds start-up waits for the statistics database before going on without it."""


async def discover_models(loaded: LoadedConfig, upstream: Upstream) -> dict[str, tuple[str, ...]]:
    """Fetch ``/models`` for every OpenAI-compatible provider that lists no models."""
    found: dict[str, tuple[str, ...]] = {}

    async def one(index: int) -> None:
        provider = loaded.config.providers[index]
        channel = compile_channel(provider, index, {}, loaded.config.preferences.proxy)
        try:
            resp = await upstream.send(
                "GET",
                channel.models_url,
                headers=openai_host.models_headers(channel, channel.keys[0] if channel.keys else None),
                timeouts=Timeouts(first_byte=DISCOVERY_TIMEOUT, idle=DISCOVERY_TIMEOUT),
                proxy=channel.proxy,
            )
            async with resp:
                body = await resp.read()
            if resp.status != 200:
                raise ValueError(f"status {resp.status}")
            data = orjson.loads(body)
            ids = tuple(str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m)
        except (UnigateError, ValueError, KeyError, TypeError) as exc:
            log.warning("providers[%d] (%s): model discovery failed: %s", index, provider.provider, exc)
            return
        found[provider.provider] = ids
        log.info("providers[%d] (%s): discovered %d models", index, provider.provider, len(ids))

    for i, p in enumerate(loaded.config.providers):
        if p.model is None and engine_for(p) != "openai":
            log.warning(
                "providers[%d] (%s): lists no models; discovery needs an OpenAI-compatible "
                "GET /models, so list them in 'model'",
                i,
                p.provider,
            )
    await asyncio.gather(
        *(one(i) for i, p in enumerate(loaded.config.providers) if p.model is None and engine_for(p) == "openai")
    )
    return found


class HotPath:
    """ASGI front: ``POST …/chat/completions`` goes straight to its handler; everything else
    (lifespan, other routes, 404/405) through Starlette's router and middleware.

    Measured with py-spy under load, Starlette's exception and routing layers were ~10 % of a
    pass-through request; the chat handler answers every error itself, so it needs none of
    them. An unexpected exception still becomes the fixed 500 JSON body, never a traceback.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in HOT_PATHS:
            scope["app"] = self.app
            request = Request(scope, receive, send)
            try:
                response = await chat_completions(request)
            except Exception:
                log.exception("unhandled error on %s", scope["path"])
                response = internal_error_response()
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


HOT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
STATS_PROCESS_ENV = "UNIGATE_STATS_PROCESS"


def stats_process(env: Mapping[str, str]) -> bool:
    """``UNIGATE_STATS_PROCESS``: SQLite statistics rows are inserted by a writer process
    (:mod:`unigate.stats.sqlite_process`; unset, ``true``, ``1``, ``yes``, ``on``) or on the event
    loop's thread (``false``, ``0``, ``no``, ``off``). Anything else is logged and the default
    kept: a tuning knob must not stop the gateway."""
    text = env.get(STATS_PROCESS_ENV, "").strip().lower()
    if text in ("", "true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    log.warning("%s=%r is not true or false; using true", STATS_PROCESS_ENV, text)
    return True


async def open_stats(env: Mapping[str, str]) -> tuple[StatsStore | None, StatsWriter | None]:
    """The statistics store and its background writer, unless ``DISABLE_DATABASE=true``.
    The store is opened (and migrated) here if the database answers within
    :data:`STATS_OPEN_TIMEOUT` seconds, else lazily by the first write: a database that is down
    at start-up only delays the writes, it never stops the gateway."""
    url = database_url(env)
    if url is None:
        return None, None
    store = StatsStore(url, writer_process=stats_process(env))
    try:  # open now, before the heap is frozen (create_app's freeze_heap); else on first write
        await asyncio.wait_for(store.open(), STATS_OPEN_TIMEOUT)
    except Exception as exc:
        log.warning("statistics database not ready at start-up, will retry: %s", describe_error(exc, store.secrets))
    writer = StatsWriter(
        store,
        max_queue=int(env.get("UNIGATE_STATS_QUEUE", "10000")),
        flush_interval=float(env.get("UNIGATE_STATS_FLUSH_INTERVAL", "1.0")),
        batch_size=int(env.get("UNIGATE_STATS_BATCH", "512")),
    )
    writer.start()
    log.info("statistics: %s", store.display_url)
    return store, writer


def gen0_threshold(env: Mapping[str, str]) -> int:
    """``UNIGATE_GC_GEN0`` as a positive integer, else :data:`GC_GEN0_DEFAULT` (a bad value is
    logged and ignored: a tuning knob must not stop the gateway)."""
    text = env.get(GC_GEN0_ENV, "").strip()
    if not text:
        return GC_GEN0_DEFAULT
    if text.isdecimal() and int(text) > 0:  # not isdigit: "²" is a digit that int() refuses
        return int(text)
    log.warning("%s=%r is not a positive integer; using %d", GC_GEN0_ENV, text, GC_GEN0_DEFAULT)
    return GC_GEN0_DEFAULT


def create_app(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] | None = None,
    freeze_heap: bool = False,
) -> HotPath:
    """The ASGI app for one config. ``clock`` is injected by tests.

    ``freeze_heap`` (the server sets it; tests, which start many apps in one process, do not):
    once started, move every object alive to the collector's permanent generation
    (``gc.freeze``). Full collections otherwise traverse the whole start-up heap — modules,
    SQLAlchemy and alembic, the compiled config — each time, and the request path pays for it:
    measured, full collections were ~10 % of a worker's CPU (docs/performance.md). Then set the
    generation-0 threshold (:data:`GC_GEN0_DEFAULT`, or ``UNIGATE_GC_GEN0``)."""
    env = os.environ if env is None else env

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream = Upstream()
        try:
            discovered = await discover_models(loaded, upstream)
            runtime = compile_runtime(loaded.config, discovered, env)
            for warning in (*loaded.warnings, *runtime.warnings):
                log.warning("%s", warning)
            planner = Planner(runtime, clock=clock or time.monotonic)
            providers = build_providers(upstream.post, clock=time.time, env=env)
            limiter = limiter_from_env(env, clock)
            shared = shared_state.from_env(env, runtime, planner.health)
            if shared is not None:
                await shared.start()
            relay = Relay(
                planner,
                upstream,
                error_triggers=runtime.error_triggers,
                providers=providers,
                limiter=limiter,
                shared=shared,
            )
            store, writer = await open_stats(env)
            health = planner.health

            def gauges() -> dict[str, float]:
                values = {"channels_cooling": float(len(health.snapshot()["channels"]))}
                if writer is not None:
                    snap = writer.snapshot()
                    values["stats_queued"] = float(snap["queued"])
                    values["stats_dropped_total"] = float(snap["dropped"])
                process = store.writer_process() if store is not None else None
                if process is not None:
                    values["stats_writer_processes_started"] = float(process["started"])
                return values

            metrics = Metrics(gauges=gauges)
            prices = PriceTable.from_preferences(loaded.config.preferences)
            corrections: set[asyncio.Task[None]] = set()

            credits = Credits(runtime.keys, limiter)
            await credits.load(store.spend_since if store is not None else None)

            def after(pending: Pending, record: RequestRecord) -> None:
                if credits.budgeted and pending.key is not None and record.cost > 0:
                    task = asyncio.ensure_future(credits.charge(pending.key.id, record.cost))
                    corrections.add(task)
                    task.add_done_callback(corrections.discard)
                if pending.token_charges:
                    task = asyncio.ensure_future(correct_tokens(limiter, pending.token_charges, record.total_tokens))
                    corrections.add(task)
                    task.add_done_callback(corrections.discard)

            recorder = Recorder(sink=writer, observer=metrics, cost=prices.cost, estimate=tokens.estimate, after=after)
            app.state.gateway = Gateway(
                runtime,
                KeyStore(runtime.keys),
                relay,
                recorder,
                store,
                writer,
                metrics,
                env.get("UNIGATE_METRICS_TOKEN") or None,
                limiter,
                credits,
            )
            if freeze_heap:
                gc.collect()
                gc.freeze()
                gc.set_threshold(gen0_threshold(env), *gc.get_threshold()[1:])
            try:
                yield
            finally:
                await relay.images.close()
                await recorder.drain()
                await limiter.aclose()
                if shared is not None:
                    await shared.close()
                if writer is not None:
                    await writer.stop(STATS_FLUSH_TIMEOUT)
                if store is not None:
                    await store.close()
        finally:
            await upstream.close()

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return error_response(MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}."))
        return error_response(NotFound(f"Unknown path {request.url.path}.", code="unknown_path"))

    async def on_unigate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UnigateError)
        return error_response(exc)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        *media_routes(),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/stats", admin.stats, methods=["GET"]),
        Route("/v1/stats/requests", admin.stats_requests, methods=["GET"]),
        Route("/v1/stats/timeseries", admin.stats_timeseries, methods=["GET"]),
        Route("/v1/stats/health", admin.health, methods=["GET"]),
        Route("/v1/credits", admin.credits, methods=["GET"]),
        Route("/v1/api_keys_states", admin.credits, methods=["GET"]),
        Route("/metrics", admin.metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        *dashboard.routes(),
    ]
    return HotPath(
        Starlette(
            routes=routes,
            lifespan=lifespan,
            exception_handlers={
                HTTPException: not_found,
                UnigateError: on_unigate_error,
                Exception: on_crash,
            },
        )
    )


def app_from_env() -> HotPath:
    """uvicorn factory for ``--workers N``: each worker loads the config the CLI validated."""
    loaded = load_source(os.environ[CONFIG_ENV])
    return create_app(loaded, freeze_heap=True)
