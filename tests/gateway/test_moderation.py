"""The moderation gate through a real unigate: keys with ``ENABLE_MODERATION`` have their users'
text checked by the moderation model (through the normal routing, with the caller's key) before
the request is routed; flagged → 400; the gate's own failures follow ``moderation_fail_open``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.media_upstream import FakeMedia, MFail, MFlag
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_stats import wait_until

GATED = "sk-gated-moderation-canary-11aa"
PLAIN = "sk-plain-moderation-canary-22bb"
NO_MODEL = "sk-nomod-moderation-canary-33cc"
UP_CHAT = "sk-up-chat-moderation-canary-44dd"
UP_M1 = "sk-up-m1-moderation-canary-55ee"
UP_M2 = "sk-up-m2-moderation-canary-66ff"
HISTORY: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
]


def config(chat: FakeOpenAI, m1: FakeMedia, m2: FakeMedia, fail_open: bool = True) -> str:
    return f"""
providers:
  - provider: chat
    base_url: {chat.base_url}
    api: {UP_CHAT}
    model: [gpt-4o]
  - provider: mod1
    base_url: {m1.base_url}
    api: {UP_M1}
    model: [omni-moderation-latest, gpt-image-1, tts-1]
  - provider: mod2
    base_url: {m2.base_url}
    api: {UP_M2}
    model: [omni-moderation-latest]
api_keys:
  - api: {GATED}
    role: gated-admin
    preferences:
      ENABLE_MODERATION: true
  - api: {PLAIN}
    role: plain
  - api: {NO_MODEL}
    role: no-model
    model: [gpt-4o]
    preferences:
      ENABLE_MODERATION: true
preferences:
  cooldown_period: 0
  moderation_fail_open: {"true" if fail_open else "false"}
