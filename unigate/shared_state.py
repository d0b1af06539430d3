"""Routing state shared by every worker and instance through Redis (``REDIS_URL``): channel and
upstream-key cooldowns, and round-robin cursors. Rate limits and credits share through the
limiter (``unigate.limits``); this is the rest of what uni-api keeps per process.

**Cooldowns.** The planner's :class:`~unigate.routing.health.Health` stays the in-process source
of every routing decision (no I/O on the request path). Each local change is published on one
Redis channel and written to one Redis hash; every process applies the others' changes as they
arrive (pub/sub) and, at start-up, the live entries of the hash (so an instance that starts late
knows what is cooling). Messages carry the wall-clock time the cooldown ends, so processes need no
common monotonic clock; upstream keys travel as fingerprints and are mapped back to the key by each
receiver from its own configuration — a key never leaves the process.

**Cursors.** :meth:`SharedState.tick` draws the request's number from one Redis counter per
(client key, model): round robin and weighted round robin then give exactly the sequence one
process would (``routing.schedule``). One ``INCR`` per request, and only for keys whose order
depends on it.

**Outage.** Redis unreachable never fails a request: a failed ``tick`` returns ``None`` (the
planner uses its local cursor), failed publishes are dropped, and the subscriber reconnects with
backoff. Each is logged once per outage; recovery is logged too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from unigate.config.compile import Runtime, fingerprint
from unigate.routing.health import Change, Health

__all__ = ["SharedState", "from_env"]

log = logging.getLogger("unigate.shared")

RECONNECT_MAX = 30.0
"""Longest pause (seconds) between two attempts of the subscriber to reconnect."""


class SharedState:
    """See the module docstring. ``wall`` is the wall clock (seconds since the epoch) used to
    encode when cooldowns end; ``instance`` tells this process's messages apart."""

    def __init__(
        self,
        url: str,
        runtime: Runtime,
        health: Health,
        *,
        prefix: str = "unigate:",
        wall: Callable[[], float] = time.time,
        instance: str | None = None,
        socket_timeout: float = 1.0,
    ) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._url = url
        self._health = health
        self._wall = wall
        self._prefix = prefix
        self._channel = f"{prefix}health"
        self._hash = f"{prefix}cooldowns"
        self._id = instance or os.urandom(8).hex()
        self._keys: Mapping[tuple[str, str], str] = {
            (c.name, fingerprint(k)): k for c in runtime.channels for k in c.keys
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._failing = False
        self.ready = asyncio.Event()
        """Set once the subscriber listens (tests wait for it instead of sleeping)."""

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the live cooldowns, subscribe, and report local changes from now on."""
        try:
            stored = await self._client.hgetall(self._hash)
        except (RedisError, OSError) as exc:
            self._failed("loading shared cooldowns", exc)
            stored = {}
        now = self._wall()
        stale = []
        for field, raw in stored.items():
            change = self._decode(raw, now)
            if change is None:
                stale.append(field)
            else:
                self._health.apply(change)
        if stale:
            self._spawn(self._client.hdel(self._hash, *stale))
        self._health.listener = self._changed
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="unigate-shared-health")

    async def close(self) -> None:
        self._health.listener = None
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    # -- cursors --------------------------------------------------------------------------------

    async def tick(self, key_id: str, model: str) -> int | None:
        """The number of this request among the scope's requests (0-based), or ``None`` when
        Redis cannot be reached (the caller falls back to its local cursor)."""
        try:
            value = int(await self._client.incr(f"{self._prefix}rr:{key_id}:{model}"))
        except (RedisError, OSError) as exc:
            self._failed("round-robin cursor", exc)
            return None
        self._recovered()
        return value - 1

    # -- cooldowns ------------------------------------------------------------------------------

    def _changed(self, change: Change) -> None:
        name = fingerprint(change.name) if change.kind == "key" else change.name
        field = f"{change.kind if change.kind != 'recovered' else 'channel'}\x1f{change.channel}\x1f{name}"
        message = orjson.dumps(
            {
                "src": self._id,
                "kind": change.kind,
                "channel": change.channel,
                "name": name,
                "until": self._wall() + change.seconds,
                "failures": change.failures,
            }
        )
        self._spawn(self._publish(field, message, change.kind == "recovered"))

    async def _publish(self, field: str, message: bytes, recovered: bool) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                if recovered:
                    pipe.hdel(self._hash, field)
                else:
                    pipe.hset(self._hash, field, message)
                pipe.publish(self._channel, message)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("publishing a cooldown", exc)
            return
        self._recovered()

    def _decode(self, raw: bytes | str, now: float) -> Change | None:
        """A stored or published message as a local change; ``None`` for an expired or foreign one."""
        try:
            data = orjson.loads(raw)
            if data["src"] == self._id:  # our own message, echoed by the subscription
                return None
            kind, channel, name = data["kind"], data["channel"], data["name"]
            seconds = float(data["until"]) - now
            failures = int(data.get("failures", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if kind == "recovered":
            return Change("recovered", channel, name)
        if seconds <= 0 or kind not in ("channel", "key"):
            return None
        if kind == "key":
            key = self._keys.get((channel, name))
            if key is None:  # a key this process's configuration does not have
                return None
            return Change("key", channel, key, seconds)
        return Change("channel", channel, name, seconds, failures)

    async def _listen(self) -> None:
        pause = 0.5
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.ready.set()
                self._recovered()
                pause = 0.5
                async for message in pubsub.listen():
                    raw = message.get("data")
                    change = self._decode(raw, self._wall()) if isinstance(raw, bytes) else None
                    if change is not None:
                        self._health.apply(change)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.ready.clear()
                self._failed("listening for shared cooldowns", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(pause)
            pause = min(RECONNECT_MAX, pause * 2)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.error("Redis unreachable for shared routing state (%s: %s); using per-process state", what, exc)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("Redis answers again: routing state is shared again")


def from_env(env: Mapping[str, str], runtime: Runtime, health: Health) -> SharedState | None:
    """A :class:`SharedState` when ``REDIS_URL`` is set (prefix ``UNIGATE_REDIS_PREFIX``), else None."""
    url = env.get("REDIS_URL", "").strip()
    if not url:
        return None
    return SharedState(url, runtime, health, prefix=env.get("UNIGATE_REDIS_PREFIX", "unigate:"))
