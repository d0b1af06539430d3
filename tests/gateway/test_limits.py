"""Rate limits end to end: exact under concurrency in one process, across workers and across
instances sharing the real Redis; window edges on an injected clock; upstream-key limits."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.gateway.harness import run_gateway

CLIENT = "sk-client-limits-canary-4a1f"


def config(fake: FakeOpenAI, key_prefs: str = "", provider_prefs: str = "", keys: str = "sk-up") -> str:
    return f"""
providers:
  - provider: up
    base_url: {fake.base_url}
    api: {keys}
    model: [gpt-4o, gpt-4o-mini]
    preferences: {{cooldown_period: 0{provider_prefs}}}
api_keys:
  - api: {CLIENT}
    preferences: {{{key_prefs}}}
"""


async def burst(base_url: str, n: int) -> Counter[int]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "burst"}]}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"})
                for _ in range(n)
            )
        )
    return Counter(r.status_code for r in responses)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(strict_models=False) as f:
        yield f


def test_200_concurrent_against_100_per_minute_admit_exactly_100(fake: FakeOpenAI) -> None:
    with run_gateway(config(fake, "rate_limit: 100/min")) as gw:
        counts = asyncio.run(burst(gw.base_url, 200))
    assert counts == {200: 100, 429: 100}
    assert len(fake.chat_requests) == 100


def test_window_edges_and_headers_on_an_injected_clock(fake: FakeOpenAI) -> None:
    clock = FakeClock()
    with run_gateway(config(fake, "rate_limit: 2/min"), clock=clock) as gw:
        client = gw.client(CLIENT)
        ok = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "1"}]
        )
        assert ok.headers["x-ratelimit-limit-requests"] == "2"
        assert ok.headers["x-ratelimit-remaining-requests"] == "1"
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "2"}])
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "3"}])
        headers = info.value.response.headers
        assert headers["retry-after"] == "60" and headers["x-ratelimit-remaining-requests"] == "0"
        assert info.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
        # windows are per (key, requested model): another model has its own
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "m"}])
        clock.advance(59.999)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "4"}])
        clock.advance(0.001)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "5"}])
    assert len(fake.chat_requests) == 4  # refused requests never reached the upstream


def test_global_limit_covers_all_keys(fake: FakeOpenAI) -> None:
    text = config(fake) + "preferences:\n  rate_limit: 3/min\n"
    with run_gateway(text, clock=FakeClock()) as gw:
        counts = asyncio.run(burst(gw.base_url, 5))
    assert counts == {200: 3, 429: 2}


def test_token_limits_charge_estimates_then_real_usage(fake: FakeOpenAI) -> None:
    """100/tpm. Each ~70-token prompt is charged its estimate up front, then corrected to the 6
    tokens the upstream reports: a second and third ~70-token prompt fit only thanks to the
    correction; a ~95-token prompt then does not (6 + 6 + 6 + 95 > 100)."""
    clock = FakeClock()
    fake.default = Reply(text="ok", usage=(5, 1))
    with run_gateway(config(fake, "rate_limit: 100/tpm"), clock=clock) as gw:
        client = gw.client(CLIENT)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "word " * 63}])
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "word " * 88}])
        assert "x-ratelimit-remaining-tokens" in info.value.response.headers
        # a prompt larger than the whole window can never pass: 413, not an endless 429
        with pytest.raises(openai.APIStatusError) as too_big:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "word " * 300}])
        assert too_big.value.status_code == 413


def test_tokens_per_request_cap_is_a_413(fake: FakeOpenAI) -> None:
    with (
        run_gateway(config(fake, "rate_limit: 50/tpr"), clock=FakeClock()) as gw,
        pytest.raises(openai.APIStatusError) as info,
    ):
        gw.client(CLIENT).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "many words " * 100}]
        )
    assert info.value.status_code == 413 and fake.chat_requests == []


def test_upstream_key_at_its_limit_rotates_to_the_next_key(fake: FakeOpenAI) -> None:
    text = config(fake, provider_prefs=", api_key_rate_limit: 1/min", keys="[k1, k2]")
    with run_gateway(text, clock=FakeClock()) as gw:
        client = gw.client(CLIENT)
        for i in range(2):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": str(i)}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert [r.headers["authorization"] for r in fake.chat_requests] == ["Bearer k1", "Bearer k2"]


# ---------------------------------------------------------------------------------- Redis


def _redis_or_skip() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/0"
    except OSError as exc:
        reason = f"Redis is not reachable on 127.0.0.1:6379: {exc}"
    else:
        reason = "Redis on 127.0.0.1:6379 did not answer PING"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (required when CI=true)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cfg: Path, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unigate",
            "serve",
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("gateway did not start")


@pytest.mark.parametrize("layout", ["two-workers", "two-instances"])
def test_exact_across_workers_and_instances_sharing_redis(fake: FakeOpenAI, tmp_path: Path, layout: str) -> None:
    redis_url = _redis_or_skip()
    cfg = tmp_path / "api.yaml"
    cfg.write_text(config(fake, "rate_limit: 100/min"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "UNIGATE_REDIS_PREFIX": f"ugtest:{uuid.uuid4().hex}:",
        "DISABLE_DATABASE": "true",
    }
    ports = [_free_port()] if layout == "two-workers" else [_free_port(), _free_port()]
    procs = [_serve(cfg, p, env, 2 if layout == "two-workers" else 1) for p in ports]
    try:
        for port in ports:
            _wait_up(port)

        async def spread() -> Counter[int]:
            parts = await asyncio.gather(*(burst(f"http://127.0.0.1:{p}/v1", 200 // len(ports)) for p in ports))
            return sum(parts, Counter())

        counts = asyncio.run(spread())
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    assert counts == {200: 100, 429: 100}
