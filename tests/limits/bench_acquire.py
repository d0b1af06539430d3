"""Cost of one ``acquire`` (not a test; run ``uv run python -m tests.limits.bench_acquire``).

Prints µs per acquire for the in-process backend and for Redis (sequential latency, the part of
it spent running the script inside Redis, and throughput with 64 acquires in flight), for a
one-window and a three-window limit. The Redis numbers include redis-py's own round trip (a bare
PING costs ~150 µs on the reference machine).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import redis

from unigate.config.values import parse_rate_limit
from unigate.limits import Limiter

ONE = parse_rate_limit("1000000/min")
THREE = parse_rate_limit("100000/min,1000000/day,100000000/tpm")


async def sequential(limiter: Limiter, limits: object, n: int, scopes: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await limiter.acquire(f"key:{i % scopes}:gpt-4o", limits, 100)  # type: ignore[arg-type]
    return (time.perf_counter() - started) / n * 1e6


async def concurrent(limiter: Limiter, limits: object, n: int, inflight: int) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await limiter.acquire(f"key:{i % 100}:gpt-4o", limits, 100)  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return (time.perf_counter() - started) / n * 1e6


def evalsha_stats(url: str) -> tuple[int, int]:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
    finally:
        client.close()
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def main() -> None:
    url = os.environ.get("UNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    for name, limits in (("1 window", ONE), ("3 windows", THREE)):
        memory = Limiter.memory()
        await sequential(memory, limits, 20_000, 100)  # warm up
        print(f"memory  {name}: {await sequential(Limiter.memory(), limits, 200_000, 100):7.2f} µs/acquire")
    prefix = f"unigate-bench-{uuid.uuid4().hex[:8]}:"
    remote = Limiter.redis(url, prefix=prefix)
    try:
        for name, limits in (("1 window", ONE), ("3 windows", THREE)):
            await sequential(remote, limits, 2_000, 100)
            calls, usec = evalsha_stats(url)
            seq = await sequential(remote, limits, 20_000, 100)
            calls2, usec2 = evalsha_stats(url)
            server = (usec2 - usec) / max(1, calls2 - calls)
            par = await concurrent(remote, limits, 50_000, 64)
            print(
                f"redis   {name}: {seq:7.2f} µs/acquire sequential ({server:.1f} µs of it inside Redis), "
                f"{par:7.2f} µs/acquire with 64 in flight"
            )
    finally:
        await remote.aclose()
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    print(f"python {sys.version.split()[0]}, redis at {url}")


if __name__ == "__main__":
    asyncio.run(main())
