"""Exactness under concurrency: 200 concurrent acquires against 100/min admit exactly 100 —
in one process, on Redis from one process, and from two OS processes sharing Redis."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from tests.limits.conftest import START
from unigate.config.values import parse_rate_limit
from unigate.limits import Limiter

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
HUNDRED = parse_rate_limit("100/min")


async def admitted(limiter: Limiter, n: int, limits: object = HUNDRED, cost: int = 1) -> int:
    decisions = await asyncio.gather(*(limiter.acquire("shared", limits, cost) for _ in range(n)))  # type: ignore[arg-type]
    return sum(d.allowed for d in decisions)


async def test_in_process() -> None:
    limiter = Limiter.memory(lambda: START)
    assert await admitted(limiter, 200) == 100


async def test_redis_one_process(redis_url: str, prefix: str) -> None:
    limiter = Limiter.redis(redis_url, prefix=prefix)
    try:
        assert await admitted(limiter, 200) == 100
        assert (await limiter.peek("shared", HUNDRED)).remaining == 0
    finally:
        await limiter.aclose()
    assert limiter.stats.outages == 0


async def test_redis_two_clients_in_one_process(redis_url: str, prefix: str) -> None:
    a, b = Limiter.redis(redis_url, prefix=prefix), Limiter.redis(redis_url, prefix=prefix)
    try:
        counts = await asyncio.gather(admitted(a, 100), admitted(b, 100))
        assert sum(counts) == 100
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_multi_window_is_atomic_under_concurrency(backend: str, request: pytest.FixtureRequest) -> None:
    """100/min with 5000/tpm at 100 tokens each: the token window admits 50; the 150 refusals
    must leave the request window at exactly 50 (a non-atomic check-then-hit would charge more)."""
    if backend == "memory":
        limiter = Limiter.memory(lambda: START)
    else:
        limiter = Limiter.redis(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("prefix"))
    limits = parse_rate_limit("100/min,5000/tpm")
    try:
        assert await admitted(limiter, 200, limits, cost=100) == 50
        state = {s.limit.kind: s.remaining for s in (await limiter.peek("shared", limits, cost=0)).windows}
        assert state == {"requests": 50, "tokens": 0}
    finally:
        await limiter.aclose()


WORKER = """
import asyncio, sys, time
from unigate.config.values import parse_rate_limit
from unigate.limits import Limiter

async def main(url, prefix, n):
    limiter = Limiter.redis(url, prefix=prefix, max_connections=n)
    await asyncio.gather(*(limiter.get_float("warm-up") for _ in range(n)))  # open the pool first
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    await asyncio.sleep(max(0.0, start - time.time() - 0.02))
    while time.time() < start:  # spin the last 20 ms: both processes start within microseconds
        pass
    limits = parse_rate_limit("100/min")
    tasks = []
    for _ in range(n):  # all n in flight together, issued over a few ms so the processes interleave
        tasks.append(asyncio.ensure_future(limiter.acquire("shared", limits)))
        await asyncio.sleep(0)
    decisions = await asyncio.gather(*tasks)
    print(sum(d.allowed for d in decisions), limiter.stats.outages, flush=True)
    await limiter.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_redis_two_processes(redis_url: str, prefix: str) -> None:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_url,
            prefix,
            "100",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            line = await asyncio.wait_for(w.stdout.readline(), 60)
            assert line.strip() == b"ready", (line, await w.stderr.read() if w.stderr else b"")
        start = f"{time.time() + 0.5}\n".encode()
        for w in workers:  # release both at the same wall-clock instant
            assert w.stdin is not None
            w.stdin.write(start)
            await w.stdin.drain()
        results = []
        for w in workers:
            out, err = await asyncio.wait_for(w.communicate(), 60)
            assert w.returncode == 0, err.decode()
            admitted_here, outages = map(int, out.split())
            assert outages == 0
            results.append(admitted_here)
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
    assert sum(results) == 100, results
