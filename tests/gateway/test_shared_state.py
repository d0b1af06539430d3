"""Routing state shared through the real Redis: cooldowns of channels and keys reach every
instance (and instances started later), a success clears them everywhere, round-robin and
weighted cursors give one sequence across instances, and a Redis cut mid-run fails nothing —
limits are exact again once it is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_upstream import Fail, FakeOpenAI
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_limits import _redis_or_skip
from tests.gateway.test_stats import ThreadedRelay, wait_until

ADMIN = "sk-shared-admin-77c1"


@pytest.fixture
def redis_env() -> dict[str, str]:
    return {"REDIS_URL": _redis_or_skip(), "UNIGATE_REDIS_PREFIX": f"ugtest:{uuid.uuid4().hex}:"}


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with (
        FakeOpenAI(strict_models=False) as a,
        FakeOpenAI(strict_models=False) as b,
        FakeOpenAI(strict_models=False) as c,
    ):
        yield [a, b, c]


def config(fakes: list[FakeOpenAI], prefs: str = "", keys: str = "sk-up-1") -> str:
    channels = "".join(
        f"""  - provider: {name}
    base_url: {fake.base_url}
    api: {keys if name == "a" else "sk-up-" + name}
    model: [gpt-4o]
    preferences: {{cooldown_period: 300}}
"""
        for name, fake in zip("abc", fakes, strict=True)
    )
    return f"""providers:
{channels}api_keys:
  - api: {ADMIN}
    role: admin
    preferences: {{{prefs}}}
"""


def ask(gw: RunningGateway) -> str:
    raw = gw.client(ADMIN).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    return str(raw.headers["x-unigate-channel"])


def cooling(gw: RunningGateway) -> list[str]:
    body: dict[str, Any] = httpx.get(gw.base_url + "/stats/health", headers={"authorization": f"Bearer {ADMIN}"}).json()
    return sorted(entry["channel"] for entry in body["channels"])


def test_a_channel_cooled_by_one_instance_is_skipped_by_the_others(
    fakes: list[FakeOpenAI], redis_env: dict[str, str]
) -> None:
    clock = FakeClock()
    fakes[0].script(Fail(500))
    with (
        run_gateway(config(fakes), env=redis_env, clock=clock) as first,
        run_gateway(config(fakes), env=redis_env) as second,
    ):
        assert ask(first) == "b"  # a failed, b served
        assert wait_until(lambda: cooling(second) == ["a"])
        assert ask(second) == "b"
        assert len(fakes[0].chat_requests) == 1  # the second instance never tried a
        with run_gateway(config(fakes), env=redis_env) as late:  # started after the failure
            assert cooling(late) == ["a"]
            assert ask(late) == "b"
        assert len(fakes[0].chat_requests) == 1
        # The cooldown passes on the first instance's clock; a success there clears it everywhere.
        clock.advance(301)
        assert ask(first) == "a"
        assert wait_until(lambda: cooling(second) == [])
        assert ask(second) == "a"


def test_an_upstream_key_cooled_by_one_instance_is_skipped_by_the_others(
    fakes: list[FakeOpenAI], redis_env: dict[str, str]
) -> None:
    text = config(fakes, keys="[sk-up-key-one-1111, sk-up-key-two-2222]")
    fakes[0].script(Fail(429, headers={"retry-after": "120"}))
    with run_gateway(text, env=redis_env) as first, run_gateway(text, env=redis_env) as second:
        assert ask(first) == "a"  # key one was rate limited, key two answered
        used = [r.headers["authorization"] for r in fakes[0].chat_requests]
        assert used == ["Bearer sk-up-key-one-1111", "Bearer sk-up-key-two-2222"]

        def second_avoids_key_one() -> bool:
            before = len(fakes[0].chat_requests)
            assert ask(second) == "a"
            return fakes[0].chat_requests[before].headers["authorization"] == "Bearer sk-up-key-two-2222"

        # The second instance's key ring would start at key one; once the cooldown has arrived,
        # every request skips it.
        assert wait_until(second_avoids_key_one)
        for _ in range(3):
            assert second_avoids_key_one()


@pytest.mark.parametrize(
    ("prefs", "expected"),
    [
        ("SCHEDULING_ALGORITHM: round_robin", ["a", "b", "c", "a", "b", "c"]),
        # weights 3:1:0 — the smooth sequence one process gives, then c as the unweighted fallback
        ("SCHEDULING_ALGORITHM: weighted_round_robin", ["a", "a", "b", "a", "a", "a", "b", "a"]),
    ],
)
def test_cursors_give_one_sequence_across_instances(
    fakes: list[FakeOpenAI], redis_env: dict[str, str], prefs: str, expected: list[str]
) -> None:
    text = config(fakes, prefs)
    if "weighted" in prefs:
        text = text.replace("role: admin", "role: admin\n    model: [{a/*: 3}, {b/*: 1}, c/*]")
    with run_gateway(text, env=redis_env) as first, run_gateway(text, env=redis_env) as second:
        served = [ask(first if i % 2 == 0 else second) for i in range(len(expected))]
    assert served == expected


def test_redis_cut_mid_run_serves_every_request_and_limits_are_exact_again_after(
    fakes: list[FakeOpenAI], redis_env: dict[str, str]
) -> None:
    relay = ThreadedRelay("127.0.0.1", 6379)
    env = {**redis_env, "REDIS_URL": f"redis://127.0.0.1:{relay.port}/0"}
    clock = FakeClock()
    text = config(fakes, "rate_limit: 3/min, SCHEDULING_ALGORITHM: round_robin")
    try:
        with run_gateway(text, env=env, clock=clock) as gw:
            assert [ask(gw), ask(gw)] == ["a", "b"]  # two of the three in the Redis window
            relay.call(relay.relay.cut)
            # Redis is gone: limits fall back to this process (an empty window), cursors to the
            # local one; nothing fails.
            for _ in range(3):
                ask(gw)
            relay.call(relay.relay.restore)
            clock.advance(6)  # past the limiter's probe interval: the next operation tries Redis
            ask(gw)  # the Redis window had 2: this is the third
            with pytest.raises(Exception) as info:
                ask(gw)
            assert getattr(info.value, "status_code", None) == 429
    finally:
        relay.close()
