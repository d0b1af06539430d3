"""Fixtures for the limits engine: injected clocks, and the real Redis server.

Redis is found at ``UNIGATE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When it is
unreachable its tests are skipped with the reason, except under ``CI=true``, where they fail.
Every test gets a key prefix of its own (``unigate-test-<random>:``) and its keys are deleted
afterwards. Redis is never mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.clock import FakeClock
from unigate.limits import Limiter

START = 1_700_000_000.0
"""The injected clocks start here (seconds); Redis windows then see plausible epoch times."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL, or skip (fail under CI=true)."""
    url = os.environ.get("UNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (required when CI=true)")
        pytest.skip(reason)
    finally:
        client.close()
    return url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    name = f"unigate-test-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_keys(url: str, prefix: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


@dataclass
class Rig:
    """A limiter on one backend whose window time is ``clock`` (injected into Redis scripts too)."""

    limiter: Limiter
    clock: FakeClock
    kind: str


@pytest.fixture(params=["memory", "redis"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    clock = FakeClock(START)
    if request.param == "memory":
        limiter = Limiter.memory(clock)
    else:
        url: str = request.getfixturevalue("redis_url")
        limiter = Limiter.redis(url, prefix=request.getfixturevalue("prefix"), clock=clock, redis_clock=clock)
    try:
        yield Rig(limiter, clock, str(request.param))
    finally:
        await limiter.aclose()
    assert limiter.stats.outages == 0, "Redis must answer every operation of these tests"
