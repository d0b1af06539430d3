"""Redis outages, through a TCP relay in front of the real server that the test cuts and restores.

Fail open: decisions continue in-process during the outage (one error logged, counted), Redis is
probed at most once per ``probe_interval`` of the injected clock, and after recovery decisions
come from Redis again — shown by charging Redis from another client and seeing refusals that the
in-process windows would not have made. Fail closed: :class:`LimiterUnavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.clock import FakeClock
from tests.stats.tcp_relay import TcpRelay
from unigate.config.values import parse_rate_limit
from unigate.limits import Limiter, LimiterUnavailable

pytestmark = pytest.mark.anyio

FIVE = parse_rate_limit("5/min")


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[TcpRelay]:
    target = urlsplit(redis_url)
    r = TcpRelay(target.hostname or "127.0.0.1", target.port or 6379)
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def via(relay: TcpRelay, redis_url: str) -> str:
    return urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{relay.port}").geturl()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "unigate.limits" and r.levelno >= logging.ERROR]


async def test_fail_open_falls_back_and_recovers(
    relay: TcpRelay, redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="unigate.limits")
    clock = FakeClock()
    limiter = Limiter.redis(via(relay, redis_url), prefix=prefix, clock=clock, probe_interval=5.0)
    other = Limiter.redis(redis_url, prefix=prefix)  # another instance, straight to Redis
    try:
        assert (await limiter.acquire("k", FIVE)).remaining == 4
        assert (await other.peek("k", FIVE)).remaining == 4  # that charge is in Redis

        relay.cut()
        during = [await limiter.acquire("k", FIVE) for _ in range(7)]
        # decided in-process (a fresh window: 5 of 7), not refused and not raised
        assert [d.allowed for d in during] == [True] * 5 + [False] * 2
        assert limiter.degraded
        assert (limiter.stats.outages, limiter.stats.fallback_operations) == (1, 7)
        assert await limiter.incr("cursor") == 1  # counters fall back too
        clock.advance(5)
        assert (await limiter.acquire("k", FIVE)).allowed is False  # one probe, still down
        assert limiter.stats.failed_probes == 1
        assert len(errors(caplog)) == 1, "one error per outage, not per request"
        assert "unreachable" in errors(caplog)[0]
        assert (await other.peek("k", FIVE)).remaining == 4  # nothing reached Redis meanwhile

        relay.restore()
        assert not (await limiter.acquire("k", FIVE)).allowed  # before the next probe: still in-process
        assert limiter.degraded and limiter.stats.failed_probes == 1

        # Another instance fills the Redis window; the in-process one empties (its clock moves 60 s)
        for _ in range(4):
            assert (await other.acquire("k", FIVE)).allowed
        clock.advance(60)
        after = await limiter.acquire("k", FIVE)
        assert not limiter.degraded
        assert not after.allowed, "decided by Redis (full), not by the empty in-process window"
        assert after.retry_after is not None and after.retry_after > 0
        recovered = [r.getMessage() for r in caplog.records if "answers again after" in r.getMessage()]
        assert len(recovered) == 1
        assert limiter.stats.outages == 1 and len(errors(caplog)) == 1
        assert await limiter.incr("cursor") == 1  # Redis's counter: the in-process one stayed behind
    finally:
        await limiter.aclose()
        await other.aclose()


async def test_fail_closed_raises_until_redis_returns(relay: TcpRelay, redis_url: str, prefix: str) -> None:
    clock = FakeClock()
    limiter = Limiter.redis(via(relay, redis_url), prefix=prefix, clock=clock, fail_open=False, probe_interval=5.0)
    try:
        relay.cut()  # unreachable from the very first operation
        with pytest.raises(LimiterUnavailable) as info:
            await limiter.acquire("k", FIVE)
        assert info.value.http_status() == 503
        with pytest.raises(LimiterUnavailable):
            await limiter.get_float("x")
        assert (limiter.stats.outages, limiter.stats.refused_operations) == (1, 2)
        relay.restore()
        clock.advance(5)
        assert (await limiter.acquire("k", FIVE)).remaining == 4
        assert not limiter.degraded
    finally:
        await limiter.aclose()


async def test_silent_redis_times_out_into_fallback(relay: TcpRelay, redis_url: str, prefix: str) -> None:
    limiter = Limiter.redis(via(relay, redis_url), prefix=prefix, clock=FakeClock(), socket_timeout=0.2)
    try:
        assert (await limiter.acquire("k", FIVE)).allowed
        relay.pause()  # connections stay open, nothing answers
        decision = await limiter.acquire("k", FIVE)
        assert decision.allowed and limiter.degraded
        assert limiter.stats.outages == 1
    finally:
        relay.restore()
        await limiter.aclose()


async def test_unreachable_from_the_start_fails_open(redis_url: str, prefix: str) -> None:
    limiter = Limiter.redis("redis://127.0.0.1:1/0", prefix=prefix, clock=FakeClock())
    try:
        assert (await limiter.acquire("k", FIVE)).allowed
        assert limiter.degraded and limiter.stats.fallback_operations == 1
    finally:
        await limiter.aclose()
