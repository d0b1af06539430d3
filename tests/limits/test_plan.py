"""Parsing → windows, the header format, the per-model lookup and ``from_env``: no I/O."""

from __future__ import annotations

import pytest

from unigate.config.values import RateLimit, parse_rate_limit
from unigate.limits import Limiter, from_env, limits_for
from unigate.limits_base import Decision, WindowState, go_duration, plan_of

DAY = 86_400


def test_units_become_windows_with_their_periods() -> None:
    text = "1/s,2/sec,3/second,4/m,5/min,6/minute,7/h,8/hr,9/hour,10/d,11/day,12/mo,13/month,14/y,15/year"
    plan = plan_of(parse_rate_limit(text))
    # same kind and period → one stored window with the smaller limit
    assert [(w.tag, w.term.limit) for w in plan.windows] == [
        ("r1", 1),
        ("r60", 4),
        ("r3600", 7),
        ("r86400", 10),
        ("r2592000", 12),
        ("r31536000", 14),
    ]
    assert plan.windows[4].period_us == 30 * DAY * 1_000_000
    assert plan.per_request is None


def test_token_units() -> None:
    plan = plan_of(parse_rate_limit("100/min,50000/tpm,1000000/tpd,4000/tpr,3000/tpr"))
    assert [(w.tag, w.tokens, w.term.limit) for w in plan.windows] == [
        ("r60", False, 100),
        ("t60", True, 50_000),
        ("t86400", True, 1_000_000),
    ]
    assert plan.per_request == RateLimit(3000, "tokens_per_request", 0)
    assert [w.tag for w in plan.token_windows] == ["t60", "t86400"]
    # token windows merge charges closer than period/1000; request windows never merge
    assert [w.merge_us for w in plan.windows] == [0, 60_000, 86_400_000]
    assert plan.windows[0].weight(500) == 1 and plan.windows[1].weight(500) == 500


def test_bad_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        parse_rate_limit("5/fortnight")
    with pytest.raises(ValueError, match="negative"):
        plan_of((RateLimit(-1, "requests", 60),))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0ms"), (0.02, "20ms"), (0.9994, "1s"), (1, "1s"), (59.999, "59.999s"), (360, "6m0s"), (3723.5, "1h2m3.5s")],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_headers_pick_the_tightest_window_per_kind() -> None:
    minute, day, tpm = RateLimit(10, "requests", 60), RateLimit(100, "requests", DAY), RateLimit(1000, "tokens", 60)
    d = Decision(
        allowed=False,
        limit=minute,
        remaining=0,
        reset_after=12.5,
        retry_after=12.5,
        windows=(WindowState(minute, 0, 12.5), WindowState(day, 50, 3000.0), WindowState(tpm, 400, 0.02)),
    )
    assert d.headers() == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "12.5s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "20ms",
        "retry-after": "13",
        "retry-after-ms": "12500",
    }
    assert Decision(True, None, 0, 0.0, None).headers() == {}


def test_limits_for_follows_uni_api_lookup() -> None:
    rules = {"gpt-4o": "1/min", "claude": "2/min", "gpt": "3/min", "default": "4/min"}
    assert limits_for(rules, "gpt-4o") == parse_rate_limit("1/min")  # exact
    assert limits_for(rules, "gpt-4o-mini") == parse_rate_limit("1/min")  # first substring key in order
    assert limits_for(rules, "gpt-3.5-turbo") == parse_rate_limit("3/min")
    assert limits_for(rules, "claude-3-5-sonnet") == parse_rate_limit("2/min")
    assert limits_for(rules, "gemini") == parse_rate_limit("4/min")  # default
    assert limits_for({"gpt": "3/min"}, "gemini") == ()  # none: uni-api's implicit 999999/min
    assert limits_for({"default": "15/min,1000/tpm"}, "any") == parse_rate_limit("15/min,1000/tpm")


def test_from_env() -> None:
    assert from_env({}).backend.name == "memory"
    assert from_env({"REDIS_URL": "  "}).backend.name == "memory"
    limiter = from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert limiter.backend.name == "redis" and limiter.fail_open
    closed = from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "UNIGATE_REDIS_FAIL_OPEN": "false"})
    assert not closed.fail_open
    with pytest.raises(ValueError, match="UNIGATE_REDIS_FAIL_OPEN"):
        from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "UNIGATE_REDIS_FAIL_OPEN": "maybe"})


@pytest.mark.anyio
async def test_no_limits_means_no_work() -> None:
    limiter = Limiter.memory(lambda: 0.0)
    d = await limiter.acquire("s", ())
    assert d.allowed and d.limit is None and d.windows == ()
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("s", parse_rate_limit("1/min"), cost=-1)
