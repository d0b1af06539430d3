"""The limits engine: exact rate limits (requests and tokens) and shared counters, in memory or Redis.

Public API::

    limiter = from_env(os.environ)        # Redis when REDIS_URL is set, else in-process
    d = await limiter.acquire(scope, limits, cost=estimated_tokens)
    if not d.allowed: raise RateLimited(..., retry_after=d.retry_after)   # d.headers() → x-ratelimit-*
    ...
    await limiter.adjust(scope, limits, real_tokens - estimated_tokens)   # correct token windows

* ``scope`` names whose windows these are (the caller builds it, e.g. ``key:<id>:<model>``; never
  put a secret in it, it becomes a Redis key). ``limits`` is what :func:`limits_for` or
  ``parse_rate_limit`` returns. Request windows count 1 per request, ``tpm``/``tpd`` windows count
  ``cost`` tokens, a ``tpr`` cap refuses a ``cost`` above it for good (``retry_after`` None).
* :meth:`Limiter.acquire` checks every window and charges all of them only if all admit — one
  atomic step (``limits_memory``: no await inside; ``limits_redis``: one Lua script), so it is
  exact under any concurrency, and a refusal charges nothing. Semantics of the moving window and
  of :class:`Decision`: ``limits_base``.
* Counters for state that must be shared between workers (credit spend, round-robin cursors,
  cooldowns): :meth:`incr`, :meth:`incr_float`, :meth:`get_float`, :meth:`put_float`, :meth:`delete`.

**Redis outage.** Every operation goes to Redis while it answers. When it does not (connection
refused or reset, timeout, any Redis error but a wrong-type reply), the limiter logs one error for the whole outage,
counts it in :attr:`Limiter.stats`, and then: with ``fail_open`` (default) decides in-process
(an in-memory backend that starts empty, so limits are per process until Redis returns); with
``fail_open=False`` raises :class:`LimiterUnavailable` (HTTP 503). During the outage Redis is
probed by at most one operation per ``probe_interval`` seconds of the injected clock; the first
probe that succeeds ends the outage (one warning) and every operation uses Redis again. Charges
made in memory during the outage are not copied to Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from unigate.config.values import RateLimit, parse_rate_limit
from unigate.errors import UnigateError
from unigate.limits_base import (
    UNLIMITED,
    Backend,
    BackendUnavailable,
    Decision,
    Mode,
    WindowState,
    decide,
    plan_of,
    refuse_per_request,
)
from unigate.limits_memory import MemoryBackend
from unigate.limits_redis import RedisBackend

__all__ = [
    "Decision",
    "Limiter",
    "LimiterStats",
    "LimiterUnavailable",
    "MemoryBackend",
    "RateLimit",
    "RedisBackend",
    "WindowState",
    "from_env",
    "limits_for",
]

log = logging.getLogger("unigate.limits")
T = TypeVar("T")


class LimiterUnavailable(UnigateError):
    """The shared limit store cannot be reached and the limiter is configured to fail closed."""

    status = 503
    error_type = "service_unavailable"


@dataclass
class LimiterStats:
    """Counters for ``/metrics``: ``outages`` (times Redis stopped answering), ``fallback_operations``
    (operations decided in-process during outages), ``refused_operations`` (raised
    :class:`LimiterUnavailable`), ``failed_probes`` (probes that found Redis still down)."""

    outages: int = 0
    fallback_operations: int = 0
    refused_operations: int = 0
    failed_probes: int = 0


class Limiter:
    """One interface over a backend. A memory backend is used directly; any other backend is
    wrapped with the outage handling of the module docstring (``fallback`` defaults to a fresh
    :class:`MemoryBackend` on ``clock``, which also paces the probes)."""

    def __init__(
        self,
        backend: Backend,
        *,
        fail_open: bool = True,
        probe_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: Backend | None = None,
    ) -> None:
        self.backend = backend
        self.fail_open = fail_open
        self.probe_interval = probe_interval
        self.clock = clock
        self.stats = LimiterStats()
        self._fallback: Backend | None = None
        if not isinstance(backend, MemoryBackend):
            self._fallback = fallback if fallback is not None else MemoryBackend(clock)
        self._down_since: float | None = None
        self._down_counts = (0, 0)  # fallback/refused operations when the outage began
        self._next_probe = 0.0
        self._probing = False

    @classmethod
    def memory(cls, clock: Callable[[], float] = time.monotonic) -> Limiter:
        return cls(MemoryBackend(clock), clock=clock)

    @classmethod
    def redis(
        cls,
        url: str,
        *,
        prefix: str = "unigate:",
        fail_open: bool = True,
        probe_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        redis_clock: Callable[[], float] | None = None,
        socket_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> Limiter:
        """A Redis limiter. ``clock`` paces probes and runs the fallback windows; ``redis_clock``
        (tests only) replaces the Redis server's ``TIME`` for the windows stored in Redis."""
        backend = RedisBackend(
            url, prefix=prefix, clock=redis_clock, socket_timeout=socket_timeout, max_connections=max_connections
        )
        return cls(backend, fail_open=fail_open, probe_interval=probe_interval, clock=clock)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered unreachable (operations are decided in-process or refused)."""
        return self._down_since is not None

    # -- rate limits --------------------------------------------------------------------------

    async def acquire(self, scope: str, limits: Sequence[RateLimit], cost: int = 1) -> Decision:
        """Admit and charge atomically, or refuse and charge nothing (see :class:`Decision`)."""
        return await self._decide(scope, limits, "acquire", cost)

    async def peek(self, scope: str, limits: Sequence[RateLimit], cost: int = 1) -> Decision:
        """What :meth:`acquire` would decide now, without charging."""
        return await self._decide(scope, limits, "peek", cost)

    async def charge(self, scope: str, limits: Sequence[RateLimit], cost: int = 1) -> Decision:
        """Charge every window unconditionally (usage that already happened); ``allowed`` is True
        and ``remaining`` may be 0 when the charge overshot."""
        return await self._decide(scope, limits, "charge", cost)

    async def adjust(self, scope: str, limits: Sequence[RateLimit], delta: int) -> None:
        """Correct token windows (``tpm``/``tpd``) once real usage is known: ``delta > 0`` charges
        the extra tokens now, ``delta < 0`` refunds from the oldest live entries (conservative).
        Request windows and ``tpr`` caps are not touched."""
        windows = plan_of(tuple(limits)).token_windows
        if windows and delta:
            await self._run(lambda b: b.adjust(scope, windows, delta))

    async def _decide(self, scope: str, limits: Sequence[RateLimit], mode: Mode, cost: int) -> Decision:
        if cost < 0:
            raise ValueError("cost must be >= 0")
        plan = plan_of(limits if isinstance(limits, tuple) else tuple(limits))
        if mode != "charge" and (capped := refuse_per_request(plan, cost)) is not None:
            return capped
        if not plan.windows:
            return UNLIMITED
        windows = plan.windows
        raw = await self._run(lambda b: b.apply(scope, windows, mode, cost))
        return decide(plan, raw)

    # -- shared counters ----------------------------------------------------------------------

    async def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add ``by`` to an integer counter and return the new value; ``ttl`` (seconds) is set when
        the counter has no expiry yet (a fixed window from the first increment)."""
        return await self._run(lambda b: b.incr(key, by, ttl))

    async def incr_float(self, key: str, by: float, ttl: float | None = None) -> float:
        """:meth:`incr` for float counters (credit spend in USD)."""
        return await self._run(lambda b: b.incr_float(key, by, ttl))

    async def get_float(self, key: str) -> float | None:
        """The stored number, or None when absent or expired."""
        return await self._run(lambda b: b.get_float(key))

    async def put_float(self, key: str, value: float, ttl: float | None = None) -> None:
        """Store a number (replacing any counter), expiring after ``ttl`` seconds when given."""
        await self._run(lambda b: b.put_float(key, value, ttl))

    async def delete(self, key: str) -> None:
        await self._run(lambda b: b.delete(key))

    async def aclose(self) -> None:
        await self.backend.aclose()

    # -- outage handling ----------------------------------------------------------------------

    async def _run(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        fallback = self._fallback
        if fallback is None:
            return await op(self.backend)
        if self._down_since is None:
            try:
                return await op(self.backend)
            except BackendUnavailable as exc:
                self._went_down(exc)
                return await self._degraded(op, fallback)
        now = self.clock()
        if self._probing or now < self._next_probe:
            return await self._degraded(op, fallback)
        self._probing = True
        self._next_probe = now + self.probe_interval
        try:
            result = await op(self.backend)
        except BackendUnavailable:
            self.stats.failed_probes += 1
            return await self._degraded(op, fallback)
        finally:
            self._probing = False
        self._came_back()
        return result

    async def _degraded(self, op: Callable[[Backend], Awaitable[T]], fallback: Backend) -> T:
        if not self.fail_open:
            self.stats.refused_operations += 1
            raise LimiterUnavailable("Rate limits are unavailable (the limit store cannot be reached).")
        self.stats.fallback_operations += 1
        return await op(fallback)

    def _went_down(self, exc: BackendUnavailable) -> None:
        if self._down_since is not None:
            return
        now = self.clock()
        self._down_since = now
        self._down_counts = (self.stats.fallback_operations, self.stats.refused_operations)
        self._next_probe = now + self.probe_interval
        self.stats.outages += 1
        action = (
            "limits and shared counters fall back to in-process state (fail open)"
            if self.fail_open
            else "requests that need limits are refused with 503 (fail closed)"
        )
        log.error(
            "%s limit store unreachable (%s); %s until it answers again, probing every %gs",
            self.backend.name,
            exc,
            action,
            self.probe_interval,
        )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "%s limit store answers again after %.1fs; limits are shared again "
            "(during the outage %d operations were decided in-process, %d refused)",
            self.backend.name,
            self.clock() - self._down_since,
            self.stats.fallback_operations - self._down_counts[0],
            self.stats.refused_operations - self._down_counts[1],
        )
        self._down_since = None


