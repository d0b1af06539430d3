"""Retries, cooldowns, key rotation, timeouts and late-committing streams, end to end.

Cooldowns run on an injected clock; the only real waits are the gateway's own short
per-attempt timeouts (a hanging channel must really be abandoned), never a sleep in a test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_upstream import (
    EmptyStream,
    Fail,
    FakeOpenAI,
    Gate,
    Hang,
    Reply,
    Stall,
    StreamThenDie,
)
from tests.gateway.harness import RunningGateway, run_gateway

CLIENT = "sk-client-res-canary-19fa"


@pytest.fixture
def pair() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(strict_models=False) as a, FakeOpenAI(strict_models=False) as b:
        yield a, b


def two_channels(a: FakeOpenAI, b: FakeOpenAI, *, prefs: str = "", a_prefs: str = "", a_keys: str = "ka") -> str:
    return f"""
providers:
  - provider: alpha
    base_url: {a.base_url}
    api: {a_keys}
    model: [gpt-4o]
    preferences: {{cooldown_period: 30{a_prefs}}}
  - provider: beta
    base_url: {b.base_url}
    api: kb
    model: [gpt-4o]
preferences: {{cooldown_period: 60{prefs}}}
api_keys:
  - api: {CLIENT}
    model: [all]
"""


def ask(gw: RunningGateway, stream: bool = False) -> tuple[str, str]:
    """(answer text, serving channel)."""
    client = gw.client(CLIENT)
    messages = [{"role": "user", "content": "q"}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
        return raw.parse().choices[0].message.content or "", raw.headers["x-unigate-channel"]
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=messages,
        stream=True,  # type: ignore[arg-type]
    ) as resp:
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        return text, resp.headers.get("x-unigate-channel", "")


def test_500_cools_the_channel_until_the_clock_passes(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    with run_gateway(two_channels(a, b), clock=clock) as gw:
        a.script(Fail(500))
        assert ask(gw) == ("echo: q", "beta")
        assert ask(gw)[1] == "beta"  # alpha is cooling: not even tried
        assert len(a.chat_requests) == 1
        clock.advance(29.9)
        assert ask(gw)[1] == "beta"
        clock.advance(0.1)
        assert ask(gw)[1] == "alpha"  # recovered automatically
        assert len(a.chat_requests) == 2


def test_cooldown_grows_on_repeated_failure(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    with run_gateway(two_channels(a, b), clock=clock) as gw:
        a.script(Fail(500), Fail(500))
        ask(gw)
        clock.advance(30)
        ask(gw)  # fails again → 60 s this time
        clock.advance(59)
        assert ask(gw)[1] == "beta"
        clock.advance(1)
        assert ask(gw)[1] == "alpha"


def test_every_channel_cooling_still_tries_the_soonest(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    with run_gateway(two_channels(a, b), clock=clock) as gw:
        a.script(Fail(500))
        b.script(Fail(500))
        with pytest.raises(openai.InternalServerError):
            ask(gw)
        clock.advance(1)
        assert ask(gw) == ("echo: q", "alpha")  # alpha (30 s) recovers before beta (60 s)


def test_cooldown_zero_disables_it(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    text = two_channels(a, b).replace("cooldown_period: 30", "cooldown_period: 0")
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Fail(500))
        assert ask(gw)[1] == "beta"
        assert ask(gw)[1] == "alpha"


def test_429_retry_after_cools_only_that_key(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    with run_gateway(two_channels(a, b, a_keys="[k1, k2]"), clock=clock) as gw:
        a.script(Fail(429, headers={"retry-after": "2"}))
        assert ask(gw) == ("echo: q", "alpha")  # k1 → 429, then k2 on the same channel
        keys = [r.headers["authorization"] for r in a.chat_requests]
        assert keys == ["Bearer k1", "Bearer k2"]
        ask(gw)
        ask(gw)
        assert [r.headers["authorization"] for r in a.chat_requests[2:]] == ["Bearer k2", "Bearer k2"]
        clock.advance(2)
        ask(gw)
        ask(gw)
        assert {r.headers["authorization"] for r in a.chat_requests[4:]} == {"Bearer k1", "Bearer k2"}
        assert b.chat_requests == []


def test_401_from_upstream_takes_the_key_out(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    with run_gateway(two_channels(a, b, a_keys="[k1, k2]"), clock=clock) as gw:
        a.script(Fail(401))
        for _ in range(4):
            ask(gw)
        used = [r.headers["authorization"] for r in a.chat_requests]
        assert used.count("Bearer k1") == 1  # never again after its 401


def test_all_rate_limited_answers_429_with_retry_after(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    with run_gateway(two_channels(a, b), clock=FakeClock()) as gw:
        a.script(Fail(429, headers={"retry-after": "7"}))
        b.script(Fail(429, headers={"retry-after": "3"}))
        with pytest.raises(openai.RateLimitError) as info:
            ask(gw)
        assert info.value.response.headers["retry-after"] == "3"


def test_hanging_channel_is_abandoned_at_its_timeout(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    text = two_channels(a, b, a_prefs=", model_timeout: {gpt-4o: 0.3}")
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Hang())
        assert ask(gw) == ("echo: q", "beta")
        assert ask(gw, stream=True)[1] == "beta"  # alpha is cooling now
        assert len(a.chat_requests) == 1


def test_stream_with_headers_but_no_first_chunk_times_out_and_fails_over(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    text = two_channels(a, b, a_prefs=", model_timeout: {gpt-4o: 0.3}")
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Stall(chunks=0))
        assert ask(gw, stream=True) == ("echo: q", "beta")
        a.release()


@pytest.mark.parametrize(
    "behaviour",
    [StreamThenDie(chunks=0, how="reset"), StreamThenDie(chunks=0, how="end"), EmptyStream(), EmptyStream(done=True)],
)
def test_stream_dying_before_content_is_retried_invisibly(
    pair: tuple[FakeOpenAI, FakeOpenAI], behaviour: object
) -> None:
    a, b = pair
    with run_gateway(two_channels(a, b), clock=FakeClock()) as gw:
        a.script(behaviour)  # type: ignore[arg-type]
        assert ask(gw, stream=True) == ("echo: q", "beta")


@pytest.mark.parametrize("how", ["reset", "fin", "end"])
def test_stream_dying_after_content_ends_with_an_error_event(pair: tuple[FakeOpenAI, FakeOpenAI], how: str) -> None:
    a, b = pair
    with run_gateway(two_channels(a, b), clock=FakeClock()) as gw:
        a.script(StreamThenDie(chunks=2, how=how))  # type: ignore[arg-type]
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}], "stream": True}
        with httpx.stream(
            "POST", gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"}
        ) as resp:
            raw = b"".join(resp.iter_bytes())
        events = [e for e in raw.split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]"
        assert events[-2].startswith(b'data: {"error"')
        assert b'finish_reason":"stop' not in raw  # no synthetic stop
        assert b.chat_requests == []


def test_error_trigger_in_first_chunk_fails_over(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    text = two_channels(a, b, prefs=", error_triggers: ['quota']")
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Reply(text="quota exceeded, buy more"))
        assert ask(gw, stream=True) == ("echo: q", "beta")
        a.script(Reply(text="quota exceeded, buy more"))
        assert ask(gw)[1] == "beta"


def test_keepalive_comments_while_waiting_then_content(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    text = two_channels(a, b, prefs=", keepalive_interval: {gpt-4o: 0.05}")
    gate = threading.Event()
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Gate(gate))
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}], "stream": True}
        with httpx.stream(
            "POST", gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"}
        ) as resp:
            assert resp.status_code == 200
            pieces = resp.iter_raw()
            first = next(pieces)
            assert first.startswith(b": keepalive")  # headers and a comment before any content
            gate.set()
            rest = first + b"".join(pieces)
    assert b"echo" in rest and rest.count(b": keepalive") >= 1
    assert rest.endswith(b"data: [DONE]\n\n")


def test_keepalive_stream_fails_over_invisibly_and_reports_final_errors_in_band(
    pair: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = pair
    text = two_channels(a, b, prefs=", keepalive_interval: {gpt-4o: 30}")
    with run_gateway(text, clock=FakeClock()) as gw:
        a.script(Fail(500))
        assert ask(gw, stream=True)[0] == "echo: q"
        b.script(Fail(500))
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}], "stream": True}
        resp = httpx.post(gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"})
        assert resp.status_code == 200
        assert b'data: {"error"' in resp.content and resp.content.endswith(b"data: [DONE]\n\n")


def test_retry_count_limits_attempts(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    with FakeOpenAI(strict_models=False) as c:
        text = (
            two_channels(a, b)
            + """    preferences: {AUTO_RETRY: 1}
"""
        )
        text = text.replace(
            "\npreferences: {",
            f"\n  - provider: gamma\n    base_url: {c.base_url}\n    api: kc\n    model: [gpt-4o]\npreferences: {{",
        )
        with run_gateway(text, clock=FakeClock()) as gw:
            a.script(Fail(500))
            b.script(Fail(502))
            with pytest.raises(openai.APIStatusError) as info:
                ask(gw)
            assert info.value.status_code == 502
            assert c.chat_requests == []  # 1 + AUTO_RETRY(1) = 2 attempts
            assert info.value.response.headers.get("x-request-id")


def test_keyless_channel_rate_limited_moves_on_and_cools_for_retry_after(pair: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    clock = FakeClock()
    text = two_channels(a, b).replace("    api: ka\n", "")  # alpha has no key (like a service account)
    with run_gateway(text, clock=clock) as gw:
        a.script(Fail(429, headers={"retry-after": "5"}))
        assert ask(gw) == ("echo: q", "beta")
        assert len(a.chat_requests) == 1  # not retried on the same channel
        assert ask(gw)[1] == "beta"
        clock.advance(5)
        assert ask(gw)[1] == "alpha"
