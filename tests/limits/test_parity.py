"""The two backends are one algorithm: a long random sequence of operations gives identical
decisions in memory and on Redis (same injected clock), and every Redis key expires by itself."""

from __future__ import annotations

import random

import pytest

from tests.clock import FakeClock
from tests.limits.conftest import START, redis_keys
from unigate.config.values import parse_rate_limit
from unigate.limits import Limiter

pytestmark = pytest.mark.anyio

SPECS = ["3/min,5/hour", "2/s,10/min,400/tpm", "1000/tpm,2500/tpd,600/tpr", "4/min,300/tpm"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_and_redis_decide_alike(redis_url: str, prefix: str, seed: int) -> None:
    rnd = random.Random(seed)
    mem_clock, redis_clock = FakeClock(START), FakeClock(START)
    memory = Limiter.memory(mem_clock)
    remote = Limiter.redis(redis_url, prefix=prefix, clock=redis_clock, redis_clock=redis_clock)
    try:
        for step in range(300):
            limits = parse_rate_limit(rnd.choice(SPECS))
            scope = f"s{rnd.randrange(3)}"
            op = rnd.choice(["acquire", "acquire", "acquire", "peek", "charge", "adjust"])
            cost = rnd.choice([0, 1, 50, 120, 300, 700])
            if op == "adjust":
                delta = rnd.choice([-500, -100, -1, 1, 100, 250])
                await memory.adjust(scope, limits, delta)
                await remote.adjust(scope, limits, delta)
            else:
                a = await getattr(memory, op)(scope, limits, cost)
                b = await getattr(remote, op)(scope, limits, cost)
                assert a == b, (step, op, scope, limits, cost)
            advance = rnd.choice([0, 0, 0.001, 0.03, 0.5, 1, 7, 30, 61])
            mem_clock.advance(advance)
            redis_clock.advance(advance)
    finally:
        await remote.aclose()
    assert remote.stats.outages == 0


async def test_every_redis_key_has_a_ttl(redis_url: str, prefix: str) -> None:
    import redis

    limiter = Limiter.redis(redis_url, prefix=prefix)
    limits = parse_rate_limit("2/min,5/day,100/tpm,1000/tpd")
    try:
        await limiter.acquire("k", limits, cost=10)
        await limiter.adjust("k", limits, -5)
        await limiter.charge("k2", limits, cost=3)
    finally:
        await limiter.aclose()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = redis_keys(redis_url, prefix)
        assert len(keys) == 10  # 2 scopes x (meta + 4 windows)
        ttls = {key.removeprefix(prefix): client.pttl(key) for key in keys}
    finally:
        client.close()
    assert all(ttl > 0 for ttl in ttls.values()), sorted(ttls.items())
    assert 86_400_000 < ttls["rl:{k}:m"] <= 86_401_000  # the meta hash lives as long as its longest window
    assert 60_000 < ttls["rl:{k}:r60"] <= 61_000