# -- configuration helpers --------------------------------------------------------------------


def limits_for(rules: Mapping[str, str], model: str) -> tuple[RateLimit, ...]:
    """The limits of ``model`` in a rate-limit map (``rate_limit``, ``RATE_LIMIT``,
    ``api_key_rate_limit``, global ``rate_limit``; a bare string was normalised to
    ``{"default": s}`` by the config schema). uni-api's lookup: exact key → first key that is a
    substring of ``model`` (dict order) → ``default`` → none. "None" is an empty tuple (no window at
    all), which is what uni-api's implicit ``999999/min`` means in practice, without its cost."""
    text = rules.get(model)
    if text is None:
        text = next((v for k, v in rules.items() if k != "default" and k in model), None)
    if text is None:
        text = rules.get("default")
    return () if text is None else _parse(text)


@lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[RateLimit, ...]:
    return parse_rate_limit(text)


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false")


def from_env(env: Mapping[str, str], clock: Callable[[], float] | None = None) -> Limiter:
    """``REDIS_URL`` set and non-empty → a Redis limiter (``UNIGATE_REDIS_FAIL_OPEN``, default
    true; ``UNIGATE_REDIS_PREFIX``, default ``unigate:``); otherwise an in-process limiter.
    Nothing connects here: the first operation does. ``clock`` (tests) drives the in-process
    windows and the Redis outage probes; Redis windows follow the Redis server's clock."""
    url = env.get("REDIS_URL", "").strip()
    if not url:
        return Limiter.memory(clock=clock) if clock else Limiter.memory()
    fail_open = _flag(env.get("UNIGATE_REDIS_FAIL_OPEN", "true"), "UNIGATE_REDIS_FAIL_OPEN")
    prefix = env.get("UNIGATE_REDIS_PREFIX", "unigate:")
    if clock is not None:
        return Limiter.redis(url, prefix=prefix, fail_open=fail_open, clock=clock)
    return Limiter.redis(url, prefix=prefix, fail_open=fail_open)
