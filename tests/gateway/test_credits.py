"""Credits end to end: a key's budget is spent by its recorded request costs since ``created_at``,
refused with 402 at zero, seeded from the statistics database at start-up, shared through Redis,
and shown (without keys) by the admin endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_limits import _redis_or_skip
from tests.gateway.test_stats import wait_until
from tests.stats.builders import record
from unigate.stats.store import StatsStore

ADMIN = "sk-credits-admin-5c1e"
PAID = "sk-credits-paid-9d2f"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def config(fake: FakeOpenAI, credits: float, created_at: str | None = "2026-01-01T00:00:00Z") -> str:
    created = f", created_at: '{created_at}'" if created_at else ""
    return f"""
providers:
  - provider: up
    base_url: {fake.base_url}
    api: sk-up-credits
    model: [gpt-4o]
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {PAID}
    role: team-paid
    preferences: {{credits: {credits}{created}}}
preferences:
  model_price: {{gpt-4o: "1000000,0"}}
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(strict_models=False) as f:
        yield f


def ask(gw: RunningGateway) -> Any:
    return gw.client(PAID).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def balance(gw: RunningGateway) -> dict[str, Any]:
    resp = httpx.get(gw.base_url + "/credits", headers={"authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()["data"]
    return dict(entry)


def spent_reaches(gw: RunningGateway, amount: float) -> bool:
    return bool(wait_until(lambda: balance(gw)["spent"] >= amount))


def test_a_key_is_refused_with_402_once_its_credits_are_spent(fake: FakeOpenAI) -> None:
    # model_price makes one prompt token cost $1; every answer reports exactly one.
    fake.script(*[Reply(text="ok", usage=(1, 0)) for _ in range(2)])
    with run_gateway(config(fake, 2)) as gw:
        ask(gw)
        assert spent_reaches(gw, 1)
        ask(gw)
        assert spent_reaches(gw, 2)
        with pytest.raises(openai.APIStatusError) as info:
            ask(gw)
        assert info.value.status_code == 402
        error = info.value.body
        assert isinstance(error, dict) and error["code"] == "insufficient_quota"
        assert "credits" in error["message"]
        assert balance(gw) == {
            "key": "team-paid",
            "credits": 2.0,
            "created_at": "2026-01-01T00:00:00+00:00",
            "spent": 2.0,
            "balance": 0.0,
            "enabled": False,
        }
    assert len(fake.chat_requests) == 2  # the refused request never reached the upstream


def test_the_admin_endpoint_needs_an_admin_key_and_shows_no_key(fake: FakeOpenAI) -> None:
    with run_gateway(config(fake, 5)) as gw:
        for path in ("/credits", "/api_keys_states"):
            denied = httpx.get(gw.base_url + path, headers={"authorization": f"Bearer {PAID}"})
            assert denied.status_code == 403
            ok = httpx.get(gw.base_url + path, headers={"authorization": f"Bearer {ADMIN}"})
            assert ok.status_code == 200
            assert PAID not in ok.text and ADMIN not in ok.text
            assert ok.json()["data"][0]["balance"] == 5.0


def test_spend_is_seeded_from_the_records_since_created_at(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "stats.db"

    async def seed() -> None:
        store = StatsStore(f"sqlite+aiosqlite:///{db}")
        await store.open()
        await store.write(
            [
                record("before", client_key="team-paid", cost=100.0, timestamp=CREATED - timedelta(days=1)),
                record("after-1", client_key="team-paid", cost=1.25, timestamp=CREATED + timedelta(hours=1)),
                record("after-2", client_key="team-paid", cost=0.5, timestamp=CREATED + timedelta(days=3)),
                record("other", client_key="someone-else", cost=7.0, timestamp=CREATED + timedelta(hours=1)),
            ]
        )
        await store.close()

    asyncio.run(seed())
    fake.script(Reply(text="ok", usage=(1, 0)))
    with run_gateway(config(fake, 2.5), env={"DISABLE_DATABASE": "false", "DB_PATH": str(db)}) as gw:
        assert balance(gw)["spent"] == 1.75
        ask(gw)  # 1.75 < 2.5: admitted, and costs $1
        assert spent_reaches(gw, 2.75)
        with pytest.raises(openai.APIStatusError) as info:
            ask(gw)
        assert info.value.status_code == 402


def test_without_created_at_the_window_is_the_last_30_days(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "stats.db"
    now = datetime.now(UTC)

    async def seed() -> None:
        store = StatsStore(f"sqlite+aiosqlite:///{db}")
        await store.open()
        await store.write(
            [
                record("old", client_key="team-paid", cost=50.0, timestamp=now - timedelta(days=31)),
                record("recent", client_key="team-paid", cost=0.25, timestamp=now - timedelta(days=29)),
            ]
        )
        await store.close()

    asyncio.run(seed())
    with run_gateway(config(fake, 1, created_at=None), env={"DISABLE_DATABASE": "false", "DB_PATH": str(db)}) as gw:
        assert balance(gw)["spent"] == 0.25


def test_spend_is_shared_by_instances_through_redis(fake: FakeOpenAI) -> None:
    env = {"REDIS_URL": _redis_or_skip(), "UNIGATE_REDIS_PREFIX": f"ugtest:{uuid.uuid4().hex}:"}
    fake.script(Reply(text="ok", usage=(1, 0)))
    with run_gateway(config(fake, 1), env=env) as first, run_gateway(config(fake, 1), env=env) as second:
        ask(first)
        assert spent_reaches(second, 1)
        with pytest.raises(openai.APIStatusError) as info:
            ask(second)
        assert info.value.status_code == 402
    assert len(fake.chat_requests) == 1


def test_keys_sharing_a_role_get_distinct_labels(fake: FakeOpenAI) -> None:
    text = config(fake, 3).replace(
        "api_keys:\n", "api_keys:\n  - api: sk-credits-twin-1aa\n    role: team-paid\n    preferences: {credits: 1}\n"
    )
    with run_gateway(text) as gw:
        labels = [
            e["key"]
            for e in httpx.get(gw.base_url + "/credits", headers={"authorization": f"Bearer {ADMIN}"}).json()["data"]
        ]
        assert len(labels) == 2 and len(set(labels)) == 2
        assert all(label.startswith("team-paid/key-") for label in labels)
