"""Cooldowns on an injected clock, the retry table, timeout and budget resolution."""

from __future__ import annotations

import pytest

from tests.routing.conftest import FakeClock, key_of, runtime_from
from unigate.errors import (
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.routing.health import AUTH_COOLDOWN, MAX_GROWTH, Health
from unigate.routing.plan import Planner, attempt_budget, resolve_keepalive, resolve_timeout
from unigate.routing.retry import decide

CONFIG = """
providers:
  - provider: p1
    base_url: http://127.0.0.1:1/v1
    api: [k1, k2]
    model: [gpt-4o, {{gpt-4o-mini: mini}}]
    preferences:
      model_timeout: {{gpt-4o: 11, mini: 12, default: 13}}
      cooldown_period: {p1_cool}
  - provider: p2
    base_url: http://127.0.0.1:2/v1
    api: k3
    model: [gpt-4o, o1-preview]
preferences:
  model_timeout: {{o1: 50, default: 60}}
  keepalive_interval: {{gpt-4o: 5}}
  cooldown_period: 10
api_keys:
  - api: sk-a
    model: [all]
  - api: sk-b
    model: [all]
    preferences: {{AUTO_RETRY: 1}}
  - api: sk-c
    model: [all]
    preferences: {{AUTO_RETRY: false}}
"""


def runtime(p1_cool: int = 4, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runtime_from(CONFIG.format(p1_cool=p1_cool), env)


def test_channel_cooldown_grows_and_is_capped_then_recovers() -> None:
    clock = FakeClock()
    h = Health(clock)
    assert h.channel_failed("c", "m", 10) == 10
    assert not h.channel_available("c", "m")
    clock.advance(10)
    assert h.channel_available("c", "m")
    assert [h.channel_failed("c", "m", 10) for _ in range(5)] == [20, 40, 80, 80, 80]
    assert 10 * MAX_GROWTH == 80
    h.channel_succeeded("c", "m")
    assert h.channel_available("c", "m") and h.channel_failed("c", "m", 10) == 10
    assert h.channel_failed("c", "other", 0) == 0 and h.channel_available("c", "other")


def test_key_cooldown_is_per_key_and_capped() -> None:
    clock = FakeClock()
    h = Health(clock)
    h.cool_key("c", "k1", 2)
    assert not h.key_available("c", "k1") and h.key_available("c", "k2")
    clock.advance(1.999)
    assert not h.key_available("c", "k1")
    clock.advance(0.001)
    assert h.key_available("c", "k1")
    assert h.cool_key("c", "k1", 10**9) == 3600


@pytest.mark.parametrize(
    ("error", "retry", "channel", "key"),
    [
        (UpstreamRateLimited("x", upstream_status=429), True, False, "rate"),
        (UpstreamAuthError("x", upstream_status=401), True, False, "auth"),
        (UpstreamRequestError("x", upstream_status=400), False, False, "none"),
        (ContextLengthExceeded("x", upstream_status=400), False, False, "none"),
        (UpstreamUnavailable("x", upstream_status=503), True, True, "none"),
        (UpstreamTimeout("x"), True, True, "none"),
        (UpstreamConnectError("x"), True, True, "none"),
        (UpstreamProtocolError("x"), True, True, "none"),
    ],
)
def test_retry_table(error: Exception, retry: bool, channel: bool, key: str) -> None:
    action = decide(error)  # type: ignore[arg-type]
    assert (action.retry, action.cool_channel, action.cool_key) == (retry, channel, key)


def test_timeout_precedence() -> None:
    rt = runtime(env={"TIMEOUT": "77"})
    p1, p2 = rt.channels
    assert resolve_timeout(rt, p1, "gpt-4o", "gpt-4o") == 11  # provider exact
    assert resolve_timeout(rt, p1, "mini", "gpt-4o-mini") == 12  # provider, request alias first
    assert resolve_timeout(rt, p1, "other", "other") == 13  # provider default
    assert resolve_timeout(rt, p2, "o1-preview", "o1-preview") == 50  # global substring
    assert resolve_timeout(rt, p2, "gpt-4o", "gpt-4o") == 60  # global default
    bare = runtime_from(
        "providers: [{provider: x, base_url: 'http://h/v1', model: [m]}]\napi_keys: [{api: k}]", {"TIMEOUT": "77"}
    )
    assert resolve_timeout(bare, bare.channels[0], "m", "m") == 77
    assert resolve_keepalive(rt, p1, "gpt-4o", "gpt-4o") == 5
    assert resolve_keepalive(rt, p1, "mini", "gpt-4o-mini") == 5  # 'gpt-4o' is a substring of the upstream name
    assert resolve_keepalive(rt, p2, "o1-preview", "o1-preview") is None


def test_attempt_budget_follows_auto_retry() -> None:
    rt = runtime()
    assert attempt_budget(key_of(rt, 0), 3) == 3
    assert attempt_budget(key_of(rt, 0), 40) == 10
    assert attempt_budget(key_of(rt, 1), 3) == 2
    assert attempt_budget(key_of(rt, 2), 3) == 1


def test_plan_skips_cooling_channels_and_falls_back_to_soonest_recovery() -> None:
    clock = FakeClock()
    rt = runtime(p1_cool=4)
    planner = Planner(rt, clock=clock)
    key = key_of(rt, 0)
    plan = planner.plan(key, "gpt-4o")
    assert [a.channel.name for a in plan.attempts] == ["p1", "p2"]
    assert plan.budget == 3  # two keys on p1, one on p2
    first, second = plan.attempts
    planner.record_failure(first, "k1", decide(UpstreamUnavailable("x", upstream_status=500)), None)
    assert [a.channel.name for a in planner.plan(key, "gpt-4o").attempts] == ["p2"]
    planner.record_failure(second, "k3", decide(UpstreamUnavailable("x", upstream_status=500)), None)
    # all cooling: the one that recovers soonest (p1: 4 s, p2: 10 s) is still tried
    assert [a.channel.name for a in planner.plan(key, "gpt-4o").attempts] == ["p1"]
    clock.advance(4)
    planner.record_success(first)
    assert [a.channel.name for a in planner.plan(key, "gpt-4o").attempts] == ["p1"]
    clock.advance(6)
    assert [a.channel.name for a in planner.plan(key, "gpt-4o").attempts] == ["p1", "p2"]


def test_rate_limit_and_auth_cool_keys() -> None:
    clock = FakeClock()
    rt = runtime()
    planner = Planner(rt, clock=clock)
    attempt = planner.plan(key_of(rt), "gpt-4o").attempts[0]
    p1 = attempt.channel
    planner.record_failure(attempt, "k1", decide(UpstreamRateLimited("x", upstream_status=429)), 2.0)
    assert planner.pick_key(p1) == (True, "k2")
    assert planner.pick_key(p1) == (True, "k2")
    assert planner.soonest_key_recovery((attempt,)) == 2.0
    clock.advance(2)
    assert planner.pick_key(p1) == (True, "k1")
    planner.record_failure(attempt, "k2", decide(UpstreamAuthError("x", upstream_status=401)), None)
    clock.advance(AUTH_COOLDOWN - 1)
    assert planner.pick_key(p1, frozenset({"k1"})) == (False, None)
