"""Moving-window semantics, multi-window atomicity, token windows and counters — the same tests
on the in-process backend and on the real Redis (with the test clock injected into the scripts)."""

from __future__ import annotations

import pytest

from tests.limits.conftest import Rig
from unigate.config.values import RateLimit, parse_rate_limit
from unigate.limits import Limiter

pytestmark = pytest.mark.anyio

TWO_PER_MIN = parse_rate_limit("2/min")


async def test_window_edges(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed
    third = await lim.acquire("k", TWO_PER_MIN)
    assert not third.allowed
    assert third.limit == RateLimit(2, "requests", 60)
    assert third.retry_after == pytest.approx(60.0)
    clock.advance(59.999)
    still = await lim.acquire("k", TWO_PER_MIN)
    assert not still.allowed and still.retry_after == pytest.approx(0.001, abs=1e-6)
    clock.advance(0.001)  # exactly 60 s after both entries: both leave
    at_edge = await lim.acquire("k", TWO_PER_MIN)
    assert at_edge.allowed and at_edge.remaining == 1


async def test_window_moves_rather_than_resets(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed  # t=0
    clock.advance(30)
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed  # t=30
    clock.advance(30)
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed  # t=60: the t=0 entry left
    refused = await lim.acquire("k", TWO_PER_MIN)
    assert not refused.allowed and refused.retry_after == pytest.approx(30.0)  # the t=30 entry leaves at 90


async def test_scopes_are_independent(rig: Rig) -> None:
    lim = rig.limiter
    one = parse_rate_limit("1/min")
    assert (await lim.acquire("key-a:gpt", one)).allowed
    assert (await lim.acquire("key-a:claude", one)).allowed
    assert (await lim.acquire("key-b:gpt", one)).allowed
    assert not (await lim.acquire("key-a:gpt", one)).allowed


async def test_multi_window_refusal_charges_nothing(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    limits = parse_rate_limit("2/min,3/hour")
    minute, hour = limits
    assert (await lim.acquire("k", limits)).allowed
    assert (await lim.acquire("k", limits)).allowed
    by_minute = await lim.acquire("k", limits)
    assert not by_minute.allowed and by_minute.limit == minute and by_minute.retry_after == pytest.approx(60)
    # the refusal did not consume the hour window
    assert {s.limit: s.remaining for s in (await lim.peek("k", limits)).windows} == {minute: 0, hour: 1}

    clock.advance(60)
    last = await lim.acquire("k", limits)
    assert last.allowed and last.limit == hour and last.remaining == 0  # the hour is now the binding window

    clock.advance(1)
    by_hour = await lim.acquire("k", limits)
    assert not by_hour.allowed and by_hour.limit == hour
    assert by_hour.retry_after == pytest.approx(3600 - 61)
    clock.advance(59)  # t=120: the minute window is empty again, and stayed so through the refusals
    by_hour_again = await lim.acquire("k", limits)
    assert not by_hour_again.allowed
    assert {s.limit: s.remaining for s in by_hour_again.windows} == {minute: 2, hour: 0}
    clock.advance(3600 - 120)
    assert (await lim.acquire("k", limits)).allowed  # the two t=0 entries left the hour


async def test_token_window_with_adjust(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    tpm = parse_rate_limit("1000/tpm")
    first = await lim.acquire("k", tpm, cost=600)  # estimate 600 at t=0
    assert first.allowed and first.remaining == 400
    clock.advance(1)
    too_big = await lim.acquire("k", tpm, cost=500)
    assert not too_big.allowed and too_big.remaining == 400 and too_big.retry_after == pytest.approx(59)
    await lim.adjust("k", tpm, -400)  # real usage was 200
    assert (await lim.peek("k", tpm, cost=500)).remaining == 800
    clock.advance(1)
    second = await lim.acquire("k", tpm, cost=500)  # t=2
    assert second.allowed and second.remaining == 300
    clock.advance(1)
    await lim.adjust("k", tpm, 150)  # t=3: it used 650, not 500
    assert (await lim.peek("k", tpm)).remaining == 150
    refused = await lim.acquire("k", tpm, cost=200)
    assert not refused.allowed and refused.retry_after == pytest.approx(57)  # the t=0 entry (200) leaves at 60
    clock.advance(57)
    assert (await lim.acquire("k", tpm, cost=200)).remaining == 150
    never = await lim.acquire("k", tpm, cost=1001)
    assert not never.allowed and never.retry_after is None
    await lim.adjust("k", tpm, -10_000)  # a refund never goes below zero
    assert (await lim.peek("k", tpm)).remaining == 1000


async def test_token_charges_merge_conservatively(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    tpm = parse_rate_limit("300/tpm")
    await lim.acquire("k", tpm, cost=100)
    clock.advance(0.05)  # within period/1000 = 60 ms: merged into one entry stamped t=0.05
    await lim.acquire("k", tpm, cost=100)
    clock.advance(59.96)  # t=60.01: exact would have freed the first 100; merged, both still count
    assert (await lim.peek("k", tpm)).remaining == 100
    clock.advance(0.04)  # t=60.05: all gone
    assert (await lim.peek("k", tpm)).remaining == 300


async def test_requests_and_tokens_together(rig: Rig) -> None:
    lim = rig.limiter
    limits = parse_rate_limit("3/min,1000/tpm,400/tpr")
    d = await lim.acquire("k", limits, cost=400)
    assert d.allowed
    assert d.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    capped = await lim.acquire("k", limits, cost=401)
    assert not capped.allowed and capped.limit == RateLimit(400, "tokens_per_request", 0)
    assert capped.retry_after is None and capped.headers() == {}
    assert (await lim.acquire("k", limits, cost=400)).allowed
    by_tokens = await lim.acquire("k", limits, cost=400)  # 1 request left, but 200 tokens
    assert not by_tokens.allowed and by_tokens.limit == RateLimit(1000, "tokens", 60)
    assert {s.limit.kind: s.remaining for s in by_tokens.windows} == {"requests": 1, "tokens": 200}


async def test_header_values_follow_the_window(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    limits = parse_rate_limit("3/min")
    assert (await lim.acquire("k", limits)).headers()["x-ratelimit-remaining-requests"] == "2"
    clock.advance(10)
    d = await lim.acquire("k", limits)
    assert d.remaining == 1
    assert d.reset_after == pytest.approx(50)  # the oldest entry leaves at 60
    assert d.headers()["x-ratelimit-reset-requests"] == "50s"
    assert (await lim.acquire("k", limits)).remaining == 0
    refused = await lim.acquire("k", limits)
    assert not refused.allowed
    headers = refused.headers()
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "50s"
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("50", "50000")


async def test_charge_is_unconditional(rig: Rig) -> None:
    lim, clock = rig.limiter, rig.clock
    for _ in range(3):
        assert (await lim.charge("k", TWO_PER_MIN)).allowed
    assert (await lim.peek("k", TWO_PER_MIN)).remaining == 0
    refused = await lim.acquire("k", TWO_PER_MIN)
    assert not refused.allowed and refused.retry_after == pytest.approx(60)
    clock.advance(60)
    assert (await lim.acquire("k", TWO_PER_MIN)).allowed


async def test_peek_never_charges(rig: Rig) -> None:
    lim = rig.limiter
    for _ in range(5):
        assert (await lim.peek("k", TWO_PER_MIN)).allowed
    assert (await lim.acquire("k", TWO_PER_MIN)).remaining == 1


async def test_counters(rig: Rig) -> None:
    lim = rig.limiter
    assert await lim.incr("rr:cursor") == 1
    assert await lim.incr("rr:cursor", 5) == 6
    assert await lim.incr_float("spend:key1", 0.25) == pytest.approx(0.25)
    assert await lim.incr_float("spend:key1", 1.5) == pytest.approx(1.75)
    assert await lim.get_float("spend:key1") == pytest.approx(1.75)
    assert await lim.get_float("missing") is None
    await lim.put_float("cool:until", 1234.5, ttl=600)
    assert await lim.get_float("cool:until") == 1234.5
    await lim.delete("cool:until")
    assert await lim.get_float("cool:until") is None
    await lim.put_float("price", 2.5)
    with pytest.raises(ValueError):  # a float is not an integer counter: the caller's mistake
        await lim.incr("price")


async def test_memory_ttls_and_sweep_follow_the_clock() -> None:
    from tests.clock import FakeClock

    clock = FakeClock()
    lim = Limiter.memory(clock)
    await lim.put_float("cool", 1.0, ttl=10)
    assert await lim.incr("fixed", 1, ttl=5) == 1
    clock.advance(4)
    assert await lim.incr("fixed", 1, ttl=5) == 2  # the ttl is set once, at creation
    clock.advance(1)
    assert await lim.incr("fixed") == 1
    clock.advance(5)
    assert await lim.get_float("cool") is None
    await lim.acquire("a", TWO_PER_MIN)
    backend = lim.backend
    assert len(backend._logs) == 1  # type: ignore[attr-defined]
    clock.advance(120)
    await lim.acquire("b", TWO_PER_MIN)  # the sweep drops a's empty window
    assert list(backend._logs) == [("b", "r60")]  # type: ignore[attr-defined]