"""


Fakes = tuple[FakeOpenAI, FakeMedia, FakeMedia]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with FakeOpenAI(api_key=UP_CHAT) as chat, FakeMedia(api_key=UP_M1) as m1, FakeMedia(api_key=UP_M2) as m2:
        yield chat, m1, m2


@pytest.fixture
def gw(fakes: Fakes) -> Iterator[RunningGateway]:
    with run_gateway(config(*fakes)) as gateway:
        yield gateway


def ask(gw: RunningGateway, key: str, **extra: Any) -> Any:
    return gw.client(key).chat.completions.create(model="gpt-4o", messages=HISTORY, **extra)


def test_passing_text_reaches_the_model_after_the_check(fakes: Fakes, gw: RunningGateway) -> None:
    chat, m1, _ = fakes
    answer = ask(gw, GATED)
    assert answer.choices[0].message.content == "echo: second part"
    checked = m1.requests_to("/moderations")
    expected = {"model": "omni-moderation-latest", "input": ["first question", "second\npart"]}
    assert [r.json for r in checked] == [expected]
    assert checked[0].headers["authorization"] == f"Bearer {UP_M1}"
    assert len(chat.chat_requests) == 1


def test_flagged_text_is_a_400_naming_the_categories(fakes: Fakes, gw: RunningGateway) -> None:
    chat, m1, _ = fakes
    m1.script(MFlag(("violence", "harassment")))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(gw, GATED)
    assert caught.value.code == "content_flagged" and caught.value.param == "messages"
    assert "categories: harassment, violence" in caught.value.message
    m1.script(MFlag(("hate",)))
    with pytest.raises(openai.BadRequestError, match="hate"):  # a stream is refused before it starts
        ask(gw, GATED, stream=True)
    assert chat.chat_requests == []


def test_keys_without_the_gate_are_never_checked(fakes: Fakes, gw: RunningGateway) -> None:
    chat, m1, m2 = fakes
    m1.script(MFlag())
    assert ask(gw, PLAIN).choices[0].message.content == "echo: second part"
    assert m1.requests == [] and m2.requests == [] and len(chat.chat_requests) == 1


def test_the_check_fails_over_like_any_request(fakes: Fakes, gw: RunningGateway) -> None:
    chat, m1, m2 = fakes
    m1.script(MFail(500))
    m2.script(MFlag(("self-harm",)))
    with pytest.raises(openai.BadRequestError, match="self-harm"):
        ask(gw, GATED)
    assert len(m1.requests) == len(m2.requests) == 1 and chat.chat_requests == []


def test_fail_open_lets_the_request_through_and_logs(
    fakes: Fakes, gw: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    chat, m1, m2 = fakes
    m1.script(MFail(503))
    m2.script(MFail(500))
    with caplog.at_level(logging.WARNING, logger="unigate.moderation"):
        assert ask(gw, GATED).choices[0].message.content == "echo: second part"
        # A key that may not use the moderation model: a gate failure too.
        assert ask(gw, NO_MODEL).choices[0].message.content == "echo: second part"
    failures = [r.getMessage() for r in caplog.records if r.name == "unigate.moderation"]
    assert len(failures) == 2 and "All 2 attempt(s)" in failures[0] and "may not use" in failures[1]
    assert all("moderation_fail_open" in f and UP_M1 not in f for f in failures)
    assert len(chat.chat_requests) == 2


def test_fail_closed_refuses_unchecked_requests(fakes: Fakes) -> None:
    chat, m1, m2 = fakes
    with run_gateway(config(chat, m1, m2, fail_open=False)) as gw:
        m1.script(MFail(500))
        m2.script(MFail(500))
        with pytest.raises(openai.APIStatusError) as caught:
            ask(gw, GATED)
        assert caught.value.status_code == 503 and caught.value.code == "moderation_unavailable"
        with pytest.raises(openai.APIStatusError) as denied:
            ask(gw, NO_MODEL)
        assert denied.value.status_code == 503 and "may not use" in denied.value.message
        assert ask(gw, PLAIN).choices  # ungated keys are unaffected
    assert len(chat.chat_requests) == 1


def test_image_prompts_and_speech_input_are_gated_too(fakes: Fakes, gw: RunningGateway) -> None:
    _, m1, _ = fakes
    m1.script(MFlag(("violence",)))
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(GATED).images.generate(model="gpt-image-1", prompt="a bad picture")
    assert caught.value.param == "prompt" and m1.requests_to("/images/generations") == []
    assert m1.requests_to("/moderations")[-1].json["input"] == ["a bad picture"]
    assert gw.client(GATED).images.generate(model="gpt-image-1", prompt="a calm lake").data
    m1.script(MFlag(("hate",)))
    with pytest.raises(openai.BadRequestError) as speech:
        gw.client(GATED).audio.speech.create(model="tts-1", voice="alloy", input="hateful words")
    assert speech.value.param == "input" and m1.requests_to("/audio/speech") == []
    assert gw.client(GATED).audio.speech.create(model="tts-1", voice="alloy", input="calm words").content


def test_moderation_latency_is_in_the_record(tmp_path: Path, fakes: Fakes) -> None:
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(tmp_path / "stats.db")}
    _, m1, _ = fakes
    with run_gateway(config(*fakes), env=env) as gw:
        ask(gw, GATED)
        ask(gw, PLAIN)
        m1.script(MFlag())
        with pytest.raises(openai.BadRequestError):
            ask(gw, GATED)

        def fetch() -> list[dict[str, Any]] | None:
            resp = httpx.get(gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {GATED}"})
            rows: list[dict[str, Any]] = resp.json()["data"]
            return rows if len(rows) >= 3 else None

        rows = wait_until(fetch)
    assert rows is not None
    checked, plain, flagged = sorted(rows, key=lambda r: r["timestamp"])
    assert checked["moderation_ms"] > 0 and checked["status"] == 200 and checked["channel"] == "chat"
    assert plain["moderation_ms"] is None
    assert (flagged["status"], flagged["error_class"]) == (400, "ModerationFlagged") and flagged["moderation_ms"] > 0
